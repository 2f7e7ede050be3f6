#include "launcher/oci_seccomp.h"

#include <sys/utsname.h>

#include <cerrno>
#include <map>
#include <nlohmann/json.hpp>

#include "sandbox/sandbox.h"

namespace corral::launcher {
namespace {

using nlohmann::ordered_json;

std::string NativeArch() {
  struct utsname u;
  std::string machine = uname(&u) == 0 ? u.machine : "x86_64";
  static const std::map<std::string, std::string> kArch = {{"x86_64", "SCMP_ARCH_X86_64"},
                                                           {"aarch64", "SCMP_ARCH_AARCH64"},
                                                           {"riscv64", "SCMP_ARCH_RISCV64"},
                                                           {"ppc64le", "SCMP_ARCH_PPC64LE"},
                                                           {"s390x", "SCMP_ARCH_S390X"}};
  auto it = kArch.find(machine);
  return it != kArch.end() ? it->second : "SCMP_ARCH_NATIVE";
}

int Errno(const sandbox::SyscallRule& rule) {
  return rule.error == sandbox::DenyErrno::kEnosys ? ENOSYS : EPERM;
}

}  // namespace

std::string OciSeccompProfile(const std::vector<sandbox::SyscallRule>& rules) {
  ordered_json syscalls = ordered_json::array();
  // Unconditional denials share an entry per errno, in the order they first appear.
  std::map<int, size_t> grouped;
  for (const sandbox::SyscallRule& rule : rules) {
    if (!sandbox::KnownSyscall(rule.name)) continue;  // not on this architecture
    if (rule.args.empty()) {
      auto [it, fresh] = grouped.try_emplace(Errno(rule), syscalls.size());
      if (fresh) {
        syscalls.push_back({{"names", ordered_json::array()},
                            {"action", "SCMP_ACT_ERRNO"},
                            {"errnoRet", Errno(rule)}});
      }
      syscalls[it->second]["names"].push_back(rule.name);
      continue;
    }
    ordered_json args = ordered_json::array();
    for (const sandbox::ArgCompare& a : rule.args) {
      if (a.op == sandbox::ArgCompare::Op::kNe) {
        args.push_back({{"index", a.index}, {"value", a.value}, {"op", "SCMP_CMP_NE"}});
      } else {
        // MASKED_EQ: value is the mask, valueTwo what the masked argument must equal.
        args.push_back({{"index", a.index},
                        {"value", a.mask},
                        {"valueTwo", a.value},
                        {"op", "SCMP_CMP_MASKED_EQ"}});
      }
    }
    syscalls.push_back({{"names", {rule.name}},
                        {"action", "SCMP_ACT_ERRNO"},
                        {"errnoRet", Errno(rule)},
                        {"args", args}});
  }
  ordered_json profile = {{"defaultAction", "SCMP_ACT_ALLOW"},
                          {"architectures", {NativeArch()}},
                          {"syscalls", syscalls}};
  return profile.dump(2) + "\n";
}

}  // namespace corral::launcher
