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

// The host paths whose files belong to the invoking user: the workspace first, then the writable
// binds in order. Mounted id-mapped when corral runs as root.
std::vector<std::string> OwnedPaths(const Spec& spec);

// Parent side, privileged only: detached clones of OwnedPaths(spec), id-mapped through the
// user namespace `userns_fd`, so the sandbox user's writes land as the invoking user's.
Expected<std::vector<int>> OpenIdmapped(const Spec& spec, int userns_fd);

// Child side, in a new mount namespace with capabilities in its user namespace: builds the new
// root (binds, /proc, /dev, /tmp, protected paths) and pivots into it. `idmapped` are the fds from
// OpenIdmapped, or empty to bind the writable paths directly.
Expected<> BuildRoot(const Spec& spec, const std::vector<int>& idmapped);

}  // namespace corral::sandbox::mnt
