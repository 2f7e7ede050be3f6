#include "launcher/vm.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "launcher/spec_from_policy.h"
#include "sandbox/fdio.h"

namespace corral::launcher::vm {
namespace {

namespace fs = std::filesystem;
using sandbox::Fail;

// Memory QEMU needs beside the guest's RAM (its own code, TCG's translation cache, 9p buffers):
// the QEMU process's limit is the guest's RAM plus this.
constexpr uint64_t kQemuOverheadMib = 384;
// The guest kernel and init need some RAM of their own beside the command's.
constexpr uint64_t kGuestKernelMib = 96;
constexpr uint64_t kDefaultGuestMib = 512;
// QEMU's own threads and processes, beside the proxy connectors the guest makes it start.
constexpr uint64_t kQemuThreads = 64;
// A read-only file the policy grants travels in the initramfs, up to this size.
constexpr uint64_t kMaxCopiedFile = 4 << 20;

bool IsFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// QEMU as found in corral's PATH (absolute entries only: the KVM probe runs it outside any
// sandbox, never from the working folder).
std::string FindQemu() {
  const char* path = std::getenv("PATH");
  return Which("qemu-system-x86_64", path ? path : "/usr/bin:/bin");
}

// The last `lines` lines of `text`.
std::string Tail(const std::string& text, size_t lines) {
  size_t pos = text.size();
  while (pos > 0 && text[pos - 1] == '\n') --pos;
  size_t end = pos;
  for (size_t n = 0; pos > 0 && n < lines; ++n) {
    size_t nl = text.rfind('\n', pos - 1);
    pos = nl == std::string::npos ? 0 : nl;
    if (nl == std::string::npos) break;
  }
  std::string out = text.substr(pos, end - pos);
  std::erase(out, '\r');
  if (!out.empty() && out.front() == '\n') out.erase(0, 1);
  // What the guest printed reaches a terminal: no escape sequences or other controls.
  for (char& c : out) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\n' && c != '\t') || u == 0x7f) c = '?';
  }
  return out;
}

void AppendHex(std::string* out, uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof(buf), "%08X", v);
  out->append(buf, 8);
}

void PadTo4(std::string* out) { out->append((4 - out->size() % 4) % 4, '\0'); }

// Removes a folder tree when it goes out of scope.
struct TempDir {
  std::string path;
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

// Carries the command's stdin, stdout and stderr between the caller's descriptors (any kind: a
// terminal, a pipe, a file, a socket) and the sockets QEMU connects the corral.stdin,
// corral.stdout and corral.stderr ports to, and keeps what comes on corral.status. Sockets, not
// files: a share that reaches the launch folder (a policy granting /tmp) gives the guest no way
// to them through 9p. Lives while QEMU runs; Finish() takes what is left once QEMU is gone.
class StdioPump {
 public:
  // `on_broken_pipe` runs (on the pump's thread) when the caller's stdout or stderr is a pipe
  // whose reader is gone: the command would get SIGPIPE at its next write.
  sandbox::Expected<> Listen(const Launch& l, const sandbox::RunOptions& o,
                             std::function<void()> on_broken_pipe) {
    on_broken_pipe_ = std::move(on_broken_pipe);
    streams_[0] = {l.stdin_socket, o.stdin_fd < 0 ? 0 : o.stdin_fd, true};
    streams_[1] = {l.stdout_socket, o.stdout_fd < 0 ? 1 : o.stdout_fd, false};
    streams_[2] = {l.stderr_socket, o.stderr_fd < 0 ? 2 : o.stderr_fd, false};
    streams_[3] = {l.status_socket, -1, false};
    for (Stream& s : streams_) {
      int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      if (s.path.size() >= sizeof(addr.sun_path)) return Fail("socket path too long: " + s.path);
      std::memcpy(addr.sun_path, s.path.c_str(), s.path.size());
      if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
          listen(fd, 1) != 0) {
        if (fd >= 0) close(fd);
        return sandbox::ErrnoError("listen on " + s.path);
      }
      s.listener = fd;
    }
    if (pipe2(stop_, O_CLOEXEC) != 0) return sandbox::ErrnoError("pipe");
    thread_ = std::thread([this] { Loop(); });
    return {};
  }

  // Waits for the guest's last output; then status() holds what the guest reported.
  void Finish() {
    if (thread_.joinable()) {
      (void)sandbox::WriteAll(stop_[1], "x", "stop");
      thread_.join();
    }
  }
  const std::string& status() const { return status_; }
  bool broken_pipe() const { return broken_pipe_; }

