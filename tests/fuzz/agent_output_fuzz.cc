// An agent's JSON result (CORRAL_OUTPUT) as corral reads it: parsed without throwing, redacted,
// and written back as valid JSON whatever bytes its strings hold.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "launcher/redact.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return 0;
  corral::launcher::Redactor r(std::vector<std::pair<std::string, std::string>>{{"K", "secret"}});
  r.Apply(&j);
  std::string out = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (nlohmann::json::parse(out, nullptr, false).is_discarded()) std::abort();
  if (out.find("secret") != std::string::npos) std::abort();  // no value survives redaction
  return 0;
}
