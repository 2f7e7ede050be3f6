// Strict reading of TOML documents with errors "SOURCE:LINE:COL: key: message"; shared by the
// policy and plan parsers. Internal to corral::policy; the only header that includes toml++.
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <toml++/toml.h>

#include "policy/policy.h"

namespace corral::policy::internal {

struct Failure {
  Error error;
};

inline const char* TypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

// Walks the document and turns every problem into "source:LINE:COL: key: message".
class TomlReader {
 public:
  explicit TomlReader(std::string_view source) : source_(source) {}

  [[noreturn]] void Fail(SourcePos where, std::string_view key, std::string_view message) const {
    throw Failure{Error{std::string(source_) + ":" + std::to_string(where.line) + ":" +
                        std::to_string(where.column) + ": " + std::string(key) + ": " +
                        std::string(message)}};
  }

  [[noreturn]] void Fail(const toml::source_region& where, std::string_view key,
                         std::string_view message) const {
    Fail(SourcePos{static_cast<int>(where.begin.line), static_cast<int>(where.begin.column)}, key,
         message);
  }

  static SourcePos Pos(const toml::node& node) {
    return SourcePos{static_cast<int>(node.source().begin.line),
                     static_cast<int>(node.source().begin.column)};
  }

  // Fails on any key of `table` not in `allowed`.
  void CheckKeys(const toml::table& table, std::string_view prefix,
                 std::initializer_list<std::string_view> allowed) const {
    for (auto&& [key, value] : table) {
      if (std::find(allowed.begin(), allowed.end(), key.str()) != allowed.end()) continue;
      std::string expected;
      for (std::string_view a : allowed) expected += (expected.empty() ? "" : ", ") + std::string(a);
      Fail(key.source(), Join(prefix, key.str()), "unknown key (expected one of " + expected + ")");
    }
  }

  static std::string Join(std::string_view prefix, std::string_view key) {
    return prefix.empty() ? std::string(key) : std::string(prefix) + "." + std::string(key);
  }

  const toml::table* Table(const toml::table& parent, std::string_view key,
                           std::string_view prefix = "") const {
    const toml::node* node = parent.get(key);
    if (!node) return nullptr;
    if (!node->is_table()) {
      Fail(node->source(), Join(prefix, key), std::string("expected a table, got ") + TypeName(*node));
    }
    return node->as_table();
  }

  std::optional<std::string> String(const toml::table& t, std::string_view key,
                                    std::string_view prefix) const {
    const toml::node* node = t.get(key);
    if (!node) return std::nullopt;
    if (!node->is_string()) {
      Fail(node->source(), Join(prefix, key), std::string("expected a string, got ") + TypeName(*node));
    }
    return node->as_string()->get();
  }

  std::optional<bool> Bool(const toml::table& t, std::string_view key, std::string_view prefix) const {
    const toml::node* node = t.get(key);
    if (!node) return std::nullopt;
    if (!node->is_boolean()) {
      Fail(node->source(), Join(prefix, key),
           std::string("expected a boolean, got ") + TypeName(*node));
    }
    return node->as_boolean()->get();
  }

  // An array of strings; each element is passed with its node to `each`.
  template <typename Fn>
  bool StringArray(const toml::table& t, std::string_view key, std::string_view prefix, Fn each) const {
    const toml::node* node = t.get(key);
    if (!node) return false;
    std::string name = Join(prefix, key);
    if (!node->is_array()) {
      Fail(node->source(), name, std::string("expected an array of strings, got ") + TypeName(*node));
    }
    for (const toml::node& element : *node->as_array()) {
      if (!element.is_string()) {
        Fail(element.source(), name,
             std::string("expected an array of strings, got an element that is ") +
                 TypeName(element));
      }
      each(element, element.as_string()->get());
    }
    return true;
  }

  // Checks that `value` was not seen before in `seen`.
  void Unique(std::set<std::string>* seen, const toml::node& node, std::string_view key,
              const std::string& value) const {
    if (!seen->insert(value).second) Fail(node.source(), key, "'" + value + "' is listed twice");
  }

