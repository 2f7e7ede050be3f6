// Control groups: memory, pids and CPU accounting of the whole sandbox. cgroup v2 where the
// controller is delegated to the caller, v1 where only v1 has it (hybrid hosts).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "sandbox/error.h"
#include "sandbox/spec.h"

namespace corral::sandbox::cgroup {

struct Usage {
  uint64_t peak_memory = 0;  // bytes
  uint64_t cpu_ns = 0;
  uint64_t oom_kills = 0;
};

// Which controllers the caller could create a cgroup with, and where. For `corral doctor` too.
struct Availability {
  std::string memory, pids, cpu;  // parent directory to create in; empty: unavailable
  bool memory_v2 = false, pids_v2 = false, cpu_v2 = false;
};
Availability Probe();

// One cgroup per sandbox (one directory per hierarchy). Removed by the destructor.
class Cgroup {
 public:
  // Creates the cgroup that `limits` needs (memory: memory.max; pids: pids.max; cpu_time: CPU
  // accounting; pids: pids.max beside one of those, RLIMIT_NPROC always). Fails, naming the limit
  // and what to do, when the memory controller is unavailable; cpu_time without a cpu controller
  // is enforced per process by RLIMIT_CPU (noted in `notes`).
  static Expected<Cgroup> Create(const Limits& limits, std::vector<std::string>* notes);
  Cgroup(Cgroup&& other) noexcept : dirs_(std::move(other.dirs_)) {
    other.dirs_.clear();
  }
  Cgroup& operator=(Cgroup&&) = delete;
  ~Cgroup();

  bool empty() const { return dirs_.empty(); }
  // Moves `pid` into every directory of the cgroup.
  Expected<> Attach(pid_t pid);
  Usage Read() const;

 private:
  struct Dir {
    std::string path;
    bool v2 = false;
    bool memory = false, pids = false, cpu = false;
  };
  Cgroup() = default;
  std::vector<Dir> dirs_;
};

}  // namespace corral::sandbox::cgroup
