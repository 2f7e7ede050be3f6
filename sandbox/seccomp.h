// seccomp: the syscall filter, built with libseccomp.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "sandbox/error.h"
#include "sandbox/spec.h"

namespace corral::sandbox::seccomp {

// Whether libseccomp knows `name` as a syscall of the native architecture.
bool KnownSyscall(std::string_view name);

// The name of syscall `nr` of audit architecture `arch`, or "syscall N".
std::string SyscallName(unsigned arch, int nr);

// A filter built before the sandbox starts (in the single-threaded helper) and loaded inside it.
// Default action: allow. Foreign architectures (i386, x32) kill the process. EPERM rules notify
// the supervisor, which answers EPERM and records the call; with `observe_exec`, execve and
// execveat notify too, and the supervisor lets them continue once it has read them. Without
// `notify` (where no supervisor listens: a VM guest), EPERM rules answer EPERM themselves.
class Filter {
 public:
  static Expected<Filter> Build(const std::vector<SyscallRule>& rules, bool observe_exec = false,
                                bool notify = true);
  Filter(Filter&& other) noexcept;
  Filter& operator=(Filter&&) = delete;
  ~Filter();

  // Child side: loads the filter into the calling process (no_new_privs must be set). Returns the
  // notification listener fd, or -1 when no rule notifies.
  Expected<int> Load();

  // The compiled program as raw BPF, for tests and exports.
  Expected<std::string> ExportBpf() const;

 private:
  explicit Filter(void* ctx, bool notifies) : ctx_(ctx), notifies_(notifies) {}
  void* ctx_;
  bool notifies_;
};

// Supervisor side: one pending notification.
struct Call {
  uint64_t id = 0;
  int pid = 0;  // in the supervisor's pid namespace
  std::string name;
  bool exec = false;  // execve or execveat, to observe and let through
  uint64_t args[6] = {};
};
// Receives the next notification; an error when the listener is gone.
Expected<Call> Receive(int listener);
// Whether the calling process still waits in that call (its pid was not reused meanwhile).
bool StillWaiting(int listener, uint64_t id);
// Answers EPERM (or `error`), or lets the call run as if no filter had stopped it. A caller that
// was killed meanwhile needs no answer; that is not an error.
void Deny(int listener, uint64_t id, int error = EPERM);
void Continue(int listener, uint64_t id);

}  // namespace corral::sandbox::seccomp
