// A policy's seccomp rules as an OCI runtime-spec seccomp profile (the format of Docker's and
// Kubernetes' Localhost profiles), so a cluster enforces what `corral exec` enforces.
#pragma once

#include <string>
#include <vector>

#include "sandbox/spec.h"

namespace corral::launcher {

// The profile as JSON: default action allow, the native architecture only, and one entry per
// rule (rules without argument checks grouped by their errno). corral's EPERM denials, which the
// local sandbox also counts through a notification, become plain SCMP_ACT_ERRNO with errnoRet 1.
std::string OciSeccompProfile(const std::vector<sandbox::SyscallRule>& rules);

}  // namespace corral::launcher
