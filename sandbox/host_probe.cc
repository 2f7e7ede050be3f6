#include "sandbox/host_probe.h"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "sandbox/cgroup.h"
#include "sandbox/fdio.h"
#include "sandbox/landlock.h"
#include "sandbox/missing_defs.h"

namespace corral::sandbox {
namespace {

namespace k = kernel;

// Runs `fn` in a child process; returns 0 or the errno the child reported.
int InChild(const std::function<int()>& fn) {
  pid_t pid = fork();
  if (pid < 0) return errno;
  if (pid == 0) _exit(fn());
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : EINTR;
}

std::string ReadTrim(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

std::string Errno(int err) { return std::strerror(err); }

// The child writes its own maps: itself as root inside.
int BecomeRootInside(uid_t uid, gid_t gid) {
  auto w = [](const std::string& path, const std::string& text) {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    close(fd);
    return ok;
  };
  if (!w("/proc/self/setgroups", "deny") ||
      !w("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1\n") ||
      !w("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1\n")) {
    return errno ? errno : EPERM;
  }
  return 0;
}

HostCheck UserNamespaces() {
  HostCheck c{"user namespaces", false, true, "", ""};
  int err = InChild([] { return unshare(CLONE_NEWUSER) == 0 ? 0 : errno; });
  c.ok = err == 0;
  std::string max = ReadTrim("/proc/sys/user/max_user_namespaces");
  c.detail = c.ok ? "a process of yours can create one" : "unshare(CLONE_NEWUSER): " + Errno(err);
  if (!max.empty()) c.detail += "; user.max_user_namespaces = " + max;
  std::string debian = ReadTrim("/proc/sys/kernel/unprivileged_userns_clone");
  std::string apparmor = ReadTrim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
  if (!debian.empty()) c.detail += "; kernel.unprivileged_userns_clone = " + debian;
  if (!apparmor.empty()) c.detail += "; kernel.apparmor_restrict_unprivileged_userns = " + apparmor;
  if (!c.ok) {
    if (debian == "0") {
      c.fix = "sysctl -w kernel.unprivileged_userns_clone=1";
    } else if (apparmor == "1") {
      c.fix =
          "allow corral in AppArmor (a profile with 'userns,') or sysctl -w "
          "kernel.apparmor_restrict_unprivileged_userns=0";
    } else if (max == "0") {
      c.fix = "sysctl -w user.max_user_namespaces=15000";
    } else {
      c.fix =
          "in a container, allow unshare/clone (seccomp profile) and CAP_SYS_ADMIN-free "
          "user namespaces, or run corral on the host";
    }
  }
  return c;
}

HostCheck OtherNamespaces() {
  HostCheck c{"mount, pid, network, ipc, uts and cgroup namespaces", false, true, "", ""};
  int err = InChild([] {
    return unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
                   CLONE_NEWUTS | CLONE_NEWCGROUP) == 0
               ? 0
               : errno;
  });
  c.ok = err == 0;
  c.detail = c.ok ? "all of them, inside a new user namespace" : "unshare: " + Errno(err);
  if (!c.ok) c.fix = "a kernel built with CONFIG_*_NS; in a container, allow these namespaces";
  return c;
}

HostCheck Seccomp() {
  HostCheck c{"seccomp with user notification", false, true, "", ""};
  uint32_t action = SECCOMP_RET_USER_NOTIF;
  bool filter = prctl(PR_GET_SECCOMP) >= 0;
  bool notify = syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0;
  c.ok = filter && notify;
  c.detail = !filter  ? "seccomp is not available"
             : notify ? "filters, and notifications to the supervisor (denials are counted, "
                        "programs observed)"
                      : "filters, but no user notification (kernel before 5.0)";
  if (!c.ok) c.fix = "Linux 5.5 or newer with CONFIG_SECCOMP_FILTER";
  return c;
}

HostCheck Landlock() {
  HostCheck c{"Landlock", false, false, "", ""};
  int abi = landlock::AbiVersion();
  c.ok = abi > 0;
  c.detail = c.ok ? "ABI " + std::to_string(abi) +
                        (abi >= 6 ? " (files, network, signals and abstract sockets)" : "")
                  : "not enabled";
  if (!c.ok) {
    c.fix =
        "boot with landlock in the lsm= list (Linux 5.13+); without it corral enforces file "
        "rules with mounts only and refuses tools.allow";
  }
  return c;
}

HostCheck Cgroups() {
  HostCheck c{"cgroups (limits.memory, pids, cpu_time)", false, false, "", ""};
  cgroup::Availability a = cgroup::Probe();
  auto one = [](const std::string& where, bool v2, const char* name) {
    return std::string(name) + ": " +
           (where.empty() ? "unavailable" : (v2 ? "v2 " : "v1 ") + where);
  };
  c.ok = !a.memory.empty();
  c.detail = one(a.memory, a.memory_v2, "memory") + "; " + one(a.pids, a.pids_v2, "pids") + "; " +
             one(a.cpu, a.cpu_v2, "cpu");
  if (!c.ok) {
    c.fix =
        "delegate a cgroup v2 subtree with the memory controller to your user (systemd: "
        "Delegate=yes, or run under 'systemd-run --user --scope'); policies without "
        "limits.memory run without it";
  }
  return c;
}

HostCheck OverlayInUserNamespace() {
  HostCheck c{"overlayfs in a user namespace (overlay workspaces)", false, false, "", ""};
  char tmpl[] = "/tmp/corral-probe-XXXXXX";
  if (!mkdtemp(tmpl)) return c;
  std::string dir = tmpl;
  for (const char* sub : {"/lower", "/upper", "/work", "/merged"}) mkdir((dir + sub).c_str(), 0700);
  uid_t uid = getuid();
  gid_t gid = getgid();
  int err = InChild([&] {
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return errno;
    if (int e = BecomeRootInside(uid, gid); e != 0) return e;
    std::string options =
        "lowerdir=" + dir + "/lower,upperdir=" + dir + "/upper,workdir=" + dir + "/work,userxattr";
    return mount("overlay", (dir + "/merged").c_str(), "overlay", 0, options.c_str()) == 0 ? 0
                                                                                           : errno;
  });
  for (const char* sub : {"/work/work", "/work", "/lower", "/upper", "/merged"}) {
    rmdir((dir + sub).c_str());
  }
  rmdir(dir.c_str());
  c.ok = err == 0;
  c.detail = c.ok ? "works (Linux 5.11+)" : "mount overlay: " + Errno(err);
  if (!c.ok) c.fix = "Linux 5.11 or newer; only [run] workspaces = \"overlay\" needs it";
  return c;
}

HostCheck IdmappedMounts() {
  HostCheck c{"id-mapped mounts", false, geteuid() == 0, "", ""};
  char tmpl[] = "/tmp/corral-probe-XXXXXX";
  if (!mkdtemp(tmpl)) return c;
  std::string dir = tmpl;
  int err = InChild([&] {
    // A user namespace to map through: a child that waits while we use its namespace.
    int pipefd[2], ready[2];
    if (pipe(pipefd) != 0 || pipe(ready) != 0) return errno;
    pid_t holder = fork();
    if (holder == 0) {
      if (unshare(CLONE_NEWUSER) != 0) _exit(1);
      (void)!write(ready[1], "r", 1);
      char b;
      (void)!read(pipefd[0], &b, 1);
      _exit(0);
    }
    char b;
    (void)!read(ready[0], &b, 1);
    std::string maps = "/proc/" + std::to_string(holder);
    bool ok = true;
    for (const char* map : {"/uid_map", "/gid_map"}) {
      int fdw = open((maps + map).c_str(), O_WRONLY);
      ok = ok && fdw >= 0 && write(fdw, "0 0 1\n", 6) == 6;
      if (fdw >= 0) close(fdw);
    }
    int userns = open((maps + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC);
    int result = EPERM;
    int tree = static_cast<int>(
        syscall(__NR_open_tree, AT_FDCWD, dir.c_str(), k::kOpenTreeClone | O_CLOEXEC));
    if (ok && userns >= 0 && tree >= 0) {
      k::MountAttr attr{};
      attr.attr_set = k::kMountAttrIdmap;
      attr.userns_fd = static_cast<__u64>(userns);
      result = syscall(__NR_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof(attr)) == 0
                   ? 0
                   : errno;
    } else if (tree < 0) {
      result = errno;
    }
    (void)!write(pipefd[1], "x", 1);
    waitpid(holder, nullptr, 0);
    return result;
  });
  rmdir(dir.c_str());
  c.ok = err == 0;
  if (geteuid() != 0) {
    c.detail = c.ok ? "works"
                    : "not for an unprivileged user (" + Errno(err) +
                          "); corral uses "
                          "them only when it runs as root";
    c.ok = true;  // nothing corral needs from an unprivileged user
  } else {
    c.detail =
        c.ok ? "works on /tmp's filesystem" : "mount_setattr(MOUNT_ATTR_IDMAP): " + Errno(err);
    if (!c.ok) {
      c.fix =
          "as root, corral id-maps the workspace: keep worktrees on a filesystem that "
          "supports id-mapped mounts (ext4, xfs, btrfs, tmpfs on Linux 5.12+)";
    }
  }
  return c;
}

}  // namespace

std::vector<HostCheck> ProbeHost() {
  return {UserNamespaces(), OtherNamespaces(),       Seccomp(), Landlock(), Cgroups(),
          IdmappedMounts(), OverlayInUserNamespace()};
}

std::string ToJson(const std::vector<HostCheck>& checks) {
  nlohmann::json out = nlohmann::json::array();
  for (const HostCheck& c : checks) {
    out.push_back({{"name", c.name},
                   {"ok", c.ok},
                   {"essential", c.essential},
                   {"detail", c.detail},
                   {"fix", c.fix}});
  }
  return out.dump();
}

Expected<std::vector<HostCheck>> HostChecksFromJson(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_array()) return Fail("the host probe answered no JSON");
  std::vector<HostCheck> out;
  for (const auto& c : j) {
    if (!c.is_object()) return Fail("the host probe answered something else");
    out.push_back({c.value("name", ""), c.value("ok", false), c.value("essential", false),
                   c.value("detail", ""), c.value("fix", "")});
  }
  return out;
}

}  // namespace corral::sandbox
