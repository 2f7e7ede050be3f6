// corral merge RUN [--into BRANCH] [--order t1,t2,...] [--repo DIR]
#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include "launcher/commands.h"
#include "launcher/run_state.h"
#include "worktree/worktree.h"

namespace corral::launcher {
namespace {

constexpr int kExitConflicts = 3;

struct MergeFlags {
  std::string run;
  std::string into;
  std::string order;
  std::string repo = ".";
};

int Merge(const MergeFlags& f) {
  auto s = LoadRun(f.repo, f.run);
  if (!s) return BadInput(s.error());
  std::vector<std::string> order = s->order;
  if (!f.order.empty()) {
    order.clear();
    std::stringstream ss(f.order);
    std::string id;
    std::set<std::string> seen;
    while (std::getline(ss, id, ',')) {
      if (!s->status.count(id)) return BadInput("--order: run " + s->id + " has no task '" + id + "'");
      if (!seen.insert(id).second) return BadInput("--order: '" + id + "' is listed twice");
      order.push_back(id);
    }
  }
  std::vector<worktree::BranchToMerge> branches;
  for (const std::string& id : order) {
    const std::string& status = s->status[id];
    if (status == "succeeded" || status == "no-changes") {
      branches.push_back({id, worktree::TaskBranch(s->id, id)});
    }
  }
  auto repo = worktree::Repository::Open(f.repo);
  if (!repo) return BadInput("--repo " + f.repo + ": " + repo.error().message);
  std::string into = f.into.empty() ? s->into : f.into;
  auto report = repo->Integrate(s->base, branches, into);
  if (!report) {
    std::fprintf(stderr, "corral: merge: %s\n", report.error().message.c_str());
    return kExitTaskFailed;
  }
  std::string md = worktree::ToMarkdown(*report);
  std::printf("%s", md.c_str());
  std::ofstream(s->dir + "/merge.md") << md;
  std::ofstream(s->dir + "/merge.json") << worktree::ToJson(*report) << "\n";
  return report->conflicted.empty() ? kExitOk : kExitConflicts;
}

}  // namespace

std::function<int()> DefineMerge(CLI::App* app) {
  auto f = std::make_shared<MergeFlags>();
  app->add_option("run", f->run, "The run")->required();
  app->add_option("--into", f->into, "The integration branch (default: the run's)");
  app->add_option("--order", f->order, "Tasks to merge, in this order: t1,t2,...");
  app->add_option("--repo", f->repo, "The repository (default: the current directory)");
  return [f] { return Merge(*f); };
}

}  // namespace corral::launcher
