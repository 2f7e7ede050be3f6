// Mount namespace: the sandbox's filesystem view, built from nothing.
#pragma once

#include <string>
#include <vector>

#include "sandbox/error.h"
#include "sandbox/spec.h"

namespace corral::sandbox::mnt {

// Parent side, before the sandbox starts: creates, as the invoking user, the protected paths that
// do not exist yet (empty files or directories), so a read-only mount can cover them. Returns
// what it created, deepest last. Fails when a component of a protected path is a symlink.
Expected<std::vector<std::string>> CreatePlaceholders(const Spec& spec);

// Parent side, after the sandbox ended: removes placeholders that are still empty.
void RemovePlaceholders(const std::vector<std::string>& created);

// Parent side, before the sandbox starts: marks read-only binds that are symlinks on the host
// (like /bin -> usr/bin), which are recreated inside instead of followed.
void ResolveSymlinks(Spec* spec);

// Parent side, privileged only: detached clones (open_tree) of the workspace and of every bind
// that is not a symlink, in spec order, then of every file of Spec::files, opened with the
// caller's rights rather than the sandbox user's. The workspace, writable binds and files are
// id-mapped through the user namespace `userns_fd`, so the sandbox user's writes land as the
// invoking user's, and what the invoking user owns is the sandbox user's inside.
Expected<std::vector<int>> OpenBinds(const Spec& spec, int userns_fd);

// Child side, in a new mount namespace with capabilities in its user namespace: builds the new
// root (binds, /proc, /dev, /tmp, protected paths) and pivots into it. `detached` are the fds from
// OpenBinds, or empty to bind the host paths directly (as the invoking user).
Expected<> BuildRoot(const Spec& spec, const std::vector<int>& detached);

}  // namespace corral::sandbox::mnt
