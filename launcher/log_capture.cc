#include "launcher/log_capture.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

#include "policy/policy.h"

namespace corral::launcher {
namespace {

void WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n <= 0) return;  // a full disk: the log stays short, the task goes on
    data.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

std::expected<uint64_t, std::string> LogLimitFromEnv() {
  const char* v = std::getenv("CORRAL_LOG_LIMIT");
  if (!v || !*v) return kDefaultLogLimit;
  auto size = policy::ParseSize(v);
  if (!size || *size == 0) {
    return std::unexpected("CORRAL_LOG_LIMIT: '" + std::string(v) +
                           "' is not a size (examples: 64MiB, 1GiB)");
  }
  return *size;
}

LogCapture::LogCapture(int log_fd, const Redactor* redactor, uint64_t limit) : log_fd_(log_fd) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return;
  write_fd_ = fds[1];
  reader_ = std::thread([this, in = fds[0], redactor, limit] {
    Redactor::Stream stream(redactor);
    uint64_t written = 0;
    auto keep = [&](std::string_view clean) {
      uint64_t room = written < limit ? limit - written : 0;
      size_t take = static_cast<size_t>(std::min<uint64_t>(room, clean.size()));
      WriteAll(log_fd_, clean.substr(0, take));
      written += take;
      dropped_ += clean.size() - take;
    };
    char buf[1 << 16];
    for (ssize_t n; (n = read(in, buf, sizeof(buf))) > 0;) {
      keep(stream.Feed(std::string_view(buf, static_cast<size_t>(n))));
    }
    keep(stream.Flush());
    close(in);
    if (dropped_ > 0) {
      WriteAll(log_fd_, "\n[corral: the log stops at " + policy::FormatSize(limit) + "; " +
                            std::to_string(dropped_) + " more bytes of output were dropped]\n");
    }
  });
}

uint64_t LogCapture::Finish() {
  if (write_fd_ >= 0) {
    close(write_fd_);
    write_fd_ = -1;
  }
  if (reader_.joinable()) reader_.join();
  return dropped_;
}

LogCapture::~LogCapture() { Finish(); }

}  // namespace corral::launcher
