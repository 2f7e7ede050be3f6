// Creating and removing task worktrees.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "worktree/files.h"
#include "worktree/git_handle.h"
#include "worktree/overlay.h"
#include "worktree/worktree.h"

namespace corral::worktree {
namespace {

namespace fs = std::filesystem;

std::string WorktreesRoot(const std::string& common) { return common + "/corral/worktrees"; }
std::string AdminName(const std::string& run, const std::string& task) { return run + "." + task; }

// Whether a task's worktree was made whole: its folders and the four metadata files.
bool Complete(const Workspace& ws) {
  std::error_code ec;
  for (const std::string& f : {ws.admin_dir + "/gitdir", ws.admin_dir + "/commondir",
                               ws.admin_dir + "/HEAD", ws.path + "/.git"}) {
    if (!fs::is_regular_file(f, ec)) return false;
  }
  return true;
}

// Writes a file that must not exist yet.
Expected<> WriteNew(const std::string& path, const std::string& content) {
  return WriteFileAt(path, content, O_EXCL);
}

// The linked worktree's metadata, as `git worktree add` and libgit2's git_worktree_add write it
// (gitrepository-layout(5)): the admin folder's gitdir, commondir and HEAD, and the worktree's
// .git file. Written here because libgit2 1.5.1's git_worktree_add first asks whether the branch
// is checked out anywhere, which opens the repository of every worktree there is: a run's n-th
// task paid for the n-1 before it (O(n^2) per run), although a branch created a moment ago under
// the same lock cannot be checked out anywhere. libgit2 opens the result right after.
Expected<> AddWorktreeMetadata(const Workspace& ws, const std::string& common_dir) {
  std::error_code ec;
  fs::create_directories(fs::path(ws.admin_dir).parent_path(), ec);
  if (ec) return Fail("create " + fs::path(ws.admin_dir).parent_path().string() + ": " + ec.message());
  if (mkdir(ws.path.c_str(), 0755) != 0) return Fail("create " + ws.path + ": " + std::strerror(errno));
  if (auto r = WriteNew(ws.path + "/.git", "gitdir: " + ws.admin_dir + "\n"); !r) return r;
  // The admin folder is made whole elsewhere and renamed into place: `git worktree prune` (which
  // `git gc` runs) deletes an entry of .git/worktrees/ that it finds without its gitdir file.
  std::string staging = common_dir + "/corral/tmp/" + fs::path(ws.admin_dir).filename().string();
  fs::create_directories(fs::path(staging).parent_path(), ec);
  RemoveTree(staging);  // left by a corral killed here
  if (mkdir(staging.c_str(), 0755) != 0) return Fail("create " + staging + ": " + std::strerror(errno));
  for (const auto& [name, content] :
       {std::pair{std::string("gitdir"), ws.path + "/.git\n"},
        std::pair{std::string("commondir"), std::string("../..\n")},
        std::pair{std::string("HEAD"), "ref: refs/heads/" + ws.branch + "\n"}}) {
    if (auto r = WriteNew(staging + "/" + name, content); !r) {
      RemoveTree(staging);
      return r;
    }
  }
  if (rename(staging.c_str(), ws.admin_dir.c_str()) != 0) {
    int err = errno;
    RemoveTree(staging);
    return Fail("rename " + staging + " to " + ws.admin_dir + ": " + std::strerror(err));
  }
  return {};
}

}  // namespace

Expected<> WriteFileAt(const std::string& path, const std::string& content, int flags) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
  if (fd < 0) return Fail("create " + path + ": " + std::strerror(errno));
  ssize_t n = write(fd, content.data(), content.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(content.size())) {
    return Fail("write " + path + ": " + (n < 0 ? std::strerror(err) : "short write"));
  }
  return {};
}

void RemoveTree(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(path, ec))) return;
  chmod(path.c_str(), 0700);
  for (auto it = fs::recursive_directory_iterator(
           path, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) chmod(it->path().c_str(), 0700);
  }
  fs::remove_all(path, ec);
}

std::string WorkspacePath(const std::string& common_dir, const std::string& run,
                          const std::string& task) {
  return WorktreesRoot(common_dir) + "/" + run + "/" + task;
}

Expected<Workspace> Repository::FindWorkspace(const std::string& run,
                                              const std::string& task) const {
  Workspace ws{run,
               task,
               WorkspacePath(common_dir_, run, task),
               TaskBranch(run, task),
               common_dir_ + "/worktrees/" + AdminName(run, task),
               "",
               "",
               ""};
  if (!Complete(ws)) return Fail("no workspace for task '" + task + "' of run '" + run + "'");
  if (std::string exported = ReadOverlayMarker(ws.admin_dir); !exported.empty()) {
    ws.lower = ExportTree(common_dir_, exported);
    ws.overlay_work = OverlayWorkPath(ws.path);
  }
  return ws;
}

