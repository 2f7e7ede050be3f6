#include "sandbox/user.h"

#include "sandbox/fdio.h"
#include "sandbox/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>

namespace corral::sandbox::user {
// Whether this process is in the initial user namespace: its uid_map maps every id to itself.
// Root of a user namespace (a rootless container, `unshare -r`) is not root of the host: it may
// not map other ids or keep its groups, so it sandboxes as an unprivileged user does.
bool InInitialUserNamespace() {
  std::ifstream in("/proc/self/uid_map");
  uint64_t inside = 1, outside = 1, count = 0;
  in >> inside >> outside >> count;
  uint64_t more = 0;
  return inside == 0 && outside == 0 && count == 4294967295ULL && !(in >> more);
}

Identity IdentityForCaller() {
  uid_t uid = geteuid();
  gid_t gid = getegid();
  if (uid == 0 && InInitialUserNamespace()) {
    return Identity{0, 0, kRootSandboxId, kRootSandboxId, true};
  }
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

namespace corral::sandbox {

bool SandboxMayOpen(const std::string& path, int mode) {
  user::Identity id = user::IdentityForCaller();
  if (!id.privileged) return access(path.c_str(), mode) == 0;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return false;
  // The class that applies, then its read and write bits as asked.
  int shift = st.st_uid == id.host_uid ? 6 : st.st_gid == id.host_gid ? 3 : 0;
  mode_t want = ((mode & R_OK) ? S_IROTH : 0) | ((mode & W_OK) ? S_IWOTH : 0);
  return ((st.st_mode >> shift) & want) == want;
}

}  // namespace corral::sandbox
