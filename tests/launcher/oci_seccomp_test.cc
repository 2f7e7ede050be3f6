// The exported OCI seccomp profile, read back and compiled with libseccomp as a container runtime
// would, makes the same decision as corral's own filter for every syscall number (and for the
// argument values the rules look at). Both filters are evaluated as BPF programs here, never
// loaded into a process.
#include "launcher/oci_seccomp.h"

#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "launcher/policy_file.h"
#include "launcher/spec_from_policy.h"
#include "sandbox/sandbox.h"

namespace corral::launcher {
namespace {

using nlohmann::json;

struct Data {
  uint32_t nr;
  uint32_t arch;
  uint64_t ip;
  uint64_t args[6];
};

// A classic-BPF interpreter, enough for what libseccomp generates.
uint32_t Evaluate(const std::string& program, const Data& data) {
  const auto* insns = reinterpret_cast<const sock_filter*>(program.data());
  size_t count = program.size() / sizeof(sock_filter);
  uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {};
  const auto* bytes = reinterpret_cast<const unsigned char*>(&data);
  for (size_t pc = 0; pc < count; ++pc) {
    const sock_filter& i = insns[pc];
    uint32_t src = BPF_SRC(i.code) == BPF_X ? x : i.k;
    switch (BPF_CLASS(i.code)) {
      case BPF_LD:
        if (BPF_MODE(i.code) == BPF_ABS) {
          if (i.k + 4 > sizeof(Data)) ADD_FAILURE() << "load past seccomp_data";
          std::memcpy(&a, bytes + i.k, 4);
        } else if (BPF_MODE(i.code) == BPF_IMM) {
          a = i.k;
        } else if (BPF_MODE(i.code) == BPF_MEM) {
          a = mem[i.k];
        } else if (BPF_MODE(i.code) == BPF_LEN) {
          a = sizeof(Data);
        }
        break;
      case BPF_LDX:
        x = BPF_MODE(i.code) == BPF_MEM   ? mem[i.k]
            : BPF_MODE(i.code) == BPF_LEN ? sizeof(Data)
                                          : i.k;
        break;
      case BPF_ST:
        mem[i.k] = a;
        break;
      case BPF_STX:
        mem[i.k] = x;
        break;
      case BPF_ALU:
        switch (BPF_OP(i.code)) {
          case BPF_ADD:
            a += src;
            break;
          case BPF_SUB:
            a -= src;
            break;
          case BPF_MUL:
            a *= src;
            break;
          case BPF_DIV:
            a = src ? a / src : 0;
            break;
          case BPF_MOD:
            a = src ? a % src : 0;
            break;
          case BPF_OR:
            a |= src;
            break;
          case BPF_AND:
            a &= src;
            break;
          case BPF_XOR:
            a ^= src;
            break;
          case BPF_LSH:
            a <<= src;
            break;
          case BPF_RSH:
            a >>= src;
            break;
          case BPF_NEG:
            a = -a;
            break;
        }
        break;
      case BPF_JMP: {
        bool taken = false;
        switch (BPF_OP(i.code)) {
          case BPF_JA:
            pc += i.k;
            continue;
          case BPF_JEQ:
            taken = a == src;
            break;
          case BPF_JGT:
            taken = a > src;
            break;
          case BPF_JGE:
            taken = a >= src;
            break;
          case BPF_JSET:
            taken = (a & src) != 0;
            break;
        }
        pc += taken ? i.jt : i.jf;
        break;
      }
      case BPF_RET:
        return BPF_RVAL(i.code) == BPF_A ? a : i.k;
      case BPF_MISC:
        if (BPF_MISCOP(i.code) == BPF_TAX)
          x = a;
        else
          a = x;
        break;
    }
  }
  ADD_FAILURE() << "the program ran off its end";
  return 0;
}

// What a caller sees: allowed, or the errno it gets. corral's EPERM denials notify its
// supervisor, which answers EPERM; a runtime answers EPERM at once.
std::string Decision(uint32_t ret) {
  uint32_t action = ret & SECCOMP_RET_ACTION_FULL;
  if (action == SECCOMP_RET_ALLOW) return "allow";
  if (action == SECCOMP_RET_USER_NOTIF) return "errno " + std::to_string(EPERM);
  if (action == SECCOMP_RET_ERRNO) return "errno " + std::to_string(ret & SECCOMP_RET_DATA);
  return "action " + std::to_string(action);
}

// Compiles the profile as a runtime reading the OCI format does.
std::string CompileProfile(const json& profile) {
  EXPECT_EQ(profile["defaultAction"], "SCMP_ACT_ALLOW");
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  EXPECT_NE(ctx, nullptr);
  for (const json& entry : profile["syscalls"]) {
    EXPECT_EQ(entry["action"], "SCMP_ACT_ERRNO");
    uint32_t action = SCMP_ACT_ERRNO(entry["errnoRet"].get<uint32_t>());
    std::vector<scmp_arg_cmp> cmps;
    for (const json& arg : entry.value("args", json::array())) {
      std::string op = arg["op"];
      unsigned index = arg["index"];
      if (op == "SCMP_CMP_MASKED_EQ") {
        cmps.push_back(SCMP_CMP(index, SCMP_CMP_MASKED_EQ, arg["value"].get<uint64_t>(),
                                arg["valueTwo"].get<uint64_t>()));
      } else {
        EXPECT_EQ(op, "SCMP_CMP_NE");
        cmps.push_back(SCMP_CMP(index, SCMP_CMP_NE, arg["value"].get<uint64_t>()));
      }
    }
    for (const json& name : entry["names"]) {
      int nr = seccomp_syscall_resolve_name(name.get<std::string>().c_str());
      EXPECT_NE(nr, __NR_SCMP_ERROR) << name;
      EXPECT_EQ(seccomp_rule_add_array(ctx, action, nr, cmps.size(), cmps.data()), 0) << name;
    }
  }
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  EXPECT_EQ(seccomp_export_bpf(ctx, fds[1]), 0);
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof(buf))) > 0;) out.append(buf, n);
  close(fds[0]);
  seccomp_release(ctx);
  return out;
}