Expected<std::vector<std::string>> Repository::ClearStaleLocks(
    const std::string& run, std::chrono::system_clock::time_point before) {
  if (std::string e = CheckId(run, "run id"); !e.empty()) return Fail(e);
  std::vector<std::string> candidates;
  std::error_code ec;
  std::vector<std::string> roots = {common_dir_ + "/refs/heads/corral/" + run};
  for (const auto& e : fs::directory_iterator(common_dir_ + "/refs/corral", ec)) {
    roots.push_back(e.path() / run);  // refs/corral/inputs/<run>/...
  }
  for (const std::string& root : roots) {
    ec.clear();
    for (auto it = fs::recursive_directory_iterator(root, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->path().extension() == ".lock") candidates.push_back(it->path());
    }
  }
  ec.clear();
  for (const auto& e : fs::directory_iterator(common_dir_ + "/worktrees", ec)) {
    if (e.path().filename().string().starts_with(run + ".")) {
      candidates.push_back(e.path() / "index.lock");
    }
  }
  std::vector<std::string> removed;
  for (const std::string& path : candidates) {
    struct stat st;
    if (lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    auto mtime = std::chrono::system_clock::time_point(
        std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec));
    if (mtime < before && unlink(path.c_str()) == 0) removed.push_back(path);
  }
  return removed;
}

Expected<Workspace> Repository::CreateWorkspace(const std::string& run, const std::string& task,
                                                const std::string& base,
                                                const std::string& export_commit) {
  for (const auto& [id, what] : {std::pair{run, "run id"}, std::pair{task, "task id"}}) {
    if (std::string e = CheckId(id, what); !e.empty()) return Fail(e);
  }
  git_oid base_oid;
  if (git_oid_fromstr(&base_oid, base.c_str()) != 0)
    return Fail("base '" + base + "' is not a commit id");
  git_commit* raw_commit = nullptr;
  if (git_commit_lookup(&raw_commit, repo_, &base_oid) != 0) return GitError("base " + base);
  CommitPtr commit(raw_commit);

  Workspace ws{run,
               task,
               WorkspacePath(common_dir_, run, task),
               TaskBranch(run, task),
               common_dir_ + "/worktrees/" + AdminName(run, task),
               base,
               "",
               ""};
  std::optional<FileLock> export_in_use;
  if (!export_commit.empty()) {
    auto lower = EnsureExport(repo_, common_dir_, export_commit, &export_in_use);
    if (!lower) return std::unexpected(lower.error());
    ws.lower = *lower;
    ws.overlay_work = OverlayWorkPath(ws.path);
  }
  std::error_code ec;
  fs::create_directories(WorktreesRoot(common_dir_) + "/" + run, ec);
  if (ec) return Fail("create " + WorktreesRoot(common_dir_) + "/" + run + ": " + ec.message());

  RefPtr branch;
  {
    auto lock = FileLock::Acquire(common_dir_ + "/corral/worktrees.lock");
    if (!lock) return std::unexpected(lock.error());
    bool path_there = fs::exists(fs::symlink_status(ws.path, ec));
    bool admin_there = fs::exists(fs::symlink_status(ws.admin_dir, ec));
    if (path_there || admin_there) {
      if (Complete(ws)) {
        return Fail("a workspace for task '" + task + "' of run '" + run + "' exists already");
      }
      // Half made by a corral killed while it created it: no agent ever ran in it.
      RemoveTree(ws.path);
      RemoveTree(ws.admin_dir);
    }
    RemoveTree(OverlayWorkPath(ws.path));
    // Likewise a branch made just before such a kill: it points at a start commit, nothing more.
    git_reference* stale = nullptr;
    if (git_reference_lookup(&stale, repo_, ("refs/heads/" + ws.branch).c_str()) == 0) {
      git_reference_delete(stale);
      git_reference_free(stale);
    }
    git_reference* raw_ref = nullptr;
    if (RetryLocked([&] {
          return git_branch_create(&raw_ref, repo_, ws.branch.c_str(), commit.get(), 0);
        }) != 0) {
      return GitError("create branch " + ws.branch);
    }
    branch.reset(raw_ref);
    if (auto r = AddWorktreeMetadata(ws, common_dir_); !r) {
      RemoveTree(ws.path);
      RemoveTree(ws.admin_dir);
      git_reference_delete(branch.get());  // not git_branch_delete: see clean.cc
      return std::unexpected(r.error());
    }
  }
  auto rollback = [&](std::unexpected<Error> error) -> Expected<Workspace> {
    RemoveTree(ws.path);
    RemoveTree(ws.admin_dir);
    RemoveTree(OverlayWorkPath(ws.path));
    git_reference_delete(branch.get());  // not git_branch_delete: see clean.cc
    return error;
  };
  git_repository* raw_wrepo = nullptr;
  if (git_repository_open(&raw_wrepo, ws.admin_dir.c_str()) != 0) {
    return rollback(GitError("open worktree " + ws.admin_dir));
  }
  RepoPtr wrepo(raw_wrepo);
  if (!ws.lower.empty()) {
    if (auto r = WriteOverlayMarker(ws.admin_dir, export_commit); !r) {
      return rollback(std::unexpected(r.error()));
    }
    if (mkdir(ws.overlay_work.c_str(), 0700) != 0) {
      return rollback(Fail("create " + ws.overlay_work + ": " + std::strerror(errno)));
    }
    if (auto r = FillOverlay(wrepo.get(), common_dir_, ws.path, ws.admin_dir, export_commit,
                             commit.get());
        !r) {
      return rollback(std::unexpected(r.error()));
    }
    return ws;
  }
  git_tree* raw_tree = nullptr;  // looked up in the worktree's repository object: checkout insists
  if (git_tree_lookup(&raw_tree, wrepo.get(), git_commit_tree_id(commit.get())) != 0) {
    return rollback(GitError("tree of " + base));
  }
  TreePtr tree(raw_tree);
  git_checkout_options checkout;
  git_checkout_options_init(&checkout, GIT_CHECKOUT_OPTIONS_VERSION);
  checkout.checkout_strategy = GIT_CHECKOUT_FORCE;
  if (git_checkout_tree(wrepo.get(), reinterpret_cast<git_object*>(tree.get()), &checkout) != 0) {
    return rollback(GitError("check out " + ws.path));
  }
  return ws;
}

