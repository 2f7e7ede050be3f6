// End-to-end tests of `corral exec`: every fence gets a probe that tries to climb it, and a
// control that shows the allowed action works. They run the built corral binary and the probe
// program (tests/sandbox/probe.c) inside real sandboxes, as whichever user runs the tests.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/testing.h"

namespace corral::testing {
namespace {

constexpr const char* kBase = R"(
[filesystem]
read_only = ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc"]
[env]
pass = ["PATH"]
)";

// kBase with protected paths in the workspace.
constexpr const char* kProtecting = R"(
[filesystem]
read_only = ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc"]
protect = [".env", "secrets/"]
[env]
pass = ["PATH"]
)";

bool IsRoot() { return geteuid() == 0; }

int LandlockAbi() {
  long abi = syscall(444, nullptr, 0, 1);
  return abi < 0 ? 0 : static_cast<int>(abi);
}

class ExecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(ws_.path().empty());
    probe_ = ws_.path() + "/probe";
    std::filesystem::copy_file(PROBE_BIN, probe_);
    chmod(probe_.c_str(), 0755);
  }

  // Runs `args` under a policy made of kBase plus `extra` TOML (later tables win by position).
  Output Exec(const std::vector<std::string>& args, const std::string& policy = kBase,
              const std::vector<std::string>& env = {},
              const std::vector<std::string>& flags = {}) {
    std::string file = scratch_.path() + "/policy.toml";
    WriteFile(file, policy);
    std::vector<std::string> argv = {CORRAL_BIN, "exec", "--policy", file, "--cwd", ws_.path()};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back("--");
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, env);
  }

  Output Probe(const std::vector<std::string>& args, const std::string& policy = kBase) {
    std::vector<std::string> all = {probe_};
    all.insert(all.end(), args.begin(), args.end());
    return Exec(all, policy);
  }

  ScratchDir ws_{"corral-ws"};
  ScratchDir scratch_{"corral-scratch"};
  std::string probe_;
};

// --- Controls: what a policy grants works. ---

