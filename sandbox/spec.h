// The input and output of one sandboxed run. Plain values: corral::sandbox knows nothing of policy
// files or git. The launcher fills a Spec from a policy; the helper process enforces it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sandbox/error.h"

namespace corral::sandbox {

// A host path made visible at the same path inside.
struct Bind {
  Bind() = default;
  Bind(std::string p, bool w) : path(std::move(p)), writable(w) {}
  std::string path;  // absolute, normalized
  bool writable = false;
  std::string symlink;  // filled in by the helper: the path is this symlink, recreated inside
};

// A host file shown read-only at another path inside, over what is there: the sandbox's own
// view of a file (a worktree's .git, naming the git directory the agent gets).
struct FileBind {
  std::string path;    // inside: absolute, normalized, an existing file (or one protected)
  std::string source;  // a regular file on the host: absolute
};

// A path inside the workspace that stays read-only, also when it does not exist yet.
struct Protected {
  std::string path;  // relative to the workspace
  bool directory = false;
};

enum class DenyErrno { kEperm, kEnosys };

struct ArgCompare {
  enum class Op { kMaskedEq, kNe };
  unsigned index = 0;
  Op op = Op::kMaskedEq;
  uint64_t mask = 0;
  uint64_t value = 0;
};

// A syscall the filter refuses when all `args` comparisons hold. kEperm denials are reported to the
// supervisor (seccomp user notification), so the result can say which calls were denied.
struct SyscallRule {
  std::string name;
  DenyErrno error = DenyErrno::kEperm;
  std::vector<ArgCompare> args;
};

struct Limits {
  std::optional<std::chrono::milliseconds> wall_time;
  std::optional<std::chrono::milliseconds> cpu_time;
  std::optional<uint64_t> memory;
  std::optional<uint64_t> pids;
  std::optional<uint64_t> file_size;
  std::optional<uint64_t> open_files;
  uint64_t tmp_size = 512ULL << 20;            // size of the private /tmp and /dev/shm
  std::chrono::milliseconds kill_grace{2000};  // SIGTERM to SIGKILL on timeout
};

struct Spec {
  std::vector<std::string> argv;  // argv[0] is resolved inside the sandbox through PATH in env
  std::vector<std::string> env;   // "NAME=value", the complete environment of the command
  std::string workspace;          // absolute host path, same path inside
  bool workspace_read_only = false;
  // When set, the workspace inside is an overlay: this host folder (a checkout of the base, never
  // written) below, the workspace's host folder above, holding what the command changed (and
  // overlayfs's whiteouts for what it deleted). workspace_overlay_work is overlayfs's work
  // folder, which must be beside the workspace (the same parent folder).
  std::string workspace_lower;
  std::string workspace_overlay_work;
  std::string cwd;          // absolute; Default: the workspace
  std::vector<Bind> binds;  // besides the workspace
  std::vector<Protected> protect;
  // Host paths (absolute, resolved) that stay invisible even where a bind covers them, such as
  // corral's audit key: the file reads as an empty, read-only /dev/null.
  std::vector<std::string> hide;
  std::vector<FileBind> files;  // mounted after the binds and protections, before hide
  bool share_network = false;  // false: a network namespace with only loopback
  // When nonzero (and the network is not shared), a TCP socket listening on 127.0.0.1:proxy_port
  // inside the sandbox's network namespace is handed to RunOptions::on_proxy_listener before the
  // command starts: the egress proxy, outside, accepts the sandbox's connections on it.
  uint16_t proxy_port = 0;
  // When set, only these programs (absolute paths) may be executed; the dynamic loader is added.
  std::optional<std::vector<std::string>> exec_allow;
  Limits limits;
  std::vector<SyscallRule> syscalls;
  std::string hostname = "corral";
  // The host's /dev/kvm in the sandbox's /dev (the VM target's QEMU, where KVM works).
  bool kvm = false;
  // Record every execve/execveat of the sandbox (Result::execs), through a seccomp notification
  // that the supervisor answers after reading the call's arguments.
  bool observe_exec = false;
};

// A program the sandbox asked to execute, as the supervisor saw the execve from outside: observed,
// not proven (a process can change the memory the arguments are read from while the call waits).
// Attempts that fail (a PATH search tries several) are seen too.
struct ExecRecord {
  int pid = 0;   // in the sandbox's pid namespace
  int ppid = 0;  // likewise; 0 when the parent is outside it
  std::string path;  // as passed to execve; relative to cwd (or to a directory fd) when not absolute
  std::vector<std::string> argv;
  std::string cwd;
  int64_t at_ms = 0;  // since the sandbox started
  // How the process ended, as the kernel tells a pidfd (Linux 6.15+, PIDFD_INFO_EXIT):
  // "exited" (exit_code), "signaled" (signal), "exec" (it called exec again: this exec failed,
  // as a shell's PATH search does, or the program replaced itself), or "" when not known (an
  // older kernel, or more programs alive at once than are watched).
  std::string end;
  int exit_code = 0;
  int signal = 0;
};

struct Denial {
  std::string syscall;
  uint64_t count = 0;
};

// What happened to the command. Exactly one of: exited, killed by a signal, or never started.
struct Result {
  bool exited = false;
  int exit_code = 0;            // when exited
  int signal = 0;               // when killed by a signal
  int exec_errno = 0;           // the command could not be executed (ENOENT, EACCES, ...)
  bool timed_out = false;       // the wall-time limit stopped it
  bool cpu_limit_hit = false;   // the cpu-time limit stopped it
  bool oom_killed = false;      // the memory limit killed a process of the sandbox
  // The first termination signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) sent to the sandbox from
  // outside and passed on to it; 0: none.
  int stop_signal = 0;
  std::vector<Denial> denials;  // syscalls the filter refused, in first-seen order
  std::string last_denied;
  std::chrono::milliseconds wall_time{0};
  std::chrono::milliseconds cpu_time{0};  // of the whole sandbox, when a cgroup measured it
  uint64_t peak_memory = 0;               // bytes, when a cgroup measured it
  std::vector<std::string> notes;         // e.g. which fallback enforced a limit
  std::vector<ExecRecord> execs;          // when Spec::observe_exec, in order, up to kMaxExecs
  uint64_t execs_dropped = 0;             // observed beyond kMaxExecs and not kept
  static constexpr size_t kMaxExecs = 100000;

  // The exit status `corral exec` returns: the command's own, 124 on timeout, 126/127 when it
  // could not be executed, 128+N for signal N.
  int ExitStatus() const;
  // One line for humans, e.g. "killed by SIGKILL (out of memory: limits.memory)".
  std::string Describe() const;
};

// Serialization between corral and its helper process.
std::string ToJson(const Spec& spec);
Expected<Spec> SpecFromJson(const std::string& text);
std::string ToJson(const Result& result);
Expected<Result> ResultFromJson(const std::string& text);

}  // namespace corral::sandbox