  ~StdioPump() {
    Finish();
    for (Stream& s : streams_) {
      if (s.listener >= 0) close(s.listener);
      if (s.conn >= 0) close(s.conn);
    }
    for (int fd : stop_) {
      if (fd >= 0) close(fd);
    }
  }

 private:
  struct Stream {
    std::string path;
    int local = -1;      // the caller's descriptor (not owned); -1: kept in status_
    bool input = false;  // local -> guest (stdin); else guest -> local
    int listener = -1, conn = -1;
    bool done = false;
    bool broken = false;  // local's reader is gone
  };

  void Loop() {
    // A reader that went away is an error to see (EPIPE), not a signal that ends corral.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    bool stopping = false;
    for (;;) {
      std::vector<pollfd> fds;
      std::vector<int> which;
      if (!stopping) {
        fds.push_back({stop_[0], POLLIN, 0});
        which.push_back(-1);
      }
      for (int i = 0; i < 4; ++i) {
        Stream& s = streams_[i];
        // Once QEMU is gone, its connections hold only what it wrote: read them to the end;
        // nothing more goes in.
        if (s.done || (stopping && (s.input || s.conn < 0))) continue;
        int fd = s.conn < 0 ? s.listener : s.input ? s.local : s.conn;
        fds.push_back({fd, POLLIN, 0});
        which.push_back(i);
      }
      if (stopping && which.empty()) return;
      if (poll(fds.data(), fds.size(), stopping ? 1000 : -1) <= 0) {
        if (stopping) return;
        if (errno == EINTR) continue;
        return;
      }
      for (size_t k = 0; k < fds.size(); ++k) {
        if (!fds[k].revents) continue;
        if (which[k] < 0) {
          stopping = true;
          continue;
        }
        Stream& s = streams_[which[k]];
        if (s.conn < 0) {
          s.conn = accept4(s.listener, nullptr, nullptr, SOCK_CLOEXEC);
          continue;
        }
        char buf[65536];
        ssize_t n = read(s.input ? s.local : s.conn, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          s.done = true;
          if (s.input) shutdown(s.conn, SHUT_WR);  // the guest reads the end of its input
          continue;
        }
        if (s.local < 0) {
          if (status_.size() < kMaxStatus) status_.append(buf, n);
        } else if (!s.input) {
          // Past a reader that went away, the rest is read and dropped: the guest must not
          // block on a port nobody drains.
          for (ssize_t done = 0; !s.broken && done < n;) {
            ssize_t m = write(s.local, buf + done, n - done);
            if (m < 0 && errno == EINTR) continue;
            if (m > 0) {
              done += m;
              continue;
            }
            s.broken = true;
            if (errno == EPIPE && !broken_pipe_) {
              broken_pipe_ = true;
              if (on_broken_pipe_) on_broken_pipe_();
            }
          }
        } else {
          // Blocks while the guest does not read; QEMU's exit ends it (EPIPE).
          for (ssize_t sent = 0; sent < n;) {
            ssize_t m = send(s.conn, buf + sent, n - sent, MSG_NOSIGNAL);
            if (m < 0 && errno == EINTR) continue;
            if (m <= 0) {
              s.done = true;
              break;
            }
            sent += m;
          }
        }
      }
    }
  }

  Stream streams_[4];
  int stop_[2] = {-1, -1};
  std::thread thread_;
  // The status, after the record of the guest's execs (init keeps it under this).
  static constexpr size_t kMaxStatus = 128 << 20;
  std::string status_;
  std::function<void()> on_broken_pipe_;
  bool broken_pipe_ = false;
};

}  // namespace

std::expected<std::string, std::string> FindGuestDir() {
  std::vector<std::string> tried;
  if (const char* env = std::getenv("CORRAL_VM_DIR"); env && *env) {
    tried.push_back(env);
  } else {
    std::string self = SelfDir();
    tried = {self + "/../vm", self + "/../share/corral/vm"};
  }
  std::string missing;
  for (const std::string& dir : tried) {
    missing.clear();
    if (!IsFile(dir + "/vmlinuz")) missing = dir + "/vmlinuz";
    for (const char* m : kModules) {
      if (missing.empty() && !IsFile(dir + "/modules/" + m)) missing = dir + "/modules/" + m;
    }
    if (missing.empty()) {
      char buf[PATH_MAX];
      return realpath(dir.c_str(), buf) ? std::string(buf) : dir;
    }
  }
  std::string list;
  for (const std::string& dir : tried) list += (list.empty() ? "" : ", ") + dir;
  return std::unexpected("no guest kernel for the vm target (tried " + list + "; missing " +
                         missing +
                         "): ./build.sh puts Debian's kernel in build/vm, or set CORRAL_VM_DIR");
}

