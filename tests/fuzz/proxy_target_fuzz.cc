// The egress proxy's request targets: whatever a sandbox sends, a usable target is a sane one.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "sandbox/proxy_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (bool connect : {true, false}) {
    corral::sandbox::ProxyTarget t = corral::sandbox::ParseProxyTarget(connect, text);
    if (!t.error.empty()) {
      if (t.error.size() > 400) std::abort();  // a bad target is quoted, never echoed whole
      continue;
    }
    if (t.host.empty() || t.port == 0) std::abort();
    for (char c : t.host) {
      if (c >= 'A' && c <= 'Z') std::abort();
      if (c == '/' || c == '@' || c == ' ' || c == '\r' || c == '\n') std::abort();
    }
    if (!connect && (t.path.empty() || t.path.front() != '/')) std::abort();
  }
  return 0;
}
