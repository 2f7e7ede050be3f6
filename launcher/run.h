// `corral run`: a plan's tasks in worktrees and sandboxes, scheduled on their DAG, then merged.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace corral::launcher {

struct RunRequest {
  std::string plan_path;
  std::string repo = ".";
  std::optional<int> jobs;  // overrides the plan's; see jobs_auto
  bool jobs_auto = false;
  bool json = false;  // stream events as JSON lines on stdout
};

// Runs the plan and returns the exit status of DESIGN.md: 0 success, 1 a task failed or timed
// out, 2 bad input (nothing created), 3 the merge had conflicts.
int RunPlan(const RunRequest& request);

}  // namespace corral::launcher
