#include "launcher/report_html.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>

#include "launcher/escape.h"
#include "launcher/event_log.h"

namespace corral::launcher {
namespace {

using json = nlohmann::json;

// How much of each log the report shows: its end.
constexpr size_t kLogTail = size_t{16} * 1024;
constexpr size_t kMaxRowsPerTask = 200;

std::string Esc(const std::string& s) { return EscapeMarkup(s); }

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// Seconds since the epoch of an RFC 3339 UTC time ("2026-11-30T19:03:00Z"); -1 if not one.
int64_t Seconds(const std::string& t) {
  std::tm tm{};
  if (t.size() < 20 || !strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return -1;
  return static_cast<int64_t>(timegm(&tm));
}

// A task id as an HTML id and anchor.
std::string Anchor(const std::string& id) { return "task-" + id; }

const char* kStyle = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d232a;background:#fafbfc}
header{background:#1d232a;color:#fff;padding:12px 20px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c9d1d9}main{padding:8px 20px 40px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
code,pre{font:12px/1.35 ui-monospace,monospace}pre{background:#f0f2f4;padding:8px;overflow:auto;max-height:320px;white-space:pre-wrap;word-break:break-all}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#eef1f4}.scroll{overflow:auto;max-height:480px;border:1px solid #d0d7de;background:#fff}
.st{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px;color:#fff}
.succeeded{background:#1a7f37}.failed,.timed-out,.secret-leak,.conflicted{background:#cf222e}
.skipped{background:#8c959f}.awaiting-approval{background:#bf8700}.cancelled{background:#6e7781}
.bar{fill:#0969da}.bar.failed{fill:#cf222e}.bar.succeeded{fill:#1a7f37}.bar.other{fill:#8c959f}
.node rect{stroke:#57606a;fill:#fff}.node.succeeded rect{fill:#dafbe1}.node.failed rect{fill:#ffebe9}
.node.skipped rect{fill:#eaeef2}.node.awaiting-approval rect{fill:#fff8c5}.edge{stroke:#8c959f;fill:none}
.counts span{margin-right:12px}details{margin:6px 0;background:#fff;border:1px solid #d0d7de;padding:4px 8px}
summary{cursor:pointer}.refused{color:#cf222e}.dim{color:#57606a}.m{text-align:center}
.m.hit{background:#ffebe9;font-weight:bold}
)";

struct TaskView {
  json report;                  // the task's entry of report.json
  std::vector<json> tries;      // task-start records
  std::vector<json> ends;       // task-end records
  std::vector<json> execs;
  std::vector<json> net;
  int64_t first = -1, last = -1;  // seconds
};

// When a record happened, in milliseconds since the epoch: t_ms where the record has it, else
// its second-resolution t.
int64_t Ms(const json& e) {
  if (e.contains("t_ms") && e["t_ms"].is_number_integer()) return e["t_ms"].get<int64_t>();
  int64_t s = Seconds(Str(e, "t"));
  return s < 0 ? -1 : s * 1000;
}

std::string Timeline(const std::vector<std::string>& ids, std::map<std::string, TaskView>& v,
                     int64_t t0) {
  int64_t span = 1;
  for (const auto& id : ids) span = std::max(span, v[id].last - t0);
  const int width = 900, label = 180, row = 18;
  int height = static_cast<int>(ids.size()) * row + 24;
  std::string svg = "<svg xmlns='http://www.w3.org/2000/svg' width='" +
                    std::to_string(width + label + 20) + "' height='" + std::to_string(height) +
                    "' role='img' aria-label='timeline'>";
  char total[32];
  std::snprintf(total, sizeof(total), "%.1f s", static_cast<double>(span) / 1000);
  svg += "<text x='" + std::to_string(label) + "' y='12' font-size='11'>0 s</text><text x='" +
         std::to_string(label + width - 40) + "' y='12' font-size='11'>" + total + "</text>";
  int y = 18;
  for (const auto& id : ids) {
    TaskView& t = v[id];
    svg += "<text x='0' y='" + std::to_string(y + 12) + "' font-size='11'>" + Esc(id) + "</text>";
    for (size_t i = 0; i < t.tries.size(); ++i) {
      int64_t start = Ms(t.tries[i]);
      const json* end = i < t.ends.size() ? &t.ends[i] : nullptr;
      int64_t stop = end ? Ms(*end) : t.last;
      if (start < 0) continue;
      double x0 = label + static_cast<double>(start - t0) * width / static_cast<double>(span);
      double w = std::max(3.0, static_cast<double>(std::max<int64_t>(stop - start, 0)) * width /
                                   static_cast<double>(span));
      std::string status = end ? Str(*end, "status") : "running";
      std::string cls = status == "succeeded" ? "succeeded" : status == "failed" ? "failed" : "other";
      svg += "<rect class='bar " + cls + "' x='" + std::to_string(x0) + "' y='" +
             std::to_string(y + 2) + "' width='" + std::to_string(w) + "' height='" +
             std::to_string(row - 6) + "'><title>" + Esc(id) + " try " + std::to_string(i + 1) +
             ": " + Esc(status) + (end ? ", " + Str(*end, "wall_ms") + " ms in the sandbox" : "") +
             "</title></rect>";
    }
    if (t.tries.empty()) {
      svg += "<text x='" + std::to_string(label) + "' y='" + std::to_string(y + 12) +
             "' font-size='11' fill='#57606a'>" + Esc(Str(t.report, "status")) + ": " +
             Esc(Str(t.report, "reason")) + "</text>";
    }
    y += row;
  }
  return svg + "</svg>";
}

std::string Dag(const std::vector<std::string>& ids, std::map<std::string, TaskView>& v) {
  // Layers by longest path from a root; the plan's order within a layer.
  std::map<std::string, int> layer;
  for (const auto& id : ids) {  // ids are in dependency order: dependencies come first
    int l = 0;
    for (const json& d : v[id].report.value("depends_on", json::array())) {
      if (d.is_string() && layer.count(d.get<std::string>())) {
        l = std::max(l, layer[d.get<std::string>()] + 1);
      }
    }
    layer[id] = l;
  }
  std::map<int, int> used;
  std::map<std::string, std::pair<int, int>> at;
  const int w = 150, h = 26, gx = 40, gy = 10;
  int max_x = 0, max_y = 0;
  for (const auto& id : ids) {
    int col = layer[id], r = used[col]++;
    at[id] = {20 + col * (w + gx), 10 + r * (h + gy)};
    max_x = std::max(max_x, at[id].first + w);
    max_y = std::max(max_y, at[id].second + h);
  }
  std::string svg = "<svg xmlns='http://www.w3.org/2000/svg' width='" + std::to_string(max_x + 20) +
                    "' height='" + std::to_string(max_y + 20) + "' role='img' aria-label='DAG'>";
  for (const auto& id : ids) {
    for (const json& d : v[id].report.value("depends_on", json::array())) {
      if (!d.is_string() || !at.count(d.get<std::string>())) continue;
      auto [x1, y1] = at[d.get<std::string>()];
      auto [x2, y2] = at[id];
      svg += "<path class='edge' d='M" + std::to_string(x1 + w) + "," + std::to_string(y1 + h / 2) +
             " C" + std::to_string(x1 + w + gx / 2) + "," + std::to_string(y1 + h / 2) + " " +
             std::to_string(x2 - gx / 2) + "," + std::to_string(y2 + h / 2) + " " +
             std::to_string(x2) + "," + std::to_string(y2 + h / 2) + "'/>";
    }
  }
  for (const auto& id : ids) {
    auto [x, y] = at[id];
    std::string status = Str(v[id].report, "status");
    std::string shown = id.size() > 20 ? id.substr(0, 19) + "…" : id;
    svg += "<a href='#" + Esc(Anchor(id)) + "'><g class='node " + Esc(status) + "' data-node='" +
           Esc(id) + "'><rect x='" + std::to_string(x) + "' y='" + std::to_string(y) +
           "' width='" + std::to_string(w) + "' height='" + std::to_string(h) +
           "' rx='4'/><text x='" + std::to_string(x + 6) + "' y='" + std::to_string(y + 17) +
           "' font-size='12'>" + Esc(shown) + "</text><title>" + Esc(id) + ": " + Esc(status) +
           "</title></g></a>";
  }
  return svg + "</svg>";
}

std::string Join(const json& list, const std::string& sep, bool code) {
  std::string out;
  for (const json& x : list) {
    std::string s = Esc(x.is_string() ? x.get<std::string>() : x.dump());
    out += (out.empty() ? "" : sep) + (code ? "<code>" + s + "</code>" : s);
  }
  return out;
}

// Rows and columns: the tasks that collide with another; a cell: how many paths both changed.
std::string ConflictMatrix(const json& merge) {
  const json pairs = merge.is_object() ? merge.value("pairs", json::array()) : json::array();
  std::vector<std::string> tasks;
  std::map<std::pair<std::string, std::string>, json> hit;
  for (const json& p : pairs) {
    const json t = p.value("tasks", json::array());
    if (t.size() != 2 || !t[0].is_string() || !t[1].is_string()) continue;
    std::string a = t[0], b = t[1];
    for (const std::string& x : {a, b}) {
      if (std::find(tasks.begin(), tasks.end(), x) == tasks.end()) tasks.push_back(x);
    }
    hit[{a, b}] = hit[{b, a}] = p.value("paths", json::array());
  }
  if (tasks.empty()) return "<p id='conflicts'>No two tasks changed the same paths.</p>";
  std::string out = "<div class='scroll'><table id='conflicts'><tr><th></th>";
  for (const auto& t : tasks) out += "<th>" + Esc(t) + "</th>";
  out += "</tr>";
  for (const auto& a : tasks) {
    out += "<tr><th>" + Esc(a) + "</th>";
    for (const auto& b : tasks) {
      auto it = hit.find({a, b});
      if (it == hit.end()) {
        out += "<td class='m'></td>";
      } else {
        out += "<td class='m hit' title='" + Join(it->second, "\n", false) + "'>" +
               std::to_string(it->second.size()) + "</td>";
      }
    }
    out += "</tr>";
  }
  out += "</table></div><ul>";
  for (const json& p : pairs) {
    out += "<li>" + Join(p.value("tasks", json::array()), " and ", true) + " both changed " +
           Join(p.value("paths", json::array()), ", ", true) + "</li>";
  }
  return out + "</ul>";
}

std::string TaskSection(const std::string& id, TaskView& t, const std::string& log) {
  const json& r = t.report;
  std::string status = Str(r, "status");
  std::string out = "<details class='task' id='" + Esc(Anchor(id)) + "' data-task='" + Esc(id) +
                    "'><summary><code>" + Esc(id) + "</code> <span class='st " + Esc(status) +
                    "'>" + Esc(status) + "</span>";
  if (!Str(r, "exit_code").empty()) out += " exit " + Esc(Str(r, "exit_code"));
  out += " <span class='dim'>" + Esc(Str(r, "tries")) + " tries, " +
         std::to_string(r.value("files_changed", json::array()).size()) + " files changed</span>";
  if (!Str(r, "reason").empty()) out += " <span class='dim'>— " + Esc(Str(r, "reason")) + "</span>";
  out += "</summary><table>";
  for (const char* k : {"policy", "branch", "commit", "started_at", "ended_at", "output_error",
                        "log_dropped_bytes"}) {
    if (!Str(r, k).empty()) out += "<tr><th>" + std::string(k) + "</th><td><code>" + Esc(Str(r, k)) + "</code></td></tr>";
  }
  std::string deps;
  for (const json& d : r.value("depends_on", json::array())) {
    deps += (deps.empty() ? "" : ", ") + std::string("<a href='#") + Esc(Anchor(d.get<std::string>())) +
            "'>" + Esc(d.get<std::string>()) + "</a>";
  }
  if (!deps.empty()) out += "<tr><th>depends on</th><td>" + deps + "</td></tr>";
  out += "</table>";

  out += "<h4>Executed (" + std::to_string(t.execs.size()) + ", observed)</h4>";
  if (!t.execs.empty()) {
    out += "<div class='scroll'><table><tr><th>try</th><th>pid</th><th>parent</th><th>argv</th><th>cwd</th><th>end</th></tr>";
    for (size_t i = 0; i < t.execs.size() && i < kMaxRowsPerTask; ++i) {
      const json& e = t.execs[i];
      std::string argv;
      for (const json& a : e.value("argv", json::array())) {
        argv += (argv.empty() ? "" : " ") + (a.is_string() ? a.get<std::string>() : a.dump());
      }
      std::string end = Str(e, "end") == "exited"     ? "exit " + Str(e, "exit")
                        : Str(e, "end") == "signaled" ? "signal " + Str(e, "signal")
                                                      : Str(e, "end");
      out += "<tr><td>" + Esc(Str(e, "try")) + "</td><td>" + Esc(Str(e, "pid")) + "</td><td>" +
             Esc(Str(e, "ppid")) + "</td><td><code>" + Esc(argv) + "</code></td><td><code>" +
             Esc(Str(e, "cwd")) + "</code></td><td>" + Esc(end) + "</td></tr>";
    }
    out += "</table></div>";
    if (t.execs.size() > kMaxRowsPerTask) {
      out += "<p class='dim'>and " + std::to_string(t.execs.size() - kMaxRowsPerTask) +
             " more: corral audit show</p>";
    }
  }
  out += "<h4>Network (" + std::to_string(t.net.size()) + ")</h4>";
  if (!t.net.empty()) {
    out += "<table><tr><th>decision</th><th>method</th><th>host:port</th><th>bytes up/down</th><th>status</th><th>reason</th></tr>";
    for (size_t i = 0; i < t.net.size() && i < kMaxRowsPerTask; ++i) {
      const json& n = t.net[i];
      bool refused = Str(n, "decision") != "allowed";
      out += std::string("<tr") + (refused ? " class='refused'" : "") + "><td>" +
             Esc(Str(n, "decision")) + "</td><td>" + Esc(Str(n, "method")) + "</td><td><code>" +
             Esc(Str(n, "host")) + ":" + Esc(Str(n, "port")) + "</code></td><td>" +
             Esc(Str(n, "bytes_up")) + " / " + Esc(Str(n, "bytes_down")) + "</td><td>" +
             Esc(Str(n, "status")) + "</td><td>" + Esc(Str(n, "reason")) + "</td></tr>";
    }
    out += "</table>";
  }
  out += "<h4>Changed</h4>";
  const json lines = r.value("lines", json::array());
  if (!lines.empty()) {
    out += "<table><tr><th>path</th><th>+</th><th>−</th></tr>";
    for (const json& l : lines) {
      out += "<tr><td><code>" + Esc(Str(l, "path")) + "</code></td>" +
             (l.value("binary", false) ? "<td colspan='2'>binary</td>"
                                       : "<td>" + Esc(Str(l, "added")) + "</td><td>" +
                                             Esc(Str(l, "deleted")) + "</td>") +
             "</tr>";
    }
    out += "</table>";
  } else {
    std::string files = Join(r.value("files_changed", json::array()), ", ", true);
    out += "<p>" + (files.empty() ? std::string("nothing") : files) + "</p>";
  }
  if (r.contains("output") && !r["output"].is_null()) {
    out += "<h4>Result (CORRAL_OUTPUT)</h4><pre>" + Esc(r["output"].dump(2)) + "</pre>";
  }
  out += "<h4>Output (redacted";
  if (log.size() > kLogTail) out += ", last " + std::to_string(kLogTail / 1024) + " KiB";
  out += ")</h4><pre>" + Esc(log.size() > kLogTail ? log.substr(log.size() - kLogTail) : log) +
         "</pre></details>";
  return out;
}

}  // namespace

std::string ReportHtml(const json& report, const std::vector<json>& events,
                       const std::map<std::string, std::string>& logs) {
  std::vector<std::string> ids;
  std::map<std::string, TaskView> v;
  for (const json& t : report.value("tasks", json::array())) {
    std::string id = Str(t, "id");
    ids.push_back(id);
    v[id].report = t;
  }
  int64_t t0 = -1, t_end = -1;
  std::string plan, user, host, corral;
  for (const json& e : events) {
    if (!e.is_object()) continue;
    std::string type = Str(e, "type");
    int64_t t = Ms(e);
    if (type == "run-start" && t0 < 0) {
      t0 = t;
      plan = Str(e, "plan");
      user = Str(e, "user");
      host = Str(e, "host");
      corral = Str(e, "corral");
    }
    if (type == "run-end") t_end = t;
    std::string task = Str(e, "task");
    if (task.empty() || !v.count(task)) continue;
    TaskView& tv = v[task];
    if (t >= 0) {
      if (tv.first < 0) tv.first = t;
      tv.last = std::max(tv.last, t);
    }
    if (type == "task-start") tv.tries.push_back(e);
    if (type == "task-end") tv.ends.push_back(e);
    if (type == "exec") tv.execs.push_back(e);
    if (type == "net") tv.net.push_back(e);
  }
  if (t0 < 0) t0 = 0;
  std::map<std::string, int> counts;
  for (const auto& id : ids) ++counts[Str(v[id].report, "status")];

  std::string run = Str(report, "run");
  std::string html =
      "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
      "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src "
      "'unsafe-inline'; img-src data:\">"
      "<meta name='viewport' content='width=device-width,initial-scale=1'><title>corral run " +
      Esc(run) + "</title><style>" + kStyle + "</style></head><body><header><h1>corral run " +
      Esc(run) + "</h1><p>base <code>" + Esc(Str(report, "base")) + "</code>";
  if (!plan.empty()) html += " · plan <code>" + Esc(plan) + "</code>";
  if (!user.empty()) html += " · by " + Esc(user) + "@" + Esc(host);
  if (!corral.empty()) html += " · corral " + Esc(corral);
  if (t_end >= t0 && t_end >= 0) html += " · " + std::to_string((t_end - t0) / 1000) + " s";
  html += "</p></header><main><p class='counts'>";
  html += "<span>" + std::to_string(ids.size()) + " tasks</span>";
  for (const auto& [status, n] : counts) {
    html += "<span><span class='st " + Esc(status) + "'>" + Esc(status) + "</span> " +
            std::to_string(n) + "</span>";
  }
  html += "</p>";
  const json merge = report.value("merge", json());
  if (merge.is_object()) {
    html += "<p>Merged into <code>" + Esc(Str(merge, "branch")) + "</code> at <code>" +
            Esc(Str(merge, "commit")) + "</code>: " +
            std::to_string(merge.value("merged", json::array()).size()) + " tasks merged, " +
            std::to_string(merge.value("conflicted", json::array()).size()) +
            " left out for conflicts.</p>";
  } else {
    html += "<p>No integration merge.</p>";
  }
  html += "<h2>Timeline</h2><div class='scroll' id='timeline'>" + Timeline(ids, v, t0) + "</div>";
  html += "<h2>Tasks and dependencies</h2><div class='scroll' id='dag'>" + Dag(ids, v) + "</div>";
  html += "<h2>Conflicts between tasks</h2>" + ConflictMatrix(merge);
  if (merge.is_object()) {
    for (const json& c : merge.value("conflicts", json::array())) {
      html += "<details><summary>" + Esc(Str(c, "kind")) + " conflict in <code>" +
              Esc(Str(c, "path")) + "</code> between " + Join(c.value("tasks", json::array()), " and ", true) +
              "</summary><pre>" + Esc(c.dump(2)) + "</pre></details>";
    }
  }
  html += "<h2>Tasks</h2><div id='tasks'>";
  for (const auto& id : ids) {
    auto it = logs.find(id);
    html += TaskSection(id, v[id], it == logs.end() ? "" : it->second);
  }
  html += "</div></main></body></html>\n";
  return html;
}

std::expected<std::string, std::string> ReportHtmlOfRun(const std::string& dir) {
  std::ifstream in(dir + "/report.json");
  if (!in) return std::unexpected("no report.json (the run has not ended)");
  json report = json::parse(in, nullptr, false);
  if (report.is_discarded() || !report.is_object()) {
    return std::unexpected(dir + "/report.json: not a JSON object");
  }
  auto events = EventLog::Read(dir + "/events.jsonl");
  if (!events) return std::unexpected(events.error());
  std::map<std::string, std::string> logs;
  for (const json& t : report.value("tasks", json::array())) {
    std::string id = Str(t, "id");
    if (id.empty() || id.find('/') != std::string::npos) continue;
    std::ifstream log(dir + "/logs/" + id + ".log", std::ios::binary);
    if (!log) continue;
    log.seekg(0, std::ios::end);
    std::streamoff size = log.tellg();
    std::streamoff from = std::max<std::streamoff>(0, size - static_cast<std::streamoff>(kLogTail) - 1);
    log.seekg(from);
    logs[id].assign(std::istreambuf_iterator<char>(log), {});
  }
  return ReportHtml(report, *events, logs);
}

}  // namespace corral::launcher
