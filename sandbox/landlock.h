// Landlock: the second fence on the file rules, and the only one for `exec_allow`.
#pragma once

#include "sandbox/error.h"
#include "sandbox/spec.h"

namespace corral::sandbox::landlock {

// The dynamic loaders an executable may name as its interpreter. With exec_allow they may be
// executed (every dynamic program needs its loader), so the supervisor refuses to start one as a
// program: `ld.so PROGRAM` would run any program it can read.
inline constexpr const char* kLoaders[] = {"/lib64/ld-linux-x86-64.so.2",
                                           "/lib/ld-linux-x86-64.so.2",
                                           "/lib/ld-linux-aarch64.so.1", "/lib/ld-linux.so.2"};

// The Landlock ABI version of the running kernel; 0 when Landlock is unavailable.
int AbiVersion();

// Child side, in the agent after pivot_root, with no_new_privs set: restricts the calling process
// and its descendants to the spec's paths (workspace and writable binds: everything; read-only
// binds: read and execute; /tmp, /dev/shm: everything; /dev: devices; /proc: read/write files).
// With exec_allow, only those files (and the dynamic loader) may be executed. From ABI 6 on,
// signals and abstract unix sockets are scoped to the sandbox.
Expected<> Restrict(const Spec& spec, int abi);

}  // namespace corral::sandbox::landlock
