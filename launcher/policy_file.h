// Reading policy files: the launcher's bridge between the file system and corral::policy.
#pragma once

#include <expected>
#include <string>

#include "policy/policy.h"

namespace corral::launcher {

// Reads and validates the policy at `path`; errors are "PATH:LINE:COL: key: message" or
// "PATH: <errno text>".
std::expected<policy::Policy, std::string> LoadPolicy(const std::string& path);

// The built-in default policy (policies/default.toml, compiled in).
std::expected<policy::Policy, std::string> DefaultPolicy();

}  // namespace corral::launcher
