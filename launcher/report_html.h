// The run's report as one self-contained HTML file (report.html): no network, no script. A
// summary, a timeline of every task's tries, the DAG, the pairwise conflict matrix with the
// colliding paths, and per task what it executed, which hosts it reached or was refused, what it
// changed, its result, its exit and the end of its (redacted) output. Built from what the run
// directory already holds: report.json, events.jsonl and logs/.
#pragma once

#include <expected>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace corral::launcher {

// The HTML for `report` (report.json), the run's events and each task's log.
std::string ReportHtml(const nlohmann::json& report, const std::vector<nlohmann::json>& events,
                       const std::map<std::string, std::string>& logs);

// Reads report.json, events.jsonl and logs/ of the run directory `dir` and builds the HTML.
std::expected<std::string, std::string> ReportHtmlOfRun(const std::string& dir);

}  // namespace corral::launcher
