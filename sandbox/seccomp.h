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
// the supervisor, which answers EPERM and records the call.
class Filter {
 public:
  static Expected<Filter> Build(const std::vector<SyscallRule>& rules);
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

// Supervisor side: answers one pending notification on `listener` with EPERM. Returns the syscall
// name, or an error when the listener is gone.
Expected<std::string> AnswerDenied(int listener);

}  // namespace corral::sandbox::seccomp