// Argument values worth trying for syscall `nr`: zero, all ones, and around every value and mask
// a rule compares.
std::vector<std::pair<unsigned, uint64_t>> Probes(const std::vector<sandbox::SyscallRule>& rules,
                                                  int nr) {
  std::vector<std::pair<unsigned, uint64_t>> probes = {{0, 0}, {0, ~0ULL}, {1, ~0ULL}};
  for (const sandbox::SyscallRule& r : rules) {
    if (seccomp_syscall_resolve_name(r.name.c_str()) != nr) continue;
    for (const sandbox::ArgCompare& a : r.args) {
      for (uint64_t v :
           std::vector<uint64_t>{a.value, a.value | ~a.mask, a.mask, a.value ^ a.mask, a.value + 1,
                                 a.value & uint64_t{0xffffffff}, a.value | (uint64_t{1} << 32)}) {
        probes.push_back({a.index, v});
      }
    }
  }
  return probes;
}

void ExpectSameDecisions(const policy::Policy& policy, const std::string& name) {
  std::vector<sandbox::SyscallRule> rules = SyscallRules(policy);
  json profile = json::parse(OciSeccompProfile(rules));
  ASSERT_EQ(profile["architectures"], json({"SCMP_ARCH_X86_64"}));
  std::string theirs = CompileProfile(profile);
  auto ours = sandbox::CompileBpf(rules);
  ASSERT_TRUE(ours) << ours.error().message;
  int compared = 0;
  for (int nr = 0; nr < 512; ++nr) {
    for (auto [index, value] : Probes(rules, nr)) {
      Data d = {};
      d.nr = static_cast<uint32_t>(nr);
      d.arch = AUDIT_ARCH_X86_64;
      d.args[index] = value;
      ASSERT_EQ(Decision(Evaluate(*ours, d)), Decision(Evaluate(theirs, d)))
          << name << ": syscall " << nr << " arg" << index << "=" << value;
      ++compared;
    }
  }
  EXPECT_GT(compared, 1500);
}

const char* const kPolicies[] = {"default",  "offline-build", "code_implementer",
                                 "reviewer", "log_analyzer",  "deployment_agent"};

TEST(OciSeccompTest, ShippedPoliciesDecideAlikeForEverySyscall) {
  for (const char* name : kPolicies) {
    auto p = LoadPolicy(std::string(POLICIES_DIR) + "/" + name + ".toml");
    ASSERT_TRUE(p) << p.error();
    ExpectSameDecisions(*p, name);
  }
}

TEST(OciSeccompTest, PolicyDenialsAndExceptionsTravel) {
  auto p = policy::Parse("[syscalls]\ndeny = [\"chmod\", \"socket\"]\nallow = [\"ptrace\"]\n",
                         "extra.toml");
  ASSERT_TRUE(p) << p.error().message;
  ExpectSameDecisions(*p, "extra.toml");
  std::string profile = OciSeccompProfile(SyscallRules(*p));
  EXPECT_NE(profile.find("\"chmod\""), std::string::npos);
  EXPECT_EQ(profile.find("\"ptrace\""), std::string::npos) << profile;
}

TEST(OciSeccompTest, KnownDecisions) {
  auto p = LoadPolicy(std::string(POLICIES_DIR) + "/default.toml");
  ASSERT_TRUE(p);
  std::string bpf = CompileProfile(json::parse(OciSeccompProfile(SyscallRules(*p))));
  auto decide = [&](const char* name, uint64_t arg0 = 0) {
    Data d = {};
    d.nr = static_cast<uint32_t>(seccomp_syscall_resolve_name(name));
    d.arch = AUDIT_ARCH_X86_64;
    d.args[0] = arg0;
    return Decision(Evaluate(bpf, d));
  };
  EXPECT_EQ(decide("read"), "allow");
  EXPECT_EQ(decide("ptrace"), "errno 1");
  EXPECT_EQ(decide("clone3"), "errno 38");
  EXPECT_EQ(decide("clone", SIGCHLD), "allow");
  EXPECT_EQ(decide("clone", 0x10000000 /* CLONE_NEWUSER */ | SIGCHLD), "errno 1");
  EXPECT_EQ(decide("personality", 0xffffffff), "allow") << "only reads the persona";
  EXPECT_EQ(decide("personality", 0x0040000 /* ADDR_NO_RANDOMIZE */), "errno 1");
}

}  // namespace
}  // namespace corral::launcher
