// corral::policy: the policy grammar, with exact error texts.
#include "policy/policy.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "policy/seccomp_plan.h"

namespace corral::policy {
namespace {

std::string ParseError(const std::string& text) {
  auto p = Parse(text, "p.toml");
  return p ? "(parsed)" : p.error().message;
}

TEST(PolicyTest, DefaultsWhenEmpty) {
  auto p = Parse("", "dir/my-policy.toml");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->name, "my-policy");
  EXPECT_EQ(p->target, Target::kLocal);
  EXPECT_EQ(p->network.egress, EgressKind::kNone);
  EXPECT_TRUE(p->filesystem.read_only_is_default);
  EXPECT_EQ(p->filesystem.read_only,
            (std::vector<std::string>{"/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc"}));
  EXPECT_EQ(p->filesystem.protect, (std::vector<std::string>{".git/config", ".git/hooks/"}));
  EXPECT_EQ(p->env.pass, (std::vector<std::string>{"PATH", "HOME", "LANG", "TERM"}));
  EXPECT_FALSE(p->tools.allow);
}

TEST(PolicyTest, AllKeys) {
  auto p = Parse(R"(
name = "all"
description = "every key"
target = "tdx"
requires_human_approval = true
[filesystem]
read_only = ["/usr/", "/opt/tools"]
read_write = ["/var/cache/x"]
protect = [".env", "secrets/"]
[network]
egress = ["api.example.com", "*.github.com:443", "localhost:8080"]
rate = { "api.example.com" = "50/min" }
[secrets]
env = ["ANTHROPIC_API_KEY"]
inject = { GITHUB_TOKEN = ["api.github.com"] }
[env]
pass = ["PATH"]
set = { CI = "1" }
[tools]
allow = ["git", "/usr/bin/make"]
[limits]
wall_time = "30m"
cpu_time = "1h30m"
memory = "2GiB"
pids = 512
file_size = 1048576
open_files = 1024
[syscalls]
deny = ["mkdir"]
allow = ["ptrace"]
)",
                 "all.toml");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->target, Target::kTdx);
  EXPECT_TRUE(p->requires_human_approval);
  EXPECT_EQ(p->filesystem.read_only, (std::vector<std::string>{"/usr", "/opt/tools"}));
  EXPECT_EQ(p->filesystem.protect,
            (std::vector<std::string>{".git/config", ".git/hooks/", ".env", "secrets/"}));
  ASSERT_EQ(p->network.allow.size(), 3u);
  EXPECT_TRUE(p->network.allow[1].wildcard);
  EXPECT_EQ(p->network.allow[1].port, 443);
  ASSERT_EQ(p->network.rate.size(), 1u);
  EXPECT_EQ(p->network.rate[0].requests, 50u);
  EXPECT_EQ(p->network.rate[0].per, std::chrono::seconds(60));
  EXPECT_EQ(p->secrets.inject.at("GITHUB_TOKEN"), std::vector<std::string>{"api.github.com"});
  EXPECT_EQ(*p->limits.cpu_time, std::chrono::minutes(90));
  EXPECT_EQ(*p->limits.memory, 2ULL << 30);
  EXPECT_EQ(*p->limits.file_size, 1048576u);
  EXPECT_EQ(
      Summary(*p),
      "all: workspace rw; ro /usr,/opt/tools; rw /var/cache/x; protect "
      ".git/config,.git/hooks/,.env,secrets/; network "
      "api.example.com,*.github.com:443,localhost:8080; secrets ANTHROPIC_API_KEY; injected "
      "GITHUB_TOKEN; tools git,/usr/bin/make; limits wall 30m,cpu 1h30m,mem 2GiB,pids "
      "512,fsize 1MiB,nofile 1024; syscalls +1 denied, 1 allowed; target tdx; needs approval");
}

struct ErrorCase {
  const char* text;
  const char* error;
};

class PolicyErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(PolicyErrorTest, ExactMessage) { EXPECT_EQ(ParseError(GetParam().text), GetParam().error); }

