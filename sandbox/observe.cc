#include "sandbox/observe.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "sandbox/landlock.h"
#include "sandbox/missing_defs.h"

namespace corral::sandbox::observe {
namespace {

constexpr size_t kMaxArgs = 1024;
constexpr size_t kMaxArgBytes = 8192;
constexpr uint64_t kPage = 4096;

// Reads up to `len` bytes at `addr` of process `pid`, never across a page it cannot read.
size_t ReadMemory(int pid, uint64_t addr, char* out, size_t len) {
  size_t done = 0;
  while (done < len) {
    size_t chunk = std::min<uint64_t>(len - done, kPage - (addr + done) % kPage);
    iovec local = {out + done, chunk};
    // An address in the other process, never dereferenced here.
    iovec remote = {reinterpret_cast<void*>(addr + done), chunk};  // NOLINT(performance-no-int-to-ptr)
    ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

std::string ReadString(int pid, uint64_t addr) {
  std::string out;
  char buf[256];
  while (addr != 0 && out.size() < kMaxArgBytes) {
    size_t want = std::min<uint64_t>(sizeof(buf), kPage - addr % kPage);
    size_t n = ReadMemory(pid, addr, buf, want);
    if (n == 0) break;
    size_t end = 0;
    while (end < n && buf[end] != '\0') ++end;
    out.append(buf, end);
    if (end < n) return out;
    addr += n;
  }
  return out;
}

std::vector<std::string> ReadArgv(int pid, uint64_t addr) {
  std::vector<std::string> argv;
  while (addr != 0 && argv.size() < kMaxArgs) {
    uint64_t ptr = 0;
    if (ReadMemory(pid, addr, reinterpret_cast<char*>(&ptr), sizeof(ptr)) != sizeof(ptr)) break;
    if (ptr == 0) break;
    argv.push_back(ReadString(pid, ptr));
    addr += sizeof(ptr);
  }
  return argv;
}

// A field of /proc/PID/status ("PPid:", "NSpid:"), its words.
std::vector<std::string> StatusField(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with(field)) continue;
    std::istringstream words(line.substr(field.size()));
    std::vector<std::string> out;
    for (std::string w; words >> w;) out.push_back(w);
    return out;
  }
  return {};
}

// The pid in the sandbox's namespace: the last NSpid; 0 when the process is not in a nested
// namespace (the supervisor, for the sandbox's own pid 1).
int InnerPid(int pid) {
  std::vector<std::string> ns = StatusField(pid, "NSpid:");
  return ns.size() > 1 ? std::atoi(ns.back().c_str()) : 0;
}

}  // namespace

ExecRecord ReadExec(const seccomp::Call& call, std::chrono::steady_clock::time_point start) {
  ExecRecord r;
  r.at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  bool at = call.name == "execveat";
  r.path = ReadString(call.pid, call.args[at ? 1 : 0]);
  r.argv = ReadArgv(call.pid, call.args[at ? 2 : 1]);
  char cwd[PATH_MAX];
  ssize_t n = readlink(("/proc/" + std::to_string(call.pid) + "/cwd").c_str(), cwd, sizeof(cwd));
  if (n > 0) r.cwd.assign(cwd, static_cast<size_t>(n));
  r.pid = InnerPid(call.pid);
  std::vector<std::string> ppid = StatusField(call.pid, "PPid:");
  if (!ppid.empty()) r.ppid = InnerPid(std::atoi(ppid[0].c_str()));
  return r;
}

std::optional<FileId> IdIn(int root, const std::string& path) {
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(syscall(SYS_openat2, root, path.c_str(), &how, sizeof(how)));
  if (fd < 0) return std::nullopt;
  struct stat st;
  bool ok = fstat(fd, &st) == 0;
  close(fd);
  if (!ok) return std::nullopt;
  return FileId{st.st_dev, st.st_ino};
}

std::vector<FileId> LoadersToRefuse(const std::vector<std::string>& exec_allow, int root) {
  std::vector<FileId> allowed, refuse;
  for (const std::string& program : exec_allow) {
    if (auto id = IdIn(root, program)) allowed.push_back(*id);
  }
  for (const char* loader : landlock::kLoaders) {
    auto id = IdIn(root, loader);
    if (id && std::find(allowed.begin(), allowed.end(), *id) == allowed.end() &&
        std::find(refuse.begin(), refuse.end(), *id) == refuse.end()) {
      refuse.push_back(*id);
    }
  }
  return refuse;
}

namespace {

// The exec's path, read whole (up to PATH_MAX with its NUL) from the caller's memory, or false.
bool ReadPath(int pid, uint64_t addr, std::string* out) {
  char buf[PATH_MAX];
  size_t n = addr ? ReadMemory(pid, addr, buf, sizeof(buf)) : 0;
  const char* end = static_cast<const char*>(std::memchr(buf, '\0', n));
  if (!end) return false;
  out->assign(buf, static_cast<size_t>(end - buf));
  return true;
}

int IdOfProcFile(const std::string& path, FileId* id) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return errno;
  *id = FileId{st.st_dev, st.st_ino};
  return 0;
}

// "/dev/fd/N", "/proc/self/fd/N", "/proc/thread-self/fd/N": N, else -1.
int OwnDescriptor(const std::string& path) {
  for (const char* prefix : {"/dev/fd/", "/proc/self/fd/", "/proc/thread-self/fd/"}) {
    if (!path.starts_with(prefix)) continue;
    std::string n = path.substr(std::strlen(prefix));
    if (n.empty() || n.size() > 9 || n.find_first_not_of("0123456789") != std::string::npos) {
      return -1;
    }
    return std::atoi(n.c_str());
  }
  return -1;
}

}  // namespace

