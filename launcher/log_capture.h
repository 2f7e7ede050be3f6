// A task's captured output: the sandbox writes into a pipe, and a thread appends what it reads to
// the task's log, redacted, up to a limit. Past the limit the log says how much it dropped, and
// the rest is still read (and dropped), so an agent that writes without end never blocks.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <thread>

#include "launcher/redact.h"

namespace corral::launcher {

inline constexpr uint64_t kDefaultLogLimit = uint64_t{64} << 20;

// CORRAL_LOG_LIMIT (a size such as 64MiB), or the default; an error names the variable.
std::expected<uint64_t, std::string> LogLimitFromEnv();

class LogCapture {
 public:
  // `log_fd` (not owned) is appended to; `redactor` must outlive the capture.
  LogCapture(int log_fd, const Redactor* redactor, uint64_t limit);
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  ~LogCapture();

  // The sandbox's stdout and stderr; -1 when no pipe could be made.
  int write_fd() const { return write_fd_; }
  // Closes corral's write end and waits until the reader has drained the pipe (every process of
  // the sandbox is gone by then, so it sees the end). Returns the bytes dropped past the limit.
  uint64_t Finish();

 private:
  int log_fd_;
  int write_fd_ = -1;
  std::thread reader_;
  uint64_t dropped_ = 0;
};

}  // namespace corral::launcher
