// The floor under every sandbox start on this machine, whichever tool builds the sandbox:
//  - what one `cpuid` instruction costs (under a hypervisor it exits to the host),
//  - how many of them a program executes from exec to exit, counted by single-stepping it,
//  - what fork, exec and wait of that program take (the median of 200),
//  - what a clone with the seven namespaces of a sandbox takes, with the child's exit and reaping.
// glibc probes the CPU (features, then each cache level) with cpuid before main, in every program,
// static or dynamic. tests/bench/exec_vs_bwrap.sh prints these next to its ratio.
// Usage: start_floor PROGRAM [ARGS...]   (the program should exit at once, e.g. with a usage error)
#include <cpuid.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Micros(Clock::time_point since) {
  return std::chrono::duration<double, std::micro>(Clock::now() - since).count();
}

double CpuidMicros() {
  constexpr int kCalls = 2000;
  unsigned a = 0, b = 0, c = 0, d = 0;
  auto start = Clock::now();
  for (int i = 0; i < kCalls; ++i) __cpuid_count(4, i & 3, a, b, c, d);
  return Micros(start) / kCalls;
}

// The child's stdout and stderr go to /dev/null: only its start-up is of interest.
pid_t Spawn(char** argv, bool traced) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  int null = open("/dev/null", O_WRONLY);
  dup2(null, 1);
  dup2(null, 2);
  if (traced) ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
  execv(argv[0], argv);
  _exit(127);
}

// Single-steps the program from its exec to its exit; returns {instructions, cpuid}, or {-1, -1}
// when it could not be traced (ptrace refused, as under a seccomp filter or Yama's scope 3).
std::pair<long, long> CountCpuid(char** argv) {
  pid_t pid = Spawn(argv, true);
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status)) return {-1, -1};  // at the exec
  long steps = 0, cpuids = 0;
  for (;;) {
    user_regs_struct regs{};
    ptrace(PTRACE_GETREGS, pid, nullptr, &regs);
    errno = 0;
    long word = ptrace(PTRACE_PEEKTEXT, pid, reinterpret_cast<void*>(regs.rip), nullptr);
    if (errno == 0 && (word & 0xffff) == 0xa20f) ++cpuids;  // 0f a2: cpuid
    if (ptrace(PTRACE_SINGLESTEP, pid, nullptr, nullptr) != 0) break;
    if (waitpid(pid, &status, 0) < 0 || WIFEXITED(status) || WIFSIGNALED(status)) break;
    ++steps;
  }
  return {steps, cpuids};
}

double StartMicros(char** argv) {
  std::vector<double> times;
  for (int i = 0; i < 200; ++i) {
    auto start = Clock::now();
    waitpid(Spawn(argv, false), nullptr, 0);
    times.push_back(Micros(start));
  }
  return Median(times);
}

double NamespacesMicros() {
  constexpr unsigned long kFlags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
                                   CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
  std::vector<double> times;
  for (int i = 0; i < 200; ++i) {
    auto start = Clock::now();
    long pid = syscall(SYS_clone, kFlags | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
    if (pid == 0) _exit(0);
    if (pid < 0) return -1;
    waitpid(static_cast<pid_t>(pid), nullptr, 0);
    times.push_back(Micros(start));
    usleep(1000);  // the kernel frees a network namespace later, in a worker
  }
  return Median(times);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: start_floor PROGRAM [ARGS...]\n");
    return 2;
  }
  double cpuid = CpuidMicros();
  auto [steps, cpuids] = CountCpuid(argv + 1);
  if (steps < 0) {
    std::fprintf(stderr, "start_floor: cannot trace %s (ptrace refused)\n", argv[1]);
    return 1;
  }
  double start = StartMicros(argv + 1);
  double namespaces = NamespacesMicros();
  std::printf("cpuid_us=%.2f\n", cpuid);
  std::printf("start_instructions=%ld\nstart_cpuid=%ld\n", steps, cpuids);
  std::printf("start_us=%.1f\n", start);
  std::printf("namespaces_us=%.1f\n", namespaces);
  return namespaces < 0 ? 1 : 0;
}
