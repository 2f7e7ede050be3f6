// Git inside the sandbox: a git directory of the agent's own, and the commits it made there
// brought back into the repository, checked.
//
// The agent's worktree names its admin directory under the repository's .git, which the sandbox
// does not show: through it the agent could move any ref, plant hooks or config, or reach the
// other tasks' worktrees. Inside, the worktree's .git names instead a git directory made for
// this try (HEAD, config, refs, index, an object store of its own), whose only ref is the task's
// branch; the repository's objects are its alternate, read-only. Whatever the agent does there
// stays there. Afterwards corral reads the commit its HEAD names, copies the objects the
// repository lacks (each checked: its type, its hash, no secret's value, no .git entry) and
// moves the task's branch, if that commit descends from where the task started.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "worktree/files.h"
#include "worktree/git_handle.h"
#include "worktree/overlay.h"
#include "worktree/worktree.h"

namespace corral::worktree {
namespace {

namespace fs = std::filesystem;

using OdbPtr = GitPtr<git_odb, git_odb_free>;
using OdbObjectPtr = GitPtr<git_odb_object, git_odb_object_free>;

std::string GitDirsRoot(const std::string& common) { return common + "/corral/gitdirs"; }
std::string GitDirsLock(const std::string& common) { return common + "/corral/gitdirs.lock"; }

Expected<> WriteFile(const std::string& path, const std::string& content) {
  return WriteFileAt(path, content, O_TRUNC | O_NOFOLLOW);
}

// Reads a small file below `root` that the agent could have written: every component must be a
// directory or, the last, a regular file; never a symlink. The agent is gone (its sandbox ended
// with it), so nothing changes between these checks and the read.
std::optional<std::string> ReadAgentFile(const std::string& root, const std::string& relative) {
  std::string path = root;
  size_t start = 0;
  while (start <= relative.size()) {
    size_t end = relative.find('/', start);
    if (end == std::string::npos) end = relative.size();
    std::string part = relative.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return std::nullopt;
    path += "/" + part;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) return std::nullopt;
    bool last = end == relative.size();
    if (last ? !S_ISREG(st.st_mode) : !S_ISDIR(st.st_mode)) return std::nullopt;
    start = end + 1;
  }
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  std::string out(65536, '\0');
  ssize_t n = read(fd, out.data(), out.size());
  close(fd);
  if (n < 0 || n == static_cast<ssize_t>(out.size())) return std::nullopt;
  out.resize(n);
  return out;
}

// The commit the agent's HEAD names, following one symbolic ref to a loose or packed ref.
std::optional<git_oid> AgentHead(const std::string& dir) {
  auto parse = [](std::string text) -> std::optional<git_oid> {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    git_oid id;
    if (text.size() != GIT_OID_HEXSZ || git_oid_fromstr(&id, text.c_str()) != 0)
      return std::nullopt;
    return id;
  };
  auto head = ReadAgentFile(dir, "HEAD");
  if (!head) return std::nullopt;
  if (!head->starts_with("ref: ")) return parse(*head);
  std::string ref = head->substr(5);
  while (!ref.empty() && (ref.back() == '\n' || ref.back() == '\r')) ref.pop_back();
  if (!ref.starts_with("refs/heads/") || !git_reference_is_valid_name(ref.c_str()))
    return std::nullopt;
  if (auto loose = ReadAgentFile(dir, ref)) return parse(*loose);
  auto packed = ReadAgentFile(dir, "packed-refs");
  if (!packed) return std::nullopt;
  size_t pos = 0;
  while (pos < packed->size()) {
    size_t end = packed->find('\n', pos);
    if (end == std::string::npos) end = packed->size();
    std::string line = packed->substr(pos, end - pos);
    if (line.size() == GIT_OID_HEXSZ + 1 + ref.size() && line.ends_with(" " + ref)) {
      return parse(line.substr(0, GIT_OID_HEXSZ));
    }
    pos = end + 1;
  }
  return std::nullopt;
}

// The first entry of the agent's object store that is not a folder or a regular file of one
// link: a symlink or a hard link would have corral read, and copy into the repository, a file
// the agent could not read itself.
std::optional<std::string> StrangeEntry(const std::string& objects) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(objects, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st;
    if (lstat(it->path().c_str(), &st) != 0) return it->path().string();
    if (S_ISDIR(st.st_mode)) continue;
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1) return it->path().string();
  }
  if (ec) return objects;
  return std::nullopt;
}

