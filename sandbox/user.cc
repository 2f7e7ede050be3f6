#include "sandbox/user.h"
#include "sandbox/fdio.h"

#include <fcntl.h>
#include <grp.h>
#include <unistd.h>

#include <string>

namespace corral::sandbox::user {
Identity IdentityForCaller() {
  uid_t uid = geteuid();
  gid_t gid = getegid();
  if (uid == 0) return Identity{0, 0, kRootSandboxId, kRootSandboxId, true};
  return Identity{uid, gid, uid, gid, false};
}

Expected<> WriteMaps(pid_t pid, const Identity& id) {
  std::string proc = "/proc/" + std::to_string(pid);
  // Unprivileged callers must give up setgroups before they may write gid_map. Root keeps the
  // child's group list empty instead (the helper dropped its supplementary groups).
  if (!id.privileged) {
    if (auto r = WriteFile(proc + "/setgroups", "deny"); !r) return r;
  }
  if (auto r = WriteFile(proc + "/uid_map",
                         std::to_string(id.inside_uid) + " " + std::to_string(id.host_uid) + " 1\n");
      !r) {
    return r;
  }
  return WriteFile(proc + "/gid_map",
                   std::to_string(id.inside_gid) + " " + std::to_string(id.host_gid) + " 1\n");
}

Expected<> BecomeInside(const Identity& id) {
  if (setresgid(id.inside_gid, id.inside_gid, id.inside_gid) != 0) return ErrnoError("setresgid");
  if (setresuid(id.inside_uid, id.inside_uid, id.inside_uid) != 0) return ErrnoError("setresuid");
  return {};
}

}  // namespace corral::sandbox::user
