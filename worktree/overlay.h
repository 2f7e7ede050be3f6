// Overlay workspaces (overlay.cc); private to corral::worktree.
#pragma once

#include <git2.h>

#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "worktree/error.h"
#include "worktree/files.h"

namespace corral::worktree {

// overlayfs's work folder for the workspace at `workspace`: beside it, as overlayfs requires.
std::string OverlayWorkPath(const std::string& workspace);

// The export commit an overlay workspace's admin folder names, or "" for a plain worktree.
std::string ReadOverlayMarker(const std::string& admin_dir);
Expected<> WriteOverlayMarker(const std::string& admin_dir, const std::string& commit);

// Where the export of `commit` is checked out.
std::string ExportTree(const std::string& common, const std::string& commit);

// Checks `commit` out once into <common>/corral/exports/<commit>/tree, beside an index holding
// those files' stat data; returns the tree folder. Safe from many threads and processes at once.
// The export stays while the caller holds the returned lock (shared), until a workspace's
// marker names it.
Expected<std::string> EnsureExport(git_repository* repo, const std::string& common,
                                   const std::string& commit, std::optional<FileLock>* hold);

// Removes the exports that no overlay workspace names (unless `dry_run`); returns their folders.
Expected<std::vector<std::string>> RemoveUnusedExports(const std::string& common, bool dry_run);

// Makes the (empty) folder `path` of the worktree `wrepo` what the overlay of the export of
// `export_commit` needs to show `start`: the files that differ, whiteouts for the deleted, every
// .gitignore and .gitattributes; and its index `start`'s, skip-worktree where the file is not in
// the folder.
Expected<> FillOverlay(git_repository* wrepo, const std::string& common, const std::string& path,
                       const std::string& admin_dir, const std::string& export_commit,
                       const git_commit* start);

struct OverlayChanges {
  std::vector<std::string> candidates;    // sorted: what is in the folder, and what was deleted
  std::set<std::string> not_checked_out;  // tracked, not in the folder, not deleted
  std::vector<std::string> unreadable;    // folders, "path/"
  std::unordered_set<std::string> in_folder;  // each path the folder holds after a clean read
  bool deletions = false;                 // whether a tracked path was deleted
};

// What an agent changed in the overlay workspace `root` (on the export `lower`) against
// `index`. With `clean`, the whiteouts and overlayfs's attributes are removed afterwards,
// leaving a sparse worktree.
Expected<OverlayChanges> ReadOverlay(const std::string& root, const std::string& lower,
                                     git_index* index, bool clean);

// Marks each entry of `index` skip-worktree when the folder does not hold its file (`in_folder`,
// as ReadOverlay with `clean` listed it), and clears the mark of the others. A file below one of
// the `unreadable` folders ("path/") counts as held.
void MarkNotCheckedOut(git_index* index, const std::unordered_set<std::string>& in_folder,
                       const std::vector<std::string>& unreadable);
void ClearSkipWorktree(git_index* index);

}  // namespace corral::worktree
