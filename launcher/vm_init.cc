// corral-vm-init: pid 1 of a VM target's guest (target = "vm").
//
// corral packs this static program into the guest's initramfs as /init, with /corral/spec.json
// (what to run, written by launcher/vm.cc) and the kernel modules 9p needs. It builds the agent's
// root from the host paths QEMU shares over virtio-9p (the policy's paths, read-only unless the
// policy grants them read-write, and the workspace), runs the command without any capability,
// reports how it ended on the virtio port "corral.status" and powers the VM off.
//
// Everything here runs inside the guest; errors go to the serial console, which corral shows
// when the guest stops without a status.
#include <dirent.h>
#include <grp.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "sandbox/fdio.h"
#include "sandbox/landlock.h"
#include "sandbox/observe.h"
#include "sandbox/seccomp.h"

namespace {

constexpr const char* kRoot = "/newroot";
// Where QEMU's user network forwards the guest's connections to corral's egress proxy.
constexpr const char* kProxyAddress = "10.0.2.100";
// QEMU's user network: its gateway (the host, its loopback included) and DNS forwarder.
constexpr const char* kGateway = "10.0.2.2";
constexpr const char* kDns = "10.0.2.3";

[[noreturn]] void PowerOff() {
  sync();
  reboot(RB_POWER_OFF);
  _exit(1);
}

// A failure before the command ran: said on the console; no status, so corral reports the
// console's last lines.
[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "corral-vm-init: %s: %s\n", what.c_str(), std::strerror(errno));
  PowerOff();
}

std::string ReadFile(const char* path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void MkdirAll(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      std::string part = path.substr(0, i);
      if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) Die("mkdir " + part);
    }
  }
}

void Mount(const char* source, const std::string& target, const char* type, unsigned long flags,
           const std::string& data) {
  if (mount(source, target.c_str(), type, flags, data.empty() ? nullptr : data.c_str()) != 0) {
    Die(std::string("mount ") + type + " on " + target);
  }
}

void LoadModules(const std::vector<std::string>& modules) {
  for (const std::string& name : modules) {
    std::string path = "/corral/modules/" + name;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) Die("open " + path);
    if (syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST) Die("load " + path);
    close(fd);
  }
}

// The /dev/vportNpM whose virtio port is called `name`.
std::string FindPort(const std::string& name) {
  DIR* dir = opendir("/sys/class/virtio-ports");
  if (!dir) Die("open /sys/class/virtio-ports");
  std::string found;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(std::string("/sys/class/virtio-ports/") + e->d_name + "/name");
    std::string port;
    std::getline(in, port);
    if (port == name) found = std::string("/dev/") + e->d_name;
  }
  closedir(dir);
  if (found.empty()) {
    errno = ENOENT;
    Die("virtio port " + name);
  }
  return found;
}

