// Reading a run's state back from .git/corral/runs/<run>/: for status, logs, report and merge.
#pragma once

#include <expected>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace corral::launcher {

struct RunState {
  std::string id;
  std::string dir;
  std::string base;
  std::string into;
  std::vector<std::string> order;             // task ids, dependency order
  std::map<std::string, std::string> status;  // task id -> last known status
  bool ended = false;                         // a run-end record exists
  int exit = -1;
  nlohmann::json report;  // report.json, or null
};

// The runs of the repository at `repo`, oldest first.
std::expected<std::vector<std::string>, std::string> ListRuns(const std::string& repo);

// The folder of a run ("latest" for the newest), without reading its log.
std::expected<std::string, std::string> RunDir(const std::string& repo, const std::string& run);

// Loads a run ("latest" for the newest) by replaying its events.jsonl.
std::expected<RunState, std::string> LoadRun(const std::string& repo, const std::string& run);

}  // namespace corral::launcher
