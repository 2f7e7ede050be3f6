// Resource limits that the kernel keeps per process (setrlimit).
#pragma once

#include "sandbox/error.h"
#include "sandbox/spec.h"

namespace corral::sandbox::rlimits {

// Child side, in the agent: file size, open files, CPU seconds per process, processes (counted per
// user in the sandbox's own user namespace, so for the sandbox alone), and no core dumps.
Expected<> Apply(const Limits& limits);

}  // namespace corral::sandbox::rlimits
