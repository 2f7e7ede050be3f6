#include "sandbox/mnt.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "sandbox/missing_defs.h"

namespace corral::sandbox::mnt {
namespace {

namespace k = kernel;

// Where the host's root is while the new root is assembled (see BuildRoot).
constexpr const char* kOld = "/oldroot";
constexpr const char* kNew = "/newroot";

int MountSetattr(const char* path, unsigned flags, k::MountAttr* attr) {
  return static_cast<int>(
      syscall(__NR_mount_setattr, AT_FDCWD, path, flags, attr, sizeof(k::MountAttr)));
}

std::vector<std::string> Components(const std::string& relative) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start < relative.size()) {
    size_t end = relative.find('/', start);
    if (end == std::string::npos) end = relative.size();
    if (end > start) parts.push_back(relative.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

// One step of protecting a path: a self-bind that pins a directory in place (rw) or makes a path
// read-only (ro).
struct ProtectStep {
  std::string relative;
  bool read_only;
};

// Walks the protected paths below `root` (a host path or its view inside). A missing component is
// created when `create` is set. Fails on symlinks: a mount over one would land on its target.
Expected<std::vector<ProtectStep>> PlanProtect(const Spec& spec, const std::string& root,
                                               std::vector<std::string>* create) {
  std::vector<ProtectStep> steps;
  std::set<std::string> seen;
  for (const Protected& p : spec.protect) {
    std::vector<std::string> parts = Components(p.path);
    std::string relative;
    for (size_t i = 0; i < parts.size(); ++i) {
      relative += (relative.empty() ? "" : "/") + parts[i];
      bool leaf = i + 1 == parts.size();
      std::string full = root + "/" + relative;
      struct stat st;
      if (lstat(full.c_str(), &st) != 0) {
        if (errno != ENOENT || !create) return ErrnoError("protect " + p.path + ": " + relative);
        bool dir = !leaf || p.directory;
        int r =
            dir ? mkdir(full.c_str(), 0755)
                : open(full.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (r < 0) return ErrnoError("protect " + p.path + ": create " + relative);
        if (!dir) close(r);
        create->push_back(full);
        st.st_mode = dir ? S_IFDIR : S_IFREG;
      }
      if (S_ISLNK(st.st_mode)) {
        return Fail("protect " + p.path + ": " + relative + " is a symlink");
      }
      bool stop = leaf || !S_ISDIR(st.st_mode);
      if (seen.insert(relative).second || stop) {
        // A directory on the way stays where it is (a mount point cannot be renamed or removed),
        // so nobody can swap it for a symlink; the path itself, or a file on the way, turns ro.
        steps.push_back({relative, stop});
      }
      if (stop) break;
    }
  }
  // A later read-only step for a path wins over an earlier pinning one.
  std::stable_sort(steps.begin(), steps.end(), [](const ProtectStep& a, const ProtectStep& b) {
    return a.relative.size() < b.relative.size();
  });
  return steps;
}

enum class Kind { kBind, kDetached, kOverlay, kSymlink, kTmpfs, kProc, kDev };

struct Entry {
  std::string path;  // inside
  Kind kind;
  bool writable = false;
  int fd = -1;        // kDetached; kOverlay: the lower folder's, or -1 for host paths
  int upper_fd = -1;  // kOverlay: the workspace's parent folder's
  std::string lower, work;  // kOverlay: host paths
  std::string link;   // kSymlink target
  uint64_t size = 0;  // kTmpfs, kDev
  bool kvm = false;   // kDev: with the host's /dev/kvm

  Entry(std::string p, Kind k, bool w = false) : path(std::move(p)), kind(k), writable(w) {}
};

// Orders mounts so that a parent comes before what is mounted inside it.
bool Before(const Entry& a, const Entry& b) {
  auto depth = [](const std::string& p) { return std::count(p.begin(), p.end(), '/'); };
  if (depth(a.path) != depth(b.path)) return depth(a.path) < depth(b.path);
  return a.path < b.path;
}

Expected<> MkdirAll(const std::string& path) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string prefix = path.substr(0, pos);
    if (mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoError("mkdir " + prefix);
  }
  return {};
}

// Makes sure `dest` exists as a directory or a file to mount on.
Expected<> MountPoint(const std::string& dest, bool directory) {
  struct stat st;
  if (lstat(dest.c_str(), &st) == 0) return {};
  std::string parent = dest.substr(0, dest.rfind('/'));
  if (auto r = MkdirAll(parent); !r) return r;
  if (directory) {
    if (mkdir(dest.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoError("mkdir " + dest);
    return {};
  }
  int fd = open(dest.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("create mount point " + dest);
  close(fd);
  return {};
}

Expected<> SetAttr(const std::string& path, uint64_t set, bool recursive) {
  k::MountAttr attr{};
  attr.attr_set = set;
  if (MountSetattr(path.c_str(), recursive ? AT_RECURSIVE : 0, &attr) != 0) {
    return ErrnoError("mount_setattr " + path);
  }
  return {};
}

Expected<> BindMount(const std::string& source, const std::string& dest, bool writable) {
  struct stat st;
  if (stat(source.c_str(), &st) != 0) return ErrnoError("bind " + source.substr(strlen(kOld)));
  if (auto r = MountPoint(dest, S_ISDIR(st.st_mode)); !r) return r;
  if (mount(source.c_str(), dest.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    return ErrnoError("bind " + dest.substr(strlen(kNew)));
  }
  uint64_t attrs = k::kMountAttrNosuid | k::kMountAttrNodev;
  if (!writable) attrs |= k::kMountAttrRdonly;
  return SetAttr(dest, attrs, true);
}

Expected<> MountTmpfs(const std::string& dest, uint64_t size, const char* mode) {
  if (auto r = MountPoint(dest, true); !r) return r;
  std::string options = std::string("mode=") + mode + ",size=" + std::to_string(size);
  if (mount("tmpfs", dest.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0) {
    return ErrnoError("mount tmpfs on " + dest.substr(strlen(kNew)));
  }
  return {};
}

Expected<> MountProc(const std::string& dest) {
  if (auto r = MountPoint(dest, true); !r) return r;
  if (mount("proc", dest.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    return ErrnoError("mount /proc");
  }
  // Host-wide knobs stay read-only even where the kernel would let a namespace owner write.
  for (const char* sub : {"sys", "sysrq-trigger", "irq", "bus"}) {
    std::string path = dest + "/" + sub;
    if (access(path.c_str(), F_OK) != 0) continue;
    if (mount(path.c_str(), path.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      return ErrnoError("bind /proc/" + std::string(sub));
    }
    if (auto r =
            SetAttr(path, k::kMountAttrRdonly | k::kMountAttrNosuid | k::kMountAttrNodev, true);
        !r) {
      return r;
    }
  }
  return {};
}

Expected<> MountDev(const std::string& dest, uint64_t shm_size, bool kvm) {
  if (auto r = MountTmpfs(dest, 1 << 20, "0755"); !r) return r;
  std::vector<const char*> nodes = {"null", "zero", "full", "random", "urandom", "tty"};
  if (kvm) nodes.push_back("kvm");
  for (const char* node : nodes) {
    std::string target = dest + "/" + node;
    std::string source = std::string(kOld) + "/dev/" + node;
    if (auto r = MountPoint(target, false); !r) return r;
    if (mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      return ErrnoError("bind /dev/" + std::string(node));
    }
    if (auto r = SetAttr(target, k::kMountAttrNosuid | k::kMountAttrNoexec, false); !r) return r;
  }
  std::string pts = dest + "/pts";
  if (auto r = MountPoint(pts, true); !r) return r;
  if (mount("devpts", pts.c_str(), "devpts", MS_NOSUID | MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620") != 0) {
    return ErrnoError("mount /dev/pts");
  }
  if (auto r = MountTmpfs(dest + "/shm", shm_size, "1777"); !r) return r;
  struct Link {
    const char* name;
    const char* target;
  };
  for (Link l :
       {Link{"ptmx", "pts/ptmx"}, Link{"fd", "/proc/self/fd"}, Link{"stdin", "/proc/self/fd/0"},
        Link{"stdout", "/proc/self/fd/1"}, Link{"stderr", "/proc/self/fd/2"}}) {
    if (symlink(l.target, (dest + "/" + l.name).c_str()) != 0) {
      return ErrnoError("symlink /dev/" + std::string(l.name));
    }
  }
  return SetAttr(dest, k::kMountAttrRdonly | k::kMountAttrNosuid | k::kMountAttrNoexec, false);
}

// overlayfs splits its options at ',' and lower folders at ':'; a backslash escapes either.
std::string OverlayPath(const std::string& path) {
  std::string out;
  for (char c : path) {
    if (c == ',' || c == ':' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string Basename(const std::string& path) { return path.substr(path.rfind('/') + 1); }

// The workspace as an overlay: Entry::lower below, the workspace's host folder above. With
// detached (id-mapped) layers they are attached on the staging root first, where overlayfs finds
// them by path, and detached again once it holds them: nothing but the overlay shows them.
// Metadata-only copy-up and redirects stay off, so the upper folder holds whole files and plain
// folders that corral can commit from outside; the whiteouts and opaque marks it also holds are
// user.overlay.* attributes and 0/0 devices (userxattr: the namespace's root may write those).
Expected<> MountOverlay(const Entry& e) {
  std::string dest = kNew + e.path;
  auto parent = [](const std::string& p) { return p.substr(0, p.rfind('/')); };
  if (e.work.empty() || parent(e.work) != parent(e.path) || e.work == e.path) {
    return Fail("overlay of " + e.path + ": its work folder must be beside it");
  }
  if (auto r = MountPoint(dest, true); !r) return r;
  std::string lower = kOld + e.lower, upper = kOld + e.path, work = kOld + e.work;
  bool staged = e.fd >= 0;
  if (staged) {
    if (mkdir("/overlay-lower", 0700) != 0 || mkdir("/overlay-upper", 0700) != 0) {
      return ErrnoError("mkdir overlay staging");
    }
    for (auto [fd, at] :
         {std::pair{e.fd, "/overlay-lower"}, std::pair{e.upper_fd, "/overlay-upper"}}) {
      if (syscall(__NR_move_mount, fd, "", AT_FDCWD, at, k::kMoveMountFEmptyPath) != 0) {
        return ErrnoError("attach overlay layer of " + e.path);
      }
    }
    lower = "/overlay-lower";
    upper = "/overlay-upper/" + Basename(e.path);
    work = "/overlay-upper/" + Basename(e.work);
  }
  std::string options = "lowerdir=" + OverlayPath(lower) + ",upperdir=" + OverlayPath(upper) +
                        ",workdir=" + OverlayPath(work) +
                        ",userxattr,redirect_dir=nofollow,metacopy=off,index=off";
  int r = mount("overlay", dest.c_str(), "overlay", MS_NOSUID | MS_NODEV, options.c_str());
  int saved = errno;
  if (staged) {
    umount2("/overlay-lower", MNT_DETACH);
    umount2("/overlay-upper", MNT_DETACH);
  }
  if (r != 0) {
    errno = saved;
    return ErrnoError("mount the overlay of " + e.path + " on " + e.lower);
  }
  uint64_t attrs = k::kMountAttrNosuid | k::kMountAttrNodev;
  if (!e.writable) attrs |= k::kMountAttrRdonly;
  return SetAttr(dest, attrs, false);
}

Expected<> Apply(const Entry& e) {
  std::string dest = kNew + e.path;
  switch (e.kind) {
    case Kind::kBind:
      return BindMount(kOld + e.path, dest, e.writable);
    case Kind::kDetached: {
      struct stat st;
      bool dir = fstat(e.fd, &st) != 0 || S_ISDIR(st.st_mode);
      if (auto r = MountPoint(dest, dir); !r) return r;
      if (syscall(__NR_move_mount, e.fd, "", AT_FDCWD, dest.c_str(), k::kMoveMountFEmptyPath) !=
          0) {
        return ErrnoError("attach " + e.path);
      }
      uint64_t attrs = k::kMountAttrNosuid | k::kMountAttrNodev;
      if (!e.writable) attrs |= k::kMountAttrRdonly;
      return SetAttr(dest, attrs, true);
    }
    case Kind::kOverlay:
      return MountOverlay(e);
    case Kind::kSymlink: {
      if (auto r = MkdirAll(dest.substr(0, dest.rfind('/'))); !r) return r;
      if (symlink(e.link.c_str(), dest.c_str()) != 0 && errno != EEXIST) {
        return ErrnoError("symlink " + e.path);
      }
      return {};
    }
    case Kind::kTmpfs:
      return MountTmpfs(dest, e.size, "1777");
    case Kind::kProc:
      return MountProc(dest);
    case Kind::kDev:
      return MountDev(dest, e.size, e.kvm);
  }
  return {};
}

// Covers each hidden file that a bind made visible with the host's /dev/null, read-only. A path
// that no bind reaches is not there to hide.
Expected<> Hide(const Spec& spec) {
  for (const std::string& path : spec.hide) {
    std::string dest = kNew + path;
    struct stat st;
    if (lstat(dest.c_str(), &st) != 0) continue;
    if (!S_ISREG(st.st_mode)) return Fail("hide " + path + ": only files can be hidden");
    std::string null = std::string(kOld) + "/dev/null";
    if (mount(null.c_str(), dest.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      return ErrnoError("hide " + path);
    }
    if (auto r = SetAttr(dest, k::kMountAttrRdonly, false); !r) return r;
  }
  return {};
}

// Shows each FileBind's host file, read-only, over its path. The path must already be there (a
// file of a bind, or a protected one): a mount point made here would land in a bind's host
// directory.
// `detached`: their id-mapped mounts from OpenBinds (git checks that a worktree's .git file
// belongs to the user running it), or empty.
Expected<> BindFiles(const Spec& spec, const std::vector<int>& detached) {
  for (size_t i = 0; i < spec.files.size(); ++i) {
    const FileBind& f = spec.files[i];
    std::string dest = kNew + f.path;
    std::string source = kOld + f.source;
    struct stat st;
    if (lstat(dest.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return Fail("file " + f.path + ": not a file inside the sandbox");
    }
    if (detached.empty()) {
      if (lstat(source.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        return Fail("file " + f.path + ": " + f.source + " is not a file");
      }
      if (mount(source.c_str(), dest.c_str(), nullptr, MS_BIND, nullptr) != 0) {
        return ErrnoError("file " + f.path);
      }
    } else if (syscall(__NR_move_mount, detached[i], "", AT_FDCWD, dest.c_str(),
                       k::kMoveMountFEmptyPath) != 0) {
      return ErrnoError("file " + f.path);
    }
    if (auto r = SetAttr(dest, k::kMountAttrRdonly | k::kMountAttrNosuid | k::kMountAttrNodev,
                         false);
        !r) {
      return r;
    }
  }
  return {};
}

Expected<> Protect(const Spec& spec) {
  std::string root = kNew + spec.workspace;
  auto steps = PlanProtect(spec, root, nullptr);
  if (!steps) return std::unexpected(steps.error());
  for (const ProtectStep& s : *steps) {
    std::string path = root + "/" + s.relative;
    if (mount(path.c_str(), path.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      return ErrnoError("protect " + s.relative);
    }
    uint64_t attrs = k::kMountAttrNosuid | k::kMountAttrNodev;
    if (s.read_only) attrs |= k::kMountAttrRdonly;
    if (auto r = SetAttr(path, attrs, true); !r) return r;
  }
  return {};
}

}  // namespace

Expected<std::vector<std::string>> CreatePlaceholders(const Spec& spec) {
  std::vector<std::string> created;
  auto steps = PlanProtect(spec, spec.workspace, &created);
  if (!steps) {
    RemovePlaceholders(created);
    return std::unexpected(steps.error());
  }
  return created;
}

void RemovePlaceholders(const std::vector<std::string>& created) {
  for (auto it = created.rbegin(); it != created.rend(); ++it) {
    struct stat st;
    if (lstat(it->c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      rmdir(it->c_str());  // fails, and keeps it, when something is inside
    } else if (S_ISREG(st.st_mode) && st.st_size == 0) {
      unlink(it->c_str());
    }
  }
}

void ResolveSymlinks(Spec* spec) {
  for (Bind& b : spec->binds) {
    if (b.writable) continue;
    char target[4096];
    ssize_t n = readlink(b.path.c_str(), target, sizeof(target) - 1);
    if (n > 0) b.symlink.assign(target, n);
  }
}

Expected<std::vector<int>> OpenBinds(const Spec& spec, int userns_fd) {
  std::vector<int> fds;
  auto fail = [&](std::unexpected<Error> e) {
    for (int f : fds) close(f);
    return e;
  };
  auto open_one = [&](const std::string& path, bool owned) -> Expected<> {
    int fd = static_cast<int>(syscall(__NR_open_tree, AT_FDCWD, path.c_str(),
                                      k::kOpenTreeClone | O_CLOEXEC | AT_RECURSIVE));
    if (fd < 0) return ErrnoError("open_tree " + path);
    fds.push_back(fd);
    if (!owned) return {};
    k::MountAttr attr{};
    attr.attr_set = k::kMountAttrIdmap;
    attr.userns_fd = static_cast<__u64>(userns_fd);
    if (syscall(__NR_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) != 0) {
      return ErrnoError("id-map " + path +
                        " (corral as root needs a filesystem with id-mapped mounts)");
    }
    return {};
  };
  if (spec.workspace_lower.empty()) {
    if (auto r = open_one(spec.workspace, true); !r) return fail(std::unexpected(r.error()));
  } else {
    // overlayfs wants the upper and work folders on one mount: their parent's.
    std::string parent = spec.workspace.substr(0, spec.workspace.rfind('/'));
    if (auto r = open_one(spec.workspace_lower, true); !r) return fail(std::unexpected(r.error()));
    if (auto r = open_one(parent.empty() ? "/" : parent, true); !r) {
      return fail(std::unexpected(r.error()));
    }
  }
  for (const Bind& b : spec.binds) {
    if (!b.symlink.empty()) continue;
    if (auto r = open_one(b.path, b.writable); !r) return fail(std::unexpected(r.error()));
  }
  for (const FileBind& f : spec.files) {
    struct stat st;
    if (lstat(f.source.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return fail(Fail("file " + f.path + ": " + f.source + " is not a file"));
    }
    if (auto r = open_one(f.source, true); !r) return fail(std::unexpected(r.error()));
  }
  return fds;
}

Expected<> BuildRoot(const Spec& spec, const std::vector<int>& detached) {
  // Nothing mounted here propagates back to the host.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return ErrnoError("make mounts private");
  }
  // Assemble on a tmpfs, first pivoting onto it so the host tree sits at /oldroot and every host
  // path, /tmp included, stays reachable as a bind source (as bubblewrap does).
  if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") != 0) {
    return ErrnoError("mount staging tmpfs");
  }
  if (chdir("/tmp") != 0) return ErrnoError("chdir staging");
  if (mkdir("newroot", 0755) != 0 || mkdir("oldroot", 0755) != 0)
    return ErrnoError("mkdir staging");
  if (syscall(SYS_pivot_root, "/tmp", "/tmp/oldroot") != 0) return ErrnoError("pivot_root staging");
  if (chdir("/") != 0) return ErrnoError("chdir /");
  if (mount("tmpfs", kNew, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") != 0) {
    return ErrnoError("mount root tmpfs");
  }

  std::vector<Entry> entries;
  size_t next_fd = 0;
  auto bind = [&](const std::string& path, bool writable) {
    if (!detached.empty()) {
      entries.emplace_back(path, Kind::kDetached, writable).fd = detached.at(next_fd++);
    } else {
      entries.emplace_back(path, Kind::kBind, writable);
    }
  };
  if (spec.workspace_lower.empty()) {
    bind(spec.workspace, !spec.workspace_read_only);
  } else {
    Entry& e = entries.emplace_back(spec.workspace, Kind::kOverlay, !spec.workspace_read_only);
    e.lower = spec.workspace_lower;
    e.work = spec.workspace_overlay_work;
    if (!detached.empty()) {
      e.fd = detached.at(next_fd++);
      e.upper_fd = detached.at(next_fd++);
    }
  }
  for (const Bind& b : spec.binds) {
    if (!b.symlink.empty()) {
      entries.emplace_back(b.path, Kind::kSymlink).link = b.symlink;
    } else {
      bind(b.path, b.writable);
    }
  }
  entries.emplace_back("/proc", Kind::kProc);
  Entry& dev = entries.emplace_back("/dev", Kind::kDev);
  dev.size = spec.limits.tmp_size;
  dev.kvm = spec.kvm;
  entries.emplace_back("/tmp", Kind::kTmpfs, true).size = spec.limits.tmp_size;
  std::stable_sort(entries.begin(), entries.end(), Before);
  for (const Entry& e : entries) {
    if (auto r = Apply(e); !r) return r;
  }
  if (auto r = Protect(spec); !r) return r;
  std::vector<int> files;
  if (!detached.empty()) files.assign(detached.end() - spec.files.size(), detached.end());
  if (auto r = BindFiles(spec, files); !r) return r;
  if (auto r = Hide(spec); !r) return r;

  if (umount2(kOld, MNT_DETACH) != 0) return ErrnoError("detach host root");
  if (chdir(kNew) != 0) return ErrnoError("chdir new root");
  if (syscall(SYS_pivot_root, ".", ".") != 0) return ErrnoError("pivot_root");
  if (umount2(".", MNT_DETACH) != 0) return ErrnoError("detach staging root");
  if (chdir("/") != 0) return ErrnoError("chdir /");
  return SetAttr("/", k::kMountAttrRdonly | k::kMountAttrNosuid | k::kMountAttrNodev, false);
}

}  // namespace corral::sandbox::mnt
