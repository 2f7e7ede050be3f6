// The auto-commit of what an agent changed in its worktree.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <future>
#include <set>
#include <unordered_set>

#include "worktree/files.h"
#include "worktree/git_handle.h"
#include "worktree/overlay.h"
#include "worktree/scan.h"
#include "worktree/tree_diff.h"
#include "worktree/worktree.h"

namespace corral::worktree {
namespace {

struct AddPayload {
  git_index* index;
  std::string workdir;  // with a trailing '/'
  std::vector<Skipped>* skipped;
  const std::vector<std::pair<std::string, std::string>>* forbidden;
  std::vector<Skipped>* withheld;
  const std::set<std::string>* unchanged;  // CommitRequest::not_checked_out
  // Folders that cannot be listed ("path/", sorted, none below another) or null: what is below
  // them is kept as it is (libgit2 takes such a folder for empty).
  const std::vector<std::string>* kept_folders = nullptr;
};

bool Below(const std::vector<std::string>& folders, std::string_view path) {
  auto it = std::upper_bound(folders.begin(), folders.end(), path);
  return it != folders.begin() && path.starts_with(*std::prev(it));
}

// The label of the first forbidden value in `data`, or nullptr.
const std::string* Holds(std::string_view data,
                         const std::vector<std::pair<std::string, std::string>>& forbidden) {
  for (const auto& [label, bytes] : forbidden) {
    if (!bytes.empty() && data.find(bytes) != std::string_view::npos) return &label;
  }
  return nullptr;
}

// Scans a file in chunks that overlap by the longest value less one byte.
const std::string* FileHolds(int fd,
                             const std::vector<std::pair<std::string, std::string>>& forbidden) {
  size_t longest = 0;
  for (const auto& f : forbidden) longest = std::max(longest, f.second.size());
  if (longest == 0) return nullptr;
  std::string window;
  char buf[1 << 16];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) {
    window.append(buf, static_cast<size_t>(n));
    if (const std::string* hit = Holds(window, forbidden)) return hit;
    if (window.size() > longest - 1) window.erase(0, window.size() - (longest - 1));
  }
  return nullptr;
}

// Decides, per path libgit2 is about to stage, whether it goes into the commit. Paths kept out are
// recorded once, with the reason.
int FilterPath(const char* path, const char* /*matched_pathspec*/, void* data) {
  auto* p = static_cast<AddPayload*>(data);
  std::string full = p->workdir + path;
  struct stat st;
  // Outside a sparse checkout: absent, not deleted (a file that is there is staged as usual).
  if (p->unchanged->count(path) && lstat(full.c_str(), &st) != 0 && errno == ENOENT) return 1;
  while (full.size() > 1 && full.back() == '/') full.pop_back();
  // Deleted: let libgit2 drop it from the index. Below a folder that cannot be entered (which is
  // named): kept as it was.
  if (lstat(full.c_str(), &st) != 0) return errno == EACCES ? 1 : 0;
  auto skip = [&](const char* reason) {
    std::string rel(path);
    bool seen = std::any_of(p->skipped->begin(), p->skipped->end(),
                            [&](const Skipped& s) { return s.path == rel; });
    if (!seen) p->skipped->push_back({rel, reason});
    return 1;
  };
  if (S_ISDIR(st.st_mode)) {
    struct stat git;
    if (lstat((full + "/.git").c_str(), &git) == 0) return skip("nested repository");
    return 0;
  }
  const std::string* hit = nullptr;
  if (S_ISREG(st.st_mode)) {
    int fd = open(full.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return skip("unreadable");
    if (!p->forbidden->empty()) hit = FileHolds(fd, *p->forbidden);
    close(fd);
  } else if (S_ISLNK(st.st_mode) && !p->forbidden->empty()) {
    char target[4096];
    ssize_t n = readlink(full.c_str(), target, sizeof(target));
    if (n > 0) hit = Holds(std::string_view(target, static_cast<size_t>(n)), *p->forbidden);
  }
  if (hit) {
    std::string rel(path);
    bool seen = std::any_of(p->withheld->begin(), p->withheld->end(),
                            [&](const Skipped& s) { return s.path == rel; });
    if (!seen) p->withheld->push_back({rel, *hit});
    return 1;
  }
  return 0;
}

// The folders at and below `root`/`below` (`root`'s .git aside) that cannot be read or entered,
// as "path/" relative to `root`. `below` empty: `root` itself is not checked.
std::vector<Skipped> UnreadableFolders(const std::string& root, const std::string& below = "") {
  std::vector<Skipped> unreadable;
  std::string start = below.empty() ? root : root + "/" + below;
  std::error_code link_ec;
  if (std::filesystem::is_symlink(start, link_ec)) return {};
  if (!below.empty() && access(start.c_str(), R_OK | X_OK) != 0)
    return {{below + "/", "unreadable"}};
  std::error_code walk_ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           start, std::filesystem::directory_options::skip_permission_denied, walk_ec);
       !walk_ec && it != std::filesystem::recursive_directory_iterator(); it.increment(walk_ec)) {
    std::error_code ec;
    if (!it->is_directory(ec) || it->is_symlink(ec)) continue;
    if (below.empty() && it.depth() == 0 && it->path().filename() == ".git") {
      it.disable_recursion_pending();
      continue;
    }
    if (access(it->path().c_str(), R_OK | X_OK) != 0) {
      unreadable.push_back({it->path().lexically_relative(root).string() + "/", "unreadable"});
      it.disable_recursion_pending();
    }
  }
  return unreadable;
}

