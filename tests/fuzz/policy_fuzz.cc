// Policy files: any bytes give a Policy or an error that names the file.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto p = corral::policy::Parse(text, "fuzz.toml");
  if (!p && !p.error().message.starts_with("fuzz.toml:")) std::abort();
  if (p) (void)corral::policy::Summary(*p);
  return 0;
}
