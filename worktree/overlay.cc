// Overlay workspaces, the fast path for big repositories: a task's worktree folder holds only what
// differs from an export of the run's base (a checkout made once per base), and the sandbox shows
// the agent the two as one overlay (sandbox/mnt.cc), so a new workspace costs no checkout.
//
// On the host the worktree is an ordinary git worktree with a sparse index: every entry whose file
// is not in the folder is marked skip-worktree, so `git status` there is clean and `git
// sparse-checkout disable` (or `git checkout`) brings the files. While an agent runs, overlayfs
// also leaves its marks in the folder: a 0/0 character device (a whiteout) for each path it
// deleted and the attribute user.overlay.opaque on a folder it made anew; ReadOverlay reads them
// as deletions and removes them before the commit.
#include "worktree/overlay.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "worktree/files.h"
#include "worktree/git_handle.h"

namespace corral::worktree {
namespace {

namespace fs = std::filesystem;

constexpr const char* kMarker = "/corral-overlay";
constexpr const char* kOpaque = "user.overlay.opaque";

std::string ExportsRoot(const std::string& common) { return common + "/corral/exports"; }

enum class Upper { kFile, kFolder, kOpaque, kWhiteout };

bool IsWhiteout(const struct stat& st) {
  return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

// Removes overlayfs's own attributes (user.overlay.*) from `path`, never following a symlink.
void DropOverlayAttributes(const std::string& path) {
  char names[4096];
  ssize_t n = llistxattr(path.c_str(), names, sizeof(names));
  for (ssize_t at = 0; at < n; at += static_cast<ssize_t>(std::strlen(names + at)) + 1) {
    if (std::string_view(names + at).starts_with("user.overlay.")) {
      lremovexattr(path.c_str(), names + at);
    }
  }
}

// Sets or clears skip-worktree on index entries. libgit2 hands out its entries as const; the
// flags are plain data that git_index_write writes (as index version 3 when any is set).
void SetSkipWorktree(const git_index_entry* e, bool on) {
  auto* entry = const_cast<git_index_entry*>(e);
  if (on) {
    entry->flags_extended |= GIT_INDEX_ENTRY_SKIP_WORKTREE;
  } else {
    entry->flags_extended &= static_cast<uint16_t>(~GIT_INDEX_ENTRY_SKIP_WORKTREE);
  }
}

void FillStat(git_index_entry* e, const struct stat& st) {
  e->ctime = {static_cast<int32_t>(st.st_ctim.tv_sec), static_cast<uint32_t>(st.st_ctim.tv_nsec)};
  e->mtime = {static_cast<int32_t>(st.st_mtim.tv_sec), static_cast<uint32_t>(st.st_mtim.tv_nsec)};
  e->dev = static_cast<uint32_t>(st.st_dev);
  e->ino = static_cast<uint32_t>(st.st_ino);
  e->uid = st.st_uid;
  e->gid = st.st_gid;
  e->file_size = static_cast<uint32_t>(st.st_size);
}

// The tree of the commit `hex` names, looked up in `repo`.
Expected<TreePtr> TreeOf(git_repository* repo, const std::string& hex) {
  git_oid oid;
  git_commit* raw_commit = nullptr;
  if (git_oid_fromstr(&oid, hex.c_str()) != 0 || git_commit_lookup(&raw_commit, repo, &oid) != 0) {
    return GitError("commit " + hex);
  }
  CommitPtr commit(raw_commit);
  git_tree* raw_tree = nullptr;
  if (git_commit_tree(&raw_tree, commit.get()) != 0) return GitError("tree of " + hex);
  return TreePtr(raw_tree);
}

}  // namespace

std::string OverlayWorkPath(const std::string& workspace) {
  size_t slash = workspace.rfind('/');
  return workspace.substr(0, slash + 1) + "." + workspace.substr(slash + 1) + ".overlay";
}

std::string ReadOverlayMarker(const std::string& admin_dir) {
  std::error_code ec;
  if (!fs::is_regular_file(admin_dir + kMarker, ec)) return "";
  std::string commit;
  int fd = open((admin_dir + kMarker).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return "";
  char buf[64];
  ssize_t n = read(fd, buf, sizeof(buf));
  close(fd);
  if (n >= 40) commit.assign(buf, 40);
  return commit;
}

Expected<> WriteOverlayMarker(const std::string& admin_dir, const std::string& commit) {
  return WriteFileAt(admin_dir + kMarker, commit + "\n", O_TRUNC | O_NOFOLLOW);
}

std::string ExportTree(const std::string& common, const std::string& commit) {
  return ExportsRoot(common) + "/" + commit + "/tree";
}

namespace {

bool Later(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec);
}

// Returns once the file system's clock in `dir` has moved past `newest`, so that a file written
// from now on is newer. It moves in ticks: a few milliseconds on most file systems, a second or
// two on some. Gives up after 3 s (a clock set back): entries that are then racily clean are
// only compared again, never taken for unchanged. Where the probe cannot be made or stamped, it
// waits the longest tick there is, 1.1 s.
void WaitForTheClockToPass(const std::string& dir, const struct timespec& newest) {
  std::string probe = dir + "/.clock";
  int fd = open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool probed = fd >= 0;
  for (int waited_ms = 0; probed && waited_ms < 3000; ++waited_ms) {
    struct stat st;
    if (futimens(fd, nullptr) != 0 || fstat(fd, &st) != 0) probed = false;
    if (!probed || Later(st.st_mtim, newest)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (fd >= 0) {
    close(fd);
    unlink(probe.c_str());
  }
  if (!probed) std::this_thread::sleep_for(std::chrono::milliseconds(1100));
}

Expected<std::string> MakeExport(git_repository* repo, const std::string& common,
                                 const std::string& commit) {
  std::string dir = ExportsRoot(common) + "/" + commit;
  std::error_code ec;
  if (fs::is_regular_file(dir + "/index", ec)) return dir + "/tree";
  fs::create_directories(ExportsRoot(common), ec);
  if (ec) return Fail("create " + ExportsRoot(common) + ": " + ec.message());
  // One corral makes it; the others wait for it, then find it made.
  auto lock = FileLock::Acquire(ExportsRoot(common) + "/.lock");
  if (!lock) return std::unexpected(lock.error());
  if (fs::is_regular_file(dir + "/index", ec)) return dir + "/tree";
  auto tree_of = TreeOf(repo, commit);
  if (!tree_of) return std::unexpected(tree_of.error());
  TreePtr tree = std::move(*tree_of);
  // Made aside and renamed into place: a folder with an index is whole.
  std::string staging = ExportsRoot(common) + "/.staging-" + commit;
  RemoveTree(staging);  // left by a corral killed here
  RemoveTree(dir);      // likewise, renamed but without its index
  if (mkdir(staging.c_str(), 0755) != 0 || mkdir((staging + "/tree").c_str(), 0755) != 0) {
    return Fail("create " + staging + ": " + std::strerror(errno));
  }
  auto fail = [&](std::unexpected<Error> e) -> Expected<std::string> {
    RemoveTree(staging);
    return e;
  };
  std::string target = staging + "/tree";
  git_checkout_options checkout;
  git_checkout_options_init(&checkout, GIT_CHECKOUT_OPTIONS_VERSION);
  // The user's index and working tree are not touched: only the target folder is written.
  checkout.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_UPDATE_INDEX;
  checkout.target_directory = target.c_str();
  if (git_checkout_tree(repo, reinterpret_cast<git_object*>(tree.get()), &checkout) != 0) {
    return fail(GitError("check out " + commit + " into " + target));
  }
  // Its index, with the stat data of the files as checked out: the overlay shows them with the
  // same inode numbers and times, so an index copied from this one starts clean. Written once
  // the clock has moved on from the newest file's time, so no entry is racily clean.
  git_index* raw_index = nullptr;
  if (git_index_open(&raw_index, (staging + "/index").c_str()) != 0) {
    return fail(GitError("create " + staging + "/index"));
  }
  IndexPtr index(raw_index);
  if (git_index_read_tree(index.get(), tree.get()) != 0)
    return fail(GitError("index of " + commit));
  struct timespec newest {};
  for (size_t i = 0; i < git_index_entrycount(index.get()); ++i) {
    git_index_entry e = *git_index_get_byindex(index.get(), i);
    struct stat st;
    if (lstat((target + "/" + e.path).c_str(), &st) != 0) continue;  // a gitlink's empty folder
    if (S_ISDIR(st.st_mode)) continue;
    FillStat(&e, st);
    if (git_index_add(index.get(), &e) != 0) return fail(GitError("index of " + commit));
    for (const struct timespec& t : {st.st_mtim, st.st_ctim}) {
      if (Later(t, newest)) newest = t;
    }
  }
  WaitForTheClockToPass(staging, newest);
  if (git_index_write(index.get()) != 0) return fail(GitError("write " + staging + "/index"));
  if (rename(staging.c_str(), dir.c_str()) != 0) {
    return fail(Fail("rename " + staging + " to " + dir + ": " + std::strerror(errno)));
  }
  return dir + "/tree";
}

}  // namespace

Expected<std::string> EnsureExport(git_repository* repo, const std::string& common,
                                   const std::string& commit, std::optional<FileLock>* hold) {
  for (;;) {
    auto tree = MakeExport(repo, common, commit);
    if (!tree) return tree;
    // Held until a workspace's marker names the export: `corral clean` removes it otherwise.
    auto shared = FileLock::Acquire(ExportsRoot(common) + "/.lock", LOCK_SH);
    if (!shared) return std::unexpected(shared.error());
    std::error_code ec;
    if (fs::is_regular_file(ExportsRoot(common) + "/" + commit + "/index", ec)) {
      hold->emplace(std::move(*shared));
      return tree;
    }
  }
}

Expected<std::vector<std::string>> RemoveUnusedExports(const std::string& common, bool dry_run) {
  std::vector<std::string> removed;
  std::error_code ec;
  if (!fs::is_directory(ExportsRoot(common), ec)) return removed;
  auto lock = FileLock::Acquire(ExportsRoot(common) + "/.lock");
  if (!lock) return std::unexpected(lock.error());
  std::set<std::string> used;
  for (const auto& e : fs::directory_iterator(common + "/worktrees", ec)) {
    if (std::string c = ReadOverlayMarker(e.path().string()); !c.empty()) used.insert(c);
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return Fail("list " + common + "/worktrees: " + ec.message());
  }
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(ExportsRoot(common), ec)) {
    names.push_back(e.path().filename().string());
  }
  for (const std::string& name : names) {
    std::string path = ExportsRoot(common) + "/" + name;
    if (name.starts_with(".staging-")) {
      if (!dry_run) RemoveTree(path);  // a corral killed while it made it: the lock is ours
    } else if (name.size() == 40 && !used.count(name)) {
      if (!dry_run) RemoveTree(path);
      removed.push_back(path);
    }
  }
  return removed;
}

Expected<> FillOverlay(git_repository* wrepo, const std::string& common, const std::string& path,
                       const std::string& admin_dir, const std::string& export_commit,
                       const git_commit* start) {
  std::string export_dir = ExportsRoot(common) + "/" + export_commit;
  // The index starts as the export's.
  std::error_code ec;
  fs::copy_file(export_dir + "/index", admin_dir + "/index", fs::copy_options::overwrite_existing,
                ec);
  if (ec) return Fail("copy " + export_dir + "/index: " + ec.message());
  git_index* raw_index = nullptr;
  if (git_repository_index(&raw_index, wrepo) != 0) return GitError("index of " + path);
  IndexPtr index(raw_index);
  if (git_index_read(index.get(), 1) != 0) return GitError("read the index of " + path);

  // In the folder: what the start commit has differently from the export, and every
  // .gitignore and .gitattributes (corral reads them on the host, where the export is not seen).
  auto from_tree = TreeOf(wrepo, export_commit);
  if (!from_tree) return std::unexpected(from_tree.error());
  TreePtr from = std::move(*from_tree);
  git_tree* raw_to = nullptr;
  // Looked up in the worktree's repository object: checkout insists.
  if (git_tree_lookup(&raw_to, wrepo, git_commit_tree_id(start)) != 0) {
    return GitError("tree of the start commit");
  }
  TreePtr to(raw_to);
  git_diff* raw_diff = nullptr;
  if (git_diff_tree_to_tree(&raw_diff, wrepo, from.get(), to.get(), nullptr) != 0) {
    return GitError("diff of " + export_commit + " and the start commit");
  }
  DiffPtr diff(raw_diff);
  std::vector<std::string> paths, deleted;
  for (size_t i = 0; i < git_diff_num_deltas(diff.get()); ++i) {
    const git_diff_delta* d = git_diff_get_delta(diff.get(), i);
    if (d->status == GIT_DELTA_DELETED) {
      deleted.emplace_back(d->old_file.path);
    } else {
      paths.emplace_back(d->new_file.path);
    }
  }
  for (size_t i = 0; i < git_index_entrycount(index.get()); ++i) {
    std::string_view p = git_index_get_byindex(index.get(), i)->path;
    std::string_view name = p.substr(p.find_last_of('/') + 1);  // npos + 1 is 0
    if (name == ".gitignore" || name == ".gitattributes") paths.emplace_back(p);
  }
  if (!paths.empty()) {
    std::vector<char*> list;
    list.reserve(paths.size());
    for (std::string& p : paths) list.push_back(p.data());
    git_checkout_options checkout;
    git_checkout_options_init(&checkout, GIT_CHECKOUT_OPTIONS_VERSION);
    checkout.checkout_strategy =
        GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DISABLE_PATHSPEC_MATCH | GIT_CHECKOUT_DONT_UPDATE_INDEX;
    checkout.paths = {list.data(), list.size()};
    if (git_checkout_tree(wrepo, reinterpret_cast<const git_object*>(to.get()), &checkout) != 0) {
      return GitError("check out the start commit's changes into " + path);
    }
  }
  // The index: the start commit's entries, with the stat data of the files written here.
  for (const std::string& p : deleted) git_index_remove_bypath(index.get(), p.c_str());
  for (const std::string& p : paths) {
    git_tree_entry* raw_entry = nullptr;
    if (git_tree_entry_bypath(&raw_entry, to.get(), p.c_str()) != 0) continue;
    TreeEntryPtr te(raw_entry);
    git_index_entry e{};
    e.mode = git_tree_entry_filemode(te.get());
    e.id = *git_tree_entry_id(te.get());
    e.path = p.c_str();
    struct stat st;
    if (e.mode != GIT_FILEMODE_COMMIT && lstat((path + "/" + p).c_str(), &st) == 0) {
      FillStat(&e, st);
    }
    if (git_index_add(index.get(), &e) != 0) return GitError("index " + p + " of " + path);
  }
  // Skip-worktree but for what was written here: no need to look at the folder for that.
  std::unordered_set<std::string_view> written(paths.begin(), paths.end());
  for (size_t i = 0; i < git_index_entrycount(index.get()); ++i) {
    const git_index_entry* e = git_index_get_byindex(index.get(), i);
    SetSkipWorktree(e, e->mode == GIT_FILEMODE_COMMIT || !written.count(e->path));
  }
  if (git_index_write(index.get()) != 0) return GitError("write the index of " + path);
  // A deleted path becomes a whiteout: at its outermost folder that the start commit no longer
  // has, so the overlay does not show that folder empty.
  std::set<std::string> whiteouts;
  for (const std::string& p : deleted) {
    std::string at = p;
    for (size_t slash = p.find('/'); slash != std::string::npos; slash = p.find('/', slash + 1)) {
      git_tree_entry* raw_entry = nullptr;
      if (git_tree_entry_bypath(&raw_entry, to.get(), p.substr(0, slash).c_str()) != 0) {
        at = p.substr(0, slash);
        break;
      }
      TreeEntryPtr e(raw_entry);
      if (git_tree_entry_type(e.get()) != GIT_OBJECT_TREE) {
        at.clear();  // a file now holds that folder's place, and hides what was below it
        break;
      }
    }
    if (at.empty() || !whiteouts.insert(at).second) continue;
    std::string full = path + "/" + at;
    fs::create_directories(fs::path(full).parent_path(), ec);
    if (mknod(full.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0 && errno != EEXIST) {
      return Fail("whiteout " + full + ": " + std::strerror(errno));
    }
  }
  return {};
}

Expected<OverlayChanges> ReadOverlay(const std::string& root, const std::string& lower,
                                     git_index* index, bool clean) {
  OverlayChanges out;
  // What the export holds, by path: a tracked path that is not in the folder is as the export
  // has it only when the export has it so; a file written into the folder (FillOverlay) that the
  // agent deleted leaves no whiteout, since nothing below it was there to hide.
  std::string export_index = lower.substr(0, lower.rfind('/')) + "/index";
  git_index* raw_exported = nullptr;
  if (git_index_open(&raw_exported, export_index.c_str()) != 0) {
    return GitError("open " + export_index);
  }
  IndexPtr exported(raw_exported);
  auto as_exported = [&](const git_index_entry* e) {
    const git_index_entry* x = git_index_get_bypath(exported.get(), e->path, 0);
    return x && x->mode == e->mode && git_oid_equal(&x->id, &e->id);
  };
  std::unordered_map<std::string, Upper> upper;
  std::vector<std::string> whiteout_paths, attribute_paths = {root};
  std::string untracked;  // "folder/" while the walk is below an untracked folder
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(
           root, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::string full = it->path().string();
    std::string rel = full.substr(root.size() + 1);
    if (rel == ".git" && it.depth() == 0) {
      it.disable_recursion_pending();
      continue;
    }
    struct stat st;
    if (lstat(full.c_str(), &st) != 0) continue;
    Upper kind = Upper::kFile;
    if (IsWhiteout(st)) {
      kind = Upper::kWhiteout;
      whiteout_paths.push_back(full);
    } else if (S_ISDIR(st.st_mode)) {
      char value[4] = {};
      ssize_t n = lgetxattr(full.c_str(), kOpaque, value, sizeof(value));
      kind = n == 1 && value[0] == 'y' ? Upper::kOpaque : Upper::kFolder;
      if (access(full.c_str(), R_OK | X_OK) != 0) out.unreadable.push_back(rel + "/");
      attribute_paths.push_back(full);
    } else {
      attribute_paths.push_back(full);
    }
    upper.emplace(rel, kind);
    if (kind == Upper::kWhiteout) continue;
    out.in_folder.insert(rel);
    // A tracked folder is no candidate: libgit2 would compare every file the index holds below
    // it, nearly all of them not in the folder. Its files are, one by one; an untracked folder
    // is one candidate, whole.
    if (!untracked.empty() && rel.starts_with(untracked)) continue;
    if (kind == Upper::kFile) {
      out.candidates.push_back(rel);
    } else if (size_t at; git_index_find_prefix(&at, index, (rel + "/").c_str()) != 0) {
      out.candidates.push_back(rel);
      untracked = rel + "/";
    }
  }
  if (ec) return Fail("list " + root + ": " + ec.message());
  // Whether something of the folder hides `path` of the export: a whiteout, an opaque folder or
  // a file in the place of one of its folders.
  auto hidden = [&](const std::string& path) {
    for (size_t slash = path.find('/'); slash != std::string::npos;
         slash = path.find('/', slash + 1)) {
      auto it = upper.find(path.substr(0, slash));
      if (it == upper.end()) return false;  // nothing there: as the export has it
      if (it->second != Upper::kFolder) return true;
    }
    return false;
  };
  // Each tracked path is in the folder (a candidate already), deleted (a candidate too), or as
  // the export has it (not checked out).
  for (size_t i = 0; i < git_index_entrycount(index); ++i) {
    const git_index_entry* e = git_index_get_byindex(index, i);
    std::string path = e->path;
    auto it = upper.find(path);
    if (it != upper.end() && it->second != Upper::kWhiteout) continue;
    if (it != upper.end() || hidden(path) || !as_exported(e)) {
      out.candidates.push_back(path);
      out.deletions = true;
    } else {
      out.not_checked_out.insert(path);
    }
  }
  std::sort(out.candidates.begin(), out.candidates.end());
  out.candidates.erase(std::unique(out.candidates.begin(), out.candidates.end()),
                       out.candidates.end());
  if (clean) {
    for (const std::string& p : whiteout_paths) {
      if (unlink(p.c_str()) != 0 && errno != ENOENT) {
        return Fail("remove the whiteout " + p + ": " + std::strerror(errno));
      }
    }
    for (const std::string& p : attribute_paths) DropOverlayAttributes(p);
  }
  return out;
}

void MarkNotCheckedOut(git_index* index, const std::unordered_set<std::string>& in_folder,
                       const std::vector<std::string>& unreadable) {
  for (size_t i = 0; i < git_index_entrycount(index); ++i) {
    const git_index_entry* e = git_index_get_byindex(index, i);
    std::string_view path = e->path;
    bool held = in_folder.count(e->path) > 0 ||
                std::any_of(unreadable.begin(), unreadable.end(),
                            [&](const std::string& folder) { return path.starts_with(folder); });
    SetSkipWorktree(e, !held);
  }
}

void ClearSkipWorktree(git_index* index) {
  for (size_t i = 0; i < git_index_entrycount(index); ++i) {
    SetSkipWorktree(git_index_get_byindex(index, i), false);
  }
}

}  // namespace corral::worktree