// What git_index_add_all does with each delta of its diff, after FilterPath.
int StageDelta(const git_diff_delta* delta, float /*progress*/, void* data) {
  auto* p = static_cast<AddPayload*>(data);
  if (p->kept_folders && Below(*p->kept_folders, delta->old_file.path)) return 0;
  if (FilterPath(delta->old_file.path, nullptr, p) != 0) return 0;
  if (!(delta->new_file.flags & GIT_DIFF_FLAG_EXISTS)) {
    return git_index_remove_bypath(p->index, delta->old_file.path);
  }
  return git_index_add_bypath(p->index, delta->new_file.path);
}

// git_index_add_all limited to `paths` (and what is below them): libgit2's diff decides what
// changed, what is ignored and what is a nested repository, but visits only those.
int StagePaths(git_index* index, const std::vector<std::string>& paths, AddPayload* payload) {
  if (paths.empty()) return 0;
  std::vector<char*> list;
  list.reserve(paths.size());
  for (const std::string& path : paths) list.push_back(const_cast<char*>(path.c_str()));
  git_diff_options opts;
  git_diff_options_init(&opts, GIT_DIFF_OPTIONS_VERSION);
  opts.flags = GIT_DIFF_INCLUDE_TYPECHANGE | GIT_DIFF_INCLUDE_UNTRACKED |
               GIT_DIFF_RECURSE_UNTRACKED_DIRS | GIT_DIFF_DISABLE_PATHSPEC_MATCH;
  opts.pathspec = {list.data(), list.size()};
  git_diff* raw = nullptr;
  if (int error = git_diff_index_to_workdir(&raw, git_index_owner(index), index, &opts)) {
    return error;
  }
  DiffPtr diff(raw);
  return git_diff_foreach(diff.get(), StageDelta, nullptr, nullptr, nullptr, payload);
}

// The blob at `path` of `tree`, or null (no such file, or not a file).
BlobPtr BlobAt(git_repository* repo, const git_tree* tree, const std::string& path) {
  git_tree_entry* raw = nullptr;
  if (git_tree_entry_bypath(&raw, tree, path.c_str()) != 0) return nullptr;
  TreeEntryPtr entry(raw);
  if (git_tree_entry_type(entry.get()) != GIT_OBJECT_BLOB) return nullptr;
  git_blob* blob = nullptr;
  if (git_blob_lookup(&blob, repo, git_tree_entry_id(entry.get())) != 0) return nullptr;
  return BlobPtr(blob);
}

CommitResult::LineStat LineStatOf(git_repository* repo, const git_tree* before,
                                  const git_tree* after, const std::string& path) {
  CommitResult::LineStat stat{path};
  BlobPtr a = BlobAt(repo, before, path), b = BlobAt(repo, after, path);
  git_patch* raw = nullptr;
  if (git_patch_from_blobs(&raw, a.get(), path.c_str(), b.get(), path.c_str(), nullptr) != 0) {
    return stat;
  }
  PatchPtr patch(raw);
  const git_diff_delta* delta = git_patch_get_delta(patch.get());
  stat.binary = delta && (delta->flags & GIT_DIFF_FLAG_BINARY);
  git_patch_line_stats(nullptr, &stat.added, &stat.deleted, patch.get());
  return stat;
}

}  // namespace

