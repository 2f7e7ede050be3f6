// Capabilities and privilege bits of the process that becomes the command (and of corral
// processes that hold secrets).
#pragma once

#include "sandbox/error.h"

namespace corral::sandbox::caps {

// Sets no_new_privs. Required before Landlock and seccomp; survives execve.
Expected<> SetNoNewPrivs();

// Drops every capability for good: bounding set, ambient set, and the effective, permitted and
// inheritable sets; locks the securebits so uid 0 inside regains nothing at execve.
Expected<> DropAll();

// Makes this process non-dumpable: processes of the same user without CAP_SYS_PTRACE can no
// longer ptrace it nor read its /proc/PID/environ and memory. An execve resets it.
Expected<> SetUndumpable();

}  // namespace corral::sandbox::caps
