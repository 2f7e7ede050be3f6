// Cleaning up after runs without losing work.
#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "worktree/git_handle.h"
#include "worktree/overlay.h"
#include "worktree/tree_diff.h"
#include "worktree/user_head.h"
#include "worktree/worktree.h"

namespace corral::worktree {
namespace {

struct Branch {
  std::string name;  // short
  git_oid head;
};

Expected<std::vector<Branch>> LocalBranches(git_repository* repo) {
  git_branch_iterator* raw = nullptr;
  if (git_branch_iterator_new(&raw, repo, GIT_BRANCH_LOCAL) != 0) return GitError("list branches");
  GitPtr<git_branch_iterator, git_branch_iterator_free> it(raw);
  std::vector<Branch> out;
  git_reference* ref = nullptr;
  git_branch_t type;
  while (git_branch_next(&ref, &type, it.get()) == 0) {
    RefPtr owned(ref);
    git_reference* resolved = nullptr;
    if (git_reference_resolve(&resolved, ref) != 0) continue;
    out.push_back({git_reference_shorthand(ref), *git_reference_target(resolved)});
    git_reference_free(resolved);
  }
  return out;
}

Expected<TreePtr> CommitTree(git_repository* repo, const git_oid& id) {
  git_commit* c = nullptr;
  if (git_commit_lookup(&c, repo, &id) != 0) return GitError("commit");
  CommitPtr commit(c);
  git_tree* t = nullptr;
  if (git_commit_tree(&t, commit.get()) != 0) return GitError("tree");
  return TreePtr(t);
}

bool SameEntry(git_tree* a, git_tree* b, const std::string& path) {
  git_tree_entry *ea = nullptr, *eb = nullptr;
  bool has_a = git_tree_entry_bypath(&ea, a, path.c_str()) == 0;
  bool has_b = git_tree_entry_bypath(&eb, b, path.c_str()) == 0;
  bool same =
      has_a == has_b && (!has_a || (git_oid_equal(git_tree_entry_id(ea), git_tree_entry_id(eb)) &&
                                    git_tree_entry_filemode(ea) == git_tree_entry_filemode(eb)));
  git_tree_entry_free(ea);
  git_tree_entry_free(eb);
  return same;
}

// Whether a branch is a task branch (corral/<run>/<task>), which clean may remove.
bool IsTaskBranch(const std::string& name) {
  if (!name.starts_with("corral/")) return false;
  std::string rest = name.substr(7);
  size_t slash = rest.find('/');
  return slash != std::string::npos && rest.find('/', slash + 1) == std::string::npos &&
         rest.substr(slash + 1) != "merged";
}

// Where the work of `task` is kept, or "" when nowhere else. Only branches clean never removes
// count: two task branches must not vouch for each other and both go.
Expected<std::string> KeptOn(git_repository* repo, const Branch& task,
                             const std::vector<Branch>& all) {
  for (const Branch& other : all) {
    if (IsTaskBranch(other.name)) continue;
    if (git_oid_equal(&other.head, &task.head) ||
        git_graph_descendant_of(repo, &other.head, &task.head) == 1) {
      return "reachable from " + other.name;
    }
  }
  auto head_tree = CommitTree(repo, task.head);
  if (!head_tree) return std::unexpected(head_tree.error());
  for (const Branch& other : all) {
    if (IsTaskBranch(other.name)) continue;
    git_oid fork;
    if (git_merge_base(&fork, repo, &task.head, &other.head) != 0) continue;
    auto fork_tree = CommitTree(repo, fork);
    auto other_tree = CommitTree(repo, other.head);
    if (!fork_tree || !other_tree)
      return std::unexpected((fork_tree ? other_tree : fork_tree).error());
    std::set<std::string> changed;
    if (auto r = ChangedPaths(repo, fork_tree->get(), head_tree->get(), &changed); !r) {
      return std::unexpected(r.error());
    }
    // A change set that is empty has nothing to find elsewhere: its commits are its work.
    bool all_there =
        !changed.empty() && std::all_of(changed.begin(), changed.end(), [&](const std::string& p) {
          return SameEntry(head_tree->get(), other_tree->get(), p);
        });
    if (all_there) return "its changes are on " + other.name;
  }
  return std::string();
}

// Whether the worktree holds changes that are in no commit (untracked files not ignored too).
Expected<bool> Dirty(const Workspace& ws) {
  git_repository* raw = nullptr;
  if (git_repository_open(&raw, ws.admin_dir.c_str()) != 0) return GitError("open " + ws.admin_dir);
  RepoPtr repo(raw);
  git_status_options opts;
  git_status_options_init(&opts, GIT_STATUS_OPTIONS_VERSION);
  opts.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
  opts.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED | GIT_STATUS_OPT_RECURSE_UNTRACKED_DIRS;
  // An overlay workspace's folder holds only what changed (overlay.cc): only that is compared.
  std::vector<std::string> candidates;
  std::vector<char*> paths;
  std::set<std::string> not_checked_out;
  if (!ws.lower.empty()) {
    git_index* raw_index = nullptr;
    if (git_repository_index(&raw_index, repo.get()) != 0) return GitError("index of " + ws.path);
    IndexPtr index(raw_index);
    auto changes = ReadOverlay(ws.path, ws.lower, index.get(), false);
    if (!changes) return std::unexpected(changes.error());
    // A folder corral cannot list may hold work: kept, as a deletion is.
    if (changes->deletions || !changes->unreadable.empty()) return true;
    candidates = std::move(changes->candidates);
    not_checked_out = std::move(changes->not_checked_out);
    for (std::string& c : candidates) paths.push_back(c.data());
    opts.flags |= GIT_STATUS_OPT_DISABLE_PATHSPEC_MATCH;
    opts.pathspec = {paths.data(), paths.size()};
    if (paths.empty()) opts.show = GIT_STATUS_SHOW_INDEX_ONLY;
  }
  git_status_list* list = nullptr;
  if (git_status_list_new(&list, repo.get(), &opts) != 0) return GitError("status of " + ws.path);
  // A file the folder does not hold, below one it does, is not deleted: the export has it.
  bool dirty = false;
  for (size_t i = 0; i < git_status_list_entrycount(list) && !dirty; ++i) {
    const git_status_entry* e = git_status_byindex(list, i);
    const git_diff_delta* d = e->index_to_workdir;
    dirty = !(e->status == GIT_STATUS_WT_DELETED && d && not_checked_out.count(d->old_file.path));
  }
  git_status_list_free(list);
  return dirty;
}

}  // namespace

Expected<> Repository::LockWorkspace(const Workspace& ws, const std::string& reason) {
  git_worktree* wt = nullptr;
  std::string name = ws.admin_dir.substr(ws.admin_dir.rfind('/') + 1);
  if (git_worktree_lookup(&wt, repo_, name.c_str()) != 0) return GitError("worktree " + name);
  WorktreePtr owned(wt);
  if (git_worktree_lock(wt, reason.c_str()) != 0) return GitError("lock worktree " + name);
  return {};
}

Expected<> Repository::UnlockWorkspace(const Workspace& ws) {
  git_worktree* wt = nullptr;
  std::string name = ws.admin_dir.substr(ws.admin_dir.rfind('/') + 1);
  if (git_worktree_lookup(&wt, repo_, name.c_str()) != 0) return GitError("worktree " + name);
  WorktreePtr owned(wt);
  if (git_worktree_unlock(wt) < 0) return GitError("unlock worktree " + name);
  return {};
}

Expected<std::vector<CleanItem>> Repository::Clean(const CleanOptions& options) {
  auto branches = LocalBranches(repo_);
  if (!branches) return std::unexpected(branches.error());
  std::vector<CleanItem> items;
  for (const Branch& b : *branches) {
    // corral/<run>/<task>
    if (!IsTaskBranch(b.name)) continue;  // integration branches are the runs' results
    std::string rest = b.name.substr(7);
    size_t slash = rest.find('/');
    CleanItem item;
    item.run = rest.substr(0, slash);
    item.task = rest.substr(slash + 1);
    item.branch = b.name;
    if (!options.run.empty() && item.run != options.run) continue;
    git_reference* ref = nullptr;
    if (git_branch_lookup(&ref, repo_, b.name.c_str(), GIT_BRANCH_LOCAL) != 0) continue;
    RefPtr branch(ref);
    if (CheckedOutByUser(common_dir_, "refs/heads/" + b.name)) {
      item.reason = "checked out by the user";
      items.push_back(item);
      continue;
    }
    auto ws = FindWorkspace(item.run, item.task);
    if (ws) {
      std::string name = ws->admin_dir.substr(ws->admin_dir.rfind('/') + 1);
      git_worktree* wt = nullptr;
      if (git_worktree_lookup(&wt, repo_, name.c_str()) == 0) {
        WorktreePtr owned(wt);
        if (git_worktree_is_locked(nullptr, wt) > 0) {
          item.action = CleanItem::Action::kRunning;
          item.reason = "its sandbox is running";
          items.push_back(item);
          continue;
        }
      }
    }
    bool dirty = false;
    if (ws) {
      auto d = Dirty(*ws);
      if (!d) return std::unexpected(d.error());
      dirty = *d;
    }
    auto kept_on = KeptOn(repo_, b, *branches);
    if (!kept_on) return std::unexpected(kept_on.error());
    if (!dirty && !kept_on->empty()) {
      item.action = CleanItem::Action::kRemoved;
      item.reason = *kept_on;
    } else if (!options.force) {
      item.reason = dirty ? "uncommitted changes in " + ws->path : "its work is on no other branch";
    } else {
      item.action = CleanItem::Action::kArchived;
      item.reason = "refs/corral/archive/" + item.run + "/" + item.task;
    }
    if (options.dry_run || item.action == CleanItem::Action::kKept) {
      items.push_back(item);
      continue;
    }
    if (item.action == CleanItem::Action::kArchived) {
      git_oid head = b.head;
      if (dirty) {
        auto c = CommitAll(*ws, {item.run, item.task, "corral-clean@archive", {}, {}, {}});
        if (!c) return std::unexpected(c.error());
        git_oid_fromstr(&head, c->commit.c_str());
      }
      // Never overwrite an earlier archive of the same task.
      std::string ref_name = item.reason;
      for (int n = 2; git_reference_lookup(&ref, repo_, ref_name.c_str()) == 0; ++n) {
        git_reference_free(ref);
        ref_name = item.reason + "-" + std::to_string(n);
      }
      if (git_reference_create(&ref, repo_, ref_name.c_str(), &head, 0, "corral clean --force") !=
          0) {
        return GitError("archive " + b.name);
      }
      git_reference_free(ref);
      item.reason = ref_name;
    }
    if (ws) {
      if (auto r = RemoveWorkspace(*ws); !r) return std::unexpected(r.error());
    }
    // Looked up again: archiving may have committed onto the branch since.
    if (git_branch_lookup(&ref, repo_, b.name.c_str(), GIT_BRANCH_LOCAL) != 0) {
      return GitError("branch " + b.name);
    }
    branch.reset(ref);
    // git_reference_delete, not git_branch_delete: corral's branches have no config section, and
    // libgit2 1.5.1 leaks a regex match per config entry while looking for one.
    if (git_reference_delete(branch.get()) != 0) return GitError("delete " + b.name);
    items.push_back(item);
  }
  auto exports = RemoveUnusedExports(common_dir_, options.dry_run);
  if (!exports) return std::unexpected(exports.error());
  for (const std::string& path : *exports) {
    CleanItem item;
    item.action = CleanItem::Action::kRemoved;
    item.path = path;
    item.reason = "an export no workspace uses";
    items.push_back(item);
  }
  return items;
}

}  // namespace corral::worktree
