// A parallel pass over a worktree's tracked folders that finds what libgit2's diff must look at.
#include "worktree/scan.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <new>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>

namespace corral::worktree {
namespace {

// What the threads share; written before they start, read-only after (`seen` aside: each
// thread writes only the bytes of the entries it found).
struct Folder {
  std::string_view path;  // "" for the root
  // Its files' names with their index in Shared::entries, in name order (the index's order).
  std::vector<std::pair<std::string_view, size_t>> files;
};

struct Shared {
  int root = -1;  // the worktree, open
  std::vector<const git_index_entry*> entries;
  std::vector<Folder> folders;                             // every tracked folder
  std::unordered_map<std::string_view, size_t> folder_at;  // path -> index of `folders`
  std::vector<uint8_t> seen;
  struct timespec index_mtime {};
  std::atomic<size_t> next{0};
};

struct Found {
  std::vector<std::string> candidates, untracked_folders, unreadable;
  bool failed = false;  // the root could not be listed, or no memory: nothing found counts
};

// A folder that could not be listed to the end for a reason that says nothing of it (out of
// file descriptors or memory, an I/O error): it becomes a candidate whole, so that libgit2
// looks at all of it.
void Unlisted(std::string_view folder, Found* out) {
  if (folder.empty()) {
    out->failed = true;
  } else {
    out->candidates.emplace_back(folder);
  }
}

bool SameTime(const git_index_time& t, const struct timespec& ts) {
  // Exact, as libgit2's own check (built with nanoseconds): an index written without them makes
  // every file a candidate, which is slow but never wrong.
  return t.seconds == static_cast<int32_t>(ts.tv_sec) &&
         t.nanoseconds == static_cast<uint32_t>(ts.tv_nsec);
}

uint32_t GitMode(const struct stat& st) {
  if (S_ISLNK(st.st_mode)) return GIT_FILEMODE_LINK;
  if (S_ISREG(st.st_mode)) {
    return (st.st_mode & S_IXUSR) ? GIT_FILEMODE_BLOB_EXECUTABLE : GIT_FILEMODE_BLOB;
  }
  return 0;  // a folder, a fifo, a device: never what a file entry holds
}

// Whether `st` is what `e` recorded, so that git's stat check would not look at the content. An
// entry modified in the same clock tick as the index was written ("racily clean") may differ
// with the same stat data, as git's racy-git rule says.
bool Unchanged(const git_index_entry& e, const struct stat& st, const struct timespec& index) {
  if (e.flags_extended & (GIT_INDEX_ENTRY_INTENT_TO_ADD | GIT_INDEX_ENTRY_SKIP_WORKTREE)) {
    return false;
  }
  int64_t sec = e.mtime.seconds;
  bool racy = sec > index.tv_sec ||
              (sec == index.tv_sec && e.mtime.nanoseconds >= static_cast<uint32_t>(index.tv_nsec));
  return !racy && e.mode == GitMode(st) && e.file_size == static_cast<uint32_t>(st.st_size) &&
         SameTime(e.mtime, st.st_mtim) && SameTime(e.ctime, st.st_ctim) &&
         e.ino == static_cast<uint32_t>(st.st_ino) && e.uid == st.st_uid && e.gid == st.st_gid;
}

bool IsFolder(int dirfd, const dirent& d) {
  if (d.d_type != DT_UNKNOWN) return d.d_type == DT_DIR;
  struct stat st;
  return fstatat(dirfd, d.d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

// `folder` of the worktree, never through a symlink (the agent may have made any part of its
// path one), or -1 with errno set.
int OpenFolder(int root, std::string_view folder) {
  struct open_how how {};
  how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  std::string path = folder.empty() ? "." : std::string(folder);
  return static_cast<int>(syscall(SYS_openat2, root, path.c_str(), &how, sizeof(how)));
}

// Lists one tracked folder: its tracked files are compared, its untracked entries become
// candidates, its tracked subfolders are left to their own turn.
void ScanFolder(Shared& s, const Folder& tracked, Found* out) {
  std::string_view folder = tracked.path;
  std::string prefix(folder);
  if (!prefix.empty()) prefix += '/';
  int fd = OpenFolder(s.root, folder);
  // Gone, or now a file or a symlink: its entries stay unseen, so they are candidates.
  if (fd < 0 && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)) return;
  if (fd < 0 && errno != EACCES) return Unlisted(folder, out);
  if (fd < 0 || faccessat(fd, ".", R_OK | X_OK, 0) != 0) {
    out->unreadable.push_back(prefix);
    if (fd >= 0) close(fd);
    return;
  }
  DIR* dir = fdopendir(fd);
  if (!dir) {
    close(fd);
    out->unreadable.push_back(prefix);
    return;
  }
  std::string rel = prefix;
  for (;;) {
    errno = 0;
    const dirent* d = readdir(dir);
    if (!d) break;
    std::string_view name = d->d_name;
    if (name == "." || name == ".." || (folder.empty() && name == ".git")) continue;
    rel.resize(prefix.size());
    rel += name;
    auto it = std::lower_bound(tracked.files.begin(), tracked.files.end(), name,
                               [](const auto& file, std::string_view n) { return file.first < n; });
    if (it != tracked.files.end() && it->first == name) {
      s.seen[it->second] = 1;
      struct stat st;
      bool listed = fstatat(dirfd(dir), d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0;
      if (!listed || !Unchanged(*s.entries[it->second], st, s.index_mtime)) {
        out->candidates.push_back(rel);
        if (listed && S_ISDIR(st.st_mode)) out->untracked_folders.push_back(rel);  // file -> folder
      }
      continue;
    }
    bool is_folder = IsFolder(dirfd(dir), *d);
    if (is_folder && s.folder_at.count(rel)) continue;  // listed in its own turn
    out->candidates.push_back(rel);  // untracked, or a tracked folder that is now a file
    if (is_folder) out->untracked_folders.push_back(rel);
  }
  if (errno != 0) Unlisted(folder, out);
  closedir(dir);
}

void Work(Shared& s, Found* out) {
  try {
    for (size_t i; (i = s.next.fetch_add(1)) < s.folders.size();) ScanFolder(s, s.folders[i], out);
  } catch (const std::bad_alloc&) {
    out->failed = true;
  }
}

void SortUnique(std::vector<std::string>* v) {
  std::sort(v->begin(), v->end());
  v->erase(std::unique(v->begin(), v->end()), v->end());
}

}  // namespace

std::optional<WorktreeScan> ScanWorktree(const std::string& root, git_index* index) {
  if ((git_index_caps(index) & GIT_INDEX_CAPABILITY_IGNORE_CASE) ||
      git_index_has_conflicts(index)) {
    return std::nullopt;
  }
  Shared s;
  const char* index_path = git_index_path(index);
  struct stat ist;
  if (!index_path || stat(index_path, &ist) != 0) return std::nullopt;
  s.index_mtime = ist.st_mtim;
  s.root = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (s.root < 0) return std::nullopt;
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{s.root};
  int probe = OpenFolder(s.root, "");
  if (probe < 0) return std::nullopt;  // no openat2 (before Linux 5.6): libgit2 walks it all
  close(probe);

  size_t count = git_index_entrycount(index);
  s.entries.reserve(count);
  // The folder at `dir` (made with its parents when new).
  auto folder_id = [&s](std::string_view dir) {
    auto [it, made] = s.folder_at.try_emplace(dir, s.folders.size());
    if (!made) return it->second;
    s.folders.push_back({dir, {}});
    size_t id = it->second;  // before the parents are made: they may rehash `folder_at`
    std::string_view parent = dir;
    while (!parent.empty()) {
      size_t up = parent.rfind('/');
      parent = up == std::string_view::npos ? "" : parent.substr(0, up);
      if (!s.folder_at.try_emplace(parent, s.folders.size()).second) break;  // and so its parents
      s.folders.push_back({parent, {}});
    }
    return id;
  };
  folder_id("");  // the root, even in an empty index
  std::string_view last_folder = "";
  size_t last_id = 0;
  for (size_t i = 0; i < count; ++i) {
    const git_index_entry* e = git_index_get_byindex(index, i);
    // libgit2's diff matches a gitlink against the parsed pathspec, where a name such as "#sub"
    // or "sub " means something else: a deleted submodule would stay. The full walk has none.
    if (e->mode == GIT_FILEMODE_COMMIT) return std::nullopt;
    std::string_view path = e->path;
    s.entries.push_back(e);
    size_t slash = path.rfind('/');
    std::string_view dir = slash == std::string_view::npos ? "" : path.substr(0, slash);
    if (dir != last_folder) {  // the index's order keeps a folder's files mostly together
      last_id = folder_id(dir);
      last_folder = dir;
    }
    s.folders[last_id].files.emplace_back(path.substr(slash + 1), i);
  }
  s.seen.assign(count, 0);

  // stat is a system call: more threads than cores still help while some wait on the disk.
  unsigned threads = count < 2000 ? 1 : std::clamp(std::thread::hardware_concurrency() * 2, 2u, 8u);
  std::vector<Found> found(threads);
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) {
    try {
      pool.emplace_back(Work, std::ref(s), &found[t]);
    } catch (const std::system_error&) {
      break;  // no thread to spare: the others, or this one, do its share
    }
  }
  Work(s, &found[0]);
  for (std::thread& t : pool) t.join();

  WorktreeScan scan;
  for (Found& f : found) {
    if (f.failed) return std::nullopt;
    for (auto [from, to] : {std::pair{&f.candidates, &scan.candidates},
                            std::pair{&f.untracked_folders, &scan.untracked_folders},
                            std::pair{&f.unreadable, &scan.unreadable}}) {
      to->insert(to->end(), std::make_move_iterator(from->begin()),
                 std::make_move_iterator(from->end()));
    }
  }
  for (size_t i = 0; i < count; ++i) {
    if (!s.seen[i]) scan.candidates.emplace_back(s.entries[i]->path);  // gone, or not listed
  }
  SortUnique(&scan.candidates);
  SortUnique(&scan.untracked_folders);
  SortUnique(&scan.unreadable);
  // A folder below an unreadable one cannot be entered either: only the outermost is named.
  std::vector<std::string> outermost;
  for (std::string& u : scan.unreadable) {
    if (outermost.empty() || u.compare(0, outermost.back().size(), outermost.back()) != 0) {
      outermost.push_back(std::move(u));
    }
  }
  scan.unreadable = std::move(outermost);
  return scan;
}

}  // namespace corral::worktree
