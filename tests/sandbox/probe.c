/* probe: tries one thing a sandboxed agent must not be able to do, and prints what happened.
 *
 * Run only inside a sandbox (the tests run it through `corral exec`): a probe that works changes
 * the machine it runs on. Output: "NAME: OK" when the action succeeded, "NAME: ERRNO" (e.g.
 * "mount: EPERM") when it failed. Exit status 0 unless noted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/keyctl.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int report(const char* name, long rc) {
  if (rc >= 0) {
    printf("%s: OK\n", name);
  } else {
    printf("%s: %s\n", name, strerrorname_np(errno));
  }
  fflush(stdout);
  return 0;
}

static int fork_bomb(void) {
  int count = 0;
  for (int i = 0; i < 100000; ++i) {
    pid_t pid = fork();
    if (pid < 0) break;
    if (pid == 0) {
      pause();
      _exit(0);
    }
    ++count;
  }
  printf("forkbomb: %d\n", count);
  fflush(stdout);
  kill(0, SIGKILL);
  return 0;
}

static int memory_bomb(void) {
  size_t total = 0;
  for (;;) {
    size_t chunk = 16u << 20;
    char* p = malloc(chunk);
    if (!p) {
      printf("membomb: ENOMEM after %zu MiB\n", total >> 20);
      return 0;
    }
    memset(p, 1, chunk);
    total += chunk;
  }
}

static int daemonize(const char* marker) {
  pid_t pid = fork();
  if (pid != 0) {
    printf("daemon: started\n");
    return 0;
  }
  setsid();
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  if (fork() != 0) _exit(0);
  sleep(2);
  int fd = open(marker, O_WRONLY | O_CREAT, 0644);
  if (fd >= 0) {
    write(fd, "survived\n", 9);
    close(fd);
  }
  _exit(0);
}

static int connect_tcp(const char* ip, int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, ip, &addr.sin_addr);
  return report("connect", connect(s, (struct sockaddr*)&addr, sizeof(addr)));
}

static int read_file(const char* path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return report("read", -1);
  char buf[64];
  return report("read", read(fd, buf, sizeof(buf)));
}

static int write_file(const char* path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return report("write", -1);
  return report("write", write(fd, "planted\n", 8));
}

static int list_fds(void) {
  for (int fd = 0; fd < 1024; ++fd) {
    if (fcntl(fd, F_GETFD) >= 0) printf("fd %d\n", fd);
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: probe NAME [ARGS]\n");
    return 2;
  }
  const char* what = argv[1];
  const char* arg = argc > 2 ? argv[2] : "";
  if (!strcmp(what, "execveat")) {  /* the other exec call: the observer sees it too */
    char* args[] = {(char*)arg, "via-execveat", NULL};
    char* env[] = {NULL};
    syscall(SYS_execveat, AT_FDCWD, arg, args, env, 0);
    return report("execveat", -1);
  }
  if (!strcmp(what, "execveat-fd")) {  /* execveat(fd, "", AT_EMPTY_PATH): argv is the rest */
    char* env[] = {NULL};
    int fd = open(arg, O_PATH | O_CLOEXEC);
    if (fd < 0) return report("open", -1);
    syscall(SYS_execveat, fd, "", argv + 2, env, AT_EMPTY_PATH);
    return report("execveat", -1);
  }
  if (!strcmp(what, "own-filter-exec")) {
    /* An agent that stacks its own allow-everything filter and then execs: the sandbox's
       notification still wins (filters only add restrictions), so the exec is still seen. */
    struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    struct sock_fprog prog = {1, allow};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return report("seccomp", -1);
    /* A listener of its own, to answer its own notifications, is refused. */
    long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                            SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (listener >= 0) {
      printf("own-filter-exec: got a listener\n");
      return 1;
    }
    char* args[] = {(char*)arg, "after-own-filter", NULL};
    char* env[] = {NULL};
    execve(arg, args, env);
    return report("own-filter-exec", -1);
  }
  if (!strcmp(what, "mount")) return report("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
  if (!strcmp(what, "unshare")) return report("unshare", unshare(CLONE_NEWUSER));
  if (!strcmp(what, "unshare-net")) return report("unshare-net", unshare(CLONE_NEWNET));
  if (!strcmp(what, "clone-newuser")) {
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid(pid, NULL, 0);
    return report("clone-newuser", pid);
  }
  if (!strcmp(what, "clone3")) {
    struct { unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; } args = {0};
    args.exit_signal = SIGCHLD;
    long pid = syscall(435 /* clone3 */, &args, sizeof(args));
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid(pid, NULL, 0);
    return report("clone3", pid);
  }
  if (!strcmp(what, "fork")) {
    pid_t pid = fork();
    if (pid == 0) _exit(7);
    int status = 0;
    waitpid(pid, &status, 0);
    return report("fork", WEXITSTATUS(status) == 7 ? 0 : -1);
  }
  if (!strcmp(what, "setns")) {
    int fd = open("/proc/self/ns/net", O_RDONLY);
    return report("setns", fd < 0 ? fd : setns(fd, 0));
  }
  if (!strcmp(what, "chroot")) return report("chroot", chroot("/tmp"));
  if (!strcmp(what, "ptrace")) return report("ptrace", ptrace(PTRACE_ATTACH, 1, 0, 0));
  if (!strcmp(what, "ptrace-child")) {
    pid_t pid = fork();
    if (pid == 0) {
      pause();
      _exit(0);
    }
    long rc = ptrace(PTRACE_ATTACH, pid, 0, 0);
    int err = errno;
    kill(pid, SIGKILL);
    errno = err;
    return report("ptrace-child", rc);
  }
  if (!strcmp(what, "process_vm_readv")) {
    char buf[8];
    struct iovec local = {buf, sizeof(buf)}, remote = {buf, sizeof(buf)};
    return report("process_vm_readv", process_vm_readv(getpid(), &local, 1, &remote, 1, 0));
  }
  if (!strcmp(what, "bpf")) {
    char attr[128] = {0};
    return report("bpf", syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, attr, sizeof(attr)));
  }
  if (!strcmp(what, "perf_event_open")) {
    char attr[128] = {0};
    return report("perf_event_open", syscall(SYS_perf_event_open, attr, 0, -1, -1, 0));
  }
  if (!strcmp(what, "keyctl")) {
    return report("keyctl", syscall(SYS_add_key, "user", "corral", "x", 1, KEY_SPEC_PROCESS_KEYRING));
  }
  if (!strcmp(what, "io_uring")) {
    char params[120] = {0};
    return report("io_uring", syscall(425 /* io_uring_setup */, 4, params));
  }
  if (!strcmp(what, "userfaultfd")) return report("userfaultfd", syscall(SYS_userfaultfd, 0));
  if (!strcmp(what, "open_by_handle_at")) {
    char handle[128] = {0};
    return report("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, handle, O_RDONLY));
  }
  if (!strcmp(what, "personality")) return report("personality", personality(PER_LINUX32));
  if (!strcmp(what, "tiocsti")) {
    char c = 'x';
    return report("tiocsti", ioctl(0, TIOCSTI, &c));
  }
  if (!strcmp(what, "tiocsti-high")) {
    char c = 'x';
    return report("tiocsti-high", syscall(SYS_ioctl, 0, 0x100000000UL | TIOCSTI, &c));
  }
  if (!strcmp(what, "tioclinux")) {
    char c = 0;
    return report("tioclinux", ioctl(0, TIOCLINUX, &c));
  }
  if (!strcmp(what, "spin")) {
    time_t end = time(NULL) + atoi(arg);
    volatile unsigned long n = 0;
    while (time(NULL) < end) ++n;
    printf("spin: done\n");
    return 0;
  }
  if (!strcmp(what, "x32")) return report("x32", syscall(0x40000000 | 39 /* getpid */));
  if (!strcmp(what, "i386")) {
    long rc;
    __asm__ volatile("int $0x80" : "=a"(rc) : "a"(20 /* i386 getpid */) : "memory");
    return report("i386", rc);
  }
  if (!strcmp(what, "caps")) {
    FILE* f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof(line), f)) {
      if (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs", 10) || !strncmp(line, "Seccomp:", 8)) {
        fputs(line, stdout);
      }
    }
    return 0;
  }
  if (!strcmp(what, "connect")) return connect_tcp("127.0.0.1", atoi(arg));
  if (!strcmp(what, "connect-ip")) return connect_tcp(arg, atoi(argv[3]));
  if (!strcmp(what, "forkbomb")) return fork_bomb();
  if (!strcmp(what, "membomb")) return memory_bomb();
  if (!strcmp(what, "daemon")) return daemonize(arg);
  if (!strcmp(what, "read")) return read_file(arg);
  if (!strcmp(what, "write")) return write_file(arg);
  if (!strcmp(what, "mkdir")) return report("mkdir", mkdir(arg, 0755));
  if (!strcmp(what, "rename")) return report("rename", rename(arg, argv[3]));
  if (!strcmp(what, "symlink")) return report("symlink", symlink(arg, argv[3]));
  if (!strcmp(what, "rmdir")) return report("rmdir", rmdir(arg));
  if (!strcmp(what, "unlink")) return report("unlink", unlink(arg));
  if (!strcmp(what, "fds")) return list_fds();
  if (!strcmp(what, "kill-init")) return report("kill-init", kill(1, SIGKILL));
  if (!strcmp(what, "kill-host")) return report("kill-host", kill(atoi(arg), 0));
  if (!strcmp(what, "exit")) return atoi(arg);
  if (!strcmp(what, "signal")) {
    raise(atoi(arg));
    return 0;
  }
  if (!strcmp(what, "sleep")) {
    if (argc > 3 && !strcmp(argv[3], "ignore-term")) signal(SIGTERM, SIG_IGN);
    sleep(atoi(arg));
    printf("slept\n");
    return 0;
  }
  if (!strcmp(what, "bigfile")) {
    int fd = open(arg, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    signal(SIGXFSZ, SIG_IGN);
    char buf[65536] = {0};
    long total = 0;
    for (int i = 0; i < 1024; ++i) {
      ssize_t n = write(fd, buf, sizeof(buf));
      if (n < 0) {
        printf("bigfile: %s after %ld bytes\n", strerrorname_np(errno), total);
        return 0;
      }
      total += n;
    }
    printf("bigfile: OK %ld bytes\n", total);
    return 0;
  }
  if (!strcmp(what, "env")) {
    extern char** environ;
    for (char** e = environ; *e; ++e) puts(*e);
    return 0;
  }
  if (!strcmp(what, "hostname")) {
    char name[256];
    gethostname(name, sizeof(name));
    puts(name);
    return 0;
  }
  fprintf(stderr, "probe: unknown probe %s\n", what);
  return 2;
}