std::string QemuOptionValue(const std::string& value) {
  std::string out;
  for (char c : value) {
    out += c;
    if (c == ',') out += ',';
  }
  return out;
}

std::string NewcArchive(const std::vector<CpioEntry>& entries) {
  std::string out;
  uint32_t ino = 1;
  auto add = [&](const std::string& name, uint32_t mode, const std::string& data, uint32_t major,
                 uint32_t minor) {
    out += "070701";
    for (uint32_t field : {ino++, mode, 0u, 0u, (mode & S_IFMT) == S_IFDIR ? 2u : 1u, 0u,
                           static_cast<uint32_t>(data.size()), 0u, 0u, major, minor,
                           static_cast<uint32_t>(name.size() + 1), 0u}) {
      AppendHex(&out, field);
    }
    out += name;
    out += '\0';
    PadTo4(&out);
    out += data;
    PadTo4(&out);
  };
  for (const CpioEntry& e : entries) add(e.name, e.mode, e.data, e.rdev_major, e.rdev_minor);
  add("TRAILER!!!", 0, "", 0, 0);
  out.append((512 - out.size() % 512) % 512, '\0');
  return out;
}

std::vector<std::string> QemuArgv(const Launch& l) {
  std::vector<std::string> argv = {
      l.qemu, "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
      // QEMU's own seccomp filter: no new programs, no privileges, no obsolete calls.
      "-sandbox",
      // The proxy's connector is spawned through a setsid() in the child, which QEMU's filter
      // counts as a privilege change (its "children" setting kills the exec that follows).
      // corral's own sandbox keeps every process of QEMU unprivileged whatever set*id it calls.
      std::string("on,obsolete=deny,resourcecontrol=deny,") +
          (l.proxy_port ? "elevateprivileges=allow,spawn=allow"
                        : "elevateprivileges=deny,spawn=deny"),
      "-M", "q35", "-m", std::to_string(l.memory_mib), "-smp", std::to_string(l.cpus)};
  if (l.host_network) {
    argv.insert(argv.end(), {"-netdev", "user,id=net,ipv6=off,net=10.0.2.0/24", "-device",
                             "virtio-net-pci,netdev=net,romfile="});
  } else if (l.proxy_port) {
    std::string port = std::to_string(l.proxy_port);
    argv.insert(argv.end(),
                {"-netdev",
                 "user,id=net,restrict=on,ipv6=off,net=10.0.2.0/24,guestfwd=tcp:10.0.2.100:" +
                     port + "-cmd:" + QemuOptionValue(l.connector) + " --connect 127.0.0.1 " +
                     port,
                 "-device", "virtio-net-pci,netdev=net,romfile="});
  } else {
    argv.insert(argv.end(), {"-nic", "none"});
  }
  if (l.kvm) {
    argv.insert(argv.end(), {"-accel", "kvm", "-cpu", "host"});
  } else {
    argv.insert(argv.end(), {"-accel", "tcg,tb-size=64", "-cpu", "max"});
  }
  argv.insert(argv.end(),
              {"-kernel", l.kernel, "-initrd", l.initrd, "-append",
               "console=ttyS0 quiet loglevel=3 panic=-1 oops=panic rdinit=/init",
               "-serial", "file:" + l.console,
               "-device", "virtio-serial-pci,id=ports",
               "-chardev", "socket,id=in,path=" + QemuOptionValue(l.stdin_socket),
               "-device", "virtserialport,bus=ports.0,chardev=in,name=corral.stdin",
               "-chardev", "socket,id=out,path=" + QemuOptionValue(l.stdout_socket),
               "-device", "virtserialport,bus=ports.0,chardev=out,name=corral.stdout",
               "-chardev", "socket,id=err,path=" + QemuOptionValue(l.stderr_socket),
               "-device", "virtserialport,bus=ports.0,chardev=err,name=corral.stderr",
               "-chardev", "socket,id=status,path=" + QemuOptionValue(l.status_socket),
               "-device", "virtserialport,bus=ports.0,chardev=status,name=corral.status"});
  int n = 0;
  for (const Share& s : l.shares) {
    std::string id = "fs" + std::to_string(n++);
    argv.insert(argv.end(),
                {"-fsdev", "local,id=" + id + ",path=" + QemuOptionValue(s.path) +
                               ",security_model=none,multidevs=remap" +
                               (s.writable ? "" : ",readonly=on"),
                 "-device", "virtio-9p-pci,fsdev=" + id + ",mount_tag=" + s.tag});
  }
  return argv;
}