// A minimal /dev, as the local sandbox has: no disks, no consoles, no virtio ports.
void MakeDev(const std::string& dev, uint64_t shm_size) {
  Mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=1m");
  struct Node {
    const char* name;
    unsigned major, minor;
  };
  for (Node n : {Node{"null", 1, 3}, Node{"zero", 1, 5}, Node{"full", 1, 7}, Node{"random", 1, 8},
                 Node{"urandom", 1, 9}, Node{"tty", 5, 0}}) {
    std::string path = dev + "/" + n.name;
    if (mknod(path.c_str(), S_IFCHR | 0666, makedev(n.major, n.minor)) != 0) Die("mknod " + path);
    chmod(path.c_str(), 0666);
  }
  MkdirAll(dev + "/pts");
  Mount("devpts", dev + "/pts", "devpts", MS_NOSUID | MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620");
  MkdirAll(dev + "/shm");
  Mount("tmpfs", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV,
        "mode=1777,size=" + std::to_string(shm_size));
  for (auto [name, target] : {std::pair{"ptmx", "pts/ptmx"}, std::pair{"fd", "/proc/self/fd"},
                              std::pair{"stdin", "/proc/self/fd/0"},
                              std::pair{"stdout", "/proc/self/fd/1"},
                              std::pair{"stderr", "/proc/self/fd/2"}}) {
    if (symlink(target, (dev + "/" + name).c_str()) != 0) Die(std::string("symlink /dev/") + name);
  }
}

// The agent's root under kRoot, from spec.json. What the policy protects or hides inside a
// share, QEMU's own sandbox already shows read-only or empty: the guest needs no more mounts.
void BuildRoot(const nlohmann::json& spec) {
  Mount("tmpfs", kRoot, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m");
  // A private /tmp first: a workspace under /tmp is mounted over it.
  uint64_t tmp_size = spec.at("tmp_size").get<uint64_t>();
  MkdirAll(std::string(kRoot) + "/tmp");
  Mount("tmpfs", std::string(kRoot) + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
        "mode=1777,size=" + std::to_string(tmp_size));
  // Shares come parents first (corral sorts them), so a child mounts over its parent's folder.
  for (const auto& share : spec.at("shares")) {
    std::string path = kRoot + share.at("path").get<std::string>();
    bool writable = share.at("writable").get<bool>();
    MkdirAll(path);
    std::string options = "trans=virtio,version=9p2000.L,msize=262144,access=client,";
    options += writable ? "cache=mmap" : "cache=loose";
    Mount(share.at("tag").get<std::string>().c_str(), path, "9p",
          MS_NOSUID | MS_NODEV | (writable ? 0 : MS_RDONLY), options);
  }
  for (const auto& link : spec.at("symlinks")) {
    std::string path = kRoot + link.at("path").get<std::string>();
    MkdirAll(path.substr(0, path.rfind('/')));
    // A share may show it already (/etc/mtab in /etc): the same link, from the host.
    struct stat st;
    if (lstat(path.c_str(), &st) == 0) continue;
    if (symlink(link.at("target").get<std::string>().c_str(), path.c_str()) != 0 &&
        errno != EEXIST && errno != EROFS) {
      Die("symlink " + path);
    }
  }
  // Granted files (not folders) came in the initramfs: each shown read-only at its path, unless a
  // share shows it already.
  for (const auto& file : spec.at("files")) {
    std::string path = kRoot + file.at("path").get<std::string>();
    struct stat st;
    if (lstat(path.c_str(), &st) == 0) continue;
    MkdirAll(path.substr(0, path.rfind('/')));
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0) Die("create " + path);
    close(fd);
    Mount(file.at("source").get<std::string>().c_str(), path, nullptr, MS_BIND, "");
    Mount(nullptr, path, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "");
  }
  MkdirAll(std::string(kRoot) + "/dev");
  MakeDev(std::string(kRoot) + "/dev", tmp_size);
  MkdirAll(std::string(kRoot) + "/proc");
  Mount("proc", std::string(kRoot) + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "");
  // The guest kernel's knobs stay read-only, also to a command whose uid is 0 (writing
  // /proc/sys checks the uid, not a capability: kernel.modprobe would run a program as root).
  for (const char* sub : {"sys", "sysrq-trigger", "irq", "bus"}) {
    std::string path = std::string(kRoot) + "/proc/" + sub;
    if (access(path.c_str(), F_OK) != 0) continue;
    Mount(path.c_str(), path, nullptr, MS_BIND | MS_REC, "");
    Mount(nullptr, path, nullptr,
          MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "");
  }
}

void SetFlagsUp(int fd, const char* name) {
  ifreq req{};
  std::strncpy(req.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(fd, SIOCGIFFLAGS, &req) != 0) Die(std::string("flags of ") + name);
  req.ifr_flags |= IFF_UP;
  if (ioctl(fd, SIOCSIFFLAGS, &req) != 0) Die(std::string("bring up ") + name);
}

void SetAddress(int fd, const char* name, unsigned long request, const char* address) {
  ifreq req{};
  std::strncpy(req.ifr_name, name, IFNAMSIZ - 1);
  auto* in = reinterpret_cast<sockaddr_in*>(&req.ifr_addr);
  in->sin_family = AF_INET;
  inet_pton(AF_INET, address, &in->sin_addr);
  if (ioctl(fd, request, &req) != 0) Die(std::string("address of ") + name);
}

// Loopback, and with a proxy the virtio NIC on QEMU's restricted user network, where the only
// reachable address is the proxy's forward (kProxyAddress). With the host's network the same NIC
// on QEMU's unrestricted user network, with a default route through its gateway.
void NetworkUp(bool with_nic, bool host_network) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  SetFlagsUp(fd, "lo");
  if (with_nic) {
    std::string nic;
    DIR* dir = opendir("/sys/class/net");
    while (dirent* e = dir ? readdir(dir) : nullptr) {
      if (e->d_name[0] != '.' && std::strcmp(e->d_name, "lo") != 0) nic = e->d_name;
    }
    if (dir) closedir(dir);
    if (nic.empty()) {
      errno = ENODEV;
      Die("the virtio network device");
    }
    SetAddress(fd, nic.c_str(), SIOCSIFADDR, "10.0.2.15");
    SetAddress(fd, nic.c_str(), SIOCSIFNETMASK, "255.255.255.0");
    SetFlagsUp(fd, nic.c_str());
    if (host_network) {
      rtentry route{};
      auto* gateway = reinterpret_cast<sockaddr_in*>(&route.rt_gateway);
      gateway->sin_family = AF_INET;
      inet_pton(AF_INET, kGateway, &gateway->sin_addr);
      reinterpret_cast<sockaddr_in*>(&route.rt_dst)->sin_family = AF_INET;
      reinterpret_cast<sockaddr_in*>(&route.rt_genmask)->sin_family = AF_INET;
      route.rt_flags = RTF_UP | RTF_GATEWAY;
      route.rt_dev = nic.data();
      if (ioctl(fd, SIOCADDRT, &route) != 0) Die("the default route");
    }
  }
  close(fd);
}

