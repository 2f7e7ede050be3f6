// Which paths of a worktree may differ from its index; private to corral::worktree.
#pragma once

#include <git2.h>

#include <optional>
#include <string>
#include <vector>

namespace corral::worktree {

struct WorktreeScan {
  // Sorted, unique, relative to the worktree: tracked paths whose stat data differ from their
  // index entry (mode, size, times, inode, owner) or that are racily clean, gone, or unusual
  // (gitlinks, intent-to-add, skip-worktree); and the untracked files and folders of tracked
  // folders (ignored ones too: libgit2 decides). Every path whose content may have changed is in
  // it; a path that is in it may still be unchanged.
  std::vector<std::string> candidates;
  std::vector<std::string> untracked_folders;  // of `candidates`, the folders
  // Tracked folders that cannot be listed or entered, as "path/", sorted, outermost only. What
  // is below them must be kept as it is: libgit2 takes a folder it cannot list for empty.
  std::vector<std::string> unreadable;
};

// Compares `root`'s tracked folders with `index` on several threads, the way git's preload-index
// does, so that libgit2's diff (one thread) only visits the candidates. Reads `index`'s entries
// and nothing of libgit2's shared state: REQUIRES nobody changes `index` meanwhile. Returns
// nullopt where the comparison by exact name cannot be trusted (a case-insensitive index, one
// with conflicts or gitlinks) or the root could not be listed: the caller diffs everything.
std::optional<WorktreeScan> ScanWorktree(const std::string& root, git_index* index);

}  // namespace corral::worktree
