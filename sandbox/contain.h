// The sandbox's inside: what runs between clone() and execve(), in order.
//
// The helper process is single-threaded, so its cloned child may use the whole C library.
#pragma once

#include "sandbox/seccomp.h"
#include "sandbox/spec.h"
#include "sandbox/user.h"

namespace corral::sandbox::contain {

struct Context {
  const Spec* spec;
  user::Identity identity;
  int sock;                  // SOCK_SEQPACKET to the supervisor
  seccomp::Filter* filter;   // loaded by the agent
  int landlock_abi;          // 0: no Landlock
};

// Pid 1 of the new namespaces. Waits for the supervisor's go (after it wrote the id maps), builds
// the sandbox (user ids, cgroup namespace, hostname, loopback, filesystem), then forks the agent,
// reaps every process, forwards SIGINT to the agent's process group and SIGTERM/SIGHUP/SIGQUIT to
// every process, and reports the agent's wait status. When it returns the kernel ends every
// process left in the sandbox. Reports setup failures as ipc::kSetupError and exits 125.
[[noreturn]] void RunInit(const Context& ctx);

}  // namespace corral::sandbox::contain
