// Small file helpers private to corral::worktree.
#pragma once

#include <string>

#include "worktree/error.h"

namespace corral::worktree {

// Writes `content` to `path`, opened with O_WRONLY | O_CREAT | O_CLOEXEC | `flags` (O_EXCL: a
// file that must not exist yet; O_TRUNC | O_NOFOLLOW: replace one, never through a symlink).
// Errors name the path.
Expected<> WriteFileAt(const std::string& path, const std::string& content, int flags);

// Removes a tree an agent may have made unreadable or unwritable.
void RemoveTree(const std::string& path);

}  // namespace corral::worktree
