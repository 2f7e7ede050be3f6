#include "launcher/run_state.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "launcher/event_log.h"
#include "worktree/worktree.h"

namespace corral::launcher {
namespace {

namespace fs = std::filesystem;

std::expected<std::string, std::string> RunsDir(const std::string& repo) {
  auto r = worktree::Repository::Open(repo);
  if (!r) return std::unexpected("--repo " + repo + ": " + r.error().message);
  return r->common_dir() + "/corral/runs";
}

}  // namespace

std::expected<std::vector<std::string>, std::string> ListRuns(const std::string& repo) {
  auto dir = RunsDir(repo);
  if (!dir) return std::unexpected(dir.error());
  std::vector<std::string> runs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(*dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.starts_with(".")) continue;  // a run being made (or one killed while it was)
    if (fs::exists(e.path() / "events.jsonl")) runs.push_back(name);
  }
  std::sort(runs.begin(), runs.end());  // ids start with the UTC time
  return runs;
}

std::expected<std::string, std::string> RunDir(const std::string& repo, const std::string& run) {
  auto dir = RunsDir(repo);
  if (!dir) return std::unexpected(dir.error());
  if (run == "latest") {
    auto runs = ListRuns(repo);
    if (!runs) return std::unexpected(runs.error());
    if (runs->empty()) return std::unexpected("no runs in " + *dir);
    return *dir + "/" + runs->back();
  }
  if (!worktree::CheckId(run, "run id").empty() || !fs::exists(*dir + "/" + run)) {
    return std::unexpected("no run '" + run + "' in " + *dir);
  }
  return *dir + "/" + run;
}

std::expected<RunState, std::string> LoadRun(const std::string& repo, const std::string& run) {
  auto dir = RunDir(repo, run);
  if (!dir) return std::unexpected(dir.error());
  RunState s;
  s.dir = *dir;
  s.id = fs::path(*dir).filename().string();
  auto events = EventLog::Read(s.dir + "/events.jsonl");
  if (!events) return std::unexpected(events.error());
  // A log corral wrote has these shapes; a changed one may not (corral audit verify says).
  try {
    for (const nlohmann::json& e : *events) {
      std::string type = e.value("type", "");
      if (type == "run-start") {
        s.base = e.value("base", "");
        s.into = e.value("into", "corral/" + s.id + "/merged");
        s.order = e.value("order", std::vector<std::string>{});
        for (const std::string& t : s.order) s.status[t] = "pending";
      } else if (type == "task-start") {
        s.status[e.value("task", "")] = "running";
      } else if (type == "task-end") {
        s.status[e.value("task", "")] =
            e.value("state", "") == "succeeded" ? e.value("status", "") : e.value("state", "");
      } else if (type == "task-awaiting-approval") {
        s.status[e.value("task", "")] = "awaiting-approval";
      } else if (type == "run-end") {
        s.ended = true;
        s.exit = e.value("exit", -1);
      }
    }
  } catch (const nlohmann::json::exception&) {
    return std::unexpected(s.dir + "/events.jsonl: a record is not of the shape corral writes; " +
                           "corral audit verify " + s.id + " tells whether the log was changed");
  }
  std::ifstream in(s.dir + "/report.json");
  if (in) s.report = nlohmann::json::parse(in, nullptr, false);
  if (s.report.is_discarded()) s.report = nullptr;
  if (s.report.is_object()) {
    for (const auto& t : s.report.value("tasks", nlohmann::json::array())) {
      if (t.is_object() && t.value("id", nlohmann::json()).is_string() &&
          t.value("status", nlohmann::json()).is_string()) {
        s.status[t["id"].get<std::string>()] = t["status"].get<std::string>();
      }
    }
  }
  return s;
}

}  // namespace corral::launcher
