#include "sandbox/proxy_target.h"

#include <cctype>

namespace corral::sandbox {
namespace {

constexpr size_t kQuote = 200;  // how much of a bad target a message repeats

bool HostChar(char c, bool bracketed) {
  unsigned char u = static_cast<unsigned char>(c);
  if (std::isalnum(u) || c == '-' || c == '.' || c == '_') return true;
  return bracketed && (c == ':' || c == '%');
}

// "host:port", "[v6]:port", with a port unless `default_port` is given.
bool ParseAuthority(std::string_view a, uint16_t default_port, ProxyTarget* t) {
  if (a.empty()) return false;
  std::string_view host = a, port;
  bool bracketed = a.front() == '[';
  if (bracketed) {
    size_t close = a.find(']');
    if (close == std::string_view::npos) return false;
    host = a.substr(1, close - 1);
    std::string_view rest = a.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
    }
  } else if (size_t colon = a.rfind(':'); colon != std::string_view::npos) {
    host = a.substr(0, colon);
    port = a.substr(colon + 1);
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.empty() || host.size() > 253) return false;
  t->host.clear();
  for (char c : host) {
    if (!HostChar(c, bracketed)) return false;
    t->host += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (port.empty()) {
    if (default_port == 0) return false;
    t->port = default_port;
    return true;
  }
  if (port.size() > 5) return false;
  unsigned value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return false;
  t->port = static_cast<uint16_t>(value);
  return true;
}

std::string Quote(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, kQuote)) {
    unsigned char u = static_cast<unsigned char>(c);
    out += std::isprint(u) ? c : '?';
  }
  if (s.size() > kQuote) out += "...";
  return out;
}

}  // namespace

ProxyTarget ParseProxyTarget(bool connect, std::string_view target) {
  ProxyTarget t;
  if (connect) {
    if (!ParseAuthority(target, 0, &t))
      t.error = "CONNECT needs host:port, not '" + Quote(target) + "'";
    return t;
  }
  constexpr std::string_view kHttp = "http://";
  if (target.substr(0, kHttp.size()) != kHttp) {
    t.error = target.substr(0, 8) == "https://"
                  ? "https goes through CONNECT"
                  : "a proxy request needs an absolute http:// URL, not '" + Quote(target) + "'";
    return t;
  }
  std::string_view rest = target.substr(kHttp.size());
  size_t slash = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, slash);
  t.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (t.path.front() != '/') t.path = "/" + t.path;
  // A fragment never goes to a server.
  if (size_t hash = t.path.find('#'); hash != std::string::npos) t.path.resize(hash);
  if (!ParseAuthority(authority, 80, &t)) t.error = "bad host in '" + Quote(target) + "'";
  return t;
}

}  // namespace corral::sandbox
