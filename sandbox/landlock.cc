#include "sandbox/landlock.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/missing_defs.h"

namespace corral::sandbox::landlock {
namespace {

namespace k = kernel;

constexpr __u64 kFileRights = k::kFsExecute | k::kFsWriteFile | k::kFsReadFile | k::kFsTruncate |
                              k::kFsIoctlDev;
constexpr __u64 kRead = k::kFsReadFile | k::kFsReadDir;
// Everything but creating device nodes.
constexpr __u64 kWrite = k::kFsWriteFile | k::kFsRemoveDir | k::kFsRemoveFile | k::kFsMakeDir |
                         k::kFsMakeReg | k::kFsMakeSock | k::kFsMakeFifo | k::kFsMakeSym |
                         k::kFsRefer | k::kFsTruncate;

__u64 Supported(int abi) {
  __u64 all = (1ULL << 13) - 1;  // ABI 1
  if (abi >= 2) all |= k::kFsRefer;
  if (abi >= 3) all |= k::kFsTruncate;
  if (abi >= 5) all |= k::kFsIoctlDev;
  return all;
}

class Ruleset {
 public:
  Ruleset(int fd, __u64 handled) : fd_(fd), handled_(handled) {}
  ~Ruleset() { close(fd_); }

  // Missing paths are skipped: the mount plan already decided what exists.
  Expected<> Allow(const std::string& path, __u64 access) {
    int fd = open(path.c_str(), O_PATH | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return {};
      return ErrnoError("landlock open " + path);
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) access &= kFileRights;
    k::LandlockPathBeneathAttr attr{access & handled_, fd};
    long r = syscall(__NR_landlock_add_rule, fd_, k::kLandlockRulePathBeneath, &attr, 0);
    int err = errno;
    close(fd);
    if (r != 0) return ErrnoError("landlock rule for " + path, err);
    return {};
  }

  int fd() const { return fd_; }

 private:
  int fd_;
  __u64 handled_;
};

}  // namespace

int AbiVersion() {
  long abi = syscall(__NR_landlock_create_ruleset, nullptr, 0, k::kLandlockCreateRulesetVersion);
  return abi < 0 ? 0 : static_cast<int>(abi);
}

Expected<> Restrict(const Spec& spec, int abi) {
  __u64 handled = Supported(abi);
  k::LandlockRulesetAttr attr{};
  attr.handled_access_fs = handled;
  size_t size = sizeof(__u64);
  if (abi >= 6) {
    attr.scoped = k::kScopeAbstractUnixSocket | k::kScopeSignal;
    size = sizeof(attr);
  }
  int fd = static_cast<int>(syscall(__NR_landlock_create_ruleset, &attr, size, 0));
  if (fd < 0) return ErrnoError("landlock_create_ruleset");
  Ruleset rules(fd, handled);

  bool any_exec = !spec.exec_allow.has_value();
  __u64 exec = any_exec ? k::kFsExecute : 0;
  auto allow = [&](const std::string& path, __u64 access) { return rules.Allow(path, access); };
  if (auto r = allow(spec.workspace, kRead | (spec.workspace_read_only ? 0 : kWrite) | exec); !r) return r;
  for (const Bind& b : spec.binds) {
    if (auto r = allow(b.path, kRead | exec | (b.writable ? kWrite : 0)); !r) return r;
  }
  if (auto r = allow("/", k::kFsReadDir); !r) return r;
  if (auto r = allow("/tmp", kRead | kWrite | exec); !r) return r;
  if (auto r = allow("/dev", kRead | k::kFsWriteFile | k::kFsIoctlDev | k::kFsTruncate); !r) return r;
  if (auto r = allow("/dev/shm", kRead | kWrite); !r) return r;
  if (auto r = allow("/proc", kRead | k::kFsWriteFile); !r) return r;
  if (spec.exec_allow) {
    for (const std::string& program : *spec.exec_allow) {
      if (auto r = allow(program, k::kFsExecute | k::kFsReadFile); !r) return r;
    }
    for (const char* loader : kLoaders) {
      if (auto r = allow(loader, k::kFsExecute | k::kFsReadFile); !r) return r;
    }
  }
  if (syscall(__NR_landlock_restrict_self, rules.fd(), 0) != 0) {
    return ErrnoError("landlock_restrict_self");
  }
  return {};
}

}  // namespace corral::sandbox::landlock
