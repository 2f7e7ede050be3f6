#include <git2.h>

#include <fstream>
#include <mutex>

#include "worktree/git_handle.h"
#include "worktree/worktree.h"

namespace corral::worktree {

std::unexpected<Error> GitError(const std::string& what) {
  const git_error* e = git_error_last();
  return std::unexpected(Error{what + ": " + (e && e->message ? e->message : "unknown libgit2 error")});
}

std::string CheckId(const std::string& id, const std::string& what) {
  if (id.empty() || id.size() > 64) return what + " '" + id + "' must be 1 to 64 characters";
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) {
      return what + " '" + id + "' may only hold letters, digits, '_' and '-'";
    }
  }
  if (what == "task id" && id == "merged") return "task id 'merged' is reserved for the integration branch";
  return {};
}

std::string TaskBranch(const std::string& run, const std::string& task) {
  return "corral/" + run + "/" + task;
}

Repository::Repository(git_repository* repo, std::string common_dir)
    : repo_(repo), common_dir_(std::move(common_dir)) {}

Repository::Repository(Repository&& other) noexcept
    : repo_(other.repo_), common_dir_(std::move(other.common_dir_)) {
  other.repo_ = nullptr;
}

Repository& Repository::operator=(Repository&& other) noexcept {
  if (this != &other) {
    if (repo_) git_repository_free(repo_);
    repo_ = other.repo_;
    common_dir_ = std::move(other.common_dir_);
    other.repo_ = nullptr;
  }
  return *this;
}

Repository::~Repository() {
  if (repo_) git_repository_free(repo_);
}

namespace {

void InitLibgit2() {
  static std::once_flag init;
  std::call_once(init, [] {
    git_libgit2_init();
    // Strict creation checks that every object a new tree or commit names exists, by reading
    // its header from disk. corral builds trees only from entries it read from the object
    // database or wrote just before, and on a merge of many tasks those checks re-read every
    // entry of the merged tree at each step: quadratic in the tasks.
    git_libgit2_opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 0);
    // libgit2 caches only trees up to 4 KiB: a folder of a few hundred files was inflated again
    // at every look-up of a path below it (the commit's line counts, the merge's tree walks).
    git_libgit2_opts(GIT_OPT_SET_CACHE_OBJECT_LIMIT, GIT_OBJECT_TREE, size_t{1} << 20);
  });
}

}  // namespace

Expected<Repository> Repository::Open(const std::string& path) {
  InitLibgit2();
  git_repository* repo = nullptr;
  if (git_repository_open_ext(&repo, path.c_str(), 0, nullptr) != 0) {
    return GitError("open repository " + path);
  }
  std::string common = git_repository_commondir(repo);
  while (common.size() > 1 && common.back() == '/') common.pop_back();
  return Repository(repo, common);
}

Expected<Repository> Repository::InitWithFiles(
    const std::string& path, const std::vector<std::pair<std::string, std::string>>& files,
    const std::string& message) {
  InitLibgit2();
  git_repository_init_options opts;
  git_repository_init_options_init(&opts, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
  opts.flags = GIT_REPOSITORY_INIT_MKPATH;
  opts.initial_head = "main";
  git_repository* raw = nullptr;
  if (git_repository_init_ext(&raw, path.c_str(), &opts) != 0) return GitError("init " + path);
  RepoPtr repo(raw);
  git_index* raw_index = nullptr;
  if (git_repository_index(&raw_index, repo.get()) != 0) return GitError("index");
  IndexPtr index(raw_index);
  for (const auto& [name, content] : files) {
    std::string full = path + "/" + name;
    std::ofstream(full, std::ios::binary) << content;
    if (git_index_add_bypath(index.get(), name.c_str()) != 0) return GitError("add " + name);
  }
  git_oid tree_id, commit_id;
  if (git_index_write(index.get()) != 0 || git_index_write_tree(&tree_id, index.get()) != 0) {
    return GitError("write tree");
  }
  git_tree* raw_tree = nullptr;
  if (git_tree_lookup(&raw_tree, repo.get(), &tree_id) != 0) return GitError("tree");
  TreePtr tree(raw_tree);
  git_signature* sig = nullptr;
  if (git_signature_now(&sig, "corral demo", "demo@localhost") != 0) return GitError("signature");
  SignaturePtr owned_sig(sig);
  if (git_commit_create(&commit_id, repo.get(), "HEAD", sig, sig, nullptr, message.c_str(),
                        tree.get(), 0, nullptr) != 0) {
    return GitError("commit");
  }
  repo.reset();
  return Open(path);
}

Expected<std::string> Repository::ResolveCommit(const std::string& rev) const {
  git_object* obj = nullptr;
  if (git_revparse_single(&obj, repo_, (rev + "^{commit}").c_str()) != 0) {
    return GitError("resolve '" + rev + "'");
  }
  std::string hex = git_oid_tostr_s(git_object_id(obj));
  git_object_free(obj);
  return hex;
}

Expected<std::string> Repository::RemoteUrl(const std::string& name) const {
  // Read from the config by key: git_remote_lookup in libgit2 1.5.1 iterates the config with a
  // regular expression per entry and leaks each match (LeakSanitizer).
  git_config* raw = nullptr;
  if (git_repository_config_snapshot(&raw, repo_) != 0) return GitError("config");
  ConfigPtr config(raw);
  const char* url = nullptr;
  if (git_config_get_string(&url, config.get(), ("remote." + name + ".url").c_str()) != 0) {
    return GitError("remote '" + name + "'");
  }
  return std::string(url);
}

}  // namespace corral::worktree