INSTANTIATE_TEST_SUITE_P(
    Errors, PolicyErrorTest,
    ::testing::Values(
        ErrorCase{"nme = \"x\"\n",
                  "p.toml:1:1: nme: unknown key (expected one of name, description, target, "
                  "requires_human_approval, filesystem, network, secrets, env, tools, limits, "
                  "syscalls)"},
        ErrorCase{"[filesystem]\nreadonly = []\n",
                  "p.toml:2:1: filesystem.readonly: unknown key (expected one of read_only, "
                  "read_write, protect)"},
        ErrorCase{"name = 3\n", "p.toml:1:8: name: expected a string, got an integer"},
        ErrorCase{"name = \"a b\"\n",
                  "p.toml:1:8: name: 'a b' is not a valid name (letters, digits, '_', '-', '.')"},
        ErrorCase{"target = \"cloud\"\n",
                  "p.toml:1:10: target: 'cloud' is not one of local, vm, tdx"},
        ErrorCase{"requires_human_approval = \"yes\"\n",
                  "p.toml:1:27: requires_human_approval: expected a boolean, got a string"},
        ErrorCase{"filesystem = 1\n", "p.toml:1:14: filesystem: expected a table, got an integer"},
        ErrorCase{"[filesystem]\nread_only = \"/usr\"\n",
                  "p.toml:2:13: filesystem.read_only: expected an array of strings, got a string"},
        ErrorCase{"[filesystem]\nread_only = [1]\n",
                  "p.toml:2:14: filesystem.read_only: expected an array of strings, got an "
                  "element that is an integer"},
        ErrorCase{"[filesystem]\nread_only = [\"usr\"]\n",
                  "p.toml:2:14: filesystem.read_only: 'usr' must be an absolute path"},
        ErrorCase{"[filesystem]\nread_only = [\"/usr/../etc\"]\n",
                  "p.toml:2:14: filesystem.read_only: '/usr/../etc' must be a normalized path "
                  "(no '.', '..' or '//')"},
        ErrorCase{"[filesystem]\nread_only = [\"/usr\", \"/usr/\"]\n",
                  "p.toml:2:22: filesystem.read_only: '/usr' is listed twice"},
        ErrorCase{"[filesystem]\nread_only = [\"/usr\"]\nread_write = [\"/usr\"]\n",
                  "p.toml:3:15: filesystem.read_write: '/usr' is also in read_only"},
        ErrorCase{"[filesystem]\nprotect = [\"/etc\"]\n",
                  "p.toml:2:12: filesystem.protect: '/etc' must be relative to the workspace"},
        ErrorCase{"[filesystem]\nprotect = [\"../x\"]\n",
                  "p.toml:2:12: filesystem.protect: '../x' must be a normalized path (no '.', "
                  "'..' or '//')"},
        ErrorCase{"[filesystem]\nprotect = [\".env\", \".env\"]\n",
                  "p.toml:2:20: filesystem.protect: '.env' is listed twice"},
        ErrorCase{"[network]\negress = \"all\"\n",
                  "p.toml:2:10: network.egress: 'all' is not \"none\", \"host\" or a list of host "
                  "patterns"},
        ErrorCase{"[network]\negress = [\"api.*.com\"]\n",
                  "p.toml:2:11: network.egress: 'api.*.com': pattern cannot match any host name "
                  "(only '*.' at the start may be a wildcard; labels are letters, digits, '-')"},
        ErrorCase{"[network]\negress = [\"a.com:0\"]\n",
                  "p.toml:2:11: network.egress: 'a.com:0': port must be a number from 1 to 65535"},
        ErrorCase{"[network]\negress = []\n",
                  "p.toml:2:10: network.egress: an empty list allows nothing; write \"none\""},
        ErrorCase{"[network]\negress = [\"a.com\"]\nrate = { \"b.com\" = \"5/min\" }\n",
                  "p.toml:3:10: network.rate.b.com: 'b.com' is not allowed by network.egress"},
        ErrorCase{"[network]\negress = [\"a.com\"]\nrate = { \"a.com\" = \"fast\" }\n",
                  "p.toml:3:20: network.rate.a.com: 'fast' is not a rate (examples: 50/min, "
                  "10/s, 1000/h)"},
        ErrorCase{"[secrets]\nenv = [\"1BAD\"]\n",
                  "p.toml:2:8: secrets.env: '1BAD' is not a valid environment variable name"},
        ErrorCase{"[secrets]\ninject = { T = [] }\n",
                  "p.toml:2:16: secrets.inject.T: names no host; the secret would never be sent"},
        ErrorCase{"[secrets]\nenv = [\"T\"]\n[env]\nset = { T = \"x\" }\n",
                  "p.toml:4:9: env.set.T: 'T' is also a secret"},
        ErrorCase{"[tools]\nallow = [\"bin/sh\"]\n",
                  "p.toml:2:10: tools.allow: 'bin/sh' must be a program name or an absolute path"},
        ErrorCase{"[limits]\nmemory = \"2 GB\"\n",
                  "p.toml:2:10: limits.memory: '2 GB' is not a size (examples: 512MiB, 2GiB)"},
        ErrorCase{"[limits]\nmemory = \"1KiB\"\n",
                  "p.toml:2:10: limits.memory: must be at least 1MiB"},
        ErrorCase{"[limits]\nwall_time = \"30 minutes\"\n",
                  "p.toml:2:13: limits.wall_time: '30 minutes' is not a duration (examples: 90s, "
                  "30m, 1h)"},
        ErrorCase{"[limits]\nwall_time = 30\n",
                  "p.toml:2:13: limits.wall_time: expected a duration such as \"30m\", got an "
                  "integer"},
        ErrorCase{"[limits]\npids = 0\n", "p.toml:2:8: limits.pids: must be from 1 to 2147483648"},
        ErrorCase{"[limits]\nfile_size = \"99999999999999999999\"\n",
                  "p.toml:2:13: limits.file_size: '99999999999999999999' is not a size "
                  "(examples: 512MiB, 2GiB)"},
        ErrorCase{"[syscalls]\nallow = [\"read\"]\n",
                  "p.toml:2:10: syscalls.allow: 'read' is not denied by the baseline, so "
                  "allowing it changes nothing"},
        ErrorCase{"[syscalls]\ndeny = [\"mkdir\"]\nallow = [\"mkdir\"]\n",
                  "p.toml:3:10: syscalls.allow: 'mkdir' is listed twice"},
        ErrorCase{"name = \"x\"\nname = \"y\"\n",
                  "p.toml:2:8: invalid TOML: Error while parsing key-value pair: cannot redefine "
                  "existing string 'name'"},
        ErrorCase{"name = \"\xff\"\n",
                  "p.toml:1:8: invalid TOML: Encountered invalid utf-8 sequence"},
        // toml++ 3.3.0 reached __builtin_unreachable() on these (found by tests/fuzz).
        ErrorCase{"\xd1\x96",
                  "p.toml:1:1: invalid TOML: Error while parsing root table: expected "
                  "keys, tables, whitespace or comments, saw '\xd1\x96'"},
        ErrorCase{"name = \"caf\xc3\xa9\" \xc3\xa9\n",
                  "p.toml:1:15: invalid TOML: Error while parsing key-value pair: expected a "
                  "comment or whitespace, saw '\xc3\xa9'"}));

