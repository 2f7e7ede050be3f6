// TDX quotes come from a guest the host does not trust: whatever the bytes, the parser stays
// inside them, and what it accepts is consistent with what it declares.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "launcher/tdx_quote.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  auto q = corral::launcher::tdx::ParseQuote(bytes);
  if (!q) {
    if (q.error().empty() || q.error().size() > 200) std::abort();
    return 0;
  }
  if (q->size > size || q->signed_bytes.size() >= q->size) std::abort();
  if (q->version != 4 && q->version != 5) std::abort();
  if (q->qe_report.size() != 384) std::abort();
  (void)corral::launcher::tdx::VerifySignatures(*q);  // must not crash on any accepted quote
  return 0;
}