TEST_F(ExecTest, WritesInTheWorkspaceBelongToTheInvokingUser) {
  Output o = Probe({"write", ws_.path() + "/made-inside"});
  EXPECT_EQ(o.out, "write: OK\n") << o.err;
  EXPECT_EQ(o.status, 0);
  struct stat st;
  ASSERT_EQ(stat((ws_.path() + "/made-inside").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, geteuid());
  EXPECT_EQ(st.st_gid, getegid());
}

TEST_F(ExecTest, ShellAndForkWork) {
  Output o = Exec({"sh", "-c", "echo hello from $(hostname); ./probe fork"});
  EXPECT_EQ(o.out, "hello from corral\nfork: OK\n") << o.err;
  EXPECT_EQ(o.status, 0);
}

TEST_F(ExecTest, ExitStatusIsTheCommands) {
  EXPECT_EQ(Probe({"exit", "3"}).status, 3);
  EXPECT_EQ(Probe({"signal", "15"}).status, 128 + SIGTERM);
  Output missing = Exec({"/nonexistent-program"});
  EXPECT_EQ(missing.status, 127);
  EXPECT_NE(missing.err.find("could not execute the command: No such file or directory"),
            std::string::npos)
      << missing.err;
  WriteFile(ws_.path() + "/not-executable", "#!/bin/sh\n", 0644);
  EXPECT_EQ(Exec({ws_.path() + "/not-executable"}).status, 126);
}

// --- Files ---

TEST_F(ExecTest, SystemPathsAreReadOnly) {
  EXPECT_EQ(Probe({"write", "/etc/corral-planted"}).out, "write: EROFS\n");
  EXPECT_EQ(Probe({"write", "/usr/corral-planted"}).out, "write: EROFS\n");
  EXPECT_EQ(Probe({"read", "/etc/hostname"}).out, "read: OK\n");
}

TEST_F(ExecTest, HostTmpAndUngrantedPathsAreInvisible) {
  ScratchDir host_tmp("corral-host-secret");
  WriteFile(host_tmp.path() + "/secret", "host data");
  EXPECT_EQ(Probe({"read", host_tmp.path() + "/secret"}).out, "read: ENOENT\n");
  EXPECT_EQ(Probe({"read", "/var/log/dpkg.log"}).out, "read: ENOENT\n");
  EXPECT_EQ(Probe({"write", "/tmp/private"}).out, "write: OK\n");
  EXPECT_FALSE(std::filesystem::exists("/tmp/private"));
}

TEST_F(ExecTest, RootOnlyFilesStayClosed) {
  EXPECT_EQ(Probe({"read", "/etc/shadow"}).out, "read: EACCES\n");
  if (!IsRoot()) return;  // an unprivileged user cannot make a root-owned file to test with
  ScratchDir ro("corral-ro");
  WriteFile(ro.path() + "/root-only", "secret", 0600);
  std::string policy = std::string(R"(
[filesystem]
read_only = ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc", ")") + ro.path() + R"("]
)";
  EXPECT_EQ(Probe({"read", ro.path() + "/root-only"}, policy).out, "read: EACCES\n");
}

TEST_F(ExecTest, MinimalDevAndReadOnlyProcSys) {
  Output dev = Exec({"ls", "-A", "/dev"});
  EXPECT_EQ(dev.out, "fd\nfull\nnull\nptmx\npts\nrandom\nshm\nstderr\nstdin\nstdout\ntty\nurandom\nzero\n")
      << dev.err;
  EXPECT_EQ(Probe({"write", "/proc/sys/kernel/hostname"}).out, "write: EROFS\n");
  EXPECT_EQ(Probe({"write", "/dev/planted"}).out, "write: EROFS\n");
  EXPECT_EQ(Probe({"write", "/dev/null"}).out, "write: OK\n");
}

TEST_F(ExecTest, TheAuditKeyIsNeverVisible) {
  // The key sits in a folder the policy binds: the sandbox sees an empty file there.
  ScratchDir config("corral-config");
  chmod(config.path().c_str(), 0755);
  std::string key = config.path() + "/audit-ed25519.pem";
  WriteFile(key, "PRIVATE KEY MATERIAL\n", 0644);  // readable, so only hiding keeps it out
  WriteFile(config.path() + "/other", "visible\n");
  std::string policy = R"(
[filesystem]
read_only = ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc", ")" + config.path() + R"("]
[env]
pass = ["PATH"]
)";
  Output o = Exec({"sh", "-c", "cat " + key + "; cat " + config.path() + "/other; echo x > " + key},
                  policy, {"CORRAL_AUDIT_KEY=" + key});
  EXPECT_EQ(o.out, "visible\n") << o.err;
  EXPECT_EQ(ReadFile(key), "PRIVATE KEY MATERIAL\n");
  // Control: without the key there, the same file is readable.
  Output control = Exec({"cat", key}, policy, {"CORRAL_AUDIT_KEY=" + config.path() + "/elsewhere"});
  EXPECT_EQ(control.out, "PRIVATE KEY MATERIAL\n") << control.err;
}

TEST_F(ExecTest, HostSocketsAreInvisible) {
  for (const char* path : {"/run/docker.sock", "/var/run/docker.sock",
                           "/run/dbus/system_bus_socket", "/tmp/.X11-unix/X0"}) {
    EXPECT_EQ(Probe({"read", path}).out, "read: ENOENT\n") << path;
  }
  Output env = Exec({probe_, "env"}, kBase, {"SSH_AUTH_SOCK=/tmp/ssh-agent.sock"});
  EXPECT_EQ(env.out.find("SSH_AUTH_SOCK"), std::string::npos);
}

TEST_F(ExecTest, MissingHostPathIsAnErrorNamingIt) {
  Output o = Exec({"true"}, R"(
[filesystem]
read_only = ["/usr", "/nonexistent-corral-path"]
)");
  EXPECT_EQ(o.status, 125);
  EXPECT_EQ(o.err, "corral: " + scratch_.path() +
                       "/policy.toml: filesystem.read_only: /nonexistent-corral-path does not exist "
                       "on this host\n");
}

