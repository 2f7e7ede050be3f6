// The exec observer: what an execve/execveat that the filter stopped was asked to run, read from
// outside the sandbox (the caller's memory and /proc) while the call waits.
#pragma once

#include <chrono>

#include "sandbox/seccomp.h"
#include "sandbox/spec.h"

namespace corral::sandbox::observe {

// Reads the call's program, arguments, working directory and pids. What cannot be read (the
// process died, its memory is unreadable) is left empty; the call is recorded all the same.
ExecRecord ReadExec(const seccomp::Call& call, std::chrono::steady_clock::time_point start);

}  // namespace corral::sandbox::observe
