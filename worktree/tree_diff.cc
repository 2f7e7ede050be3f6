#include "worktree/tree_diff.h"

#include <map>

#include "worktree/git_handle.h"

namespace corral::worktree {
namespace {

Expected<> ChangedBelow(git_repository* repo, const git_tree* a, const git_tree* b,
                        const std::string& prefix, std::set<std::string>* paths) {
  if (a && b && git_oid_equal(git_tree_id(a), git_tree_id(b))) return {};
  std::map<std::string, std::pair<const git_tree_entry*, const git_tree_entry*>> names;
  for (size_t i = 0; a && i < git_tree_entrycount(a); ++i) {
    const git_tree_entry* e = git_tree_entry_byindex(a, i);
    names[git_tree_entry_name(e)].first = e;
  }
  for (size_t i = 0; b && i < git_tree_entrycount(b); ++i) {
    const git_tree_entry* e = git_tree_entry_byindex(b, i);
    names[git_tree_entry_name(e)].second = e;
  }
  for (const auto& [name, pair] : names) {
    auto [ea, eb] = pair;
    if (ea && eb && git_oid_equal(git_tree_entry_id(ea), git_tree_entry_id(eb)) &&
        git_tree_entry_filemode(ea) == git_tree_entry_filemode(eb)) {
      continue;
    }
    TreePtr sub[2];
    const git_tree_entry* sides[2] = {ea, eb};
    for (int i = 0; i < 2; ++i) {
      if (sides[i] && git_tree_entry_type(sides[i]) == GIT_OBJECT_TREE) {
        git_tree* t = nullptr;
        if (git_tree_lookup(&t, repo, git_tree_entry_id(sides[i])) != 0) return GitError("subtree");
        sub[i].reset(t);
      } else if (sides[i]) {
        paths->insert(prefix + name);  // a file (or link) on this side
      }
    }
    if (sub[0] || sub[1]) {
      if (auto r = ChangedBelow(repo, sub[0].get(), sub[1].get(), prefix + name + "/", paths); !r)
        return r;
    }
  }
  return {};
}

}  // namespace

Expected<> ChangedPaths(git_repository* repo, const git_tree* a, const git_tree* b,
                        std::set<std::string>* paths) {
  return ChangedBelow(repo, a, b, "", paths);
}

}  // namespace corral::worktree