TEST(PolicyTest, NonAsciiInStringsAndCommentsIsFine) {
  auto p = Parse(
      "# caf\xc3\xa9 \xd1\x96\ndescription = \"\xd1\x96 caf\xc3\xa9 \\\" \xc3\xa9\"\n"
      "name = 'lit'\n[env]\nset = { A = \"\"\"x\n\xc3\xa9\"\"\", B = '''\xc3\xa9''' }\n",
      "p.toml");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->description, "\xd1\x96 caf\xc3\xa9 \" \xc3\xa9");
  EXPECT_EQ(p->env.set["B"], "\xc3\xa9");
}

TEST(PolicyTest, UnknownSyscallNeedsTheValidator) {
  ParseOptions options;
  options.known_syscall = [](std::string_view name) { return name != "frobnicate"; };
  auto p = Parse("[syscalls]\ndeny = [\"frobnicate\"]\n", "s.toml", options);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, "s.toml:2:9: syscalls.deny: unknown syscall 'frobnicate'");
}

TEST(UnitsTest, Sizes) {
  EXPECT_EQ(ParseSize("512MiB"), 512ULL << 20);
  EXPECT_EQ(ParseSize("2GiB"), 2ULL << 30);
  EXPECT_EQ(ParseSize("1G"), 1ULL << 30);
  EXPECT_EQ(ParseSize("1GB"), 1000000000ULL);
  EXPECT_EQ(ParseSize("4096"), 4096u);
  EXPECT_FALSE(ParseSize("2 GiB"));
  EXPECT_FALSE(ParseSize("GiB"));
  EXPECT_FALSE(ParseSize("-1"));
  EXPECT_FALSE(ParseSize("20000000TiB"));
  EXPECT_EQ(FormatSize(3ULL << 30), "3GiB");
  EXPECT_EQ(FormatSize(1000), "1000B");
}

