// corral-sandbox: the single-threaded helper that builds and supervises one sandbox. Started by
// corral (sandbox::Run); reads a Spec from the socket named by --ipc-fd and answers there.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "sandbox/supervisor.h"

namespace {

std::string ReadAll(int fd) {
  std::string out;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    out.append(buf, n);
  }
  return out;
}

void WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += n;
  }
}

}  // namespace

int main(int argc, char** argv) {
  int fd = -1;
  pid_t parent = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--ipc-fd") == 0) fd = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--parent") == 0) parent = std::atoi(argv[i + 1]);
  }
  if (fd < 3) {
    fprintf(stderr, "corral-sandbox: run by corral, not by hand\n");
    return 2;
  }
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  // Dies with corral; the sandbox dies with us.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (parent != 0 && getppid() != parent) return 1;
  // Out of the terminal's foreground group: Ctrl-C reaches the sandbox once, through corral.
  setpgid(0, 0);
  signal(SIGPIPE, SIG_IGN);
  auto spec = corral::sandbox::SpecFromJson(ReadAll(fd));
  if (!spec) {
    WriteAll(fd, "E" + spec.error().message);
    return 0;
  }
  auto result = corral::sandbox::Supervise(*spec);
  WriteAll(fd, result ? "R" + corral::sandbox::ToJson(*result) : "E" + result.error().message);
  return 0;
}
