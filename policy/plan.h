// Plan files (TOML, version 1): the tasks of a run and their dependencies. Pure, like policies:
// text in, a validated Plan out; the launcher reads the file and runs it.
#pragma once

#include <chrono>
#include <expected>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace corral::policy {

struct PlanPos {
  int line = 0;
  int column = 0;
};

struct PlanTask {
  std::string id;
  std::string policy;  // as written; relative to the plan file's directory
  PlanPos policy_pos;  // where `policy` is written, for errors found later (a missing file)
  std::vector<std::string> run;
  std::vector<std::string> depends_on;
  std::optional<std::chrono::milliseconds> timeout;  // overrides the policy's wall_time
  int retries = 0;                                   // Default: 0. Up to 10.
  std::map<std::string, std::string> env;
  std::string prompt;
  PlanPos pos;  // the [[task]] header
};

struct Plan {
  std::string base = "HEAD";
  PlanPos base_pos;             // where run.base is written; line 0 when it is the default
  std::optional<int> jobs = 4;  // nullopt: "auto"
  std::string into;             // empty: corral/<run>/merged
  std::vector<std::string> setup;
  // Each task's worktree: an overlay on one export of the base (the fast path for big
  // repositories), a checkout of its own, or ("auto", the default) an overlay where this host
  // mounts one for the sandbox and the task's target is local.
  enum class Workspaces { kAuto, kWorktree, kOverlay };
  Workspaces workspaces = Workspaces::kAuto;
  std::vector<PlanTask> tasks;
  // Task indices in dependency order, ties in plan order: the merge order of the run.
  std::vector<size_t> order;
};

// Parses and validates a plan. Errors are "SOURCE:LINE:COL: key: message", or for the task graph
// "SOURCE:LINE:COL: task 'ID': message" (an unknown dependency, a duplicate id, a cycle, which
// lists the tasks on it). The policy files are not read here.
[[nodiscard]] std::expected<Plan, std::string> ParsePlan(std::string_view text,
                                                         std::string_view source_name);

}  // namespace corral::policy
