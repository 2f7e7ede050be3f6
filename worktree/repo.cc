#include <git2.h>

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

Expected<Repository> Repository::Open(const std::string& path) {
  static std::once_flag init;
  std::call_once(init, [] { git_libgit2_init(); });
  git_repository* repo = nullptr;
  if (git_repository_open_ext(&repo, path.c_str(), 0, nullptr) != 0) {
    return GitError("open repository " + path);
  }
  std::string common = git_repository_commondir(repo);
  while (common.size() > 1 && common.back() == '/') common.pop_back();
  return Repository(repo, common);
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

}  // namespace corral::worktree
