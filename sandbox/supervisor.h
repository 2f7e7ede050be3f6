// The helper's side of a sandbox: it creates the namespaces, watches the sandbox from outside and
// collects the result. Runs in the single-threaded helper process (corral-sandbox).
#pragma once

#include <signal.h>

#include "sandbox/error.h"
#include "sandbox/spec.h"

namespace corral::sandbox {

// The helper's parent-death signal: the supervisor then kills the sandbox and returns once every
// process of it is gone (its pid 1 has exited, which the kernel allows only after the others).
inline constexpr int kParentDied = SIGUSR2;

// Blocks the signals Supervise reads (SIGINT, SIGTERM, SIGHUP, SIGQUIT, kParentDied). The helper
// calls it first thing: a signal that arrives while it reads its Spec or sets the sandbox up then
// waits for Supervise, which answers it as it would later, instead of killing the helper halfway
// (with its cgroups and the workspace's placeholders left behind).
bool BlockSupervisedSignals();

// Runs spec.argv in a new sandbox and waits for it. SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to
// the caller are forwarded into the sandbox. Returns an Error when the sandbox could not be set up
// (nothing ran); otherwise the Result, also when the command failed.
// REQUIRES: a single-threaded caller (the child of clone() uses the whole C library).
// `reply_fd` is the socket to corral: the egress proxy's listening socket goes there (see
// SendProxyListener) as soon as the sandbox made it.
Expected<Result> Supervise(const Spec& spec, int reply_fd);

}  // namespace corral::sandbox
