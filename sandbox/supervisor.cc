#include "sandbox/supervisor.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "sandbox/cgroup.h"
#include "sandbox/contain.h"
#include "sandbox/fdio.h"
#include "sandbox/ipc.h"
#include "sandbox/landlock.h"
#include "sandbox/mnt.h"
#include "sandbox/observe.h"
#include "sandbox/seccomp.h"
#include "sandbox/user.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

namespace corral::sandbox {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    reset(o.fd_);
    o.fd_ = -1;
    return *this;
  }
  ~Fd() { reset(); }
  void reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Removes the protected-path placeholders whatever happens.
struct PlaceholderGuard {
  std::vector<std::string> created;
  ~PlaceholderGuard() { mnt::RemovePlaceholders(created); }
};

// What the sandbox told us and what we saw of it.
struct Watch {
  int reply_fd = -1;
  std::string setup_error;
  bool agent_reported = false;
  int agent_status = 0;
  int exec_errno = 0;
  Fd listener;
  std::vector<Denial> denials;
  std::string last_denied;

  void Handle(const ipc::Message& m, std::vector<int>& fds) {
    switch (m.type) {
      case ipc::Type::kSetupError:
        if (setup_error.empty()) setup_error = m.text;
        break;
      case ipc::Type::kListener:
        if (!fds.empty()) {
          listener.reset(fds[0]);
          fds.erase(fds.begin());
        }
        break;
      case ipc::Type::kExecFailed:
        exec_errno = m.value;
        break;
      case ipc::Type::kAgentExited:
        agent_reported = true;
        agent_status = m.value;
        break;
      case ipc::Type::kProxyListener:
        if (!fds.empty() && !SendProxyListener(reply_fd, fds[0]) && setup_error.empty()) {
          setup_error = "could not hand the egress proxy its socket";
        }
        break;
      default:
        break;
    }
    for (int fd : fds) close(fd);
    fds.clear();
  }

  bool observe = false;  // record each exec
  // With tools.allow: the loaders Landlock lets execute, which may not be started as programs.
  std::vector<observe::FileId> loaders;
  std::vector<ExecRecord> execs;
  uint64_t execs_dropped = 0;
  observe::Exits exits;

  // Answers one notification: an exec is read, recorded and let through (unless it starts a
  // dynamic loader that tools.allow does not name); anything else is a denial.
  void Answer(Clock::time_point start) {
    auto call = seccomp::Receive(listener.get());
    if (!call) return;
    if (!call->exec) {
      seccomp::Deny(listener.get(), call->id);
      Denied(call->name);
      return;
    }
    if (!loaders.empty()) {
      if (int refuse = RefuseExec(*call, loaders); refuse != 0) {
        seccomp::Deny(listener.get(), call->id, refuse);
        if (refuse == EACCES) Denied(call->name + " of a dynamic loader, or of a path not told");
        return;
      }
    }
    if (!observe) {
      seccomp::Continue(listener.get(), call->id);
      return;
    }
    ExecRecord r = observe::ReadExec(*call, start);
    bool keep = execs.size() < Result::kMaxExecs;
    int pidfd = keep ? observe::Exits::Open(call->pid) : -1;
    // A pid reused between the notification and the reads (or the pidfd) would have given
    // another process's data: keep the record only if the caller still waits.
    bool valid = seccomp::StillWaiting(listener.get(), call->id);
    seccomp::Continue(listener.get(), call->id);
    if (!valid) {
      if (pidfd >= 0) close(pidfd);
      return;
    }
    if (keep) {
      execs.push_back(std::move(r));
      exits.Watch(call->pid, pidfd, execs.size() - 1, &execs);
    } else {
      ++execs_dropped;
    }
  }

  void Denied(const std::string& name) {
    last_denied = name;
    auto it = std::find_if(denials.begin(), denials.end(),
                           [&](const Denial& d) { return d.syscall == name; });
    if (it == denials.end())
      denials.push_back({name, 1});
    else
      ++it->count;
  }
};

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, kParentDied};

sigset_t SupervisedSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : kSignals) sigaddset(&set, sig);
  return set;
}

// A signal blocked since the helper started and pending now is read from the signalfd too.
Expected<Fd> BlockSignals() {
  if (!BlockSupervisedSignals()) return ErrnoError("sigprocmask");
  sigset_t set = SupervisedSignals();
  int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) return ErrnoError("signalfd");
  return Fd(fd);
}

int CloneFlags(const Spec& spec) {
  int flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
  if (!spec.share_network) flags |= CLONE_NEWNET;
  return flags;
}

}  // namespace

