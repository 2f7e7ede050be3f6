// Which paths differ between two trees; private to corral::worktree.
#pragma once

#include <git2.h>

#include <set>
#include <string>

#include "worktree/error.h"

namespace corral::worktree {

// Adds to `paths` every file path whose entry differs between `a` and `b` (either may be null:
// empty). A rename counts as both paths. Subtrees with the same id on both sides are skipped
// without being read, so the cost follows the change, not the size of the tree.
Expected<> ChangedPaths(git_repository* repo, const git_tree* a, const git_tree* b,
                        std::set<std::string>* paths);

}  // namespace corral::worktree
