// corral clean [RUN | --all] [--dry-run] [--force] [--repo DIR]
#include <cstdio>
#include <memory>

#include "launcher/commands.h"
#include "worktree/worktree.h"

namespace corral::launcher {
namespace {

struct CleanFlags {
  std::string run;
  bool all = false;
  bool dry_run = false;
  bool force = false;
  std::string repo = ".";
};

int RunClean(const CleanFlags& f) {
  if (f.run.empty() == !f.all) {
    std::fprintf(stderr, "corral: clean: name one RUN, or --all\n");
    return kExitBadInput;
  }
  if (!f.run.empty()) {
    if (std::string e = worktree::CheckId(f.run, "run id"); !e.empty()) {
      std::fprintf(stderr, "corral: clean: %s\n", e.c_str());
      return kExitBadInput;
    }
  }
  auto repo = worktree::Repository::Open(f.repo);
  if (!repo) {
    std::fprintf(stderr, "corral: --repo %s: %s\n", f.repo.c_str(), repo.error().message.c_str());
    return kExitBadInput;
  }
  auto items = repo->Clean({f.run, f.dry_run, f.force});
  if (!items) {
    std::fprintf(stderr, "corral: clean: %s\n", items.error().message.c_str());
    return kExitTaskFailed;
  }
  for (const worktree::CleanItem& i : *items) {
    using A = worktree::CleanItem::Action;
    const char* verb = i.action == A::kRemoved    ? (f.dry_run ? "would remove" : "removed")
                       : i.action == A::kArchived ? (f.dry_run ? "would archive" : "archived")
                       : i.action == A::kRunning  ? "running"
                                                  : "kept";
    std::printf("%s %s (%s)\n", verb, (i.branch.empty() ? i.path : i.branch).c_str(),
                i.reason.c_str());
  }
  size_t kept = 0;
  for (const auto& i : *items) kept += i.action == worktree::CleanItem::Action::kKept;
  if (kept && !f.force) std::printf("%zu kept; --force archives them under refs/corral/archive/\n", kept);
  return kExitOk;
}

}  // namespace

std::function<int()> DefineClean(CLI::App* app) {
  auto f = std::make_shared<CleanFlags>();
  app->add_option("run", f->run, "The run whose task worktrees and branches to clean");
  app->add_flag("--all", f->all, "Every run");
  app->add_flag("--dry-run", f->dry_run, "Say what would be removed or archived; change nothing");
  app->add_flag("--force", f->force, "Archive work found on no other branch, then remove it");
  app->add_option("--repo", f->repo, "The repository (default: the current directory)");
  return [f] { return RunClean(*f); };
}

}  // namespace corral::launcher
