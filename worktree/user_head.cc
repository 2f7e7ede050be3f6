#include "worktree/user_head.h"

#include <filesystem>
#include <fstream>

namespace corral::worktree {
namespace {

bool HeadIs(const std::string& head_file, const std::string& refname) {
  std::ifstream in(head_file);
  std::string line;
  std::getline(in, line);
  return line == "ref: " + refname;
}

}  // namespace

bool CheckedOutByUser(const std::string& common_dir, const std::string& refname) {
  if (HeadIs(common_dir + "/HEAD", refname)) return true;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(common_dir + "/worktrees", ec)) {
    // corral's task worktrees are named <run>.<task> and live below <common>/corral/worktrees.
    std::ifstream gitdir(entry.path() / "gitdir");
    std::string path;
    std::getline(gitdir, path);
    if (path.starts_with(common_dir + "/corral/worktrees/")) continue;
    if (HeadIs(entry.path() / "HEAD", refname)) return true;
  }
  return false;
}

}  // namespace corral::worktree
