// Keeps secret values out of everything corral writes: captured output (as it streams, a value
// split across two writes included), events, reports and messages show [REDACTED:NAME] instead.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace corral::launcher {

class Redactor {
 public:
  Redactor() = default;
  // (name, value) pairs; empty values are ignored.
  explicit Redactor(std::vector<std::pair<std::string, std::string>> secrets);

  bool empty() const { return secrets_.empty(); }
  const std::vector<std::pair<std::string, std::string>>& secrets() const { return secrets_; }
  // Whether `text` holds any secret value; its name in *name.
  bool Find(std::string_view text, std::string* name = nullptr) const;
  // `text` with every value replaced.
  std::string Apply(std::string_view text) const;
  // Every string in `j` (keys too) with every value replaced.
  void Apply(nlohmann::json* j) const;

  // A stream: Feed returns what is safe to write now, holding back a tail that could be the
  // start of a value; Flush returns the rest at the end.
  class Stream {
   public:
    explicit Stream(const Redactor* r) : r_(r) {}
    std::string Feed(std::string_view chunk);
    std::string Flush();

   private:
    const Redactor* r_;
    std::string pending_;
  };

 private:
  // Appends `text` to *out with every value that starts before `limit` replaced, up to `limit`
  // or the end of the last replacement, whichever is later; returns how much of `text` it used.
  size_t Replace(std::string_view text, size_t limit, std::string* out) const;

  std::vector<std::pair<std::string, std::string>> secrets_;  // longest value first
  size_t longest_ = 0;
};

}  // namespace corral::launcher