TEST_F(ExecTest, ProtectedPathsStayReadOnlyEvenWhenMissing) {
  ASSERT_EQ(RunCommand({"/usr/bin/git", "init", "-q", ws_.path()}).status, 0);
  const std::string p = kProtecting;
  EXPECT_EQ(Probe({"write", ws_.path() + "/.env"}, p).out, "write: EROFS\n");
  EXPECT_EQ(Probe({"write", ws_.path() + "/secrets/key"}, p).out, "write: EROFS\n");
  EXPECT_EQ(Probe({"write", ws_.path() + "/.git/hooks/pre-commit"}, p).out, "write: EROFS\n");
  EXPECT_EQ(Probe({"write", ws_.path() + "/.git/config"}, p).out, "write: EROFS\n");
  // Swapping a parent for a symlink or another directory: the parent is pinned.
  EXPECT_EQ(Probe({"rename", ws_.path() + "/.git", ws_.path() + "/moved"}, p).out, "rename: EBUSY\n");
  EXPECT_EQ(Probe({"rename", ws_.path() + "/.git/hooks", ws_.path() + "/.git/h2"}, p).out,
            "rename: EBUSY\n");
  // The placeholders are gone afterwards; the user's files are as they were.
  EXPECT_FALSE(std::filesystem::exists(ws_.path() + "/.env"));
  EXPECT_FALSE(std::filesystem::exists(ws_.path() + "/secrets"));
  EXPECT_FALSE(std::filesystem::exists(ws_.path() + "/.git/hooks/pre-commit"));
  EXPECT_TRUE(std::filesystem::exists(ws_.path() + "/.git/config"));
  // An existing protected file keeps its content.
  WriteFile(ws_.path() + "/.env", "KEY=1\n");
  EXPECT_EQ(Probe({"write", ws_.path() + "/.env"}, p).out, "write: EROFS\n");
  EXPECT_EQ(ReadFile(ws_.path() + "/.env"), "KEY=1\n");
  // Other files in the same directories stay writable.
  EXPECT_EQ(Probe({"write", ws_.path() + "/.git/description"}, p).out, "write: OK\n");
}

TEST_F(ExecTest, GitWorktreeFileIsProtected) {
  // In a worktree .git is a file naming the admin directory; it cannot be replaced.
  WriteFile(ws_.path() + "/.git", "gitdir: /nonexistent\n");
  EXPECT_EQ(Probe({"write", ws_.path() + "/.git"}).out, "write: EROFS\n");
  EXPECT_EQ(Probe({"unlink", ws_.path() + "/.git"}).out, "unlink: EBUSY\n");
  EXPECT_EQ(ReadFile(ws_.path() + "/.git"), "gitdir: /nonexistent\n");
}

TEST_F(ExecTest, ReadOnlyWorkspace) {
  std::string p = std::string(kBase) + "";
  p.replace(p.find("[env]"), 0, "protect = [\".\"]\n");
  EXPECT_EQ(Probe({"write", ws_.path() + "/x"}, p).out, "write: EROFS\n");
  EXPECT_EQ(Probe({"read", ws_.path() + "/probe"}, p).out, "read: OK\n");
}

TEST_F(ExecTest, FileSizeLimit) {
  Output o = Probe({"bigfile", ws_.path() + "/big"}, std::string(kBase) + R"(
[limits]
file_size = "1MiB"
)");
  EXPECT_EQ(o.out, "bigfile: EFBIG after 1048576 bytes\n") << o.err;
}

// --- Tools ---

TEST_F(ExecTest, OnlyAllowedToolsRun) {
  if (LandlockAbi() == 0) CORRAL_SKIP_WITHOUT("Landlock");
  std::string p = std::string(kBase) + R"(
[tools]
allow = ["sh"]
)";
  Output ok = Exec({"sh", "-c", "echo allowed"}, p);
  EXPECT_EQ(ok.out, "allowed\n") << ok.err;
  EXPECT_EQ(ok.status, 0);
  Output cat = Exec({"sh", "-c", "cat /etc/hostname"}, p);
  EXPECT_EQ(cat.status, 126) << cat.err;
  EXPECT_EQ(Exec({probe_, "fork"}, p).status, 126);
  EXPECT_EQ(Exec({"cat", "/etc/hostname"}, p).status, 126);
}