namespace {

// Runs QEMU with `args` (stdin: `input`, output discarded); whether it exits 0 within `limit`.
bool QemuSucceeds(const std::string& qemu, const std::vector<std::string>& args,
                  const std::string& input, std::chrono::milliseconds limit) {
  int in[2];
  if (pipe2(in, O_CLOEXEC) != 0) return false;
  std::vector<char*> argv{const_cast<char*>(qemu.c_str())};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(in[0], 0);
    dup2(null, 1);
    dup2(null, 2);
    execv(qemu.c_str(), argv.data());
    _exit(127);
  }
  close(in[0]);
  if (pid < 0) {
    close(in[1]);
    return false;
  }
  if (!input.empty()) (void)sandbox::WriteAll(in[1], input, "the KVM probe");
  close(in[1]);
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) && WEXITSTATUS(status) == 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return false;
}

}  // namespace

bool KvmWorks(const std::string& qemu) {
  if (const char* accel = std::getenv("CORRAL_VM_ACCEL"); accel && *accel) {
    return std::string(accel) == "kvm";
  }
  static std::once_flag once;
  static bool works = false;
  std::call_once(once, [&] {
    // QEMU runs in corral's sandbox: the device must be open to the sandbox's user, not only
    // to the caller (as root the sandbox's user owns nothing).
    if (!sandbox::SandboxMayOpen("/dev/kvm")) return;
    const std::vector<std::string> base = {"-accel", "kvm", "-cpu", "host", "-M", "q35",
                                           "-nodefaults", "-no-user-config", "-display", "none"};
    // First, cheaply: can QEMU create the VM at all?
    auto create = base;
    create.insert(create.end(), {"-S", "-monitor", "stdio"});
    if (!QemuSucceeds(qemu, create, "quit\n", std::chrono::seconds(10))) return;
    // Then whether a guest really runs: some nested hosts create VMs whose vCPUs never get past
    // the switch to protected mode. The guest kernel, without a root, panics and powers off
    // within a second under KVM.
    auto guest = FindGuestDir();
    if (!guest) return;
    auto boot = base;
    boot.insert(boot.end(), {"-m", "128", "-no-reboot", "-kernel", *guest + "/vmlinuz", "-append",
                             "console=none quiet panic=-1"});
    works = QemuSucceeds(qemu, boot, "", std::chrono::seconds(5));
  });
  return works;
}

sandbox::HostCheck Probe() {
  sandbox::HostCheck c{"start tasks in a QEMU VM (target vm)", false, false, "", ""};
  std::string qemu = FindQemu();
  auto guest = FindGuestDir();
  auto init = LibexecPath("corral-vm-init");
  if (qemu.empty()) {
    c.detail = "no qemu-system-x86_64 in PATH";
    c.fix = "apt-get install qemu-system-x86";
  } else if (!guest) {
    c.detail = guest.error();
    c.fix = "run ./build.sh (it extracts Debian's linux-image into build/vm), or set CORRAL_VM_DIR";
  } else if (!init) {
    c.detail = init.error();
    c.fix = "build corral-vm-init (it is part of corral's build)";
  } else {
    c.ok = true;
    c.detail = qemu + ", guest kernel in " + *guest + ", ";
    if (KvmWorks(qemu)) {
      c.detail += "KVM";
    } else if (access("/dev/kvm", F_OK) == 0 && !sandbox::SandboxMayOpen("/dev/kvm")) {
      c.detail += "TCG (software emulation: /dev/kvm is closed to the sandbox's user)";
      c.fix = geteuid() == 0 ? "chmod 0666 /dev/kvm lets VMs use KVM (as root the sandbox runs "
                               "as an id that owns nothing)"
                             : "join /dev/kvm's group (often kvm) to let VMs use KVM";
    } else {
      c.detail += "TCG (software emulation: KVM cannot run a guest here)";
    }
  }
  return c;
}

