#include "sandbox/cgroup.h"
#include "sandbox/fdio.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

namespace corral::sandbox::cgroup {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}


bool Contains(const std::string& list, const std::string& word) {
  std::stringstream ss(list);
  std::string item;
  while (ss >> item) {
    if (item == word) return true;
  }
  return false;
}

// Where each hierarchy is mounted: v2 under "", v1 under each controller name.
struct Mounts {
  std::string v2;
  std::vector<std::pair<std::string, std::string>> v1;  // super options, mount point
};

Mounts ReadMounts() {
  Mounts m;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::stringstream before(line.substr(0, dash));
    std::string id, parent, devno, root, point;
    before >> id >> parent >> devno >> root >> point;
    std::stringstream after(line.substr(dash + 3));
    std::string fstype, source, options;
    after >> fstype >> source >> options;
    if (fstype == "cgroup2" && m.v2.empty()) m.v2 = point;
    if (fstype == "cgroup") m.v1.emplace_back(options, point);
  }
  return m;
}

// The caller's cgroup path in hierarchy `key` ("" for v2, else a controller name).
std::string OwnPath(const std::string& key) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':');
    size_t b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    std::stringstream ss(controllers);
    std::string item;
    bool match = key.empty() && controllers.empty();
    while (!key.empty() && std::getline(ss, item, ',')) match |= item == key;
    if (match) return path == "/" ? "" : path;
  }
  return {};
}

bool Writable(const std::string& dir) { return access(dir.c_str(), W_OK | X_OK) == 0; }

// Finds where a cgroup with `controller` can be made: v2 when our cgroup delegates it, else v1.
std::string Locate(const Mounts& m, const std::string& controller, const std::string& v1_name,
                   bool* v2) {
  if (!m.v2.empty()) {
    std::string dir = m.v2 + OwnPath("");
    if (Contains(ReadFile(dir + "/cgroup.subtree_control"), controller) && Writable(dir)) {
      *v2 = true;
      return dir;
    }
  }
  for (const auto& [options, point] : m.v1) {
    std::stringstream ss(options);
    std::string item;
    bool match = false;
    while (std::getline(ss, item, ',')) match |= item == v1_name;
    if (!match) continue;
    std::string dir = point + OwnPath(v1_name);
    if (Writable(dir)) {
      *v2 = false;
      return dir;
    }
  }
  return {};
}

uint64_t ReadNumber(const std::string& path) {
  std::string s = ReadFile(path);
  return s.empty() ? 0 : std::strtoull(s.c_str(), nullptr, 10);
}

uint64_t ReadKey(const std::string& path, const std::string& key) {
  std::stringstream ss(ReadFile(path));
  std::string k;
  uint64_t v;
  while (ss >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

std::string UniqueName() {
  static std::atomic<int> counter{0};
  return "corral-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

}  // namespace

Availability Probe() {
  Mounts m = ReadMounts();
  Availability a;
  a.memory = Locate(m, "memory", "memory", &a.memory_v2);
  a.pids = Locate(m, "pids", "pids", &a.pids_v2);
  a.cpu = Locate(m, "cpu", "cpuacct", &a.cpu_v2);
  return a;
}

Expected<Cgroup> Cgroup::Create(const Limits& limits, std::vector<std::string>* notes) {
  Cgroup cg;
  if (!limits.memory && !limits.cpu_time) return cg;
  Availability a = Probe();
  if (limits.memory && a.memory.empty()) {
    return Fail(
        "limits.memory needs a memory cgroup this user may create, and there is none (cgroup v2 "
        "with a delegated subtree, e.g. `systemd-run --user --scope -p Delegate=yes corral ...`, "
        "or running as root); remove limits.memory to run without a memory limit");
  }
  std::string name = UniqueName();
  // One directory per hierarchy; on v2 one directory serves every controller.
  auto dir_for = [&](const std::string& parent, bool v2) -> Expected<Dir*> {
    std::string path = parent + "/" + name;
    for (Dir& d : cg.dirs_) {
      if (d.path == path) return &d;
    }
    if (mkdir(path.c_str(), 0755) != 0) return ErrnoError("create cgroup " + path);
    cg.dirs_.push_back({path, v2});
    return &cg.dirs_.back();
  };
  if (limits.memory) {
    auto d = dir_for(a.memory, a.memory_v2);
    if (!d) return std::unexpected(d.error());
    (*d)->memory = true;
    std::string bytes = std::to_string(*limits.memory);
    std::string base = (*d)->path;
    const char* limit = a.memory_v2 ? "/memory.max" : "/memory.limit_in_bytes";
    const char* swap = a.memory_v2 ? "/memory.swap.max" : "/memory.memsw.limit_in_bytes";
    if (auto r = WriteFile(base + limit, bytes); !r) return std::unexpected(r.error());
    if (access((base + swap).c_str(), F_OK) == 0) {
      if (auto r = WriteFile(base + swap, a.memory_v2 ? "0" : bytes); !r) {
        return std::unexpected(r.error());
      }
    }
  }
  // pids are always limited by RLIMIT_NPROC, which counts per user of the sandbox's own user
  // namespace, so per sandbox. A pids cgroup is added only beside one made for memory or CPU:
  // creating and removing cgroup directories is most of a small sandbox's set-up cost.
  if (limits.pids && !a.pids.empty() && (limits.memory || (limits.cpu_time && !a.cpu.empty()))) {
    auto d = dir_for(a.pids, a.pids_v2);
    if (!d) return std::unexpected(d.error());
    (*d)->pids = true;
    if (auto r = WriteFile((*d)->path + "/pids.max", std::to_string(*limits.pids)); !r) {
      return std::unexpected(r.error());
    }
  }
  if (limits.cpu_time) {
    if (a.cpu.empty()) {
      notes->push_back("limits.cpu_time enforced per process by RLIMIT_CPU (no cpu cgroup "
                       "available to add up the whole sandbox)");
    } else {
      auto d = dir_for(a.cpu, a.cpu_v2);
      if (!d) return std::unexpected(d.error());
      (*d)->cpu = true;
    }
  }
  return cg;
}

Cgroup::~Cgroup() {
  for (const Dir& d : dirs_) {
    // The processes are gone, but the kernel may take a moment to let go of the directory.
    for (int i = 0; i < 100 && rmdir(d.path.c_str()) != 0 && errno == EBUSY; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
}

Expected<> Cgroup::Attach(pid_t pid) {
  for (const Dir& d : dirs_) {
    if (auto r = WriteFile(d.path + "/cgroup.procs", std::to_string(pid)); !r) return r;
  }
  return {};
}

Usage Cgroup::Read() const {
  Usage u;
  for (const Dir& d : dirs_) {
    if (d.v2) {
      if (access((d.path + "/memory.peak").c_str(), F_OK) == 0) {
        u.peak_memory = ReadNumber(d.path + "/memory.peak");
        u.oom_kills = ReadKey(d.path + "/memory.events", "oom_kill");
      }
      if (access((d.path + "/cpu.stat").c_str(), F_OK) == 0) {
        u.cpu_ns = ReadKey(d.path + "/cpu.stat", "usage_usec") * 1000;
      }
    } else if (d.memory) {
      u.peak_memory = ReadNumber(d.path + "/memory.max_usage_in_bytes");
      u.oom_kills = ReadKey(d.path + "/memory.oom_control", "oom_kill");
    } else if (d.cpu) {
      u.cpu_ns = ReadNumber(d.path + "/cpuacct.usage");
    }
  }
  return u;
}

}  // namespace corral::sandbox::cgroup
