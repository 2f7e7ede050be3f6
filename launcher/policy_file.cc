#include "launcher/policy_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "launcher/default_policy.h"
#include "sandbox/sandbox.h"

namespace corral::launcher {
namespace {

std::expected<policy::Policy, std::string> ParseText(const std::string& text,
                                                     const std::string& name) {
  policy::ParseOptions options;
  options.known_syscall = sandbox::KnownSyscall;
  auto p = policy::Parse(text, name, options);
  if (!p) return std::unexpected(p.error().message);
  return *p;
}

}  // namespace

std::expected<policy::Policy, std::string> LoadPolicy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::unexpected(path + ": " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return std::unexpected(path + ": read failed");
  return ParseText(ss.str(), path);
}

std::expected<policy::Policy, std::string> DefaultPolicy() {
  return ParseText(kDefaultPolicyToml, "default.toml");
}

}  // namespace corral::launcher
