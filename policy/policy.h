// corral::policy: the permission policy of one agent task, parsed from TOML and validated.
//
// This module is pure: text in, a validated Policy value out. It makes no system calls and reads no
// files; the caller reads the file and passes its bytes and the name to use in messages.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace corral::policy {

// A position in the policy text, 1-based.
struct SourcePos {
  int line = 0;
  int column = 0;
};

// A user-facing error: "FILE:LINE:COL: key: message". Tests compare the text exactly.
struct Error {
  std::string message;
};

enum class Target { kLocal, kVm, kTdx };

// One entry of an egress allow-list: "api.example.com", "*.github.com:443", "localhost:8080".
// A leading "*." matches one or more labels in front of the suffix, never the bare suffix.
struct HostPattern {
  std::string host;             // lower case, without the "*." prefix when wildcard is set
  bool wildcard = false;        // "*.suffix"
  std::optional<uint16_t> port; // any port when unset
  std::string text;             // as written

  // REQUIRES: host is a DNS name without trailing dot, already lower case.
  bool Matches(std::string_view host, uint16_t port) const;
};

enum class EgressKind { kNone, kHost, kAllowList };

struct RateLimit {
  std::string host;
  uint32_t requests = 0;
  std::chrono::seconds per{0};
};

struct Limits {
  std::optional<std::chrono::milliseconds> wall_time;
  std::optional<std::chrono::milliseconds> cpu_time;
  std::optional<uint64_t> memory;  // bytes
  std::optional<uint64_t> pids;
  std::optional<uint64_t> file_size;  // bytes
  std::optional<uint64_t> open_files;
};

// A syscall name as written, with its position for later validation messages.
struct SyscallName {
  std::string name;
  SourcePos pos;
};

struct Policy {
  std::string name;  // Default: the file stem.
  std::string description;
  Target target = Target::kLocal;
  bool requires_human_approval = false;

  struct Filesystem {
    // Absolute host paths mounted at the same path inside. Default for read_only: the system
    // directories below (kDefaultReadOnly); entries of the default that the host lacks are skipped.
    std::vector<std::string> read_only;
    bool read_only_is_default = false;
    std::vector<std::string> read_write;
    // Relative paths inside the workspace that stay read-only. ".git/config" and ".git/hooks" are
    // always added. A trailing "/" marks a directory; "." is the whole workspace.
    std::vector<std::string> protect;
  } filesystem;

  struct Network {
    EgressKind egress = EgressKind::kNone;
    std::vector<HostPattern> allow;
    std::vector<RateLimit> rate;
  } network;

  struct Secrets {
    std::vector<std::string> env;
    std::map<std::string, std::vector<std::string>> inject;  // variable -> hosts
  } secrets;

  struct Env {
    std::vector<std::string> pass;  // Default: PATH, HOME, LANG, TERM.
    std::map<std::string, std::string> set;
  } env;

  struct Tools {
    std::optional<std::vector<std::string>> allow;  // unset: any program may run
  } tools;

  Limits limits;

  struct Syscalls {
    std::vector<SyscallName> deny;
    std::vector<SyscallName> allow;
  } syscalls;
};

inline constexpr const char* kDefaultReadOnly[] = {"/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc"};
inline constexpr const char* kDefaultEnvPass[] = {"PATH", "HOME", "LANG", "TERM"};
inline constexpr const char* kAlwaysProtected[] = {".git/config", ".git/hooks/"};

struct ParseOptions {
  // Returns whether a syscall name is known on this machine. Unset: every name is accepted.
  std::function<bool(std::string_view)> known_syscall;
};

// Parses and validates a policy. `source_name` is used in messages and, through its stem, as the
// default name. On failure returns the first error, formatted "source_name:LINE:COL: key: message".
[[nodiscard]] std::expected<Policy, Error> Parse(std::string_view text, std::string_view source_name,
                                                 const ParseOptions& options = {});

// One line that says what a policy permits, for `corral policy check`.
std::string Summary(const Policy& policy);

// Sizes: "512MiB", "2GiB", "1G", "4096" (bytes). Durations: "90s", "30m", "1h30m", "250ms".
[[nodiscard]] std::optional<uint64_t> ParseSize(std::string_view text);
[[nodiscard]] std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);
std::string FormatSize(uint64_t bytes);
std::string FormatDuration(std::chrono::milliseconds d);

// Parses one egress pattern; returns an error message (without position) when it cannot match.
[[nodiscard]] std::expected<HostPattern, std::string> ParseHostPattern(std::string_view text);

}  // namespace corral::policy