// Every dynamic program needs its loader, so Landlock lets the loader execute; run as a program,
// it would load and run any file it can read. The supervisor refuses that exec, by whatever path.
TEST_F(ExecTest, TheDynamicLoaderDoesNotRunWhatToolsAllowDenies) {
  if (LandlockAbi() == 0) CORRAL_SKIP_WITHOUT("Landlock");
  const std::string loader = "/lib64/ld-linux-x86-64.so.2";
  ASSERT_EQ(access(loader.c_str(), X_OK), 0);
  std::filesystem::create_symlink(loader, ws_.path() + "/ldso");
  std::string p = std::string(kBase) + "\n[tools]\nallow = [\"sh\", \"" + probe_ + "\"]\n";
  Output o = Exec({"sh", "-c",
                   loader + " /usr/bin/cat /etc/hostname; echo direct=$?; "
                            "(cd /lib64 && ./ld-linux-x86-64.so.2 /usr/bin/cat /etc/hostname); "
                            "echo relative=$?; ./ldso /usr/bin/cat /etc/hostname; echo link=$?; "
                            "exec 3<" + loader + "; /dev/fd/3 /usr/bin/cat /etc/hostname; "
                            "echo devfd=$?; /proc/self/fd/3 /usr/bin/cat /etc/hostname; "
                            "echo procfd=$?; no-such-program; echo missing=$?"},
                  p);
  // A missing program stays "not found" (127): the supervisor answers what the kernel would.
  EXPECT_EQ(o.out, "direct=126\nrelative=126\nlink=126\ndevfd=126\nprocfd=126\nmissing=127\n")
      << o.err;
  EXPECT_NE(o.err.find("Permission denied"), std::string::npos) << o.err;
  Output fd = Exec({probe_, "execveat-fd", loader, "/usr/bin/cat", "/etc/hostname"}, p);
  EXPECT_EQ(fd.out, "execveat: EACCES\n") << fd.err;
  // What tools.allow names still runs, with its loader as interpreter; so does the loader when
  // the policy names it.
  EXPECT_EQ(Exec({"sh", "-c", "echo fine"}, p).out, "fine\n");
  std::string with_loader =
      std::string(kBase) + "\n[tools]\nallow = [\"sh\", \"cat\", \"" + loader + "\"]\n";
  Output named = Exec({loader, "/usr/bin/cat", "/etc/hostname"}, with_loader);
  EXPECT_EQ(named.status, 0) << named.err;
}

// --- Processes ---

TEST_F(ExecTest, HostProcessesAreInvisible) {
  pid_t host = fork();
  if (host == 0) {
    pause();
    _exit(0);
  }
  Output o = Probe({"kill-host", std::to_string(host)});
  kill(host, SIGKILL);
  waitpid(host, nullptr, 0);
  EXPECT_EQ(o.out, "kill-host: ESRCH\n");
  Output ps = Exec({"sh", "-c", "echo /proc/[0-9]*"});
  EXPECT_EQ(ps.out, "/proc/1 /proc/2\n") << "only the sandbox's init and the shell";
}

TEST_F(ExecTest, InitCannotBeKilledOrRead) {
  Output o = Exec({"sh", "-c", "./probe kill-init; ./probe read /proc/1/environ; echo still here"});
  if (LandlockAbi() >= 6) {
    EXPECT_EQ(o.out, "kill-init: EPERM\nread: EACCES\nstill here\n");
  } else {
    EXPECT_NE(o.out.find("still here"), std::string::npos);
  }
  EXPECT_EQ(o.status, 0);
}

TEST_F(ExecTest, ForkBombIsBounded) {
  Output o = Probe({"forkbomb"}, std::string(kBase) + R"(
[limits]
pids = 64
)");
  ASSERT_TRUE(o.out.starts_with("forkbomb: ")) << o.out << o.err;
  int count = std::stoi(o.out.substr(10));
  EXPECT_GT(count, 10);
  EXPECT_LT(count, 64);
}

TEST_F(ExecTest, MemoryBombIsKilled) {
  Output o = Probe({"membomb"}, std::string(kBase) + R"(
[limits]
memory = "64MiB"
)");
  if (!IsRoot() && o.status == 125) {
    // No memory cgroup for this user: corral refuses rather than run without the limit.
    EXPECT_NE(o.err.find("limits.memory needs a memory cgroup"), std::string::npos) << o.err;
    return;
  }
  EXPECT_EQ(o.status, 128 + SIGKILL) << o.out << o.err;
  EXPECT_NE(o.err.find("out of memory: limits.memory"), std::string::npos) << o.err;
}

TEST_F(ExecTest, NoDaemonOutlivesTheSandbox) {
  std::string marker = ws_.path() + "/daemon-marker";
  Output o = Probe({"daemon", marker});
  EXPECT_EQ(o.out, "daemon: started\n");
  EXPECT_EQ(o.status, 0);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_FALSE(std::filesystem::exists(marker)) << "a daemon survived the sandbox";
}

TEST_F(ExecTest, WallTimeStopsTheCommand) {
  std::string p = std::string(kBase) + R"(
[limits]
wall_time = "1s"
)";
  auto start = std::chrono::steady_clock::now();
  Output o = Probe({"sleep", "30", "ignore-term"}, p);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(o.status, 124);
  EXPECT_NE(o.err.find("wall-time limit"), std::string::npos) << o.err;
  EXPECT_LT(took, std::chrono::seconds(20));
}

