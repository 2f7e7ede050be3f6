// The seccomp rule list a policy compiles to: the built-in baseline plus the policy's [syscalls].
// Pure data; corral::sandbox turns it into a filter and policy export into an OCI profile.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"

namespace corral::policy {

enum class SyscallAction {
  kDeny,   // fails with EPERM and is recorded as a denial
  kNoSys,  // fails with ENOSYS: "not implemented", so libc falls back (clone3 -> clone)
};

enum class ArgOp { kMaskedEq, kNe };

// One comparison of a syscall argument: (arg & mask) == value, or arg != value.
struct ArgMatch {
  unsigned index = 0;
  ArgOp op = ArgOp::kMaskedEq;
  uint64_t mask = 0;
  uint64_t value = 0;
};

// The rule applies when every comparison in `args` holds (none: always).
struct SyscallRule {
  std::string name;
  SyscallAction action = SyscallAction::kDeny;
  std::vector<ArgMatch> args;
};

// The baseline (no exceptions) followed by the policy's extra denials, minus its exceptions.
// The default action of the filter is to allow; calls of foreign architectures (i386, x32) are
// always refused.
std::vector<SyscallRule> CompileSeccomp(const Policy& policy);

// Whether the baseline denies `name` in some or all cases.
bool BaselineDenies(std::string_view name);

}  // namespace corral::policy