// With the host's network, names resolve through QEMU's DNS forwarder: the host's resolv.conf may
// name a resolver on its own loopback, which the guest's loopback is not.
void UseQemuDns() {
  const std::string guest = std::string(kRoot) + "/etc/resolv.conf";
  const std::string ours = "/corral/resolv.conf";
  int fd = open(ours.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Die("create " + ours);
  std::string text = std::string("nameserver ") + kDns + "\n";
  if (write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) Die("write " + ours);
  close(fd);
  struct stat st;
  std::string target = guest;
  // A link (systemd-resolved's stub-resolv.conf): what it names, in the agent's root.
  if (lstat(guest.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    char buf[PATH_MAX];
    ssize_t n = readlink(guest.c_str(), buf, sizeof(buf) - 1);
    std::string link = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
    target = link.starts_with('/') ? kRoot + link : std::string(kRoot) + "/etc/" + link;
    if (lstat(target.c_str(), &st) != 0) {  // not shared: the root's tmpfs takes it
      MkdirAll(target.substr(0, target.rfind('/')));
      int made = open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (made >= 0) close(made);
    }
  }
  if (lstat(target.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    Mount(ours.c_str(), target, nullptr, MS_BIND, "");
    Mount(nullptr, target, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "");
  } else if (lstat((std::string(kRoot) + "/etc").c_str(), &st) != 0) {
    MkdirAll(std::string(kRoot) + "/etc");  // /etc is not shared: the root's tmpfs takes it
    int out = open(guest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0 || write(out, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
      Die("write " + guest);
    }
    close(out);
  } else {
    std::fprintf(stderr, "corral-vm-init: %s is not a file; names resolve as it says\n",
                 guest.c_str());
  }
}

// Copies between two connections until both directions ended: `a_in`/`a_out` (one socket, or a
// pair of descriptors) and the socket `b`. An end of file is passed on as a half close.
void Pump(int a_in, int a_out, int b) {
  bool a_open = true, b_open = true;
  char buf[65536];
  while (a_open || b_open) {
    pollfd fds[2] = {{a_open ? a_in : -1, POLLIN, 0}, {b_open ? b : -1, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < 2; ++i) {
      if (!fds[i].revents) continue;
      int from = i == 0 ? a_in : b, to = i == 0 ? b : a_out;
      ssize_t n = read(from, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        (i == 0 ? a_open : b_open) = false;
        shutdown(to, SHUT_WR);
        continue;
      }
      for (ssize_t done = 0; done < n;) {
        ssize_t w = write(to, buf + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        done += w;
      }
    }
  }
}

int ConnectTcp(const char* address, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(static_cast<uint16_t>(port));
  if (fd < 0 || inet_pton(AF_INET, address, &in.sin_addr) != 1 ||
      connect(fd, reinterpret_cast<sockaddr*>(&in), sizeof(in)) != 0) {
    return -1;
  }
  return fd;
}

// In the guest: 127.0.0.1:port forwards to the proxy, so the command's HTTP_PROXY is the same
// URL as in the local sandbox. One process per connection; init's final kill ends them.
void StartProxyForward(int port) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(static_cast<uint16_t>(port));
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&in), sizeof(in)) != 0 ||
      listen(listener, 64) != 0) {
    Die("listen on 127.0.0.1:" + std::to_string(port));
  }
  pid_t pid = fork();
  if (pid < 0) Die("fork");
  if (pid > 0) {
    close(listener);
    return;
  }
  signal(SIGCHLD, SIG_IGN);  // its connections' processes reap themselves
  for (;;) {
    int conn = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    if (fork() == 0) {
      int up = ConnectTcp(kProxyAddress, port);
      if (up >= 0) Pump(conn, conn, up);
      _exit(0);
    }
    close(conn);
  }
}

namespace sb = corral::sandbox;

// The command's file rules for Landlock, as the local sandbox has them: the workspace and the
// shares (which are the policy's binds), and tools.allow.
sb::Spec LandlockRules(const nlohmann::json& spec) {
  sb::Spec s;
  s.workspace = spec.at("workspace").get<std::string>();
  s.workspace_read_only = spec.at("workspace_read_only").get<bool>();
  for (const auto& share : spec.at("shares")) {
    std::string path = share.at("path").get<std::string>();
    if (path != s.workspace) s.binds.emplace_back(path, share.at("writable").get<bool>());
  }
  for (const auto& file : spec.at("files")) s.binds.emplace_back(file.at("path"), false);
  if (!spec.at("exec_allow").is_null()) {
    s.exec_allow = spec.at("exec_allow").get<std::vector<std::string>>();
  }
  return s;
}

// What init saw the command's processes execute (observe_exec), for the status port.
struct Observed {
  // What the records may hold: they travel as one line of JSON, which escaping can make up to six
  // times larger, and corral takes at most 128 MiB of it (vm.cc's kMaxStatus).
  static constexpr size_t kMaxBytes = 16 << 20;
  std::mutex mu;
  std::vector<sb::ExecRecord> execs;
  size_t bytes = 0;
  uint64_t dropped = 0;
  bool closed = false;  // init took the records: later ones are not kept
  std::map<int, size_t> last;  // pid -> its latest record
};

// The first number of a /proc/PID/status field ("PPid:").
int StatusNumber(int pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field)) return std::atoi(line.c_str() + std::strlen(field));
  }
  return 0;
}

