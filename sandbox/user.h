// User namespace: who the command is inside and on the host.
#pragma once

#include <sys/types.h>

#include "sandbox/error.h"

namespace corral::sandbox::user {

// The host uid/gid the sandbox runs as when corral itself runs as root: an id that owns nothing on
// the host, so root-only files stay closed to the agent. Files it writes in the workspace still
// belong to root on disk, through an id-mapped mount.
inline constexpr uid_t kRootSandboxId = 2147483646;

struct Identity {
  uid_t inside_uid;
  gid_t inside_gid;
  uid_t host_uid;
  gid_t host_gid;
  bool privileged;  // corral runs as root: workspace binds are id-mapped to the invoker
};

// Parent side. The identity for the calling user.
Identity IdentityForCaller();

// Parent side: writes setgroups/uid_map/gid_map of the child `pid` (in its new user namespace).
Expected<> WriteMaps(pid_t pid, const Identity& id);

// Child side, first step after the maps exist: takes the inside uid/gid.
Expected<> BecomeInside(const Identity& id);

}  // namespace corral::sandbox::user
