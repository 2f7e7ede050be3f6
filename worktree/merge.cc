// The integration merge: in-memory three-way merges in plan order, structured conflicts, and the
// pairwise conflict matrix.
#include <git2/sys/index.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "worktree/git_handle.h"
#include "worktree/tree_diff.h"
#include "worktree/user_head.h"
#include "worktree/worktree.h"

namespace corral::worktree {
namespace {

// libgit2 turns inexact rename detection off past this many files unless told otherwise.
constexpr unsigned kRenameTargetLimit = 1u << 20;

std::vector<std::string> Lines(std::string_view text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    lines.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// Finds `block` in `lines` at or after `*cursor`; returns its 1-based first line and moves the
// cursor past it. An empty or unfound block is placed at the cursor.
int Locate(const std::vector<std::string>& lines, const std::vector<std::string>& block,
           size_t* cursor) {
  if (!block.empty()) {
    for (size_t i = *cursor; i + block.size() <= lines.size(); ++i) {
      if (std::equal(block.begin(), block.end(), lines.begin() + i)) {
        *cursor = i + block.size();
        return static_cast<int>(i + 1);
      }
    }
  }
  return static_cast<int>(*cursor + 1);
}

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

class Merger {
 public:
  Merger(git_repository* repo, const std::string& into) : repo_(repo), into_(into) {
    git_merge_options_init(&opts_, GIT_MERGE_OPTIONS_VERSION);
    opts_.flags = GIT_MERGE_FIND_RENAMES;
    opts_.rename_threshold = 50;
    opts_.target_limit = kRenameTargetLimit;
  }

  Expected<CommitPtr> Commit(const git_oid& id) {
    git_commit* c = nullptr;
    if (git_commit_lookup(&c, repo_, &id) != 0) return GitError("commit " + Hex(id));
    return CommitPtr(c);
  }

  Expected<TreePtr> Tree(const git_oid& commit_id) {
    auto c = Commit(commit_id);
    if (!c) return std::unexpected(c.error());
    git_tree* t = nullptr;
    if (git_commit_tree(&t, c->get()) != 0) return GitError("tree of " + Hex(commit_id));
    return TreePtr(t);
  }

  // Paths a commit changed relative to another (a rename counts as both paths).
  Expected<std::set<std::string>> Changed(const git_oid& from, const git_oid& to) {
    auto a = Tree(from);
    auto b = Tree(to);
    if (!a || !b) return std::unexpected(a ? b.error() : a.error());
    std::set<std::string> paths;
    if (auto r = ChangedPaths(repo_, a->get(), b->get(), &paths); !r)
      return std::unexpected(r.error());
    return paths;
  }

  // The merged tree when no path changed on both sides differently: subtrees only one side
  // changed are taken whole, without reading them (as git's ort strategy does). nullopt when a
  // path needs a real three-way merge (then MergeTrees decides, with rename detection).
  Expected<std::optional<git_oid>> TrivialMerge(const git_tree* base, const git_tree* ours,
                                                const git_tree* theirs) {
    auto id = [](const git_tree* t) { return t ? git_tree_id(t) : nullptr; };
    auto same_tree = [&](const git_tree* a, const git_tree* b) {
      return a && b && git_oid_equal(id(a), id(b));
    };
    if (same_tree(ours, theirs) || same_tree(base, theirs)) return *id(ours);
    if (same_tree(base, ours)) return *id(theirs);
    struct Sides {
      const git_tree_entry* e[3] = {nullptr, nullptr, nullptr};
    };
    std::map<std::string, Sides> names;
    const git_tree* trees[3] = {base, ours, theirs};
    for (int side = 0; side < 3; ++side) {
      if (!trees[side]) continue;
      for (size_t i = 0; i < git_tree_entrycount(trees[side]); ++i) {
        const git_tree_entry* e = git_tree_entry_byindex(trees[side], i);
        names[git_tree_entry_name(e)].e[side] = e;
      }
    }
    git_treebuilder* raw = nullptr;
    if (git_treebuilder_new(&raw, repo_, nullptr) != 0) return GitError("tree builder");
    GitPtr<git_treebuilder, git_treebuilder_free> builder(raw);
    auto same = [](const git_tree_entry* a, const git_tree_entry* b) {
      if (!a || !b) return a == b;
      return git_oid_equal(git_tree_entry_id(a), git_tree_entry_id(b)) &&
             git_tree_entry_filemode(a) == git_tree_entry_filemode(b);
    };
    auto is_tree = [](const git_tree_entry* e) {
      return e && git_tree_entry_type(e) == GIT_OBJECT_TREE;
    };
    for (const auto& [name, s] : names) {
      const git_tree_entry *b = s.e[0], *o = s.e[1], *t = s.e[2];
      const git_tree_entry* chosen = nullptr;
      git_oid merged_subtree;
      bool subtree = false;
      // Deleted on both sides: maybe renamed, which needs rename detection.
      if (b && !o && !t) {  // NOLINT(bugprone-branch-clone): the same answer for another reason
        return std::optional<git_oid>();
      } else if (same(o, t) || same(b, t)) {
        chosen = o;
      } else if (same(b, o)) {
        chosen = t;
      } else if (is_tree(o) && is_tree(t) && (!b || is_tree(b))) {
        TreePtr sub[3];
        for (int side = 0; side < 3; ++side) {
          if (!s.e[side]) continue;
          git_tree* st = nullptr;
          if (git_tree_lookup(&st, repo_, git_tree_entry_id(s.e[side])) != 0)
            return GitError("subtree");
          sub[side].reset(st);
        }
        auto merged = TrivialMerge(sub[0].get(), sub[1].get(), sub[2].get());
        if (!merged) return std::unexpected(merged.error());
        const std::optional<git_oid>& sub_oid = *merged;
        if (!sub_oid) return std::optional<git_oid>();
        merged_subtree = *sub_oid;
        subtree = true;
      } else {
        return std::optional<git_oid>();
      }
      if (subtree) {
        if (git_treebuilder_insert(nullptr, builder.get(), name.c_str(), &merged_subtree,
                                   GIT_FILEMODE_TREE) != 0) {
          return GitError("tree entry " + name);
        }
      } else if (chosen && git_treebuilder_insert(nullptr, builder.get(), name.c_str(),
                                                  git_tree_entry_id(chosen),
                                                  git_tree_entry_filemode(chosen)) != 0) {
        return GitError("tree entry " + name);
      }
    }
    git_oid out;
    if (git_treebuilder_write(&out, builder.get()) != 0) return GitError("write tree");
    return out;
  }

  // The trees of a three-way merge of two commits: their merge base (none: null), ours, theirs.
  struct Sides {
    TreePtr base, ours, theirs;
  };

  // `known_base`: the merge base when the caller knows it (else it is computed).
  Expected<Sides> LoadSides(const git_oid& ours, const git_oid& theirs,
                            const git_oid* known_base = nullptr) {
    Sides s;
    git_oid base;
    if (known_base) base = *known_base;
    if (known_base || git_merge_base(&base, repo_, &ours, &theirs) == 0) {
      auto t = Tree(base);
      if (!t) return std::unexpected(t.error());
      s.base = std::move(*t);
    }
    auto o = Tree(ours);
    auto t = Tree(theirs);
    if (!o || !t) return std::unexpected(o ? t.error() : o.error());
    s.ours = std::move(*o);
    s.theirs = std::move(*t);
    return s;
  }

  // Merges in memory, with rename detection. Returns the index (conflicts included).
  Expected<IndexPtr> MergeTrees(const Sides& s) {
    git_index* index = nullptr;
    if (git_merge_trees(&index, repo_, s.base.get(), s.ours.get(), s.theirs.get(), &opts_) != 0) {
      return GitError("merge " + Hex(*git_tree_id(s.theirs.get())) + " into " +
                      Hex(*git_tree_id(s.ours.get())));
    }
    return IndexPtr(index);
  }

  // The conflicts in `index`, `ours_tree`/`theirs_tree` being the merged sides.
  Expected<std::vector<Conflict>> Conflicts(git_index* index, git_tree* ours_tree,
                                            git_tree* theirs_tree) {
    std::vector<Conflict> out;
    // Renames that collide are recorded as name entries; their paths' index conflicts belong to
    // them.
    std::set<std::string> renamed;
    for (size_t i = 0; i < git_index_name_entrycount(index); ++i) {
      const git_index_name_entry* n = git_index_name_get_byindex(index, i);
      Conflict c;
      for (const char* p : {n->ancestor, n->ours, n->theirs}) {
        if (p && std::find(c.paths.begin(), c.paths.end(), p) == c.paths.end())
          c.paths.emplace_back(p);
      }
      bool both_renamed = n->ours && n->theirs && std::string(n->ours) != n->theirs;
      c.kind = both_renamed ? "rename/rename" : "rename/delete";
      renamed.insert(c.paths.begin(), c.paths.end());
      out.push_back(std::move(c));
    }
    git_index_conflict_iterator* raw = nullptr;
    if (git_index_conflict_iterator_new(&raw, index) != 0) return GitError("conflicts");
    IteratorPtr it(raw);
    const git_index_entry *anc, *ours, *theirs;
    while (git_index_conflict_next(&anc, &ours, &theirs, it.get()) == 0) {
      Conflict c;
      for (const git_index_entry* e : {anc, ours, theirs}) {
        if (e && std::find(c.paths.begin(), c.paths.end(), e->path) == c.paths.end()) {
          c.paths.emplace_back(e->path);
        }
      }
      if (std::all_of(c.paths.begin(), c.paths.end(),
                      [&](const std::string& p) { return renamed.count(p) > 0; })) {
        continue;
      }
      c.kind = Kind(anc, ours, theirs, ours_tree, theirs_tree);
      if ((c.kind == "content" || c.kind == "add/add") && ours && theirs) {
        if (auto hunks = Hunks(anc, ours, theirs)) c.hunks = std::move(*hunks);
      }
      out.push_back(std::move(c));
    }
    return out;
  }

  static std::string Hex(const git_oid& id) { return git_oid_tostr_s(&id); }

 private:
  bool IsBinary(const git_index_entry* e) {
    if (!e) return false;
    git_blob* b = nullptr;
    if (git_blob_lookup(&b, repo_, &e->id) != 0) return false;
    bool binary = git_blob_is_binary(b);
    git_blob_free(b);
    return binary;
  }

  static bool IsDirectory(git_tree* tree, const char* path) {
    git_tree_entry* e = nullptr;
    if (!tree || git_tree_entry_bypath(&e, tree, path) != 0) return false;
    bool dir = git_tree_entry_type(e) == GIT_OBJECT_TREE;
    git_tree_entry_free(e);
    return dir;
  }

  std::string Kind(const git_index_entry* anc, const git_index_entry* ours,
                   const git_index_entry* theirs, git_tree* ours_tree, git_tree* theirs_tree) {
    if (anc && ours && theirs) {
      if (std::string(ours->path) != theirs->path) return "rename/rename";
      if (ours->mode != theirs->mode) return "mode";
      if (IsBinary(anc) || IsBinary(ours) || IsBinary(theirs)) return "binary";
      return "content";
    }
    if (!anc && ours && theirs) return IsBinary(ours) || IsBinary(theirs) ? "binary" : "add/add";
    const git_index_entry* present = ours ? ours : theirs;
    if (anc && present) {
      if (std::string(present->path) != anc->path) return "rename/delete";
      git_tree* missing_side = ours ? theirs_tree : ours_tree;
      return IsDirectory(missing_side, anc->path) ? "file/directory" : "modify/delete";
    }
    return "file/directory";
  }

  Expected<std::vector<Hunk>> Hunks(const git_index_entry* anc, const git_index_entry* ours,
                                    const git_index_entry* theirs) {
    if (IsBinary(anc) || IsBinary(ours) || IsBinary(theirs)) return std::vector<Hunk>{};
    git_merge_file_options fopts;
    git_merge_file_options_init(&fopts, GIT_MERGE_FILE_OPTIONS_VERSION);
    fopts.flags = GIT_MERGE_FILE_STYLE_DIFF3;
    fopts.ancestor_label = "base";
    fopts.our_label = "ours";
    fopts.their_label = "theirs";
    git_merge_file_result merged{};
    if (git_merge_file_from_index(&merged, repo_, anc, ours, theirs, &fopts) != 0) {
      return GitError("merge file");
    }
    std::vector<std::string> out_lines = Lines(std::string_view(merged.ptr, merged.len));
    git_merge_file_result_free(&merged);
    std::vector<std::string> side_lines[3] = {BlobLines(anc), BlobLines(ours), BlobLines(theirs)};
    size_t cursor[3] = {0, 0, 0};
    std::vector<Hunk> hunks;
    enum { kNone, kOurs, kBase, kTheirs } state = kNone;
    std::vector<std::string> block[3];  // base, ours, theirs
    int start = 0;
    for (size_t i = 0; i < out_lines.size(); ++i) {
      const std::string& l = out_lines[i];
      if (state == kNone && l.starts_with("<<<<<<< ")) {
        state = kOurs;
        start = static_cast<int>(i + 1);
        for (auto& b : block) b.clear();
      } else if (state == kOurs && l.starts_with("||||||| ")) {
        state = kBase;
      } else if ((state == kOurs || state == kBase) && l == "=======") {
        state = kTheirs;
      } else if (state == kTheirs && l.starts_with(">>>>>>> ")) {
        Hunk h;
        h.merged_line = start;
        h.base_start = Locate(side_lines[0], block[0], &cursor[0]);
        h.ours_start = Locate(side_lines[1], block[1], &cursor[1]);
        h.theirs_start = Locate(side_lines[2], block[2], &cursor[2]);
        h.base = Join(block[0]);
        h.ours = Join(block[1]);
        h.theirs = Join(block[2]);
        hunks.push_back(std::move(h));
        state = kNone;
      } else if (state == kOurs) {
        block[1].push_back(l);
      } else if (state == kBase) {
        block[0].push_back(l);
      } else if (state == kTheirs) {
        block[2].push_back(l);
      }
    }
    return hunks;
  }

  std::vector<std::string> BlobLines(const git_index_entry* e) {
    if (!e) return {};
    git_blob* b = nullptr;
    if (git_blob_lookup(&b, repo_, &e->id) != 0) return {};
    auto lines = Lines(
        std::string_view(static_cast<const char*>(git_blob_rawcontent(b)), git_blob_rawsize(b)));
    git_blob_free(b);
    return lines;
  }

  git_repository* repo_;
  std::string into_;
  git_merge_options opts_;
};

std::string OidKey(const git_oid& id) {
  return std::string(reinterpret_cast<const char*>(id.id), GIT_OID_RAWSZ);
}

// The commits reachable from `head` but not from `base` (OidKey), as git's `head ^base`, each
// before its parents (topological order).
Expected<std::vector<std::string>> CommitsBeyondIn(git_repository* repo, const git_oid& head,
                                                   const git_oid& base) {
  git_revwalk* raw = nullptr;
  if (git_revwalk_new(&raw, repo) != 0) return GitError("revwalk");
  GitPtr<git_revwalk, git_revwalk_free> walk(raw);
  git_revwalk_sorting(walk.get(), GIT_SORT_TOPOLOGICAL);
  if (git_revwalk_push(walk.get(), &head) != 0 || git_revwalk_hide(walk.get(), &base) != 0) {
    return GitError("walk from " + std::string(git_oid_tostr_s(&head)));
  }
  std::vector<std::string> out;
  git_oid id;
  while (git_revwalk_next(&id, walk.get()) == 0) out.push_back(OidKey(id));
  return out;
}

// A branch's history beyond the base of a run, from CommitsBeyondIn.
struct Lineage {
  Lineage(std::vector<std::string> order_in, bool from_base_in)
      : order(std::move(order_in)), commits(order.begin(), order.end()), from_base(from_base_in) {}

  bool Contains(const git_oid& id) const { return commits.count(OidKey(id)) > 0; }

  // The merge base of this branch and a history made of the base plus `other` (commits beyond
  // the base, OidKey), without walking either: the newest commit of this branch in `other` (the
  // first in topological order, so no other shared commit descends from it), or the base when
  // they share none. False when this branch does not descend from the base: then only a walk
  // can tell.
  bool MergeBase(const std::set<std::string>& other, const git_oid& base, git_oid* out) const {
    if (!from_base) return false;
    auto shared = std::find_if(order.begin(), order.end(),
                               [&](const std::string& k) { return other.count(k) > 0; });
    if (shared == order.end()) {
      *out = base;
    } else {
      git_oid_fromraw(out, reinterpret_cast<const unsigned char*>(shared->data()));
    }
    return true;
  }

  std::vector<std::string> order;  // topological: each commit before its parents
  std::set<std::string> commits;
  bool from_base;
};

}  // namespace

Expected<MergeReport> Repository::Integrate(const std::string& base,
                                            const std::vector<BranchToMerge>& branches,
                                            const std::string& into) {
  MergeReport report;
  report.branch = into;
  std::string into_ref = into.starts_with("refs/") ? into : "refs/heads/" + into;
  if (!git_reference_is_valid_name(into_ref.c_str())) {
    return Fail("'" + into + "' is not a valid branch name");
  }
  // The user's checked-out branch is never moved.
  git_reference* raw_into = nullptr;
  std::optional<git_oid> old_into;
  if (git_reference_lookup(&raw_into, repo_, into_ref.c_str()) == 0) {
    RefPtr existing(raw_into);
    if (CheckedOutByUser(common_dir_, into_ref)) {
      return Fail("refusing to update '" + into + "': it is checked out");
    }
    git_reference* resolved = nullptr;
    if (git_reference_resolve(&resolved, existing.get()) != 0) return GitError("resolve " + into);
    old_into = *git_reference_target(resolved);
    git_reference_free(resolved);
  }

  Merger m(repo_, into);
  git_oid current;
  if (git_oid_fromstr(&current, base.c_str()) != 0)
    return Fail("base '" + base + "' is not a commit id");
  git_oid base_id = current;
  auto sig = CorralSignature(repo_);
  if (!sig) return std::unexpected(sig.error());

  std::set<std::string> merged_commits;  // commits merged beyond the base (OidKey)
  bool current_is_ours = false;          // current is a merge commit made here
  std::map<std::string, std::vector<std::string>> changed_by;  // path -> merged tasks
  std::vector<std::pair<const BranchToMerge*, std::set<std::string>>> touched;
  std::vector<git_oid> heads;
  std::vector<Lineage> lineages;
  for (const BranchToMerge& b : branches) {
    git_oid head;
    if (git_reference_name_to_id(&head, repo_, ("refs/heads/" + b.branch).c_str()) != 0) {
      return GitError("branch " + b.branch + " of task '" + b.task + "'");
    }
    auto paths = m.Changed(base_id, head);
    if (!paths) return std::unexpected(paths.error());
    touched.emplace_back(&b, *paths);
    heads.push_back(head);

    // What `head` brings beyond the base. The integration history is the base's plus what was
    // merged so far, so "already contained" is a lookup instead of a walk through a history that
    // grows with every task (which made a run's merge quadratic in its tasks).
    auto beyond_base = CommitsBeyondIn(repo_, head, base_id);
    if (!beyond_base) return std::unexpected(beyond_base.error());
    const Lineage& lineage = lineages.emplace_back(
        *beyond_base, git_graph_descendant_of(repo_, &head, &base_id) == 1);
    bool merged = false;
    if (git_oid_equal(&head, &current) || beyond_base->empty() ||
        merged_commits.count(OidKey(head))) {
      merged = true;  // already contained
    } else if (!current_is_ours && git_graph_descendant_of(repo_, &head, &current) == 1) {
      current = head;  // fast-forward (no task branch descends from a merge commit made here)
      merged = true;
    } else {
      // The integration history is the base's plus what was merged, so the merge base is known
      // without a walk through that history (git_merge_base re-reads it for every branch:
      // quadratic in the tasks).
      git_oid known_base;
      bool known = lineage.MergeBase(merged_commits, base_id, &known_base);
      auto sides = m.LoadSides(current, head, known ? &known_base : nullptr);
      if (!sides) return std::unexpected(sides.error());
      auto trivial = m.TrivialMerge(sides->base.get(), sides->ours.get(), sides->theirs.get());
      if (!trivial) return std::unexpected(trivial.error());
      git_oid tree_id;
      if (*trivial) {
        tree_id = **trivial;
      } else {
        auto index = m.MergeTrees(*sides);
        if (!index) return std::unexpected(index.error());
        if (git_index_has_conflicts(index->get())) {
          auto conflicts = m.Conflicts(index->get(), sides->ours.get(), sides->theirs.get());
          if (!conflicts) return std::unexpected(conflicts.error());
          for (Conflict& c : *conflicts) {
            std::set<std::string> earlier;
            for (const std::string& p : c.paths) {
              auto it = changed_by.find(p);
              if (it != changed_by.end()) earlier.insert(it->second.begin(), it->second.end());
            }
            for (const BranchToMerge& prior : branches) {  // plan order
              if (earlier.count(prior.task)) c.tasks.push_back(prior.task);
            }
            c.tasks.push_back(b.task);
            report.conflicts.push_back(std::move(c));
          }
          report.conflicted.push_back(b.task);
          continue;
        }
        if (git_index_write_tree_to(&tree_id, index->get(), repo_) != 0)
          return GitError("write merged tree");
      }
      git_tree* raw_tree = nullptr;
      if (git_tree_lookup(&raw_tree, repo_, &tree_id) != 0) return GitError("merged tree");
      TreePtr tree(raw_tree);
      auto ours = m.Commit(current);
      auto theirs = m.Commit(head);
      if (!ours || !theirs) return std::unexpected(ours ? theirs.error() : ours.error());
      const git_commit* parents[] = {ours->get(), theirs->get()};
      std::string message = "corral: merge task " + b.task + " into " + into + "\n";
      if (git_commit_create(&current, repo_, nullptr, sig->get(), sig->get(), nullptr,
                            message.c_str(), tree.get(), 2, parents) != 0) {
        return GitError("merge commit for task '" + b.task + "'");
      }
      current_is_ours = true;
      merged = true;
    }
    if (merged) {
      merged_commits.insert(beyond_base->begin(), beyond_base->end());
      report.merged.push_back(b.task);
      for (const std::string& p : *paths) changed_by[p].push_back(b.task);
    }
  }

  // Compare-and-swap: fails if someone moved the branch since we read it.
  git_reference* raw_ref = nullptr;
  std::string log = "corral: integrate " + std::to_string(report.merged.size()) + " task(s)";
  int rc = RetryLocked([&] {
    return old_into ? git_reference_create_matching(&raw_ref, repo_, into_ref.c_str(), &current, 1,
                                                    &*old_into, log.c_str())
                    : git_reference_create(&raw_ref, repo_, into_ref.c_str(), &current, 0,
                                           log.c_str());
  });
  if (rc != 0) return GitError("update " + into);
  git_reference_free(raw_ref);
  report.commit = Merger::Hex(current);

  // The pairwise matrix: trial merges of every two branches whose changed paths overlap, unless
  // one contains the other (a task and its dependency: nothing to merge).
  for (size_t i = 0; i < touched.size(); ++i) {
    for (size_t j = i + 1; j < touched.size(); ++j) {
      const auto& a = touched[i].second;
      const auto& b = touched[j].second;
      if (std::none_of(a.begin(), a.end(), [&](const std::string& p) { return b.count(p); }))
        continue;
      if (lineages[i].Contains(heads[j]) || lineages[j].Contains(heads[i])) continue;
      git_oid known_base;
      bool known = lineages[i].from_base &&
                   lineages[j].MergeBase(lineages[i].commits, base_id, &known_base);
      auto sides = m.LoadSides(heads[i], heads[j], known ? &known_base : nullptr);
      if (!sides) return std::unexpected(sides.error());
      auto trivial = m.TrivialMerge(sides->base.get(), sides->ours.get(), sides->theirs.get());
      if (!trivial) return std::unexpected(trivial.error());
      if (*trivial) continue;
      auto index = m.MergeTrees(*sides);
      if (!index) return std::unexpected(index.error());
      if (!git_index_has_conflicts(index->get())) continue;
      PairConflict pc{touched[i].first->task, touched[j].first->task, {}};
      git_index_conflict_iterator* raw_it = nullptr;
      if (git_index_conflict_iterator_new(&raw_it, index->get()) != 0) return GitError("conflicts");
      IteratorPtr it(raw_it);
      const git_index_entry *anc, *ours, *theirs;
      std::set<std::string> paths;
      while (git_index_conflict_next(&anc, &ours, &theirs, it.get()) == 0) {
        for (const git_index_entry* e : {anc, ours, theirs}) {
          if (e) paths.insert(e->path);
        }
      }
      pc.paths.assign(paths.begin(), paths.end());
      report.pairs.push_back(std::move(pc));
    }
  }
  return report;
}

}  // namespace corral::worktree