TEST_F(ExecTest, CpuTimeStopsTheCommand) {
  Output o = Probe({"spin", "30"}, std::string(kBase) + R"(
[limits]
cpu_time = "1s"
)");
  EXPECT_TRUE(o.status == 128 + SIGXCPU || o.status == 128 + SIGKILL) << o.status;
  EXPECT_NE(o.err.find("cpu-time limit: limits.cpu_time"), std::string::npos) << o.err;
  EXPECT_EQ(o.out, "");
}

// Runs `probe sleep 30` under corral in the background, sends `sig` to corral after a second.
int SignalCorral(const std::string& ws, const std::string& probe, const std::string& log, int sig,
                 std::chrono::steady_clock::duration* took) {
  pid_t pid = Spawn({CORRAL_BIN, "exec", "--cwd", ws, "--", probe, "sleep", "30"}, log);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  auto start = std::chrono::steady_clock::now();
  kill(pid, sig);
  int status = 0;
  waitpid(pid, &status, 0);
  *took = std::chrono::steady_clock::now() - start;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST_F(ExecTest, SignalsToCorralReachTheCommand) {
  std::chrono::steady_clock::duration took;
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    EXPECT_EQ(SignalCorral(ws_.path(), probe_, scratch_.path() + "/log", sig, &took), 128 + sig)
        << sig << ": " << ReadFile(scratch_.path() + "/log");
    EXPECT_LT(took, std::chrono::seconds(10));
  }
}

TEST_F(ExecTest, NothingSurvivesCorralsDeath) {
  // corral is killed outright: its helper, and with it the sandbox, must not outlive it.
  std::string marker = ws_.path() + "/marker";
  pid_t pid = Spawn({CORRAL_BIN, "exec", "--cwd", ws_.path(), "--", "sh", "-c",
                     "./probe sleep 2; ./probe write " + marker},
                    scratch_.path() + "/log");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the sandbox outlived corral";
}

// corral's helper, once `sig` is blocked in it (it blocks its signals first thing: SIGUSR2 is
// sandbox::kParentDied), or 0 if no child of `corral` gets there in 10 s.
pid_t HelperOnceItBlocks(pid_t corral, int sig) {
  for (int tries = 0; tries < 1000; ++tries) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
      std::string name = e.path().filename();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::istringstream status(ReadFile(e.path() / "status"));
      long ppid = -1;
      unsigned long long blocked = 0;
      for (std::string line; std::getline(status, line);) {
        if (line.starts_with("PPid:")) ppid = std::stol(line.substr(5));
        if (line.starts_with("SigBlk:")) blocked = std::stoull(line.substr(7), nullptr, 16);
      }
      if (ppid == corral && (blocked >> (sig - 1) & 1)) return std::stoi(name);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return 0;
}

// corral exec reading its policy from a FIFO: it has started its helper and waits for the policy.
class HelperSignalTest : public ExecTest {
 protected:
  void SetUp() override {
    ExecTest::SetUp();
    fifo_ = scratch_.path() + "/policy.toml";
    ASSERT_EQ(mkfifo(fifo_.c_str(), 0600), 0) << strerror(errno);
    corral_ = Spawn({CORRAL_BIN, "exec", "--policy", fifo_, "--cwd", ws_.path(), "--", "sh", "-c",
                     "./probe sleep 5; ./probe write " + ws_.path() + "/marker"},
                    scratch_.path() + "/log");
    ASSERT_GT(corral_, 0);
  }
  void TearDown() override {
    if (corral_ > 0 && waitpid(corral_, nullptr, WNOHANG) == 0) {
      kill(corral_, SIGKILL);
      waitpid(corral_, nullptr, 0);
    }
  }