Expected<CommitResult> Repository::CommitAll(const Workspace& ws, const CommitRequest& request) {
  // Through the admin directory: never through a .git the agent could have replaced.
  git_repository* raw = nullptr;
  if (git_repository_open(&raw, ws.admin_dir.c_str()) != 0) return GitError("open " + ws.admin_dir);
  RepoPtr wrepo(raw);
  const char* workdir = git_repository_workdir(wrepo.get());
  if (!workdir || std::string(workdir) != ws.path + "/") {
    return Fail("worktree " + ws.admin_dir + " does not point at " + ws.path);
  }
  git_index* raw_index = nullptr;
  if (git_repository_index(&raw_index, wrepo.get()) != 0) return GitError("index of " + ws.path);
  IndexPtr index(raw_index);  // read from disk: the repository was opened just now

  // The head, and what the index must start from: when the agent's own commits moved the
  // branch (CommitRequest::since), the index still holds the try's start, so the head's tree is
  // read into it first; otherwise what the agent left out (withheld, unreadable, not checked
  // out) would go back to the start's version.
  git_reference* raw_head = nullptr;
  if (git_repository_head(&raw_head, wrepo.get()) != 0) return GitError("HEAD of " + ws.path);
  RefPtr head(raw_head);
  git_commit* raw_parent = nullptr;
  if (git_commit_lookup(&raw_parent, wrepo.get(), git_reference_target(head.get())) != 0) {
    return GitError("HEAD commit of " + ws.path);
  }
  CommitPtr parent(raw_parent);
  git_oid since_id;
  if (!request.since.empty() && git_oid_fromstr(&since_id, request.since.c_str()) == 0 &&
      !git_oid_equal(&since_id, git_commit_id(parent.get()))) {
    git_tree* raw_head_tree = nullptr;
    if (git_commit_tree(&raw_head_tree, parent.get()) != 0) return GitError("HEAD tree");
    TreePtr head_tree(raw_head_tree);
    if (git_index_read_tree(index.get(), head_tree.get()) != 0) {
      return GitError("read the HEAD tree into the index of " + ws.path);
    }
  }

  CommitResult result;
  std::set<std::string> not_checked_out = request.not_checked_out;
  AddPayload payload{index.get(),        workdir,          &result.skipped,
                     &request.forbidden, &result.withheld, &not_checked_out};
  // libgit2's diff of the whole worktree lstat()s every file on one thread; a scan on several
  // threads first narrows it to the paths whose stat data moved (git's preload-index). An
  // overlay workspace's folder holds only what changed: that is the list.
  std::optional<WorktreeScan> scan;
  std::unordered_set<std::string> in_folder;  // an overlay's: what its folder holds
  bool overlay = !ws.lower.empty();
  if (overlay) {
    auto changes = ReadOverlay(ws.path, ws.lower, index.get(), true);
    if (!changes) return std::unexpected(changes.error());
    // libgit2's diff takes a skip-worktree entry for unchanged: what is not in the folder is
    // kept by not_checked_out instead.
    ClearSkipWorktree(index.get());
    // What overlayfs left in its work folder (a folder of mode 0 among it) goes; the folder stays
    // for the next mount.
    RemoveTree(ws.overlay_work);
    if (mkdir(ws.overlay_work.c_str(), 0700) != 0) {
      return Fail("create " + ws.overlay_work + ": " + std::strerror(errno));
    }
    not_checked_out.insert(changes->not_checked_out.begin(), changes->not_checked_out.end());
    in_folder = std::move(changes->in_folder);
    scan = WorktreeScan{std::move(changes->candidates), {}, std::move(changes->unreadable)};
    std::sort(scan->unreadable.begin(), scan->unreadable.end());
  } else {
    scan = ScanWorktree(ws.path, index.get());
  }
  if (scan) payload.kept_folders = &scan->unreadable;
  char star[] = "*";
  char* patterns[] = {star};
  git_strarray all = {patterns, 1};
  // A folder the agent made unreadable is one libgit2 passes over in silence: it is named. The
  // walk reads every folder once; it runs beside libgit2's own walk of the worktree. After a
  // scan, only the untracked folders are left to walk.
  auto unreadable = std::async(std::launch::async | std::launch::deferred, [&ws, &scan] {
    if (!scan) return UnreadableFolders(ws.path);
    std::vector<Skipped> found;
    for (const std::string& folder : scan->unreadable) found.push_back({folder, "unreadable"});
    for (const std::string& folder : scan->untracked_folders) {
      std::vector<Skipped> below = UnreadableFolders(ws.path, folder);
      found.insert(found.end(), below.begin(), below.end());
    }
    return found;
  });
  // A `git gc` beside us may remove an empty object fan-out folder between libgit2's mkdir and
  // its rename into it (git retries there; libgit2 1.5.1 fails): then the staging is redone.
  git_oid tree_id;
  for (int attempt = 1;; ++attempt) {
    result.skipped.clear();
    result.withheld.clear();
    int staged =
        scan ? StagePaths(index.get(), scan->candidates, &payload)
             : git_index_add_all(index.get(), &all, GIT_INDEX_ADD_DEFAULT, FilterPath, &payload);
    if (staged == 0 && git_index_write_tree(&tree_id, index.get()) == 0) break;
    const git_error* e = git_error_last();
    std::error_code ec;
    bool vanished_folder = e && e->klass == GIT_ERROR_OS && e->message &&
                           std::strstr(e->message, "No such file or directory") &&
                           std::filesystem::is_directory(ws.path, ec);
    if (!vanished_folder || attempt == 5) return GitError("stage changes in " + ws.path);
  }
  // The overlay's folder is a sparse worktree from now on: what is not in it is skip-worktree.
  if (overlay) {
    MarkNotCheckedOut(index.get(), in_folder, scan->unreadable);
    if (git_index_write(index.get()) != 0) return GitError("write index of " + ws.path);
  }

  std::vector<Skipped> folders = unreadable.get();
  result.skipped.insert(result.skipped.end(), folders.begin(), folders.end());
  for (auto* list : {&result.skipped, &result.withheld}) {
    std::sort(list->begin(), list->end(),
              [](const Skipped& a, const Skipped& b) { return a.path < b.path; });
  }
  result.commit = git_oid_tostr_s(git_commit_id(parent.get()));
  bool unchanged = git_oid_equal(&tree_id, git_commit_tree_id(parent.get()));

  // What changed: since `request.since` when set, else since the parent.
  git_commit* raw_from = nullptr;
  git_oid since;
  if (!request.since.empty() && (git_oid_fromstr(&since, request.since.c_str()) != 0 ||
                                 git_commit_lookup(&raw_from, wrepo.get(), &since) != 0)) {
    return GitError("commit " + request.since);
  }
  CommitPtr from(raw_from);
  if (unchanged && (!from || git_oid_equal(&since, git_commit_id(parent.get())))) return result;
  git_tree* raw_tree = nullptr;
  if (git_tree_lookup(&raw_tree, wrepo.get(), &tree_id) != 0) return GitError("tree");
  TreePtr tree(raw_tree);
  git_tree* raw_old = nullptr;
  if (git_commit_tree(&raw_old, from ? from.get() : parent.get()) != 0)
    return GitError("parent tree");
  TreePtr old_tree(raw_old);
  std::set<std::string> changed;
  if (auto r = ChangedPaths(wrepo.get(), old_tree.get(), tree.get(), &changed); !r) {
    return std::unexpected(r.error());
  }
  result.files_changed.assign(changed.begin(), changed.end());
  for (const std::string& path : result.files_changed) {
    if (result.line_stats.size() == CommitResult::kMaxLineStats) break;
    result.line_stats.push_back(LineStatOf(wrepo.get(), old_tree.get(), tree.get(), path));
  }
  if (unchanged) {  // the agent committed everything itself
    result.committed = true;
    return result;
  }

  auto sig = CorralSignature(wrepo.get());
  if (!sig) return std::unexpected(sig.error());
  std::string message = "corral: task " + request.task + "\n\nCorral-Run: " + request.run +
                        "\nCorral-Task: " + request.task + "\nCorral-Policy: " + request.policy +
                        "\n";
  git_oid commit_id;
  const git_commit* parents[] = {parent.get()};
  if (RetryLocked([&] {
        return git_commit_create(&commit_id, wrepo.get(), "HEAD", sig->get(), sig->get(), nullptr,
                                 message.c_str(), tree.get(), 1, parents);
      }) != 0) {
    return GitError("commit in " + ws.path);
  }
  if (git_index_write(index.get()) != 0) return GitError("write index of " + ws.path);
  result.committed = true;
  result.commit = git_oid_tostr_s(&commit_id);
  return result;
}

}  // namespace corral::worktree
