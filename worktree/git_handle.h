// RAII owners for libgit2 objects; private to corral::worktree.
#pragma once

#include <git2.h>

#include <memory>

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
