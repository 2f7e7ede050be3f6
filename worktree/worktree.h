// corral::worktree: a git worktree per task, a commit of what the agent changed, and the
// integration merge of all task branches. The only module that uses libgit2.
//
// corral never changes the user's checked-out branch, index, working tree, stash or config, and
// never runs code the repository or an agent controls: libgit2 runs no hooks, no external filter
// or merge drivers and no fsmonitor, and task worktrees are opened through their admin directory
// in the main repository, never through the `.git` file an agent could replace.
#pragma once

#include <memory>
#include <chrono>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "worktree/error.h"

struct git_repository;

namespace corral::worktree {

// Run and task ids: letters, digits, '_' and '-', 1 to 64 characters. Returns an error message
// naming `what` ("run id", "task id") or an empty string.
std::string CheckId(const std::string& id, const std::string& what);

// "corral/<run>/<task>"
std::string TaskBranch(const std::string& run, const std::string& task);

// Where a task's worktree lives: <common git dir>/corral/worktrees/<run>/<task>.
std::string WorkspacePath(const std::string& common_dir, const std::string& run,
                          const std::string& task);

struct Workspace {
  std::string run, task;
  std::string path;       // the worktree directory
  std::string branch;     // refs/heads/corral/<run>/<task>, short form
  std::string admin_dir;  // <common git dir>/worktrees/<name>
  std::string base;       // the commit it started from (hex)
  // An overlay workspace (the fast path, CreateWorkspace's `export_commit`): the export folder
  // it is an overlay on and overlayfs's work folder. Both empty for a plain worktree.
  std::string lower;
  std::string overlay_work;
};

struct CommitRequest {
  std::string run, task;
  std::string policy;  // "<name>@<sha256 of the policy file>"
  // (label, bytes): a changed file (or symlink target) that holds any of these bytes is kept out
  // of the commit and listed in CommitResult::withheld. Used for secrets' values.
  std::vector<std::pair<std::string, std::string>> forbidden;
  // When set (hex): files_changed and line_stats cover everything since this commit, the
  // agent's own commits included, not the new commit alone.
  std::string since;
  // Paths left as the branch head has them, whatever the worktree holds: those a sparse
  // checkout the agent made took out of it (AgentCommits::not_checked_out).
  std::set<std::string> not_checked_out;
};

struct Skipped {
  std::string path;
  std::string reason;  // "unreadable", "nested repository", ...
};

struct CommitResult {
  bool committed = false;  // false: the agent changed nothing (since CommitRequest::since)
  std::string commit;                      // the branch head afterwards (hex)
  std::vector<std::string> files_changed;  // by the new commit, sorted
  std::vector<Skipped> skipped;            // kept out of the commit, by path
  std::vector<Skipped> withheld;           // kept out: they hold forbidden bytes (reason: label)
  // Lines added and deleted per changed file (the first kMaxLineStats, in files_changed order).
  struct LineStat {
    std::string path;
    size_t added = 0, deleted = 0;
    bool binary = false;
  };
  std::vector<LineStat> line_stats;
  static constexpr size_t kMaxLineStats = 1000;
};

// The git directory an agent gets inside its sandbox (see sandbox_git.cc).
struct SandboxGit {
  std::string dir;       // a git directory of its own: HEAD, config, refs, index, objects
  std::string git_file;  // "gitdir: <dir>": shown read-only over the worktree's .git inside
  std::string objects;   // the repository's object store: dir's alternate, shared read-only
  std::string start;     // the branch head the try started from (hex)
};

// What came of the commits an agent made with git inside its sandbox.
struct AgentCommits {
  std::string head;     // the task branch's head afterwards, when they were kept (hex)
  size_t commits = 0;   // how many were kept
  std::string refused;  // why they were not kept ("" when there were none, or they were)
  // The paths the agent's index marks skip-worktree: a sparse checkout it made (`git
  // sparse-checkout set`) took them out of the worktree, which does not delete them.
  std::set<std::string> not_checked_out;
};

struct BranchToMerge {
  std::string task;
  std::string branch;  // short name, e.g. corral/<run>/<task>
};

struct Hunk {
  int merged_line = 0;  // where the conflict starts in the file with conflict markers (1-based)
  int base_start = 0, ours_start = 0, theirs_start = 0;  // 1-based first line in each side's file
  std::string base, ours, theirs;                        // each side's text of the hunk
};

struct Conflict {
  std::vector<std::string> paths;  // one, or the ancestor's and the sides' paths for renames
  // content, add/add, modify/delete, rename/rename, rename/delete, file/directory, binary, mode
  std::string kind;
  std::vector<std::string> tasks;  // earlier tasks that changed the path, then the task merged
  std::vector<Hunk> hunks;         // content conflicts of text files
};

struct PairConflict {
  std::string a, b;  // task ids, in merge order
  std::vector<std::string> paths;
};

struct MergeReport {
  std::string branch;                   // the integration branch (short name)
  std::string commit;                   // its head (hex)
  std::vector<std::string> merged;      // task ids, in merge order
  std::vector<std::string> conflicted;  // task ids left out
  std::vector<Conflict> conflicts;
  std::vector<PairConflict> pairs;
};

struct CleanOptions {
  std::string run;       // empty: every run
  bool dry_run = false;  // say what would happen, change nothing
  bool force = false;    // archive work found nowhere else under refs/corral/archive/, then remove
};

struct CleanItem {
  enum class Action { kRemoved, kKept, kArchived, kRunning };
  std::string run, task, branch;
  Action action = Action::kKept;
  std::string reason;  // why, e.g. "reachable from corral/r1/merged"; for kArchived the ref
  // An export of a base that no overlay workspace uses any more (run, task and branch empty).
  std::string path;
};

// The merge object of DESIGN.md's report, as JSON; and as Markdown for a pull request.
std::string ToJson(const MergeReport& report);
std::string ToMarkdown(const MergeReport& report);

// A repository opened for corral's use. Not thread-safe; open one per thread.
class Repository {
 public:
  // Creates a repository at `path` (which must not exist or be empty) whose branch `main` has one
  // commit of `files` (path -> content). For demos and examples.
  static Expected<Repository> InitWithFiles(
      const std::string& path, const std::vector<std::pair<std::string, std::string>>& files,
      const std::string& message);