std::string Unsupported(const sandbox::Spec& spec) {
  for (const sandbox::Bind& b : spec.binds) {
    struct stat st;
    // A writable link is shared as its target (see Run): what matters is what that is.
    int found = b.writable ? stat(b.path.c_str(), &st) : lstat(b.path.c_str(), &st);
    if (found != 0 || S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode)) continue;
    if (!S_ISREG(st.st_mode)) {
      return "filesystem: " + b.path + " is neither a folder nor a file; target \"vm\" cannot "
             "share it";
    }
    if (b.writable) {
      return "filesystem: " + b.path + " is a file granted read-write; target \"vm\" shares "
             "folders, and a copied file's changes could not come back";
    }
    if (!sandbox::SandboxMayOpen(b.path, R_OK)) {
      return "filesystem: " + b.path + " is a file the sandbox's user may not read";
    }
    if (static_cast<uint64_t>(st.st_size) > kMaxCopiedFile) {
      return "filesystem: " + b.path + " is a file of " + std::to_string(st.st_size) +
             " bytes; target \"vm\" copies a read-only file into the guest only up to " +
             std::to_string(kMaxCopiedFile >> 20) + " MiB";
    }
  }
  return "";
}

sandbox::Expected<sandbox::Result> Run(const sandbox::Spec& spec,
                                       const sandbox::RunOptions& options) {
  if (std::string why = Unsupported(spec); !why.empty()) return Fail(why);
  auto guest = FindGuestDir();
  if (!guest) return Fail(guest.error());
  auto init = LibexecPath("corral-vm-init");
  if (!init) return Fail(init.error());
  std::string qemu = FindQemu();
  if (qemu.empty()) {
    return Fail("target \"vm\" needs qemu-system-x86_64 in PATH (Debian: qemu-system-x86)");
  }

  // The files of this launch, in a folder only this user can read: spec.json holds the
  // command's environment (its secrets too).
  char tmpl[] = "/tmp/corral-vm-XXXXXX";
  if (!mkdtemp(tmpl)) return sandbox::ErrnoError("mkdtemp /tmp/corral-vm-XXXXXX");
  TempDir dir{tmpl};

  // The guest's view: each bound folder (and the workspace) shared at its path, parents first.
  std::vector<Share> shares;
  nlohmann::json symlinks = nlohmann::json::array();
  std::vector<std::string> copied;
  std::vector<sandbox::Bind> binds = spec.binds;
  binds.emplace_back(spec.workspace, !spec.workspace_read_only);
  std::stable_sort(binds.begin(), binds.end(),
                   [](const sandbox::Bind& a, const sandbox::Bind& b) { return a.path < b.path; });
  for (const sandbox::Bind& b : binds) {
    struct stat st;
    // As in the local sandbox: a read-only link is the same link inside; a writable one is its
    // target shown at the link's path, which is what QEMU's sandbox has there.
    if (!b.writable && lstat(b.path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
      std::error_code ec;
      fs::path target = fs::read_symlink(b.path, ec);
      if (!ec) symlinks.push_back({{"path", b.path}, {"target", target.string()}});
      continue;
    }
    // A granted file, not a folder: 9p shares folders, so a read-only file travels in the
    // initramfs and init shows it, read-only, at its path.
    if (!b.writable && lstat(b.path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      copied.push_back(b.path);
      continue;
    }
    shares.push_back({"s" + std::to_string(shares.size()), b.path, b.writable});
  }
  nlohmann::json share_list = nlohmann::json::array();
  for (const Share& s : shares) {
    share_list.push_back({{"tag", s.tag}, {"path", s.path}, {"writable", s.writable}});
  }
  nlohmann::json guest_spec = {
      {"argv", spec.argv},
      {"env", spec.env},
      {"cwd", spec.cwd.empty() ? spec.workspace : spec.cwd},
      {"uid", getuid()},
      {"gid", getgid()},
      {"hostname", spec.hostname},
      {"tmp_size", spec.limits.tmp_size},
      {"proxy_port", spec.proxy_port},
      {"host_network", spec.share_network},
      {"workspace", spec.workspace},
      {"workspace_read_only", spec.workspace_read_only},
      {"exec_allow", spec.exec_allow ? nlohmann::json(*spec.exec_allow) : nlohmann::json()},
      {"observe_exec", spec.observe_exec},
      {"shares", share_list},
      {"files", nlohmann::json::array()},
      {"symlinks", symlinks},
      {"modules", std::vector<std::string>(std::begin(kModules), std::end(kModules))}};
  const sandbox::Limits& lim = spec.limits;
  if (lim.open_files) guest_spec["open_files"] = *lim.open_files;
  if (lim.file_size) guest_spec["file_size"] = *lim.file_size;
  if (lim.pids) guest_spec["pids"] = *lim.pids;

  std::vector<CpioEntry> copies;
  for (size_t i = 0; i < copied.size(); ++i) {
    std::ifstream in(copied[i], std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad() || data.size() > kMaxCopiedFile) {
      return Fail("filesystem: " + copied[i] + ": cannot copy it into the guest (unreadable, or " +
                  "past " + std::to_string(kMaxCopiedFile >> 20) + " MiB)");
    }
    struct stat st;
    mode_t mode = stat(copied[i].c_str(), &st) == 0 ? (st.st_mode & 0555) : 0444;
    std::string name = "corral/files/" + std::to_string(i);
    copies.push_back({name, S_IFREG | mode, std::move(data)});
    guest_spec["files"].push_back({{"path", copied[i]}, {"source", "/" + name}});
  }

  // The policy's syscall rules hold in the guest too, as the local sandbox's filter, whose
  // denials answer EPERM themselves: the guest has no supervisor to tell.
  // With tools.allow or observe_exec, execs stop at init, which refuses the dynamic loader run as
  // a program and records what ran.
  auto bpf = sandbox::CompileBpf(spec.syscalls, /*notify=*/false,
                                 spec.exec_allow.has_value() || spec.observe_exec);
  if (!bpf) return std::unexpected(bpf.error());
  std::vector<CpioEntry> files = {
      {"init", S_IFREG | 0755, ReadFile(*init)},
      {"corral", S_IFDIR | 0755, ""},
      {"corral/spec.json", S_IFREG | 0600, guest_spec.dump()},
      {"corral/seccomp.bpf", S_IFREG | 0600, *bpf},
      {"corral/modules", S_IFDIR | 0755, ""},
      {"dev", S_IFDIR | 0755, ""},
      {"dev/console", S_IFCHR | 0600, "", 5, 1},
  };
  for (const char* m : kModules) {
    files.push_back({std::string("corral/modules/") + m, S_IFREG | 0644,
                     ReadFile(*guest + "/modules/" + m)});
  }
  if (!copies.empty()) files.push_back({"corral/files", S_IFDIR | 0755, ""});
  for (CpioEntry& c : copies) files.push_back(std::move(c));
  Launch launch;
  launch.qemu = qemu;
  launch.kvm = KvmWorks(qemu);
  launch.kernel = *guest + "/vmlinuz";
  launch.initrd = dir.path + "/initrd.cpio";
  launch.console = dir.path + "/console.log";
  launch.status_socket = dir.path + "/status.sock";
  launch.stdin_socket = dir.path + "/stdin.sock";
  launch.stdout_socket = dir.path + "/stdout.sock";
  launch.stderr_socket = dir.path + "/stderr.sock";
  uint64_t memory_mib = lim.memory ? (*lim.memory >> 20) : kDefaultGuestMib;
  launch.memory_mib = std::max<uint64_t>(memory_mib, 64) + kGuestKernelMib;
  // As many vCPUs as the host has (up to 8): the local sandbox does not limit CPUs either.
  launch.cpus = std::clamp(std::thread::hardware_concurrency(), 1u, 8u);
  launch.shares = shares;
  launch.proxy_port = spec.proxy_port;
  launch.host_network = spec.share_network;
  launch.connector = *init;
  if (launch.proxy_port && launch.connector.find(' ') != std::string::npos) {
    return Fail("network.egress: the path of corral-vm-init has a space (" + *init +
                "); QEMU's user network cannot start it");
  }
  int fd = open(launch.initrd.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return sandbox::ErrnoError("create " + launch.initrd);
  auto wrote = sandbox::WriteAll(fd, NewcArchive(files), "write " + launch.initrd);
  close(fd);
  if (!wrote) return std::unexpected(wrote.error());

  // QEMU runs in the local sandbox of the same Spec: it sees what the guest may see, plus its
  // own program and firmware, the kernel and this launch's folder.
  sandbox::Spec host = spec;
  host.argv = QemuArgv(launch);
  host.env = {"PATH=/usr/bin:/bin"};
  host.cwd = spec.workspace;
  host.exec_allow.reset();
  host.observe_exec = false;
  std::set<std::string> bound;
  for (const sandbox::Bind& b : host.binds) bound.insert(b.path);
  for (const std::string& path : {std::string("/usr"), std::string("/lib"),
                                  std::string("/lib64"), std::string("/bin"), *guest,
                                  init->substr(0, init->rfind('/'))}) {
    if (!bound.contains(path) && access(path.c_str(), F_OK) == 0) {
      host.binds.emplace_back(path, false);
    }
  }
  host.binds.emplace_back(dir.path, true);
  host.kvm = launch.kvm;
  // The guest's limits are the guest's. Its RAM bounds its memory; with limits.memory, QEMU's
  // own cgroup gets the guest's RAM and QEMU's overhead.
  if (lim.memory) host.limits.memory = (launch.memory_mib + kQemuOverheadMib) << 20;
  // cpu_time bounds the whole VM (QEMU's CPU: the guest's, its boot and the emulation). pids
  // bounds QEMU's processes too, with room for its threads: a guest that opens many proxy
  // connections starts a connector for each.
  if (lim.pids) host.limits.pids = *lim.pids + kQemuThreads;
  host.limits.file_size.reset();
  host.limits.open_files.reset();

  // A reader of the output that went away stops the VM: the command would have died of SIGPIPE.
  std::mutex mu;
  pid_t helper = 0;
  bool pipe_broke = false;
  sandbox::RunOptions run_options = options;
  run_options.on_start = [&](pid_t pid) {
    {
      std::lock_guard lock(mu);
      helper = pid;
      if (pipe_broke) kill(pid, SIGTERM);
    }
    if (options.on_start) options.on_start(pid);
  };
  StdioPump pump;
  if (auto r = pump.Listen(launch, options, [&] {
        std::lock_guard lock(mu);
        pipe_broke = true;
        if (helper > 0) kill(helper, SIGTERM);
      });
      !r) {
    return std::unexpected(r.error());
  }
  auto result = sandbox::Run(host, run_options);
  pump.Finish();
  if (!result) return result;
  sandbox::Result r = *result;
  r.notes.push_back(std::string("ran in a QEMU VM (") + (launch.kvm ? "KVM" : "TCG") + ")");
  // What the filter refused QEMU (io_uring, say) is QEMU's business, not the command's.
  for (const sandbox::Denial& d : r.denials) {
    r.notes.push_back("QEMU was denied " + d.syscall + " (" + std::to_string(d.count) + "x)");
  }
  r.denials.clear();
  r.last_denied.clear();
  if (r.timed_out || r.cpu_limit_hit || r.oom_killed) return r;
  // "execs {result}" (with observe_exec), then "exit N" or "signal N".
  std::string status = pump.status();
  if (status.starts_with("execs ")) {
    size_t end = status.find('\n');
    if (end == std::string::npos) end = status.size();
    if (auto seen = sandbox::ResultFromJson(status.substr(6, end - 6))) {
      r.execs = std::move(seen->execs);
      r.execs_dropped = seen->execs_dropped;
    } else {
      r.notes.push_back("the guest's record of its execs was unreadable");
    }
    status.erase(0, std::min(end + 1, status.size()));
  }
  int code = 0;
  if (std::sscanf(status.c_str(), "exit %d", &code) == 1) {
    r.exited = true;
    r.exit_code = code;
    r.signal = 0;
    return r;
  }
  if (std::sscanf(status.c_str(), "signal %d", &code) == 1) {
    r.exited = false;
    r.exit_code = 0;
    r.signal = code;
    return r;
  }
  if (pump.broken_pipe()) {  // corral stopped it: its output had nowhere to go
    r.exited = false;
    r.exit_code = 0;
    r.signal = SIGPIPE;
    return r;
  }
  if (r.stop_signal) {  // QEMU ends on SIGINT or SIGTERM, taking the command with it
    r.exited = false;
    r.exit_code = 0;
    r.signal = r.stop_signal;
    return r;
  }
  std::string console = Tail(ReadFile(launch.console), 15);
  return Fail("the VM stopped before the command ended (QEMU: " + r.Describe() + ")" +
              (console.empty() ? std::string() : "; its console's last lines:\n" + console));
}

}  // namespace corral::launcher::vm
