// The audit log verifier (corral audit verify) and the event log reader on any bytes: no
// crash, and a verdict that names a line when the log is not intact.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "launcher/audit.h"
#include "launcher/event_log.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  corral::launcher::VerifyOptions options;
  options.expect_head = std::string(64, 'a');
  auto r = corral::launcher::VerifyLog(text, "events.jsonl", options);
  if (!r.ok && !r.problem.starts_with("events.jsonl")) std::abort();
  auto plain = corral::launcher::VerifyLog(text, "events.jsonl", {});
  if (plain.ok && plain.records == 0) std::abort();
  static const std::string path = "/tmp/corral-fuzz-events-" + std::to_string(getpid());
  std::ofstream(path, std::ios::binary) << text;
  (void)corral::launcher::EventLog::Read(path);
  return 0;
}
