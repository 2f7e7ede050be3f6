// corral-sandbox: the single-threaded helper that builds and supervises one sandbox. Started by
// corral (sandbox::Run); reads a Spec from the socket named by --ipc-fd and answers there.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "sandbox/fdio.h"
#include "sandbox/host_probe.h"
#include "sandbox/supervisor.h"

int main(int argc, char** argv) {
  int fd = -1;
  pid_t parent = 0;
  int hold = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--ipc-fd") == 0) fd = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--parent") == 0) parent = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--hold-fd") == 0) hold = std::atoi(argv[i + 1]);
  }
  if (argc == 2 && std::strcmp(argv[1], "--probe") == 0) {
    std::printf("%s\n", corral::sandbox::ToJson(corral::sandbox::ProbeHost()).c_str());
    return 0;
  }
  if (fd < 3) {
    fprintf(stderr, "corral-sandbox: run by corral, not by hand\n");
    return 2;
  }
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  // Held, never used, until this process exits: after the sandbox is gone (see below). corral's
  // next manager of the run waits for every such holder before it touches the run's worktrees.
  if (hold >= 3) fcntl(hold, F_SETFD, FD_CLOEXEC);
  // When corral dies, the supervisor hears kParentDied, kills the sandbox and waits until all of
  // it is gone before this process exits. It and the stop signals are blocked now, so that they
  // wait for the supervisor's signalfd.
  corral::sandbox::BlockSupervisedSignals();
  prctl(PR_SET_PDEATHSIG, corral::sandbox::kParentDied);
  if (parent != 0 && getppid() != parent) return 1;
  // Out of the terminal's foreground group: Ctrl-C reaches the sandbox once, through corral.
  setpgid(0, 0);
  signal(SIGPIPE, SIG_IGN);
  namespace sb = corral::sandbox;
  auto spec = sb::SpecFromJson(sb::ReadAll(fd));
  if (!spec) {
    (void)sb::WriteAll(fd, "E" + spec.error().message, "reply");
    return 0;
  }
  auto result = sb::Supervise(*spec, fd);
  // When corral is gone there is nobody to tell; the reply is best effort.
  (void)sb::WriteAll(fd, result ? "R" + sb::ToJson(*result) : "E" + result.error().message,
                     "reply");
  return 0;
}
