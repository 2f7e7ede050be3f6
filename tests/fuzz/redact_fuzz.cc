// The redactor: for any secrets and any text cut anywhere, the stream gives exactly what
// redacting the whole text gives.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "launcher/redact.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Layout: [n secrets][len, bytes]... [cuts...] text
  if (size < 2) return 0;
  size_t pos = 0;
  int n = data[pos++] % 4;
  std::vector<std::pair<std::string, std::string>> secrets;
  for (int i = 0; i < n && pos < size; ++i) {
    size_t len = data[pos++] % 12;
    if (pos + len > size) return 0;
    secrets.emplace_back("S" + std::to_string(i),
                         std::string(reinterpret_cast<const char*>(data + pos), len));
    pos += len;
  }
  if (pos >= size) return 0;
  size_t cut = data[pos++];
  std::string text(reinterpret_cast<const char*>(data + pos), size - pos);
  corral::launcher::Redactor r(secrets);
  corral::launcher::Redactor::Stream s(&r);
  std::string out;
  size_t step = cut % 7 + 1;
  for (size_t i = 0; i < text.size(); i += step) out += s.Feed(text.substr(i, step));
  out += s.Flush();
  if (out != r.Apply(text)) std::abort();
  return 0;
}