// Whether git would refuse a tree entry (fsck's hasDotgit and its NTFS spellings, a .gitmodules
// symlink, a bad mode): a branch holding one could not be checked out or pushed.
bool BadEntry(const git_tree_entry* e) {
  std::string_view name = git_tree_entry_name(e);
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos) {
    return true;
  }
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  // ".git" followed by nothing but dots and spaces (Windows drops them), or its 8.3 name.
  if (lower.starts_with(".git") && lower.find_first_not_of(". ", 4) == std::string::npos) {
    return true;
  }
  if (lower == "git~1") return true;
  switch (git_tree_entry_filemode_raw(e)) {
    case GIT_FILEMODE_TREE:
    case GIT_FILEMODE_BLOB:
    case GIT_FILEMODE_BLOB_EXECUTABLE:
    case GIT_FILEMODE_COMMIT:
      return false;
    case GIT_FILEMODE_LINK:
      return lower == ".gitmodules";
    default:
      return true;
  }
}

}  // namespace

Expected<SandboxGit> Repository::PrepareSandboxGit(const Workspace& ws) {
  SandboxGit g;
  std::string root = GitDirsRoot(common_dir_) + "/" + ws.run;
  g.dir = root + "/" + ws.task;
  g.git_file = root + "/" + ws.task + ".git";  // task ids have no '.': never another task's dir
  g.objects = common_dir_ + "/objects";
  git_oid start;
  if (git_reference_name_to_id(&start, repo_, ("refs/heads/" + ws.branch).c_str()) != 0) {
    return GitError("branch " + ws.branch);
  }
  g.start = git_oid_tostr_s(&start);

  RemoveTree(g.dir);  // a try before this one
  std::error_code ec;
  {
    // Under the lock that RemoveSandboxGit takes to remove the run's folder once it is empty,
    // which it could be between this making sure it exists and making the task's folder in it.
    auto lock = FileLock::Acquire(GitDirsLock(common_dir_));
    if (!lock) return std::unexpected(lock.error());
    fs::create_directories(g.dir, ec);
    if (ec) return Fail("create " + g.dir + ": " + ec.message());
  }
  for (const std::string& d : {g.dir + "/objects/info", g.dir + "/objects/pack",
                               g.dir + "/refs/tags",
                               fs::path(g.dir + "/refs/heads/" + ws.branch).parent_path().string()}) {
    fs::create_directories(d, ec);
    if (ec) return Fail("create " + d + ": " + ec.message());
  }
  for (const auto& [name, content] :
       {std::pair{std::string("HEAD"), "ref: refs/heads/" + ws.branch + "\n"},
        std::pair{"refs/heads/" + ws.branch, g.start + "\n"},
        std::pair{std::string("objects/info/alternates"), g.objects + "\n"},
        std::pair{std::string("description"), "corral task " + ws.task + " of run " + ws.run + "\n"}}) {
    if (auto r = WriteFile(g.dir + "/" + name, content); !r) return std::unexpected(r.error());
  }
  // The config holds what git needs and the committer the repository's config names; nothing of
  // the repository's own (hooks, filters, fsmonitor, remotes) comes along.
  git_config* raw_cfg = nullptr;
  if (git_config_open_ondisk(&raw_cfg, (g.dir + "/config").c_str()) != 0) {
    return GitError("create " + g.dir + "/config");
  }
  ConfigPtr cfg(raw_cfg);
  if (git_config_set_int32(cfg.get(), "core.repositoryformatversion", 0) != 0 ||
      git_config_set_bool(cfg.get(), "core.filemode", 1) != 0 ||
      git_config_set_bool(cfg.get(), "core.bare", 0) != 0 ||
      git_config_set_bool(cfg.get(), "core.logallrefupdates", 1) != 0) {
    return GitError("write " + g.dir + "/config");
  }
  git_config* raw_repo_cfg = nullptr;
  if (git_repository_config_snapshot(&raw_repo_cfg, repo_) == 0) {
    ConfigPtr repo_cfg(raw_repo_cfg);
    for (const char* key : {"user.name", "user.email"}) {
      const char* value = nullptr;
      if (git_config_get_string(&value, repo_cfg.get(), key) == 0 &&
          git_config_set_string(cfg.get(), key, value) != 0) {
        return GitError("write " + g.dir + "/config");
      }
    }
  }
  // The worktree's index, so that `git status` starts clean.
  fs::copy_file(ws.admin_dir + "/index", g.dir + "/index", ec);
  // In an overlay workspace the agent sees every file: none is skip-worktree inside.
  if (!ws.lower.empty() && !ec) {
    git_index* raw_index = nullptr;
    if (git_index_open(&raw_index, (g.dir + "/index").c_str()) != 0) {
      return GitError("open " + g.dir + "/index");
    }
    IndexPtr index(raw_index);
    ClearSkipWorktree(index.get());
    if (git_index_write(index.get()) != 0) return GitError("write " + g.dir + "/index");
  }
  if (auto r = WriteFile(g.git_file, "gitdir: " + g.dir + "\n"); !r) return std::unexpected(r.error());
  return g;
}