  // Opens the repository containing `path` (a working tree or a git dir).
  static Expected<Repository> Open(const std::string& path);
  Repository(Repository&& other) noexcept;
  Repository& operator=(Repository&& other) noexcept;
  ~Repository();

  const std::string& common_dir() const { return common_dir_; }

  // The commit `rev` names ("HEAD", a branch, a hex id), as a full hex id.
  Expected<std::string> ResolveCommit(const std::string& rev) const;

  // The URL of remote `name` ("origin"), as its config says.
  Expected<std::string> RemoteUrl(const std::string& name) const;

  // Creates branch corral/<run>/<task> at `base`, then a worktree on it at
  // <common dir>/corral/worktrees/<run>/<task>. Safe to call from many threads and processes at
  // once (the metadata step is serialized, the checkout is not). On failure nothing is left
  // behind: no branch, no admin directory, no directory.
  // With `export_commit` (hex), an overlay workspace: nothing is checked out but what `base`
  // has differently from that commit, whose export (a checkout made once, kept under
  // <common dir>/corral/exports/) the sandbox shows below the folder (Workspace::lower). On the
  // host the folder is a sparse worktree; CommitAll and ResetWorkspace know both kinds.
  Expected<Workspace> CreateWorkspace(const std::string& run, const std::string& task,
                                      const std::string& base,
                                      const std::string& export_commit = "");

  // Removes the ref locks (`*.lock` under refs/heads/corral/<run>/ and refs/corral/*/<run>/) and
  // the worktree index locks of run `run` that are older than `before`: what a corral killed
  // while it held them left behind. The caller holds the run's lock (no other corral works on the run), so a lock that
  // old has no owner. Returns the paths removed.
  Expected<std::vector<std::string>> ClearStaleLocks(const std::string& run,
                                                     std::chrono::system_clock::time_point before);

  // The workspace of an existing task worktree; fails if it does not exist or is half made (a
  // crash while it was created), which CreateWorkspace then replaces.
  Expected<Workspace> FindWorkspace(const std::string& run, const std::string& task) const;

  // Puts a workspace back to `commit`: its branch, index and files, removing untracked and
  // ignored files, for a task's next try.
  Expected<> ResetWorkspace(const Workspace& ws, const std::string& commit);

  // Removes the worktree directory, its admin directory and the agent's git directory. The
  // branch stays.
  Expected<> RemoveWorkspace(const Workspace& ws);

  // Commits everything the agent changed in `ws` (modified, new files not ignored, deleted,
  // renamed, executable bits, symlinks as links) on top of the branch head, so commits the agent
  // made itself are kept. Unreadable files and nested repositories are kept out and reported.
  Expected<CommitResult> CommitAll(const Workspace& ws, const CommitRequest& request);

  // Makes the git directory the agent of `ws` uses inside its sandbox, afresh for each try: the
  // task's branch at its current head is its only ref, its config names only the committer, and
  // the repository's objects are its alternate. Nothing of the repository is writable through it.
  Expected<SandboxGit> PrepareSandboxGit(const Workspace& ws);

  // After the agent's sandbox has ended: moves the task's branch to the commit the agent's HEAD
  // names, when it descends from `git.start`, copying the objects the repository lacks. Each is
  // checked first (type, hash, no .git entry, none of `forbidden`'s bytes: see CommitRequest);
  // symlinks or hard links in the agent's object store refuse them all. A refusal is not an
  // error: the branch stays, and the files are still committed by CommitAll.
  Expected<AgentCommits> KeepAgentCommits(
      const Workspace& ws, const SandboxGit& git,
      const std::vector<std::pair<std::string, std::string>>& forbidden);

  // Removes a task's sandbox git directory (the run's folder too, once empty).
  Expected<> RemoveSandboxGit(const std::string& run, const std::string& task);

  // Marks a workspace as in use by a running sandbox (git's worktree lock); Clean never touches
  // a locked one.
  Expected<> LockWorkspace(const Workspace& ws, const std::string& reason);
  Expected<> UnlockWorkspace(const Workspace& ws);

  // Removes task worktrees and branches whose work is kept elsewhere: their head is reachable
  // from another branch, or every path they changed has the same content on another branch
  // (squash merges count), and their worktree holds no uncommitted change. Everything else is
  // kept and named, or with `force` archived under refs/corral/archive/<run>/<task> (uncommitted
  // changes committed first) and then removed. Integration branches (corral/<run>/merged) and a
  // checked-out branch are never removed. Then the exports of bases (overlay workspaces') that
  // no workspace uses any more.
  Expected<std::vector<CleanItem>> Clean(const CleanOptions& options);

  // Merges the branches into `into` (a branch name, or a full ref name under refs/), in the given
  // order, starting from `base`, with
  // in-memory three-way merges; a branch that conflicts is left out and reported, the others
  // still merge. The ref is updated with compare-and-swap. Also computes the pairwise matrix.
  Expected<MergeReport> Integrate(const std::string& base,
                                  const std::vector<BranchToMerge>& branches,
                                  const std::string& into);

 private:
  Repository(git_repository* repo, std::string common_dir);
  git_repository* repo_ = nullptr;
  std::string common_dir_;
};

}  // namespace corral::worktree
