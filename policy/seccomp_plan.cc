#include "policy/seccomp_plan.h"

#include <algorithm>

namespace corral::policy {
namespace {

// Denied outright: they create namespaces, change mounts, reach other processes' memory, load code
// into the kernel, or touch host-global state. Each is denied with EPERM, not a kill, so an agent
// gets a clean error it can report.
constexpr std::string_view kDenied[] = {
    "unshare", "setns",
    "mount", "umount2", "move_mount", "fsopen", "fsmount", "fsconfig", "fspick", "open_tree",
    "mount_setattr", "pivot_root", "chroot",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "bpf", "perf_event_open",
    "keyctl", "add_key", "request_key",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "userfaultfd",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "open_by_handle_at", "name_to_handle_at",
    "iopl", "ioperm", "swapon", "swapoff", "reboot", "acct", "quotactl", "quotactl_fd", "syslog",
    "lookup_dcookie", "uselib", "vhangup", "nfsservctl", "_sysctl",
};

constexpr uint64_t kCloneNewFlags[] = {
    0x00020000,  // CLONE_NEWNS
    0x02000000,  // CLONE_NEWCGROUP
    0x04000000,  // CLONE_NEWUTS
    0x08000000,  // CLONE_NEWIPC
    0x10000000,  // CLONE_NEWUSER
    0x20000000,  // CLONE_NEWPID
    0x40000000,  // CLONE_NEWNET
    0x00000080,  // CLONE_NEWTIME
};

// personality(0xffffffff) only reads the persona. (A filter rule cannot compare one argument
// twice, so "deny unless one of several values" is not expressible; every change is denied.)
constexpr uint64_t kPersonalityQuery = 0xffffffff;

constexpr uint64_t kTiocsti = 0x5412;
constexpr uint64_t kTioclinux = 0x541C;

std::vector<SyscallRule> Baseline() {
  std::vector<SyscallRule> rules;
  for (std::string_view name : kDenied) rules.push_back({std::string(name), SyscallAction::kDeny, {}});
  for (uint64_t flag : kCloneNewFlags) {
    rules.push_back({"clone", SyscallAction::kDeny, {{0, ArgOp::kMaskedEq, flag, flag}}});
  }
  // A filter cannot read clone3's flags (they are in memory), so clone3 is "not implemented" and
  // libc falls back to clone, whose flags are checked above.
  rules.push_back({"clone3", SyscallAction::kNoSys, {}});
  rules.push_back(
      {"personality", SyscallAction::kDeny, {{0, ArgOp::kNe, 0, kPersonalityQuery}}});
  // The command is compared as 32 bits: the kernel does, so 0x1_0000_5412 is TIOCSTI too
  // (CVE-2019-10063).
  for (uint64_t cmd : {kTiocsti, kTioclinux}) {
    rules.push_back({"ioctl", SyscallAction::kDeny, {{1, ArgOp::kMaskedEq, 0xffffffffULL, cmd}}});
  }
  return rules;
}

}  // namespace

bool BaselineDenies(std::string_view name) {
  static const std::vector<SyscallRule> baseline = Baseline();
  return std::any_of(baseline.begin(), baseline.end(),
                     [&](const SyscallRule& r) { return r.name == name; });
}

std::vector<SyscallRule> CompileSeccomp(const Policy& policy) {
  std::vector<SyscallRule> rules = Baseline();
  std::erase_if(rules, [&](const SyscallRule& r) {
    return std::any_of(policy.syscalls.allow.begin(), policy.syscalls.allow.end(),
                       [&](const SyscallName& a) { return a.name == r.name; });
  });
  for (const SyscallName& d : policy.syscalls.deny) {
    std::erase_if(rules, [&](const SyscallRule& r) { return r.name == d.name; });
    rules.push_back({d.name, SyscallAction::kDeny, {}});
  }
  return rules;
}

}  // namespace corral::policy
