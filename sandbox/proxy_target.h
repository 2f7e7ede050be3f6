// The target of a request to the egress proxy: "host:port" of a CONNECT, or the absolute URL of a
// plain HTTP request. Separate from the proxy so it can be fuzzed on its own.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace corral::sandbox {

struct ProxyTarget {
  std::string host;  // lower case, no trailing dot, IPv6 without brackets
  uint16_t port = 0;
  std::string path;   // origin form, for plain HTTP
  std::string error;  // why the target is unusable; empty when it is
};

// `connect`: the request is a CONNECT (authority form, port required); otherwise `target` must
// be an absolute http:// URL (port 80 by default).
ProxyTarget ParseProxyTarget(bool connect, std::string_view target);

}  // namespace corral::sandbox
