#include "sandbox/contain.h"

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "sandbox/caps.h"
#include "sandbox/ipc.h"
#include "sandbox/landlock.h"
#include "sandbox/missing_defs.h"
#include "sandbox/mnt.h"
#include "sandbox/net.h"
#include "sandbox/rlimits.h"

namespace corral::sandbox::contain {
namespace {

constexpr int kForwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD};

[[noreturn]] void SetupFailed(int sock, const Error& error) {
  ipc::Send(sock, ipc::Type::kSetupError, 0, error.message);
  _exit(125);
}

void Check(int sock, const Expected<>& r) {
  if (!r) SetupFailed(sock, r.error());
}

// The inside steps before the agent exists, in order.
void SetUpNamespaces(const Context& ctx, const std::vector<int>& detached) {
  const Spec& spec = *ctx.spec;
  Check(ctx.sock, user::BecomeInside(ctx.identity));
  // Dies with the supervisor; with pid 1 gone the kernel kills every process of the sandbox. Set
  // only now: a change of credentials clears the parent-death signal. If the supervisor died
  // before this, its end of the socket is closed.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  char byte;
  if (recv(ctx.sock, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0) _exit(125);
  // Joined after the supervisor moved us into our cgroup, so that cgroup is our root.
  if (unshare(CLONE_NEWCGROUP) != 0) Check(ctx.sock, ErrnoError("unshare cgroup namespace"));
  if (sethostname(spec.hostname.data(), spec.hostname.size()) != 0) {
    Check(ctx.sock, ErrnoError("sethostname"));
  }
  if (!spec.share_network) Check(ctx.sock, net::BringUpLoopback());
  if (!spec.share_network && spec.proxy_port != 0) {
    auto listener = net::ListenLoopback(spec.proxy_port);
    if (!listener) SetupFailed(ctx.sock, listener.error());
    ipc::Send(ctx.sock, ipc::Type::kProxyListener, 0, {}, {*listener});
    close(*listener);
  }
  Check(ctx.sock, mnt::BuildRoot(spec, detached));
  for (int fd : detached) close(fd);
}

// Like execvp, but searching the PATH of the command's environment, not ours.
int Exec(const Spec& spec, char* const argv[], char* const envp[]) {
  const std::string& file = spec.argv[0];
  if (file.find('/') != std::string::npos) {
    execve(file.c_str(), argv, envp);
    return errno;
  }
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const std::string& e : spec.env) {
    if (e.starts_with("PATH=")) path = e.substr(5);
  }
  int result = ENOENT;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + file;
    // Only a program that is there is executed: one execve, one record for the exec observer.
    if (access(candidate.c_str(), X_OK) != 0) {
      if (errno == EACCES) result = EACCES;
      start = end + 1;
      continue;
    }
    execve(candidate.c_str(), argv, envp);
    if (errno == EACCES) result = EACCES;  // remembered, as execvp does, but keep looking
    else if (errno != ENOENT && errno != ENOTDIR) return errno;
    start = end + 1;
  }
  return result;
}

// The agent: the process that becomes the command.
[[noreturn]] void RunAgent(const Context& ctx) {
  const Spec& spec = *ctx.spec;
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  // No controlling terminal: nothing to inject keystrokes into (TIOCSTI is filtered as well).
  if (setsid() < 0) Check(ctx.sock, ErrnoError("setsid"));
  Check(ctx.sock, rlimits::Apply(spec.limits));
  const std::string& cwd = spec.cwd.empty() ? spec.workspace : spec.cwd;
  if (chdir(cwd.c_str()) != 0) Check(ctx.sock, ErrnoError("chdir " + cwd));
  Check(ctx.sock, caps::SetNoNewPrivs());
  if (ctx.landlock_abi > 0) Check(ctx.sock, landlock::Restrict(spec, ctx.landlock_abi));
  Check(ctx.sock, caps::DropAll());

  std::vector<char*> argv;
  argv.reserve(spec.argv.size() + 1);
  for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(spec.env.size() + 1);
  for (const std::string& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  // Credential changes made this process non-dumpable; the supervisor reads the arguments of its
  // execve from outside, which needs it dumpable. Exec resets the flag anyway.
  prctl(PR_SET_DUMPABLE, 1);
  auto listener = ctx.filter->Load();
  if (!listener) SetupFailed(ctx.sock, listener.error());
  if (*listener >= 0) {
    ipc::Send(ctx.sock, ipc::Type::kListener, 0, {}, {*listener});
    close(*listener);
  }
  // Nothing inherited reaches the command but stdin, stdout and stderr; the socket closes at exec.
  if (ctx.sock > 3) syscall(__NR_close_range, 3, ctx.sock - 1, 0);
  syscall(__NR_close_range, ctx.sock + 1, ~0U, 0);
  int err = Exec(spec, argv.data(), envp.data());
  ipc::Send(ctx.sock, ipc::Type::kExecFailed, err);
  _exit(err == ENOENT ? 127 : 126);
}

}  // namespace

void RunInit(const Context& ctx) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // until the ids change; see SetUpNamespaces
  ipc::Message go;
  std::vector<int> detached;
  if (!ipc::Receive(ctx.sock, &go, &detached) || go.type != ipc::Type::kGo) _exit(125);
  SetUpNamespaces(ctx, detached);

  sigset_t forwarded;
  sigemptyset(&forwarded);
  for (int sig : kForwarded) sigaddset(&forwarded, sig);
  sigprocmask(SIG_BLOCK, &forwarded, nullptr);

  pid_t agent = fork();
  if (agent < 0) SetupFailed(ctx.sock, ErrnoError("fork").error());
  if (agent == 0) RunAgent(ctx);

  // /proc/1 reveals nothing to the agent, and pid 1 holds no privilege it could borrow.
  prctl(PR_SET_DUMPABLE, 0);
  if (auto r = caps::SetNoNewPrivs(); !r) _exit(125);
  if (auto r = caps::DropAll(); !r) _exit(125);
  syscall(__NR_close_range, 0, ctx.sock - 1, 0);
  syscall(__NR_close_range, ctx.sock + 1, ~0U, 0);

  while (true) {
    siginfo_t info;
    int sig = sigwaitinfo(&forwarded, &info);
    if (sig < 0) continue;
    if (sig == SIGINT) {
      kill(-agent, SIGINT);
      continue;
    }
    if (sig != SIGCHLD) {
      kill(-1, sig);
      continue;
    }
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      if (pid == agent) {
        ipc::Send(ctx.sock, ipc::Type::kAgentExited, status);
        _exit(0);
      }
    }
  }
}

}  // namespace corral::sandbox::contain
