// Composes a policy, a workspace and a command into the Spec the sandbox enforces.
#pragma once

#include <expected>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "policy/policy.h"
#include "sandbox/spec.h"

namespace corral::launcher {

struct HostEnv {
  std::map<std::string, std::string> vars;     // corral's own environment
  std::map<std::string, std::string> secrets;  // from --secrets-file; before vars for secrets.env
  static HostEnv FromEnviron();
  // Reads NAME=value lines ('#' starts a comment line) from `path`, which must be a regular file
  // of the caller's with mode 0600 (no access for group or others). Errors name the file (and
  // line) and the flag.
  std::expected<void, std::string> LoadSecretsFile(const std::string& path);
  // The values of `policy`'s secrets (env and inject): what nothing corral writes may show.
  std::vector<std::pair<std::string, std::string>> SecretsOf(const policy::Policy& policy) const;
};

// Errors name the policy key and the host path or variable ("filesystem.read_only: /opt/x does
// not exist on this host"). `workspace` must be an absolute, existing directory.
std::expected<sandbox::Spec, std::string> SpecFromPolicy(const policy::Policy& policy,
                                                         const std::string& workspace,
                                                         const std::vector<std::string>& argv,
                                                         const HostEnv& host);

// The policy's seccomp rules in the sandbox's terms.
std::vector<sandbox::SyscallRule> SyscallRules(const policy::Policy& policy);

// `name` as an executable file in `path_list` (absolute entries only), as execvp would find it.
std::string Which(const std::string& name, const std::string& path_list);

// The folder of this corral binary ("" when /proc/self/exe cannot be read).
std::string SelfDir();

// A helper program `name` next to this corral binary (build tree) or in ../libexec/corral.
std::expected<std::string, std::string> LibexecPath(const std::string& name);
// The corral-sandbox helper.
std::expected<std::string, std::string> HelperPath();

}  // namespace corral::launcher