// With tools.allow or observe_exec, every exec of the command's processes stops here, as at the
// local sandbox's supervisor: one that starts a dynamic loader as a program (`ld.so PROGRAM`
// runs any file it can read) is refused with EACCES; the rest go on, recorded into `observed`
// when it is set. Ends when no process is left to ask.
void SuperviseExecs(int listener, bool exec_allow,
                    const std::vector<sb::observe::FileId>& refuse, Observed* observed,
                    std::chrono::steady_clock::time_point start) {
  for (;;) {
    pollfd p{listener, POLLIN, 0};
    if (poll(&p, 1, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (!(p.revents & POLLIN)) return;  // POLLHUP: the filter has no process left
    auto call = sb::seccomp::Receive(listener);
    if (!call) continue;  // the caller died meanwhile
    if (!call->exec) {
      sb::seccomp::Deny(listener, call->id);
      continue;
    }
    if (int why = exec_allow ? sb::observe::RefuseExec(*call, refuse) : 0; why != 0) {
      sb::seccomp::Deny(listener, call->id, why);
      continue;
    }
    if (!observed) {
      sb::seccomp::Continue(listener, call->id);
      continue;
    }
    sb::ExecRecord record = sb::observe::ReadExec(*call, start);
    // No pid namespace in the guest: its pids are the guest's own. Its root is a chroot, which
    // init sees from outside.
    record.pid = call->pid;
    record.ppid = StatusNumber(call->pid, "PPid:");
    if (record.cwd.starts_with(std::string(kRoot) + "/")) record.cwd.erase(0, std::strlen(kRoot));
    bool valid = sb::seccomp::StillWaiting(listener, call->id);
    sb::seccomp::Continue(listener, call->id);
    if (!valid) continue;
    size_t bytes = 256 + record.path.size() + record.cwd.size();
    for (const std::string& a : record.argv) bytes += a.size() + 4;
    std::lock_guard lock(observed->mu);
    if (observed->closed) continue;
    if (observed->execs.size() < sb::Result::kMaxExecs &&
        observed->bytes + bytes <= Observed::kMaxBytes) {
      observed->bytes += bytes;
      // A process that execs again: its earlier exec failed (a PATH search) or was replaced.
      if (auto it = observed->last.find(record.pid); it != observed->last.end()) {
        observed->execs[it->second].end = "exec";
      }
      observed->last[record.pid] = observed->execs.size();
      observed->execs.push_back(std::move(record));
    } else {
      ++observed->dropped;
    }
  }
}

void SetLimit(int resource, const nlohmann::json& spec, const char* key) {
  if (!spec.contains(key)) return;
  rlim_t v = spec.at(key).get<uint64_t>();
  rlimit limit{v, v};
  if (setrlimit(resource, &limit) != 0) Die(std::string("setrlimit ") + key);
}

// In the child: enter the agent's root, become the invoking user with no capability at all,
// and run the command. With tools.allow, the seccomp filter's listener goes to init over
// `execs` first. Returns only by _exit.
[[noreturn]] void StartCommand(const nlohmann::json& spec, const std::string& bpf, int in, int out,
                               int err, int execs) {
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(125);
  if (chdir(kRoot) != 0 || chroot(".") != 0) _exit(125);
  std::string cwd = spec.at("cwd").get<std::string>();
  if (chdir(cwd.c_str()) != 0) {
    std::fprintf(stderr, "corral-vm-init: chdir %s: %s\n", cwd.c_str(), std::strerror(errno));
    _exit(125);
  }
  SetLimit(RLIMIT_NOFILE, spec, "open_files");
  SetLimit(RLIMIT_FSIZE, spec, "file_size");
  SetLimit(RLIMIT_NPROC, spec, "pids");
  gid_t gid = spec.at("gid").get<gid_t>();
  uid_t uid = spec.at("uid").get<uid_t>();
  // Keep no capability across the change of user (and none at all when the user is root).
  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  if (setgroups(0, nullptr) != 0 || setresgid(gid, gid, gid) != 0 ||
      setresuid(uid, uid, uid) != 0) {
    _exit(125);
  }
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capset, &header, data) != 0) _exit(125);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(125);
  // Landlock, a second fence on the file rules in the guest, and the only one for tools.allow.
  sb::Spec rules = LandlockRules(spec);
  if (int abi = sb::landlock::AbiVersion(); abi > 0) {
    if (auto r = sb::landlock::Restrict(rules, abi); !r) {
      std::fprintf(stderr, "corral-vm-init: %s\n", r.error().message.c_str());
      _exit(125);
    }
  } else if (rules.exec_allow) {
    std::fprintf(stderr, "corral-vm-init: tools.allow needs Landlock, which the guest kernel lacks\n");
    _exit(125);
  }
  // The policy's seccomp filter, last: what runs from here on is the command.
  sock_fprog prog{static_cast<unsigned short>(bpf.size() / sizeof(sock_filter)),
                  reinterpret_cast<sock_filter*>(const_cast<char*>(bpf.data()))};
  if (bpf.empty() || bpf.size() % sizeof(sock_filter) != 0) _exit(125);
  if (execs >= 0) {
    int listener = static_cast<int>(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                                            SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog));
    if (listener < 0 || !sb::SendFd(execs, listener)) {
      std::fprintf(stderr, "corral-vm-init: seccomp filter: %s\n", std::strerror(errno));
      _exit(125);
    }
    close(listener);
    close(execs);
  } else if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) {
    std::fprintf(stderr, "corral-vm-init: seccomp filter: %s\n", std::strerror(errno));
    _exit(125);
  }
  std::vector<std::string> argv = spec.at("argv").get<std::vector<std::string>>();
  std::vector<std::string> env = spec.at("env").get<std::vector<std::string>>();
  std::vector<char*> cargv, cenv;
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (std::string& e : env) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  for (const std::string& e : env) {  // execvpe searches the PATH of this process's environment
    if (e.starts_with("PATH=")) setenv("PATH", e.c_str() + 5, 1);
  }
  execvpe(cargv[0], cargv.data(), cenv.data());
  int saved = errno;
  std::fprintf(stderr, "corral: %s: %s\n", cargv[0], std::strerror(saved));
  _exit(saved == ENOENT ? 127 : 126);  // as a shell says it
}

