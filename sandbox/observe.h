// The exec observer: what an execve/execveat that the filter stopped was asked to run, read from
// outside the sandbox (the caller's memory and /proc) while the call waits.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "sandbox/seccomp.h"
#include "sandbox/spec.h"

namespace corral::sandbox::observe {

// Reads the call's program, arguments, working directory and pids. What cannot be read (the
// process died, its memory is unreadable) is left empty; the call is recorded all the same.
ExecRecord ReadExec(const seccomp::Call& call, std::chrono::steady_clock::time_point start);

// A file by its identity, which every path and bind mount to it shares.
struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const FileId&) const = default;
};
// The file at `path` resolved with `root` (a descriptor) as its root, absolute symlinks included.
std::optional<FileId> IdIn(int root, const std::string& path);

// Under exec_allow, the dynamic loaders (landlock::kLoaders) found under `root` that may not be
// started as programs: all but those exec_allow names.
std::vector<FileId> LoadersToRefuse(const std::vector<std::string>& exec_allow, int root);

// The file the exec `call` names, resolved as the caller would: in its root (absolute symlinks
// included), from its working directory or execveat's descriptor; /dev/fd/N, /proc/self/fd/N and
// /proc/self/exe as the caller's own. Returns 0 and sets `id`, or the errno that says why not:
// ENOENT or ENOTDIR when nothing is there (the kernel would say the same), else the path could
// not be told (unreadable memory, a magic link elsewhere, a name too long): a caller that must
// know refuses the exec then.
int ExecTarget(const seccomp::Call& call, FileId* id);

// Under tools.allow: the errno to refuse the exec `call` with, or 0 to let it run. A dynamic
// loader in `loaders` is refused (EACCES), and so is an exec whose file cannot be told (EACCES;
// ENOENT or ENOTDIR when nothing is there, as the kernel would answer).
int RefuseExec(const seccomp::Call& call, const std::vector<FileId>& loaders);

// How the observed programs end: a pidfd per process that exec'd, polled by the supervisor, and
// the kernel's exit information (PIDFD_INFO_EXIT, Linux 6.15+), which it keeps for a pidfd that
// was open when the process was reaped. Where the kernel has none, `end` stays "".
class Exits {
 public:
  Exits() = default;
  ~Exits();
  Exits(const Exits&) = delete;
  Exits& operator=(const Exits&) = delete;

  // A pidfd for `pid` (in the supervisor's pid namespace), or -1. Open it while the process waits
  // in its notification, so it is that process; then check the notification is still valid.
  static int Open(int pid);
  // The process `pid` exec'd; `index` is its record, `pidfd` from Open (taken over; -1: not
  // watched). A record of the same process before it ends as "exec".
  void Watch(int pid, int pidfd, size_t index, std::vector<ExecRecord>* records);
  // Appends a pollfd per watched process.
  void AddPollFds(std::vector<pollfd>* fds) const;
  // Reads the pollfds AddPollFds appended, from fds[first] on.
  void Handle(const std::vector<pollfd>& fds, size_t first, std::vector<ExecRecord>* records);
  // Once every process of the sandbox is gone: what the kernel kept for each.
  void Finish(std::vector<ExecRecord>* records);

  // More live processes than this are not watched (each costs a descriptor).
  static constexpr size_t kMaxWatched = 256;

 private:
  struct Live {
    int pid;
    int fd;
    size_t index;
  };
  // Fills the record from the kernel's exit information; false when there is none yet.
  static bool ReadEnd(int fd, ExecRecord* record);

  std::vector<Live> live_;
};

}  // namespace corral::sandbox::observe
