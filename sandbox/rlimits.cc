#include "sandbox/rlimits.h"

#include <sys/resource.h>

namespace corral::sandbox::rlimits {
namespace {

Expected<> Set(int resource, const char* name, rlim_t soft, rlim_t hard) {
  rlimit r{soft, hard};
  if (setrlimit(resource, &r) != 0) return ErrnoError(std::string("setrlimit ") + name);
  return {};
}

}  // namespace

Expected<> Apply(const Limits& l) {
  if (auto r = Set(RLIMIT_CORE, "RLIMIT_CORE", 0, 0); !r) return r;
  if (l.file_size) {
    if (auto r = Set(RLIMIT_FSIZE, "RLIMIT_FSIZE", *l.file_size, *l.file_size); !r) return r;
  }
  if (l.open_files) {
    if (auto r = Set(RLIMIT_NOFILE, "RLIMIT_NOFILE", *l.open_files, *l.open_files); !r) return r;
  }
  if (l.cpu_time) {
    // SIGXCPU at the limit, SIGKILL a second later.
    rlim_t seconds = (l.cpu_time->count() + 999) / 1000;
    if (auto r = Set(RLIMIT_CPU, "RLIMIT_CPU", seconds, seconds + 1); !r) return r;
  }
  if (l.pids) {
    if (auto r = Set(RLIMIT_NPROC, "RLIMIT_NPROC", *l.pids, *l.pids); !r) return r;
  }
  return {};
}

}  // namespace corral::sandbox::rlimits