  // Gives corral its policy, and returns its exit status.
  int SendPolicyAndWait(const std::string& policy) {
    int fd = open(fifo_.c_str(), O_WRONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0) << strerror(errno);
    EXPECT_EQ(write(fd, policy.data(), policy.size()), static_cast<ssize_t>(policy.size()));
    close(fd);
    int status = 0;
    waitpid(corral_, &status, 0);
    corral_ = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  std::string fifo_;
  pid_t corral_ = 0;
};

// A stop signal that reaches the helper before it has set the sandbox up waits for it: the
// command gets it, and the placeholders of protected paths and the cgroups go as after any run
// (a helper that died of it halfway left them, in 10 of 400 tries of a race).
TEST_F(HelperSignalTest, ASignalBeforeTheSetUpIsForwardedAndLeavesNothing) {
  pid_t helper = HelperOnceItBlocks(corral_, SIGUSR2);
  ASSERT_GT(helper, 0) << ReadFile(scratch_.path() + "/log");
  ASSERT_EQ(kill(helper, SIGTERM), 0);
  EXPECT_EQ(SendPolicyAndWait(kProtecting), 128 + SIGTERM) << ReadFile(scratch_.path() + "/log");
  std::set<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(ws_.path())) {
    left.insert(e.path().filename());
  }
  EXPECT_EQ(left, std::set<std::string>{"probe"}) << "no marker, no placeholder";
  Output cgroups = RunCommand({"/usr/bin/find", "/sys/fs/cgroup", "-maxdepth", "6", "-name",
                               "corral-" + std::to_string(helper) + "-*"});
  EXPECT_EQ(cgroups.out, "") << "cgroups left behind";
}