Expected<AgentCommits> Repository::KeepAgentCommits(
    const Workspace& ws, const SandboxGit& g,
    const std::vector<std::pair<std::string, std::string>>& forbidden) {
  AgentCommits out;
  git_oid start;
  if (git_oid_fromstr(&start, g.start.c_str()) != 0) return Fail("bad start " + g.start);
  auto refuse = [&](std::string why) {
    out.refused = std::move(why);
    return out;
  };
  // A sparse checkout: the index marks what it took out of the worktree.
  struct stat st;
  if (lstat((g.dir + "/index").c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1) {
    git_index* raw_index = nullptr;
    if (git_index_open(&raw_index, (g.dir + "/index").c_str()) == 0) {
      IndexPtr index(raw_index);
      for (size_t i = 0; i < git_index_entrycount(index.get()); ++i) {
        const git_index_entry* e = git_index_get_byindex(index.get(), i);
        if (e->flags_extended & GIT_INDEX_ENTRY_SKIP_WORKTREE) out.not_checked_out.insert(e->path);
      }
    }
  }
  std::optional<git_oid> tip = AgentHead(g.dir);
  if (!tip) return refuse("its HEAD names no commit");
  if (git_oid_equal(&*tip, &start)) return out;
  struct stat objects_st;
  if (lstat((g.dir + "/objects").c_str(), &objects_st) != 0 || !S_ISDIR(objects_st.st_mode)) {
    return refuse("its objects folder is not a folder (a symlink would name another store)");
  }
  if (auto strange = StrangeEntry(g.dir + "/objects")) {
    return refuse("its object store holds " + fs::path(*strange).lexically_relative(g.dir).string() +
                  ", not a plain file");
  }

  // Only the agent's own store: its alternates file is not read (it could name any folder).
  git_odb* raw_odb = nullptr;
  if (git_odb_new(&raw_odb) != 0) return GitError("object database");
  OdbPtr agent_odb(raw_odb);
  git_odb_backend* loose = nullptr;
  git_odb_backend* packs = nullptr;
  std::string objects = g.dir + "/objects";
  if (git_odb_backend_loose(&loose, objects.c_str(), -1, 0, 0, 0) != 0 ||
      git_odb_add_backend(agent_odb.get(), loose, 2) != 0) {
    return GitError("objects of " + g.dir);
  }
  if (git_odb_backend_pack(&packs, objects.c_str()) != 0 ||
      git_odb_add_backend(agent_odb.get(), packs, 1) != 0) {
    return GitError("packs of " + g.dir);
  }
  git_repository* raw_agent = nullptr;
  if (git_repository_wrap_odb(&raw_agent, agent_odb.get()) != 0) return GitError("wrap objects");
  RepoPtr agent(raw_agent);
  git_odb* raw_main = nullptr;
  if (git_repository_odb(&raw_main, repo_) != 0) return GitError("object database");
  OdbPtr main_odb(raw_main);

  // Depth first from the tip, checking each object the repository lacks; whatever it has is
  // complete below it. Nothing is copied until all are checked, and then children before their
  // parents, so that this stays true whatever happens on the way.
  struct Step {
    git_oid id;
    git_object_t type;
    bool checked;  // its children are on the stack above it: when it comes back, they are done
  };
  std::vector<Step> todo = {{*tip, GIT_OBJECT_COMMIT, false}};
  std::vector<std::pair<git_oid, git_object_t>> missing;  // each after what it names
  std::map<std::string, git_object_t> seen;
  std::vector<git_oid> boundary;  // commits of the agent's history that the repository has
  while (!todo.empty()) {
    auto [id, type, checked] = todo.back();
    todo.pop_back();
    if (checked) {
      missing.emplace_back(id, type);
      continue;
    }
    std::string key(reinterpret_cast<const char*>(id.id), GIT_OID_RAWSZ);
    std::string hex = git_oid_tostr_s(&id);
    auto wrong_type = [&](git_object_t is) {
      return refuse("object " + hex + " is a " + git_object_type2string(is) + " where a " +
                    git_object_type2string(type) + " belongs");
    };
    if (auto [it, fresh] = seen.emplace(key, type); !fresh) {
      if (it->second != type) return wrong_type(it->second);
      continue;
    }
    if (git_odb_exists(main_odb.get(), &id)) {
      size_t size = 0;
      git_object_t is = GIT_OBJECT_INVALID;
      if (git_odb_read_header(&size, &is, main_odb.get(), &id) != 0) return GitError("read " + hex);
      if (is != type) return wrong_type(is);
      if (type == GIT_OBJECT_COMMIT) boundary.push_back(id);
      continue;
    }
    git_odb_object* raw_obj = nullptr;
    if (git_odb_read(&raw_obj, agent_odb.get(), &id) != 0) {
      return refuse("object " + hex + " is missing or corrupt");
    }
    OdbObjectPtr obj(raw_obj);
    if (git_odb_object_type(obj.get()) != type) return wrong_type(git_odb_object_type(obj.get()));
    std::string_view data(static_cast<const char*>(git_odb_object_data(obj.get())),
                          git_odb_object_size(obj.get()));
    for (const auto& [label, bytes] : forbidden) {
      if (!bytes.empty() && data.find(bytes) != std::string_view::npos) {
        return refuse(std::string(git_object_type2string(type)) + " " + hex +
                      " holds the value of secret " + label);
      }
    }
    todo.push_back({id, type, true});
    if (type == GIT_OBJECT_COMMIT) {
      git_commit* raw_commit = nullptr;
      if (git_commit_lookup(&raw_commit, agent.get(), &id) != 0) {
        return refuse("commit " + hex + " does not parse");
      }
      CommitPtr commit(raw_commit);
      todo.push_back({*git_commit_tree_id(commit.get()), GIT_OBJECT_TREE, false});
      for (unsigned i = 0; i < git_commit_parentcount(commit.get()); ++i) {
        todo.push_back({*git_commit_parent_id(commit.get(), i), GIT_OBJECT_COMMIT, false});
      }
    } else if (type == GIT_OBJECT_TREE) {
      git_tree* raw_tree = nullptr;
      if (git_tree_lookup(&raw_tree, agent.get(), &id) != 0) {
        return refuse("tree " + hex + " does not parse");
      }
      TreePtr tree(raw_tree);
      for (size_t i = 0; i < git_tree_entrycount(tree.get()); ++i) {
        const git_tree_entry* e = git_tree_entry_byindex(tree.get(), i);
        if (BadEntry(e)) {
          return refuse("tree " + hex + " holds an entry named '" + git_tree_entry_name(e) +
                        "' that git refuses (fsck)");
        }
        git_object_t t = git_tree_entry_type(e);
        if (t == GIT_OBJECT_BLOB || t == GIT_OBJECT_TREE) todo.push_back({*git_tree_entry_id(e), t, false});
      }
    }
  }
  // The agent's history must reach the try's start before anything of it is copied: through the
  // commits the repository already has where the walk stopped.
  bool descends = false;
  for (const git_oid& b : boundary) {
    if (git_oid_equal(&b, &start) || git_graph_descendant_of(repo_, &b, &start) == 1) {
      descends = true;
      break;
    }
  }
  if (!descends) {
    return refuse("its HEAD " + std::string(git_oid_tostr_s(&*tip)) +
                  " does not descend from the commit the task started from");
  }
  for (auto it = missing.begin(); it != missing.end(); ++it) {
    std::string hex = git_oid_tostr_s(&it->first);
    git_odb_object* raw_obj = nullptr;
    if (git_odb_read(&raw_obj, agent_odb.get(), &it->first) != 0) return GitError("read " + hex);
    OdbObjectPtr obj(raw_obj);
    git_oid written;
    if (git_odb_write(&written, main_odb.get(), git_odb_object_data(obj.get()),
                      git_odb_object_size(obj.get()), it->second) != 0) {
      return GitError("copy object " + hex);
    }
    if (!git_oid_equal(&written, &it->first)) {
      return refuse("object " + hex + " does not match its id");
    }
  }
  git_reference* raw_ref = nullptr;
  std::string ref = "refs/heads/" + ws.branch;
  if (RetryLocked([&] {
        return git_reference_create_matching(&raw_ref, repo_, ref.c_str(), &*tip, 1, &start,
                                             "corral: the agent's commits");
      }) != 0) {
    return GitError("update " + ws.branch);
  }
  git_reference_free(raw_ref);
  git_revwalk* raw_walk = nullptr;
  if (git_revwalk_new(&raw_walk, repo_) != 0) return GitError("revwalk");
  GitPtr<git_revwalk, git_revwalk_free> walk(raw_walk);
  if (git_revwalk_push(walk.get(), &*tip) != 0 || git_revwalk_hide(walk.get(), &start) != 0) {
    return GitError("count the agent's commits");
  }
  git_oid id;
  while (git_revwalk_next(&id, walk.get()) == 0) ++out.commits;
  out.head = git_oid_tostr_s(&*tip);
  return out;
}

Expected<> Repository::RemoveSandboxGit(const std::string& run, const std::string& task) {
  if (std::string e = CheckId(run, "run id") + CheckId(task, "task id"); !e.empty()) return Fail(e);
  std::string root = GitDirsRoot(common_dir_) + "/" + run;
  RemoveTree(root + "/" + task);
  std::error_code ec;
  fs::remove(root + "/" + task + ".git", ec);
  auto lock = FileLock::Acquire(GitDirsLock(common_dir_));
  if (!lock) return std::unexpected(lock.error());
  fs::remove(root, ec);  // when it is empty
  return {};
}

}  // namespace corral::worktree
