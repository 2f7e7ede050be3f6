// The launcher's side of a sandbox: starts the helper with Boost.Process and talks to it over a
// socket. The only file that sees Boost.Process; its exceptions stop here.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <optional>
// Boost.Process 1.74 compiles its vfork launcher only when asked to.
#define BOOST_POSIX_HAS_VFORK 1
#include <boost/process.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/posix.hpp>

#include "sandbox/fdio.h"
#include "sandbox/host_probe.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp.h"

namespace corral::sandbox {
namespace {

std::atomic<pid_t> g_helper{0};

void Forward(int sig) {
  pid_t pid = g_helper.load();
  if (pid > 0) kill(pid, sig);
}

// Forwards termination signals to the helper for as long as it lives.
class SignalForwarding {
 public:
  SignalForwarding() {
    struct sigaction sa {};
    sa.sa_handler = Forward;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < std::size(kSignals); ++i) sigaction(kSignals[i], &sa, &old_[i]);
  }
  ~SignalForwarding() {
    for (size_t i = 0; i < std::size(kSignals); ++i) sigaction(kSignals[i], &old_[i], nullptr);
  }

 private:
  static constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction old_[3];
};

}  // namespace

bool KnownSyscall(std::string_view name) { return seccomp::KnownSyscall(name); }

Expected<std::string> CompileBpf(const std::vector<SyscallRule>& rules, bool notify,
                                 bool stop_execs) {
  auto filter = seccomp::Filter::Build(rules, stop_execs, notify);
  if (!filter) return std::unexpected(filter.error());
  return filter->ExportBpf();
}

struct Helper::Process {
  boost::process::child child;
  int sock = -1;  // corral's end of the socket; the helper's end is its fd kIpcFd
  ~Process() {
    // Unrun: at the end of its input the helper answers that there was no Spec, and exits.
    if (sock >= 0) close(sock);
    std::error_code ec;
    if (child.valid() && child.running(ec)) child.wait(ec);
  }
};

Helper::Helper(std::unique_ptr<Process> process) : process_(std::move(process)) {}
Helper::Helper(Helper&&) noexcept = default;
Helper& Helper::operator=(Helper&&) noexcept = default;
Helper::~Helper() = default;

Expected<Helper> Helper::Start(const RunOptions& options) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return ErrnoError("socketpair");
  // The helper's end becomes its fd kIpcFd; the number is on the command line, the data never
  // is. Both ends stay close-on-exec here: other threads start helpers at the same time, and a
  // helper that inherited another task's end would keep that task's reply open until it exits.
  constexpr int kIpcFd = 3;
  constexpr int kHoldFd = 4;
  auto process = std::make_unique<Process>();
  std::string failure;
  try {
    namespace bp = boost::process;
    bp::environment no_environment;
    auto exe = bp::exe = options.helper_path;
    std::vector<std::string> argv = {"--ipc-fd", std::to_string(kIpcFd), "--parent",
                                     std::to_string(getpid())};
    if (options.hold_fd >= 0) argv.insert(argv.end(), {"--hold-fd", std::to_string(kHoldFd)});
    auto args = bp::args = argv;
    // In the child, before exec: descriptors given by the caller become the helper's (and so the
    // command's) stdio, and the socket's end becomes kIpcFd without close-on-exec.
    auto redirect = bp::extend::on_exec_setup = [&](auto&) {
      if (options.stdin_fd >= 0) dup2(options.stdin_fd, 0);
      if (options.stdout_fd >= 0) dup2(options.stdout_fd, 1);
      if (options.stderr_fd >= 0) dup2(options.stderr_fd, 2);
      // Through fresh numbers first, so neither target clobbers the other's source.
      int ipc = fcntl(sv[1], F_DUPFD, 10);
      int hold = options.hold_fd >= 0 ? fcntl(options.hold_fd, F_DUPFD, 10) : -1;
      dup2(ipc, kIpcFd);
      close(ipc);
      if (hold >= 0) {
        dup2(hold, kHoldFd);
        close(hold);
      }
    };
    process->child = bp::child(exe, args, no_environment, redirect, bp::posix::use_vfork);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  close(sv[1]);
  if (!failure.empty() || !process->child.valid()) {
    close(sv[0]);
    return Fail("start " + options.helper_path + ": " + failure);
  }
  process->sock = sv[0];
  if (options.on_start) options.on_start(process->child.id());
  return Helper(std::move(process));
}

Expected<Result> Helper::Run(const Spec& spec,
                             const std::function<void(int listener)>& on_proxy_listener,
                             bool forward_signals) {
  if (!process_ || process_->sock < 0) return Fail("a sandbox helper runs one sandbox");
  std::optional<SignalForwarding> forwarding;
  if (forward_signals) {
    g_helper = process_->child.id();  // first: a signal that comes next finds it
    forwarding.emplace();
  }
  const int sock = process_->sock;
  process_->sock = -1;
  // A helper already gone (killed, or dead of a signal before its set-up) is an error, not a
  // SIGPIPE that would end corral without a word.
  auto sent = SendAll(sock, ToJson(spec), "send spec to helper");
  shutdown(sock, SHUT_WR);
  std::string reply = ReadReply(sock, on_proxy_listener);
  close(sock);
  std::error_code ec;
  process_->child.wait(ec);
  if (forward_signals) g_helper = 0;
  if (!sent) return std::unexpected(sent.error());
  if (reply.empty()) {
    int status = process_->child.native_exit_code();
    return Fail("the sandbox helper died (" +
                (WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                                     : "exit " + std::to_string(WEXITSTATUS(status))) +
                ")");
  }
  // The helper answers "E<message>" when the sandbox could not be set up, else "R<result json>".
  if (reply[0] == 'E') return Fail(reply.substr(1));
  return ResultFromJson(reply.substr(1));
}

Expected<Result> Run(const Spec& spec, const RunOptions& options) {
  auto helper = Helper::Start(options);
  if (!helper) return std::unexpected(helper.error());
  return helper->Run(spec, options.on_proxy_listener, options.forward_signals);
}

Expected<std::vector<HostCheck>> RunHostProbe(const std::string& helper_path) {
  namespace bp = boost::process;
  std::string out;
  try {
    bp::ipstream pipe;
    bp::child probe(helper_path, "--probe", bp::std_out > pipe, bp::std_err > bp::null);
    std::string line;
    while (std::getline(pipe, line)) out += line;
    probe.wait();
  } catch (const std::exception& e) {
    return Fail("run " + helper_path + " --probe: " + e.what());
  }
  return HostChecksFromJson(out);
}

}  // namespace corral::sandbox