  std::string AbsolutePath(const toml::node& node, std::string_view key, std::string value) const {
    if (value.empty() || value.front() != '/') {
      Fail(node.source(), key, "'" + value + "' must be an absolute path");
    }
    while (value.size() > 1 && value.back() == '/') value.pop_back();
    CheckComponents(node, key, value);
    return value;
  }

  void CheckComponents(const toml::node& node, std::string_view key, const std::string& value) const {
    if (value.find('\0') != std::string::npos) Fail(node.source(), key, "path contains a NUL byte");
    size_t start = 0;
    while (start <= value.size()) {
      size_t end = value.find('/', start);
      if (end == std::string::npos) end = value.size();
      std::string_view part(value.data() + start, end - start);
      if (part == "." || part == ".." || (part.empty() && start != 0 && end != value.size())) {
        Fail(node.source(), key, "'" + value + "' must be a normalized path (no '.', '..' or '//')");
      }
      start = end + 1;
    }
  }

  std::string EnvName(const toml::node& node, std::string_view key, const std::string& name) const {
    bool ok = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0]));
    for (char c : name) {
      ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    }
    if (!ok) Fail(node.source(), key, "'" + name + "' is not a valid environment variable name");
    return name;
  }

  std::optional<uint64_t> Size(const toml::table& t, std::string_view key) const {
    const toml::node* node = t.get(key);
    if (!node) return std::nullopt;
    std::string name = Join("limits", key);
    if (const auto* i = node->as_integer()) {
      if (i->get() <= 0) Fail(node->source(), name, "must be greater than zero");
      return static_cast<uint64_t>(i->get());
    }
    if (!node->is_string()) {
      Fail(node->source(), name, std::string("expected a size such as \"2GiB\", got ") + TypeName(*node));
    }
    const std::string& text = node->as_string()->get();
    std::optional<uint64_t> size = ParseSize(text);
    if (!size) Fail(node->source(), name, "'" + text + "' is not a size (examples: 512MiB, 2GiB)");
    if (*size == 0) Fail(node->source(), name, "must be greater than zero");
    return size;
  }

  std::optional<std::chrono::milliseconds> Duration(const toml::table& t, std::string_view key,
                                                    std::string_view prefix) const {
    const toml::node* node = t.get(key);
    if (!node) return std::nullopt;
    std::string name = Join(prefix, key);
    if (!node->is_string()) {
      Fail(node->source(), name,
           std::string("expected a duration such as \"30m\", got ") + TypeName(*node));
    }
    const std::string& text = node->as_string()->get();
    auto d = ParseDuration(text);
    if (!d) Fail(node->source(), name, "'" + text + "' is not a duration (examples: 90s, 30m, 1h)");
    if (d->count() == 0) Fail(node->source(), name, "must be greater than zero");
    return d;
  }

  std::optional<uint64_t> Count(const toml::table& t, std::string_view key) const {
    const toml::node* node = t.get(key);
    if (!node) return std::nullopt;
    std::string name = Join("limits", key);
    if (!node->is_integer()) {
      Fail(node->source(), name, std::string("expected an integer, got ") + TypeName(*node));
    }
    int64_t v = node->as_integer()->get();
    if (v <= 0 || v > (int64_t{1} << 31)) Fail(node->source(), name, "must be from 1 to 2147483648");
    return static_cast<uint64_t>(v);
  }

 protected:
  std::string_view source_;
};

// Runs `parse` on the document, turning TOML syntax errors and Failures into Error values.
template <typename T, typename Fn>
std::expected<T, Error> ParseDocument(std::string_view text, std::string_view source_name, Fn parse) {
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    return std::unexpected(Error{std::string(source_name) + ":" +
                                 std::to_string(e.source().begin.line) + ":" +
                                 std::to_string(e.source().begin.column) + ": invalid TOML: " +
                                 std::string(e.description())});
  }
  try {
    return parse(root);
  } catch (const Failure& f) {
    return std::unexpected(f.error);
  }
}

}  // namespace corral::policy::internal