// A helper that is gone before corral sends it the spec: a `corral:` reason and 125, not a
// SIGPIPE that ends corral without a word.
TEST_F(HelperSignalTest, AHelperGoneBeforeTheSpecIsASetUpError) {
  pid_t helper = HelperOnceItBlocks(corral_, SIGUSR2);
  ASSERT_GT(helper, 0) << ReadFile(scratch_.path() + "/log");
  ASSERT_EQ(kill(helper, SIGKILL), 0);
  for (int i = 0; i < 1000 && ReadFile("/proc/" + std::to_string(helper) + "/stat").find(") Z ") ==
                                  std::string::npos;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(SendPolicyAndWait(kBase), 125);
  std::string log = ReadFile(scratch_.path() + "/log");
  EXPECT_NE(log.find("corral: send spec to helper: Broken pipe"), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(ws_.path() + "/marker"));
}

// --- Privileges and syscalls ---

TEST_F(ExecTest, NoCapabilitiesNoNewPrivsSeccomp) {
  Output o = Probe({"caps"});
  EXPECT_NE(o.out.find("CapEff:\t0000000000000000"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("CapPrm:\t0000000000000000"), std::string::npos);
  EXPECT_NE(o.out.find("CapBnd:\t0000000000000000"), std::string::npos);
  EXPECT_NE(o.out.find("CapAmb:\t0000000000000000"), std::string::npos);
  EXPECT_NE(o.out.find("NoNewPrivs:\t1"), std::string::npos);
  EXPECT_NE(o.out.find("Seccomp:\t2"), std::string::npos);
}

TEST_F(ExecTest, NeverRealRootOnTheHost) {
  Output o = Exec({"cat", "/proc/self/uid_map"});
  std::istringstream in(o.out);
  long inside = -1, outside = -1, count = -1;
  in >> inside >> outside >> count;
  EXPECT_EQ(count, 1);
  EXPECT_NE(outside, 0) << o.out;
  EXPECT_EQ(outside, IsRoot() ? 2147483646L : static_cast<long>(geteuid()));
}

class DeniedSyscallTest : public ExecTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(DeniedSyscallTest, IsDeniedWithEperm) {
  Output o = Probe({GetParam()});
  EXPECT_EQ(o.out, std::string(GetParam()) + ": EPERM\n") << o.err;
}

INSTANTIATE_TEST_SUITE_P(Baseline, DeniedSyscallTest,
                         ::testing::Values("mount", "unshare", "unshare-net", "clone-newuser",
                                           "setns", "chroot", "ptrace", "ptrace-child",
                                           "process_vm_readv", "bpf", "perf_event_open", "keyctl",
                                           "io_uring", "userfaultfd", "open_by_handle_at",
                                           "personality", "tiocsti", "tiocsti-high",
                                           "tioclinux"));

TEST_F(ExecTest, Clone3IsNotImplemented) { EXPECT_EQ(Probe({"clone3"}).out, "clone3: ENOSYS\n"); }

TEST_F(ExecTest, ForeignArchitecturesAreKilled) {
  for (const char* probe : {"x32", "i386"}) {
    Output o = Probe({probe});
    EXPECT_EQ(o.status, 128 + SIGSYS) << probe << ": " << o.out;
    EXPECT_NE(o.err.find("foreign-architecture"), std::string::npos) << o.err;
  }
}

TEST_F(ExecTest, DenialsAreReported) {
  std::string result = scratch_.path() + "/result.json";
  Output o = Exec({probe_, "ptrace"}, kBase, {}, {"--result", result});
  EXPECT_EQ(o.status, 0);
  std::string json = ReadFile(result);
  EXPECT_NE(json.find(R"("denials":[{"count":1,"syscall":"ptrace"}])"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("last_denied":"ptrace")"), std::string::npos) << json;
}

TEST_F(ExecTest, EveryExecIsObservedFromOutside) {
  std::string result = scratch_.path() + "/result.json";
  std::string script =
      "./probe execveat /bin/true; ./probe own-filter-exec /bin/true; /bin/echo hi; "
      "./probe exit 0 $(printf 'x\\377y')";
  Output o = Exec({"sh", "-c", script}, kBase, {}, {"--observe-exec", "--result", result});
  EXPECT_EQ(o.out, "hi\n") << o.err;
  EXPECT_EQ(o.status, 0) << o.err;
  std::string json = ReadFile(result);
  for (const std::string& want : std::vector<std::string>{
           R"("argv":["sh","-c",)", R"("argv":["./probe","execveat","/bin/true"])",
        R"("argv":["/bin/true","via-execveat"])", R"("argv":["/bin/true","after-own-filter"])",
        R"("argv":["/bin/echo","hi"],"at_ms":)", R"("cwd":")" + ws_.path() + R"(")",
        R"("path":"/bin/echo","pid":)", R"("pid":2,"ppid":1,)",
        // A byte that is not UTF-8 is kept readable, not an error.
        "\"argv\":[\"./probe\",\"exit\",\"0\",\"x\xef\xbf\xbdy\"]"}) {
    EXPECT_NE(json.find(want), std::string::npos) << want << "\n" << json;
  }
  // Control: without --observe-exec nothing is recorded.
  Exec({"sh", "-c", "/bin/true"}, kBase, {}, {"--result", result});
  EXPECT_NE(ReadFile(result).find(R"("execs":[],"execs_dropped":0)"), std::string::npos)
      << ReadFile(result);
}

TEST_F(ExecTest, HowEachObservedProgramEndedIsRecorded) {
  std::string result = scratch_.path() + "/result.json";
  std::string script =
      "sh -c 'exit 3'; sh -c 'kill -TERM $$'; sh -c 'exec /bin/true'; ./probe exit 0";
  Output o = Exec({"sh", "-c", script}, kBase, {}, {"--observe-exec", "--result", result});
  EXPECT_EQ(o.status, 0) << o.err;
  auto json = nlohmann::json::parse(ReadFile(result));
  std::map<std::string, nlohmann::json> by_argv;
  for (const auto& e : json["execs"]) {
    std::string argv;
    for (const auto& a : e["argv"]) argv += (argv.empty() ? "" : " ") + a.get<std::string>();
    by_argv[argv] = e;
  }
  ASSERT_EQ(by_argv.count("sh -c exit 3"), 1u) << json.dump();
  if (!testing::KernelAtLeast(6, 15)) {
    // Older kernels say nothing, and corral claims nothing.
    EXPECT_EQ(by_argv["sh -c exit 3"]["end"], "");
    CORRAL_SKIP_WITHOUT("PIDFD_INFO_EXIT (Linux 6.15)");
  }
  EXPECT_EQ(by_argv["sh -c exit 3"]["end"], "exited");
  EXPECT_EQ(by_argv["sh -c exit 3"]["exit_code"], 3);
  EXPECT_EQ(by_argv["sh -c kill -TERM $$"]["end"], "signaled");
  EXPECT_EQ(by_argv["sh -c kill -TERM $$"]["signal"], SIGTERM);
  EXPECT_EQ(by_argv["sh -c exec /bin/true"]["end"], "exec");  // the process became /bin/true
  EXPECT_EQ(by_argv["/bin/true"]["end"], "exited");
  EXPECT_EQ(by_argv["/bin/true"]["exit_code"], 0);
  EXPECT_EQ(by_argv["./probe exit 0"]["end"], "exited");
  // The agent itself, which its parent (the sandbox's init) reaps.
  EXPECT_EQ(by_argv["sh -c " + script]["end"], "exited");
}

TEST_F(ExecTest, PolicyCanDenyMoreAndAllowExceptions) {
  Output more = Exec({"sh", "-c", "./probe mkdir d"}, std::string(kBase) + R"(
[syscalls]
deny = ["mkdir", "mkdirat"]
)");
  EXPECT_EQ(more.out, "mkdir: EPERM\n") << more.err;
  Output allowed = Probe({"personality"}, std::string(kBase) + R"(
[syscalls]
allow = ["personality"]
)");
  EXPECT_EQ(allowed.out, "personality: OK\n");
}

// --- Network ---

TEST_F(ExecTest, NoNetworkButLoopback) {
  int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(server, 4), 0);
  socklen_t len = sizeof(addr);
  getsockname(server, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string port = std::to_string(ntohs(addr.sin_port));
  EXPECT_EQ(Probe({"connect", port}).out, "connect: ECONNREFUSED\n");
  EXPECT_EQ(Probe({"connect-ip", "10.0.0.1", "80"}).out, "connect: ENETUNREACH\n");
  Output devs = Exec({"cat", "/proc/net/dev"});
  EXPECT_NE(devs.out.find("lo:"), std::string::npos);
  EXPECT_EQ(devs.out.find("eth"), std::string::npos);
  // Control: egress = "host" reaches the host's listener.
  std::string host_net = std::string(kBase) + R"(
[network]
egress = "host"
)";
  EXPECT_EQ(Probe({"connect", port}, host_net).out, "connect: OK\n");
  close(server);
}

// --- Environment and descriptors ---

TEST_F(ExecTest, EnvironmentIsRebuiltFromThePolicy) {
  std::string p = R"(
[filesystem]
read_only = ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc"]
[env]
pass = ["PATH"]
set = { MODE = "test" }
[secrets]
env = ["CORRAL_TEST_TOKEN"]
)";
  Output o = Exec({probe_, "env"}, p,
                  {"CORRAL_TEST_TOKEN=tok-123", "CORRAL_TEST_LEAK=must-not-pass"});
  EXPECT_NE(o.out.find("MODE=test\n"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("CORRAL_TEST_TOKEN=tok-123\n"), std::string::npos);
  EXPECT_NE(o.out.find("PATH="), std::string::npos);
  EXPECT_EQ(o.out.find("must-not-pass"), std::string::npos);
  Output missing = Exec({"true"}, p);
  EXPECT_EQ(missing.status, 125);
  EXPECT_EQ(missing.err, "corral: " + scratch_.path() +
                             "/policy.toml: secrets.env: CORRAL_TEST_TOKEN is not set in corral's "
                             "environment or --secrets-file\n");
  // From a secrets file, which only its owner may read.
  std::string file = scratch_.path() + "/secrets";
  WriteFile(file, "# comment\nCORRAL_TEST_TOKEN=from-file\n", 0600);
  Output from_file = Exec({probe_, "env"}, p, {"CORRAL_TEST_TOKEN=from-env"}, {"--secrets-file", file});
  EXPECT_NE(from_file.out.find("CORRAL_TEST_TOKEN=from-file\n"), std::string::npos) << from_file.err;
  chmod(file.c_str(), 0640);
  Output loose = Exec({"true"}, p, {}, {"--secrets-file", file});
  EXPECT_EQ(loose.status, 2);
  EXPECT_EQ(loose.err, "corral: --secrets-file " + file +
                           ": must be a regular file of yours that only you can read (chmod 600)\n");
  WriteFile(file, "CORRAL_TEST_TOKEN=x\nnot a pair\n", 0600);
  Output bad = Exec({"true"}, p, {}, {"--secrets-file", file});
  EXPECT_EQ(bad.status, 2);
  EXPECT_EQ(bad.err, "corral: " + file + ":2: not NAME=value (--secrets-file)\n");
}

TEST_F(ExecTest, OnlyStdioIsInherited) {
  int leaked = open("/etc/hostname", O_RDONLY);  // not close-on-exec: corral inherits it
  ASSERT_GE(leaked, 3);
  Output o = Probe({"fds"});
  close(leaked);
  EXPECT_EQ(o.out, "fd 0\nfd 1\nfd 2\n");
}

TEST_F(ExecTest, BadPolicyIsExitTwoWithPosition) {
  Output o = Exec({"true"}, "[limits]\nmemory = \"lots\"\n");
  EXPECT_EQ(o.status, 2);
  EXPECT_EQ(o.err, "corral: " + scratch_.path() +
                       "/policy.toml:2:10: limits.memory: 'lots' is not a size (examples: 512MiB, "
                       "2GiB)\n");
}

}  // namespace
}  // namespace corral::testing
