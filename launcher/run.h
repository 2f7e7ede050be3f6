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
  std::vector<std::string> approve;  // tasks approved up front (--approve)
  std::string secrets_file;          // --secrets-file: values for the policies' secrets.env
};

struct ResumeRequest {
  std::string run;
  std::string repo = ".";
  bool json = false;
  std::string secrets_file;  // secrets are never stored: give them again
};

// Runs the plan and returns the exit status of DESIGN.md: 0 success, 1 a task failed or timed
// out, 2 bad input (nothing created), 3 the merge had conflicts, 4 a task awaits approval.
int RunPlan(const RunRequest& request);

// Continues a run after a crash or an interruption: replays its events.jsonl; tasks that ended
// keep their results and branches, the others start again from a clean reset of their worktree.
// Refuses a run that ended normally or whose plan file changed. Exit status as RunPlan's.
int ResumeRun(const ResumeRequest& request);

// Records that the invoking user approves `task` of `run` (which awaits approval) in the run's
// event log; `corral resume` then runs it.
int ApproveTask(const std::string& repo, const std::string& run, const std::string& task);

}  // namespace corral::launcher