TEST(UnitsTest, Durations) {
  EXPECT_EQ(ParseDuration("90s"), std::chrono::seconds(90));
  EXPECT_EQ(ParseDuration("30m"), std::chrono::minutes(30));
  EXPECT_EQ(ParseDuration("1h30m"), std::chrono::minutes(90));
  EXPECT_EQ(ParseDuration("250ms"), std::chrono::milliseconds(250));
  EXPECT_FALSE(ParseDuration("30"));
  EXPECT_FALSE(ParseDuration("m"));
  EXPECT_FALSE(ParseDuration("5 m"));
  EXPECT_FALSE(ParseDuration("99999999999999999999d"));
  EXPECT_EQ(FormatDuration(std::chrono::minutes(90)), "1h30m");
}

TEST(HostPatternTest, Matching) {
  auto exact = ParseHostPattern("API.example.com");
  ASSERT_TRUE(exact);
  EXPECT_TRUE(exact->Matches("api.example.com", 443));
  EXPECT_FALSE(exact->Matches("x.api.example.com", 443));
  auto wild = ParseHostPattern("*.github.com:443");
  ASSERT_TRUE(wild);
  EXPECT_TRUE(wild->Matches("api.github.com", 443));
  EXPECT_TRUE(wild->Matches("a.b.github.com", 443));
  EXPECT_FALSE(wild->Matches("github.com", 443));
  EXPECT_FALSE(wild->Matches("evilgithub.com", 443));
  EXPECT_FALSE(wild->Matches("api.github.com", 80));
  EXPECT_FALSE(ParseHostPattern("*"));
  EXPECT_FALSE(ParseHostPattern("a..b"));
  EXPECT_FALSE(ParseHostPattern("[::1]:80"));
}

TEST(SeccompPlanTest, BaselineAndPolicyChanges) {
  auto p = Parse("[syscalls]\ndeny = [\"mkdir\"]\nallow = [\"ptrace\", \"clone3\"]\n", "s.toml");
  ASSERT_TRUE(p) << p.error().message;
  std::vector<SyscallRule> rules = CompileSeccomp(*p);
  auto count = [&](const std::string& name) {
    return std::count_if(rules.begin(), rules.end(),
                         [&](const SyscallRule& r) { return r.name == name; });
  };
  EXPECT_EQ(count("ptrace"), 0);
  EXPECT_EQ(count("clone3"), 0);
  EXPECT_EQ(count("mkdir"), 1);
  EXPECT_EQ(count("clone"), 8);  // one per CLONE_NEW* flag
  EXPECT_EQ(count("ioctl"), 2);  // TIOCSTI, TIOCLINUX, compared as 32 bits
  auto base = Parse("", "b.toml");
  std::vector<SyscallRule> baseline = CompileSeccomp(*base);
  auto clone3 = std::find_if(baseline.begin(), baseline.end(),
                             [](const SyscallRule& r) { return r.name == "clone3"; });
  ASSERT_NE(clone3, baseline.end());
  EXPECT_EQ(clone3->action, SyscallAction::kNoSys);
  for (const char* name : {"unshare",
                           "setns",
                           "mount",
                           "umount2",
                           "move_mount",
                           "fsopen",
                           "fsmount",
                           "fsconfig",
                           "open_tree",
                           "mount_setattr",
                           "pivot_root",
                           "chroot",
                           "ptrace",
                           "process_vm_readv",
                           "process_vm_writev",
                           "bpf",
                           "perf_event_open",
                           "keyctl",
                           "add_key",
                           "request_key",
                           "io_uring_setup",
                           "io_uring_enter",
                           "io_uring_register",
                           "userfaultfd",
                           "kexec_load",
                           "kexec_file_load",
                           "init_module",
                           "finit_module",
                           "delete_module",
                           "open_by_handle_at",
                           "name_to_handle_at",
                           "iopl",
                           "ioperm",
                           "swapon",
                           "swapoff",
                           "reboot",
                           "acct",
                           "quotactl",
                           "syslog",
                           "personality"}) {
    EXPECT_TRUE(BaselineDenies(name)) << name;
  }
}

// Every shipped policy parses, and says what it permits in its first comment line.
TEST(ShippedPoliciesTest, AllParse) {
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(POLICIES_DIR)) {
    if (entry.path().extension() != ".toml") continue;
    std::ifstream in(entry.path());
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    EXPECT_TRUE(text.starts_with("# " + entry.path().stem().string() + ":")) << entry.path();
    EXPECT_NE(text.find("# Why:"), std::string::npos) << entry.path();
    auto p = Parse(text, entry.path().string());
    EXPECT_TRUE(p) << p.error().message;
    ++seen;
  }
  EXPECT_GE(seen, 6);
}

}  // namespace
}  // namespace corral::policy
