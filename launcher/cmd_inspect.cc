// corral runs | status [RUN] | logs RUN TASK | path RUN TASK | report [RUN|latest] [--format
// json|md]
#include <cstdio>
#include <fstream>
#include <memory>

#include "launcher/commands.h"
#include "launcher/report_html.h"
#include "launcher/run_state.h"
#include "worktree/worktree.h"

namespace corral::launcher {
namespace {

std::string ReadFile(const std::string& path, bool* ok) {
  std::ifstream in(path, std::ios::binary);
  *ok = static_cast<bool>(in);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct Where {
  std::string repo = ".";
  std::string run = "latest";
  std::string task;
  std::string format = "md";
};

void AddRepo(CLI::App* app, Where* w) {
  app->add_option("--repo", w->repo, "The repository (default: the current directory)");
}

}  // namespace

std::function<int()> DefineRuns(CLI::App* app) {
  auto w = std::make_shared<Where>();
  AddRepo(app, w.get());
  return [w] {
    auto runs = ListRuns(w->repo);
    if (!runs) return BadInput(runs.error());
    for (const std::string& id : *runs) {
      auto s = LoadRun(w->repo, id);
      if (!s) {
        std::printf("%s  unreadable: %s\n", id.c_str(), s.error().c_str());
        continue;
      }
      std::map<std::string, int> counts;
      for (const auto& [task, status] : s->status) ++counts[status];
      std::string summary;
      for (const auto& [status, n] : counts) {
        summary += (summary.empty() ? "" : ", ") + std::to_string(n) + " " + status;
      }
      std::printf("%s  %s  %s\n", id.c_str(),
                  s->ended ? ("ended, exit " + std::to_string(s->exit)).c_str() : "unfinished",
                  summary.c_str());
    }
    return kExitOk;
  };
}

std::function<int()> DefineStatus(CLI::App* app) {
  auto w = std::make_shared<Where>();
  app->add_option("run", w->run, "The run (default: latest)");
  AddRepo(app, w.get());
  return [w] {
    auto s = LoadRun(w->repo, w->run);
    if (!s) return BadInput(s.error());
    std::printf("run %s (%s)\n", s->id.c_str(),
                s->ended ? ("ended, exit " + std::to_string(s->exit)).c_str() : "unfinished");
    for (const std::string& t : s->order)
      std::printf("  %-24s %s\n", t.c_str(), s->status[t].c_str());
    return kExitOk;
  };
}

namespace {

// RUN and TASK as positional options, and the run loaded with a check that it has the task.
void AddRunTask(CLI::App* app, Where* w) {
  app->add_option("run", w->run, "The run (or latest)")->required();
  app->add_option("task", w->task, "The task")->required();
  AddRepo(app, w);
}

std::expected<RunState, int> LoadRunWithTask(const Where& w) {
  auto s = LoadRun(w.repo, w.run);
  if (!s) return std::unexpected(BadInput(s.error()));
  if (!s->status.count(w.task)) {
    return std::unexpected(BadInput("run " + s->id + " has no task '" + w.task + "'"));
  }
  return std::move(*s);
}

}  // namespace

std::function<int()> DefineLogs(CLI::App* app) {
  auto w = std::make_shared<Where>();
  AddRunTask(app, w.get());
  return [w] {
    auto s = LoadRunWithTask(*w);
    if (!s) return s.error();
    bool ok = false;
    std::string log = ReadFile(s->dir + "/logs/" + w->task + ".log", &ok);
    if (!ok) return BadInput("task '" + w->task + "' of run " + s->id + " has no log yet");
    std::fwrite(log.data(), 1, log.size(), stdout);
    return kExitOk;
  };
}

std::function<int()> DefineReport(CLI::App* app) {
  auto w = std::make_shared<Where>();
  app->add_option("run", w->run, "The run (default: latest)");
  app->add_option("--format", w->format, "json, md or html (default: md)");
  AddRepo(app, w.get());
  return [w] {
    if (w->format != "json" && w->format != "md" && w->format != "html") {
      return BadInput("--format: '" + w->format + "' is not one of json, md, html");
    }
    auto s = LoadRun(w->repo, w->run);
    if (!s) return BadInput(s.error());
    bool ok = false;
    std::string text = ReadFile(s->dir + "/report." + w->format, &ok);
    if (!ok && w->format == "html") {
      // A run that ended before corral wrote report.html: built now from what the run kept.
      auto html = ReportHtmlOfRun(s->dir);
      if (html) text = std::move(*html);
      ok = html.has_value();
    }
    if (!ok) return BadInput("run " + s->id + " has no report yet (it has not ended)");
    std::fwrite(text.data(), 1, text.size(), stdout);
    return kExitOk;
  };
}

std::function<int()> DefinePath(CLI::App* app) {
  auto w = std::make_shared<Where>();
  AddRunTask(app, w.get());
  return [w] {
    auto s = LoadRunWithTask(*w);
    if (!s) return s.error();
    auto repo = worktree::Repository::Open(w->repo);
    if (!repo) return BadInput("--repo " + w->repo + ": " + repo.error().message);
    auto ws = repo->FindWorkspace(s->id, w->task);
    if (!ws) {
      return BadInput("task '" + w->task + "' of run " + s->id + " has no worktree (" +
                      ws.error().message + ")");
    }
    std::printf("%s\n", ws->path.c_str());
    return kExitOk;
  };
}

}  // namespace corral::launcher