bool BlockSupervisedSignals() {
  sigset_t set = SupervisedSignals();
  return sigprocmask(SIG_BLOCK, &set, nullptr) == 0;
}

Expected<Result> Supervise(const Spec& request, int reply_fd) {
  // Before anything that leaves state to undo: a stop signal waits for the loop below.
  auto signals = BlockSignals();
  if (!signals) return std::unexpected(signals.error());
  Spec spec = request;
  mnt::ResolveSymlinks(&spec);
  const Clock::time_point start = Clock::now();
  Result result;
  user::Identity identity = user::IdentityForCaller();
  // Root's supplementary groups would follow the sandbox in; it runs with none.
  if (identity.privileged && setgroups(0, nullptr) != 0) return ErrnoError("setgroups");

  int abi = landlock::AbiVersion();
  if (spec.exec_allow && abi == 0) {
    return Fail("tools.allow needs Landlock, which this kernel does not offer (corral doctor)");
  }
  if (abi == 0) result.notes.push_back("Landlock unavailable: file rules enforced by mounts only");
  auto cgroup = cgroup::Cgroup::Create(spec.limits, &result.notes);
  if (!cgroup) return std::unexpected(cgroup.error());
  auto created = mnt::CreatePlaceholders(spec);
  if (!created) return std::unexpected(created.error());
  PlaceholderGuard placeholders{*created};
  // tools.allow: execs stop at the supervisor too, which refuses `ld.so PROGRAM`.
  auto filter = seccomp::Filter::Build(spec.syscalls, spec.observe_exec || spec.exec_allow);
  if (!filter) return std::unexpected(filter.error());

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return ErrnoError("socketpair");
  Fd sock(sv[0]);
  int pidfd = -1;
  long pid = syscall(SYS_clone, CloneFlags(spec) | CLONE_PIDFD | SIGCHLD, nullptr, &pidfd, nullptr,
                     nullptr);
  if (pid < 0) {
    int err = errno;
    close(sv[1]);
    return ErrnoError(err == EPERM || err == ENOSPC
                          ? "create namespaces (user namespaces disabled? see corral doctor)"
                          : "create namespaces",
                      err);
  }
  if (pid == 0) {
    close(sv[0]);
    contain::RunInit({&spec, identity, sv[1], &*filter, abi});
  }
  close(sv[1]);
  Fd init(pidfd);
  auto abort_setup = [&](const Error& e) -> Expected<Result> {
    kill(static_cast<pid_t>(pid), SIGKILL);
    waitpid(static_cast<pid_t>(pid), nullptr, 0);
    return std::unexpected(e);
  };
  if (auto r = user::WriteMaps(static_cast<pid_t>(pid), identity); !r)
    return abort_setup(r.error());
  if (auto r = cgroup->Attach(static_cast<pid_t>(pid)); !r) return abort_setup(r.error());
  std::vector<int> detached;
  if (identity.privileged) {
    Fd userns(open(("/proc/" + std::to_string(pid) + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC));
    if (userns.get() < 0) return abort_setup(ErrnoError("open user namespace").error());
    auto fds = mnt::OpenBinds(spec, userns.get());
    if (!fds) return abort_setup(fds.error());
    detached = *fds;
  }
  bool sent = ipc::Send(sock.get(), ipc::Type::kGo, 0, {}, detached);
  for (int fd : detached) close(fd);
  if (!sent) return abort_setup(ErrnoError("start sandbox").error());

  Watch watch;
  watch.reply_fd = reply_fd;
  watch.observe = spec.observe_exec;
  if (spec.exec_allow) {
    int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) return ErrnoError("open /");
    watch.loaders = observe::LoadersToRefuse(*spec.exec_allow, root);
    close(root);
  }
  std::optional<Clock::time_point> wall_deadline;
  if (spec.limits.wall_time) wall_deadline = start + *spec.limits.wall_time;
  bool kill_pending = false;
  Clock::time_point kill_deadline{};
  const bool watch_cpu = spec.limits.cpu_time.has_value();
  bool init_done = false;
  bool sock_open = true;
  while (!init_done) {
    Clock::time_point now = Clock::now();
    Clock::time_point wake = now + std::chrono::hours(24);
    if (wall_deadline) wake = std::min(wake, *wall_deadline);
    if (kill_pending) wake = std::min(wake, kill_deadline);
    if (watch_cpu) wake = std::min(wake, now + milliseconds(100));
    int timeout =
        static_cast<int>(std::max<int64_t>(0, std::chrono::ceil<milliseconds>(wake - now).count()));
    // A negative fd (no listener) is ignored by poll.
    std::vector<pollfd> fds = {{init.get(), POLLIN, 0},
                               {sock_open ? sock.get() : -1, POLLIN, 0},
                               {signals->get(), POLLIN, 0},
                               {watch.listener.get(), POLLIN, 0}};
    watch.exits.AddPollFds(&fds);
    int n = poll(fds.data(), fds.size(), timeout);
    if (n > 0) watch.exits.Handle(fds, 4, &watch.execs);
    if (n < 0 && errno != EINTR) return abort_setup(ErrnoError("poll").error());
    if (n > 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      ipc::Message m;
      std::vector<int> received;
      // Once pid 1 has closed its end (it exits: what is left of the sandbox ends with it), the
      // socket reads as at its end at once; polled on, it would spin this loop, on the CPU that
      // the exiting sandbox needs, until the kernel has torn the sandbox down.
      if (ipc::Receive(sock.get(), &m, &received)) {
        watch.Handle(m, received);
      } else {
        sock_open = false;
      }
    }
    if (n > 0 && watch.listener.get() >= 0 && (fds[3].revents & (POLLIN | POLLHUP | POLLERR))) {
      if (fds[3].revents & POLLIN) {
        watch.Answer(start);
      } else {
        watch.listener.reset();
      }
    }
    if (n > 0 && (fds[2].revents & POLLIN)) {
      signalfd_siginfo info;
      while (read(signals->get(), &info, sizeof(info)) == sizeof(info)) {
        // corral is gone: nobody waits for a result; the sandbox ends now, and this loop ends
        // when its pid 1 has exited, which the kernel allows only once the rest of it is gone.
        int sig = static_cast<int>(info.ssi_signo) == kParentDied ? SIGKILL
                                                                  : static_cast<int>(info.ssi_signo);
        if (sig != SIGKILL && result.stop_signal == 0) result.stop_signal = sig;
        kill(static_cast<pid_t>(pid), sig);
      }
    }
    if (n > 0 && (fds[0].revents & POLLIN)) init_done = true;
    now = Clock::now();
    if (!init_done && wall_deadline && now >= *wall_deadline && !result.timed_out) {
      result.timed_out = true;
      kill(static_cast<pid_t>(pid), SIGTERM);
      kill_deadline = now + spec.limits.kill_grace;
      kill_pending = true;
    }
    if (!init_done && kill_pending && now >= kill_deadline) {
      kill(static_cast<pid_t>(pid), SIGKILL);
      kill_pending = false;
    }
    if (!init_done && watch_cpu && !result.cpu_limit_hit) {
      uint64_t used_ms = cgroup->Read().cpu_ns / 1'000'000;
      if (used_ms > static_cast<uint64_t>(spec.limits.cpu_time->count())) {
        result.cpu_limit_hit = true;
        kill(static_cast<pid_t>(pid), SIGKILL);
      }
    }
  }
  int init_status = 0;
  waitpid(static_cast<pid_t>(pid), &init_status, 0);
  // Every process of the sandbox is gone; read what is left in the socket.
  ipc::Message m;
  std::vector<int> received;
  while (ipc::Receive(sock.get(), &m, &received)) watch.Handle(m, received);

  if (!watch.setup_error.empty()) return std::unexpected(Error{watch.setup_error});
  cgroup::Usage usage = cgroup->Read();
  result.wall_time = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  result.cpu_time = milliseconds(usage.cpu_ns / 1'000'000);
  result.peak_memory = usage.peak_memory;
  result.oom_killed = usage.oom_kills > 0;
  result.denials = watch.denials;
  result.last_denied = watch.last_denied;
  result.exec_errno = watch.exec_errno;
  watch.exits.Finish(&watch.execs);
  result.execs = std::move(watch.execs);
  result.execs_dropped = watch.execs_dropped;
  if (watch.agent_reported) {
    int s = watch.agent_status;
    result.exited = WIFEXITED(s);
    result.exit_code = WIFEXITED(s) ? WEXITSTATUS(s) : 0;
    result.signal = WIFSIGNALED(s) ? WTERMSIG(s) : 0;
    if (result.signal == SIGXCPU) result.cpu_limit_hit = true;
  } else if (WIFSIGNALED(init_status)) {
    result.signal = WTERMSIG(init_status);  // stopped from outside before the agent reported
  } else {
    return Fail("the sandbox ended before its command started (exit " +
                std::to_string(WEXITSTATUS(init_status)) + ")");
  }
  return result;
}

}  // namespace corral::sandbox
