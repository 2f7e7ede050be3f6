// RAII owners for libgit2 objects; private to corral::worktree.
#pragma once

#include <git2.h>

#include <chrono>
#include <memory>
#include <string_view>
#include <thread>

#include "worktree/error.h"

namespace corral::worktree {

template <typename T, void (*Free)(T*)>
struct GitDeleter {
  void operator()(T* p) const {
    if (p) Free(p);
  }
};

template <typename T, void (*Free)(T*)>
using GitPtr = std::unique_ptr<T, GitDeleter<T, Free>>;

using RepoPtr = GitPtr<git_repository, git_repository_free>;
using RefPtr = GitPtr<git_reference, git_reference_free>;
using CommitPtr = GitPtr<git_commit, git_commit_free>;
using TreePtr = GitPtr<git_tree, git_tree_free>;
using IndexPtr = GitPtr<git_index, git_index_free>;
using WorktreePtr = GitPtr<git_worktree, git_worktree_free>;
using DiffPtr = GitPtr<git_diff, git_diff_free>;
using BlobPtr = GitPtr<git_blob, git_blob_free>;
using PatchPtr = GitPtr<git_patch, git_patch_free>;
using TreeEntryPtr = GitPtr<git_tree_entry, git_tree_entry_free>;
using SignaturePtr = GitPtr<git_signature, git_signature_free>;
using ConfigPtr = GitPtr<git_config, git_config_free>;
using IteratorPtr = GitPtr<git_index_conflict_iterator, git_index_conflict_iterator_free>;

// Whether a failed libgit2 call met a `git gc` or `git pack-refs` at work beside corral: a ref's
// lock held for a moment (GIT_ELOCKED; git itself waits, core.filesRefLockTimeout), or a folder
// under refs/ that pack-refs emptied and removed between libgit2's checks and its mkdir.
inline bool RacedWithGc(int rc) {
  if (rc == GIT_ELOCKED) return true;
  const git_error* e = git_error_last();
  return rc != 0 && e && e->klass == GIT_ERROR_OS && e->message &&
         std::string_view(e->message).find("No such file or directory") != std::string_view::npos;
}

// Runs a libgit2 call that updates a ref again while it races with git's housekeeping
// (RacedWithGc), for up to about a second; libgit2 1.5.1 fails at once.
template <typename Call>
int RetryLocked(Call call) {
  int rc = call();
  for (int i = 0; RacedWithGc(rc) && i < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    rc = call();
  }
  return rc;
}

// Frees a git_buf's memory at scope exit.
struct BufGuard {
  git_buf buf = GIT_BUF_INIT;
  ~BufGuard() { git_buf_dispose(&buf); }
};

// The author of corral's commits: the repository's user.name/user.email, else "corral".
inline Expected<SignaturePtr> CorralSignature(git_repository* repo) {
  git_signature* sig = nullptr;
  if (git_signature_default(&sig, repo) == 0) return SignaturePtr(sig);
  if (git_signature_now(&sig, "corral", "corral@localhost") != 0) return GitError("signature");
  return SignaturePtr(sig);
}

}  // namespace corral::worktree
