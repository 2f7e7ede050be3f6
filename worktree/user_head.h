// Which branches the user has checked out; private to corral::worktree.
#pragma once

#include <string>

namespace corral::worktree {

// Whether `refname` (refs/heads/...) is the HEAD of the main worktree or of a worktree that is
// not one of corral's task worktrees.
bool CheckedOutByUser(const std::string& common_dir, const std::string& refname);

}  // namespace corral::worktree