int Main(int argc, char** argv) {
  // On the host, started by QEMU's user network for each guest connection to the proxy's
  // forward, with that connection on stdin and stdout: carries it to the egress proxy.
  if (argc == 4 && std::strcmp(argv[1], "--connect") == 0) {
    int up = ConnectTcp(argv[2], std::atoi(argv[3]));
    if (up < 0) return 1;
    Pump(0, 1, up);
    return 0;
  }
  if (getpid() != 1) {
    std::fprintf(stderr, "corral-vm-init: runs only as a VM guest's init\n");
    return 2;
  }
  mkdir("/dev", 0755);
  mkdir("/proc", 0755);
  mkdir("/sys", 0755);
  if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, nullptr) != 0 && errno != EBUSY) {
    Die("mount /dev");
  }
  int console = open("/dev/console", O_RDWR);
  if (console >= 0) {
    dup2(console, 0);
    dup2(console, 1);
    dup2(console, 2);
    if (console > 2) close(console);
  }
  Mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "");
  Mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "");

  // Read whole and closed at once: nothing of init's stays open for the command.
  nlohmann::json spec = nlohmann::json::parse(ReadFile("/corral/spec.json"), nullptr, false);
  if (spec.is_discarded()) {
    errno = EINVAL;
    Die("/corral/spec.json");
  }
  try {
    LoadModules(spec.at("modules").get<std::vector<std::string>>());
    std::string hostname = spec.at("hostname").get<std::string>();
    sethostname(hostname.data(), hostname.size());
    int proxy_port = spec.value("proxy_port", 0);
    bool host_network = spec.value("host_network", false);
    NetworkUp(proxy_port != 0 || host_network, host_network);
    if (proxy_port != 0) StartProxyForward(proxy_port);
    mkdir(kRoot, 0755);
    BuildRoot(spec);
    if (host_network) UseQemuDns();
  } catch (const nlohmann::json::exception& e) {
    std::fprintf(stderr, "corral-vm-init: /corral/spec.json: %s\n", e.what());
    PowerOff();
  }
  int in = open(FindPort("corral.stdin").c_str(), O_RDONLY | O_CLOEXEC);
  int out = open(FindPort("corral.stdout").c_str(), O_WRONLY | O_CLOEXEC);
  int err = open(FindPort("corral.stderr").c_str(), O_WRONLY | O_CLOEXEC);
  int status_port = open(FindPort("corral.status").c_str(), O_WRONLY | O_CLOEXEC);
  if (in < 0 || out < 0 || err < 0 || status_port < 0) Die("open the virtio ports");

  std::string bpf = ReadFile("/corral/seccomp.bpf");
  // tools.allow: the loaders the command may not start as programs, found in its root, and a
  // socket for the filter's listener.
  int execs[2] = {-1, -1};
  std::vector<sb::observe::FileId> refuse;
  bool observe = spec.at("observe_exec").get<bool>();
  if (observe && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, execs) != 0) {
    Die("socketpair");
  }
  if (!spec.at("exec_allow").is_null()) {
    int root = open(kRoot, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) Die(kRoot);
    refuse = sb::observe::LoadersToRefuse(spec.at("exec_allow").get<std::vector<std::string>>(),
                                          root);
    close(root);
    if (execs[0] < 0 && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, execs) != 0) {
      Die("socketpair");
    }
  }
  Observed observed;
  auto start = std::chrono::steady_clock::now();
  pid_t child = fork();
  if (child < 0) Die("fork");
  if (child == 0) StartCommand(spec, bpf, in, out, err, execs[1]);
  if (execs[0] >= 0) {
    close(execs[1]);
    int listener = sb::ReceiveFd(execs[0]);  // none when the child failed before its filter
    close(execs[0]);
    if (listener >= 0) {
      std::thread(SuperviseExecs, listener, !spec.at("exec_allow").is_null(), std::move(refuse),
                  observe ? &observed : nullptr, start)
          .detach();
    }
  }
  // Reap everything (orphans come to pid 1) until the command itself ends.
  int status = 0;
  for (;;) {
    int s = 0;
    pid_t pid = wait(&s);
    if (pid == child) {
      status = s;
      break;
    }
    if (pid < 0 && errno != EINTR) Die("wait");
  }
  // Nothing the command started outlives it.
  kill(-1, SIGKILL);
  while (wait(nullptr) > 0 || errno == EINTR) {
  }
  std::string line = WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                       : "signal " + std::to_string(WTERMSIG(status));
  line += "\n";
  if (observe) {  // before the status: what the command's processes executed, as one line
    sb::Result seen;
    {
      std::lock_guard lock(observed.mu);
      observed.closed = true;
      seen.execs = std::move(observed.execs);
      seen.execs_dropped = observed.dropped;
    }
    line = "execs " + sb::ToJson(seen) + "\n" + line;
  }
  close(in);
  close(out);
  close(err);
  // The workspace's writes reach the host before the status does.
  sync();
  // A virtio port takes at most 32 KiB a write: WriteAll goes on.
  if (!sb::WriteAll(status_port, line, "write the status")) Die("write the status");
  fsync(status_port);
  close(status_port);
  PowerOff();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "corral-vm-init: %s\n", e.what());
    if (getpid() == 1) PowerOff();
    return 1;
  }
}
