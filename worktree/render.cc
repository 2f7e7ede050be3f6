// The merge report as JSON (DESIGN.md's `merge` object) and as Markdown.
#include <nlohmann/json.hpp>

#include "worktree/worktree.h"

namespace corral::worktree {

std::string ToJson(const MergeReport& r) {
  using nlohmann::json;
  json conflicts = json::array();
  for (const Conflict& c : r.conflicts) {
    json hunks = json::array();
    for (const Hunk& h : c.hunks) {
      hunks.push_back({{"merged_line", h.merged_line},
                       {"base", {{"start", h.base_start}, {"text", h.base}}},
                       {"ours", {{"start", h.ours_start}, {"text", h.ours}}},
                       {"theirs", {{"start", h.theirs_start}, {"text", h.theirs}}}});
    }
    conflicts.push_back({{"path", c.paths.front()},
                         {"paths", c.paths},
                         {"kind", c.kind},
                         {"tasks", c.tasks},
                         {"hunks", hunks}});
  }
  json pairs = json::array();
  for (const PairConflict& p : r.pairs) pairs.push_back({{"tasks", {p.a, p.b}}, {"paths", p.paths}});
  json j = {{"branch", r.branch},       {"commit", r.commit},       {"merged", r.merged},
            {"conflicted", r.conflicted}, {"conflicts", conflicts}, {"pairs", pairs}};
  // Paths and hunks need not be UTF-8 (a file's name or text in Latin-1): such bytes show as
  // U+FFFD.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

std::string Fence(const std::string& label, const std::string& text) {
  return "```" + label + "\n" + text + (text.empty() || text.back() == '\n' ? "" : "\n") + "```\n";
}

std::string List(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& i : items) out += (out.empty() ? "" : ", ") + ("`" + i + "`");
  return out.empty() ? "none" : out;
}

}  // namespace

std::string ToMarkdown(const MergeReport& r) {
  std::string md = "## Integration merge into `" + r.branch + "`\n\n";
  md += "- head: `" + r.commit + "`\n";
  md += "- merged: " + List(r.merged) + "\n";
  md += "- left out (conflicts): " + List(r.conflicted) + "\n";
  if (!r.conflicts.empty()) {
    md += "\n### Conflicts\n";
    for (const Conflict& c : r.conflicts) {
      md += "\n#### " + List(c.paths) + ": " + c.kind + " (tasks " + List(c.tasks) + ")\n";
      for (const Hunk& h : c.hunks) {
        md += "\nAt line " + std::to_string(h.merged_line) + " of the merged file:\n\n";
        md += "ours (line " + std::to_string(h.ours_start) + "):\n" + Fence("", h.ours);
        md += "base (line " + std::to_string(h.base_start) + "):\n" + Fence("", h.base);
        md += "theirs (line " + std::to_string(h.theirs_start) + "):\n" + Fence("", h.theirs);
      }
    }
  }
  if (!r.pairs.empty()) {
    md += "\n### Pairs of tasks that conflict\n\n| tasks | paths |\n|---|---|\n";
    for (const PairConflict& p : r.pairs) {
      md += "| `" + p.a + "` × `" + p.b + "` | " + List(p.paths) + " |\n";
    }
  }
  return md;
}

}  // namespace corral::worktree
