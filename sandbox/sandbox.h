// corral::sandbox: run one command isolated as a Spec describes.
//
// The public surface of the module. Run() starts the helper program corral-sandbox (a small,
// single-threaded binary) with Boost.Process; the helper builds the sandbox, supervises it and
// returns the Result. The caller may be multi-threaded.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "sandbox/error.h"
#include "sandbox/spec.h"

namespace corral::sandbox {

struct RunOptions {
  std::string helper_path;  // the corral-sandbox binary
};

// Runs the command; stdin, stdout and stderr are the caller's. While it runs, SIGINT, SIGTERM and
// SIGHUP sent to this process are forwarded to the sandbox (and this process does not die of
// them). Returns an Error when the sandbox could not be set up; nothing ran then.
// REQUIRES: the calling thread outlives the run (the helper dies with it).
Expected<Result> Run(const Spec& spec, const RunOptions& options);

// Whether libseccomp knows `name` as a syscall of this machine.
bool KnownSyscall(std::string_view name);

// The filter for `rules` as a raw BPF program (struct sock_filter[]), as bubblewrap's --seccomp
// takes it. Denials notify a supervisor; without one the kernel answers them with ENOSYS.
Expected<std::string> CompileBpf(const std::vector<SyscallRule>& rules);

}  // namespace corral::sandbox