int ExecTarget(const seccomp::Call& call, FileId* id) {
  std::string proc = "/proc/" + std::to_string(call.pid);
  bool at = call.name == "execveat";
  int dirfd = at ? static_cast<int>(call.args[0]) : AT_FDCWD;
  std::string dir = dirfd == AT_FDCWD ? proc + "/cwd" : proc + "/fd/" + std::to_string(dirfd);
  std::string path;
  if (!ReadPath(call.pid, call.args[at ? 1 : 0], &path)) return EFAULT;
  if (path.empty()) {
    if (at && (call.args[4] & AT_EMPTY_PATH)) return IdOfProcFile(dir, id);
    return ENOENT;
  }
  // The caller's own descriptors and program, which our /proc shows under its pid.
  if (int fd = OwnDescriptor(path); fd >= 0) return IdOfProcFile(proc + "/fd/" + std::to_string(fd), id);
  if (path == "/proc/self/exe") return IdOfProcFile(proc + "/exe", id);
  if (!path.starts_with('/')) {
    // The caller's directory as its own root shows it. A sandbox's root is not under ours, so
    // the kernel writes the path from that root already; a chroot under ours (a VM guest's
    // init) is a prefix to take off.
    auto link = [](const std::string& p) {
      char buf[PATH_MAX];
      ssize_t n = readlink(p.c_str(), buf, sizeof(buf) - 1);
      return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
    };
    std::string base = link(dir), root = link(proc + "/root");
    if (!base.starts_with('/') || !root.starts_with('/')) return ENAMETOOLONG;
    if (root != "/") {
      if (base == root) {
        base = "/";
      } else if (base.starts_with(root + "/")) {
        base = base.substr(root.size());
      } else {
        return EXDEV;  // a directory outside the caller's root
      }
    }
    path = base + "/" + path;
  }
  int root = open((proc + "/root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return errno;
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;
  // A magic link (/proc/PID/fd/N reached any other way) would resolve as ours, not the
  // caller's: it fails here (ELOOP), and the caller refuses.
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(syscall(SYS_openat2, root, path.c_str(), &how, sizeof(how)));
  int err = errno;
  close(root);
  if (fd < 0) return err;
  struct stat st;
  err = fstat(fd, &st) == 0 ? 0 : errno;
  close(fd);
  if (err == 0) *id = FileId{st.st_dev, st.st_ino};
  return err;
}

int RefuseExec(const seccomp::Call& call, const std::vector<FileId>& loaders) {
  FileId id;
  int err = ExecTarget(call, &id);
  if (err == ENOENT || err == ENOTDIR) return err;
  if (err != 0) return EACCES;
  return std::find(loaders.begin(), loaders.end(), id) != loaders.end() ? EACCES : 0;
}

Exits::~Exits() {
  for (const Live& l : live_) close(l.fd);
}

int Exits::Open(int pid) { return static_cast<int>(syscall(__NR_pidfd_open, pid, 0)); }

void Exits::Watch(int pid, int pidfd, size_t index, std::vector<ExecRecord>* records) {
  for (Live& l : live_) {
    if (l.pid != pid) continue;
    (*records)[l.index].end = "exec";
    l.index = index;  // the same process: its first pidfd serves
    if (pidfd >= 0) close(pidfd);
    return;
  }
  if (pidfd < 0) return;
  if (live_.size() >= kMaxWatched) {
    close(pidfd);
    return;
  }
  live_.push_back({pid, pidfd, index});
}

void Exits::AddPollFds(std::vector<pollfd>* fds) const {
  // The kernel keeps the exit information when the process is reaped, which poll reports as
  // POLLHUP whatever the events asked for; POLLIN (a zombie) would only wake us early.
  for (const Live& l : live_) fds->push_back({l.fd, 0, 0});
}

void Exits::Handle(const std::vector<pollfd>& fds, size_t first,
                   std::vector<ExecRecord>* records) {
  std::vector<Live> still;
  for (size_t i = 0; i < live_.size(); ++i) {
    const Live& l = live_[i];
    if (fds[first + i].revents & (POLLHUP | POLLERR)) {
      ReadEnd(l.fd, &(*records)[l.index]);  // reaped: what the kernel kept, if anything
      close(l.fd);
    } else {
      still.push_back(l);
    }
  }
  live_ = std::move(still);
}

void Exits::Finish(std::vector<ExecRecord>* records) {
  for (const Live& l : live_) {
    ReadEnd(l.fd, &(*records)[l.index]);
    close(l.fd);
  }
  live_.clear();
}

bool Exits::ReadEnd(int fd, ExecRecord* record) {
  kernel::PidfdInfo info{};
  info.mask = kernel::kPidfdInfoExit;
  if (ioctl(fd, kernel::kPidfdGetInfo, &info) != 0 || !(info.mask & kernel::kPidfdInfoExit)) {
    return false;
  }
  if (WIFEXITED(info.exit_code)) {
    record->end = "exited";
    record->exit_code = WEXITSTATUS(info.exit_code);
  } else if (WIFSIGNALED(info.exit_code)) {
    record->end = "signaled";
    record->signal = WTERMSIG(info.exit_code);
  }
  return true;
}

}  // namespace corral::sandbox::observe
