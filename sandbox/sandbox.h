// corral::sandbox: run one command isolated as a Spec describes.
//
// The public surface of the module. Run() starts the helper program corral-sandbox (a small,
// single-threaded binary) with Boost.Process; the helper builds the sandbox, supervises it and
// returns the Result. The caller may be multi-threaded.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sandbox/error.h"
#include "sandbox/spec.h"

namespace corral::sandbox {

struct RunOptions {
  std::string helper_path;  // the corral-sandbox binary
  // The command's stdin/stdout/stderr; -1: the caller's. Not owned.
  int stdin_fd = -1, stdout_fd = -1, stderr_fd = -1;
  // Forward SIGINT, SIGTERM and SIGHUP sent to this process into the sandbox (one sandbox at a
  // time: `corral exec`). A caller running many sandboxes handles signals itself and stops a
  // sandbox by signalling the pid given to `on_start` (SIGTERM: grace, then everything ends).
  bool forward_signals = true;
  std::function<void(pid_t helper)> on_start;
  // With Spec::proxy_port: receives the listening socket inside the sandbox (and owns it), on the
  // calling thread, before the command starts.
  std::function<void(int listener)> on_proxy_listener;
  // A descriptor the helper holds, unused, until the sandbox is entirely gone, also when the
  // caller dies first (a lock whose holders say that a run's sandboxes still live). -1: none.
  // Not owned; never reaches the command.
  int hold_fd = -1;
};

// A helper started before its Spec is known. It execs and starts up (on a VM that traps the CPU
// identification instructions, half a millisecond before its first line runs) while the caller
// still reads its policy, on another CPU where the machine has one; then it waits for Run().
// A Helper destroyed without Run() ends at once and starts no sandbox.
class Helper {
 public:
  // Uses options.helper_path, the stdio descriptors, hold_fd and on_start; the rest of the
  // options are Run()'s. Until Run(), a signal to the caller ends it as it would have.
  // REQUIRES: the calling thread outlives the run (the helper's parent-death signal follows it).
  static Expected<Helper> Start(const RunOptions& options);
  Helper(Helper&&) noexcept;
  Helper& operator=(Helper&&) noexcept;
  ~Helper();

  // Runs the command. Returns an Error when the sandbox could not be set up; nothing ran then.
  // Once only.
  Expected<Result> Run(const Spec& spec, const std::function<void(int listener)>& on_proxy_listener,
                       bool forward_signals);

 private:
  struct Process;
  explicit Helper(std::unique_ptr<Process> process);
  std::unique_ptr<Process> process_;
};

// Helper::Start, then Helper::Run.
Expected<Result> Run(const Spec& spec, const RunOptions& options);

// Whether libseccomp knows `name` as a syscall of this machine.
bool KnownSyscall(std::string_view name);

// Whether the command of a sandbox started by this process may open `path` (a device, such as
// /dev/kvm) as `mode` says (R_OK, W_OK). As root the sandbox runs as an id that owns nothing on
// the host and holds no groups, so only what is open to everyone is open to it.
bool SandboxMayOpen(const std::string& path, int mode = R_OK | W_OK);

// The filter for `rules` as a raw BPF program (struct sock_filter[]), as bubblewrap's --seccomp
// takes it. Denials notify a supervisor (without one the kernel answers them with ENOSYS); with
// `notify` false they answer EPERM themselves. With `stop_execs`, execve and execveat notify
// (a supervisor lets them through or refuses them).
Expected<std::string> CompileBpf(const std::vector<SyscallRule>& rules, bool notify = true,
                                 bool stop_execs = false);

}  // namespace corral::sandbox