Expected<> Repository::ResetWorkspace(const Workspace& ws, const std::string& commit) {
  git_repository* raw = nullptr;
  if (git_repository_open(&raw, ws.admin_dir.c_str()) != 0) return GitError("open " + ws.admin_dir);
  RepoPtr wrepo(raw);
  git_object* target = nullptr;
  if (git_revparse_single(&target, wrepo.get(), (commit + "^{commit}").c_str()) != 0) {
    return GitError("commit " + commit);
  }
  GitPtr<git_object, git_object_free> owned(target);
  if (!ws.lower.empty()) {
    // The folder emptied but for its .git file, then filled again as CreateWorkspace does (the
    // export made again if someone removed it).
    std::string exported = ReadOverlayMarker(ws.admin_dir);
    // The index is copied from the export again below; a corral killed while it copied it the
    // last time left it cut short, which the soft reset would refuse to read.
    if (unlink((ws.admin_dir + "/index").c_str()) != 0 && errno != ENOENT) {
      return Fail("remove " + ws.admin_dir + "/index: " + std::strerror(errno));
    }
    std::optional<FileLock> export_in_use;
    if (auto lower = EnsureExport(repo_, common_dir_, exported, &export_in_use); !lower) {
      return std::unexpected(lower.error());
    }
    if (git_reset(wrepo.get(), target, GIT_RESET_SOFT, nullptr) != 0) {
      return GitError("reset " + ws.path);
    }
    std::error_code ec;
    std::vector<std::string> entries;
    for (const auto& e : fs::directory_iterator(ws.path, ec)) {
      if (e.path().filename() != ".git") entries.push_back(e.path());
    }
    if (ec) return Fail("list " + ws.path + ": " + ec.message());
    for (const std::string& e : entries) RemoveTree(e);
    RemoveTree(ws.overlay_work);
    if (mkdir(ws.overlay_work.c_str(), 0700) != 0) {
      return Fail("create " + ws.overlay_work + ": " + std::strerror(errno));
    }
    return FillOverlay(wrepo.get(), common_dir_, ws.path, ws.admin_dir, exported,
                       reinterpret_cast<const git_commit*>(target));
  }
  // An empty index first: a file a killed commit had staged but never committed would otherwise
  // count as tracked, outlive the reset, and end up in the next try's commit.
  git_index* raw_index = nullptr;
  if (git_repository_index(&raw_index, wrepo.get()) != 0) return GitError("index of " + ws.path);
  GitPtr<git_index, git_index_free> index(raw_index);
  if (git_index_clear(index.get()) != 0 || git_index_write(index.get()) != 0) {
    return GitError("clear the index of " + ws.path);
  }
  git_checkout_options checkout;
  git_checkout_options_init(&checkout, GIT_CHECKOUT_OPTIONS_VERSION);
  checkout.checkout_strategy =
      GIT_CHECKOUT_FORCE | GIT_CHECKOUT_REMOVE_UNTRACKED | GIT_CHECKOUT_REMOVE_IGNORED;
  if (git_reset(wrepo.get(), target, GIT_RESET_HARD, &checkout) != 0) {
    return GitError("reset " + ws.path);
  }
  // git_reset's hard reset checks out with GIT_CHECKOUT_FORCE alone, whatever the options say:
  // untracked and ignored files stay. With the index now the commit's, they go here.
  if (git_checkout_head(wrepo.get(), &checkout) != 0) return GitError("clean " + ws.path);
  return {};
}

Expected<> Repository::RemoveWorkspace(const Workspace& ws) {
  std::string root = WorktreesRoot(common_dir_) + "/";
  if (!ws.path.starts_with(root) ||
      ws.admin_dir != common_dir_ + "/worktrees/" + AdminName(ws.run, ws.task)) {
    return Fail("refusing to remove " + ws.path + ": not a corral workspace of this repository");
  }
  RemoveTree(ws.path);
  RemoveTree(ws.admin_dir);
  RemoveTree(OverlayWorkPath(ws.path));
  return RemoveSandboxGit(ws.run, ws.task);
}

}  // namespace corral::worktree
