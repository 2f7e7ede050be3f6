// Sizes, durations and egress host patterns: the small value grammars of policy files.
#include <charconv>
#include <cctype>
#include <limits>

#include "policy/policy.h"

namespace corral::policy {
namespace {

// Splits "123abc" into 123 and "abc". Fails on no digits or overflow.
bool SplitNumber(std::string_view text, uint64_t* value, std::string_view* unit) {
  const char* end = text.data() + text.size();
  // A range, not a C string: from_chars stops at `end`.
  auto [ptr, ec] = std::from_chars(text.data(), end, *value);  // NOLINT(bugprone-suspicious-stringview-data-usage)
  if (ec != std::errc() || ptr == text.data()) return false;
  *unit = std::string_view(ptr, end - ptr);
  return true;
}

bool MulOverflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

}  // namespace

std::optional<uint64_t> ParseSize(std::string_view text) {
  uint64_t n = 0;
  std::string_view unit;
  if (!SplitNumber(text, &n, &unit)) return std::nullopt;
  struct Unit {
    std::string_view name;
    uint64_t factor;
  };
  static constexpr Unit kUnits[] = {
      {"", 1},          {"B", 1},
      {"K", 1ULL << 10}, {"KiB", 1ULL << 10}, {"KB", 1000},
      {"M", 1ULL << 20}, {"MiB", 1ULL << 20}, {"MB", 1000ULL * 1000},
      {"G", 1ULL << 30}, {"GiB", 1ULL << 30}, {"GB", 1000ULL * 1000 * 1000},
      {"T", 1ULL << 40}, {"TiB", 1ULL << 40}, {"TB", 1000ULL * 1000 * 1000 * 1000},
  };
  for (const Unit& u : kUnits) {
    if (u.name != unit) continue;
    uint64_t bytes = 0;
    if (MulOverflows(n, u.factor, &bytes)) return std::nullopt;
    return bytes;
  }
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t total_ms = 0;
  while (!text.empty()) {
    uint64_t n = 0;
    std::string_view rest;
    if (!SplitNumber(text, &n, &rest)) return std::nullopt;
    size_t unit_len = 0;
    while (unit_len < rest.size() && std::isalpha(static_cast<unsigned char>(rest[unit_len]))) {
      ++unit_len;
    }
    std::string_view unit = rest.substr(0, unit_len);
    uint64_t factor = 0;
    if (unit == "ms") factor = 1;
    else if (unit == "s") factor = 1000;
    else if (unit == "m") factor = 60'000;
    else if (unit == "h") factor = 3'600'000;
    else if (unit == "d") factor = 86'400'000;
    else return std::nullopt;
    uint64_t ms = 0;
    if (MulOverflows(n, factor, &ms) || __builtin_add_overflow(total_ms, ms, &total_ms)) {
      return std::nullopt;
    }
    text = rest.substr(unit_len);
  }
  if (total_ms > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return std::chrono::milliseconds(total_ms);
}

std::string FormatSize(uint64_t bytes) {
  static constexpr std::pair<uint64_t, const char*> kUnits[] = {
      {1ULL << 40, "TiB"}, {1ULL << 30, "GiB"}, {1ULL << 20, "MiB"}, {1ULL << 10, "KiB"}};
  for (auto [factor, name] : kUnits) {
    if (bytes >= factor && bytes % factor == 0) return std::to_string(bytes / factor) + name;
  }
  return std::to_string(bytes) + "B";
}

std::string FormatDuration(std::chrono::milliseconds d) {
  uint64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  static constexpr std::pair<uint64_t, const char*> kUnits[] = {
      {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}, {1, "ms"}};
  for (auto [factor, name] : kUnits) {
    if (ms >= factor) {
      out += std::to_string(ms / factor) + name;
      ms %= factor;
    }
  }
  return out;
}

namespace {

bool IsLabel(std::string_view label) {
  if (label.empty() || label.size() > 63) return false;
  if (label.front() == '-' || label.back() == '-') return false;
  for (char c : label) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
          c == '-' || c == '_')) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::expected<HostPattern, std::string> ParseHostPattern(std::string_view text) {
  HostPattern p;
  p.text = std::string(text);
  std::string_view host = text;
  if (host.empty()) return std::unexpected("empty host pattern");
  if (host.front() == '[') {
    return std::unexpected("'" + p.text + "': IP literals are not supported; name a host");
  }
  if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    std::string_view port = host.substr(colon + 1);
    uint32_t value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value == 0 ||
        value > 65535) {
      return std::unexpected("'" + p.text + "': port must be a number from 1 to 65535");
    }
    p.port = static_cast<uint16_t>(value);
    host = host.substr(0, colon);
  }
  if (host.starts_with("*.")) {
    p.wildcard = true;
    host.remove_prefix(2);
  }
  std::string lower;
  for (char c : host) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.empty() || lower.size() > 253) {
    return std::unexpected("'" + p.text + "': pattern cannot match any host name");
  }
  std::string_view rest = lower;
  while (true) {
    size_t dot = rest.find('.');
    if (!IsLabel(rest.substr(0, dot))) {
      return std::unexpected("'" + p.text + "': pattern cannot match any host name (only '*.' " +
                             "at the start may be a wildcard; labels are letters, digits, '-')");
    }
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  p.host = std::move(lower);
  return p;
}

bool HostPattern::Matches(std::string_view name, uint16_t target_port) const {
  if (port && *port != target_port) return false;
  if (!wildcard) return name == host;
  return name.size() > host.size() + 1 && name.ends_with(host) &&
         name[name.size() - host.size() - 1] == '.';
}

}  // namespace corral::policy
