// corral audit verify [RUN] [--expect-head H] [--key K] | corral audit show RUN [--task T] [--json]
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "launcher/audit.h"
#include "launcher/commands.h"
#include "launcher/crypto.h"
#include "launcher/event_log.h"
#include "launcher/run_state.h"

namespace corral::launcher {
namespace {

using nlohmann::json;

struct Args {
  std::string repo = ".";
  std::string run = "latest";
  std::string task;
  std::string expect_head;
  std::string key;
  bool json = false;
};

// RUN is a run id, "latest", or the path of an events.jsonl (an auditor's copy).
std::expected<std::string, std::string> LogPath(const Args& a) {
  struct stat st;
  if (a.run.find('/') != std::string::npos || a.run.ends_with(".jsonl")) {
    if (stat(a.run.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return std::unexpected(a.run + ": no such log file");
    }
    return a.run;
  }
  auto dir = RunDir(a.repo, a.run);
  if (!dir) return std::unexpected(dir.error());
  return *dir + "/events.jsonl";
}

std::string Short(const std::string& hex) { return hex.substr(0, 16); }

int Verify(const Args& a) {
  auto path = LogPath(a);
  if (!path) return BadInput(path.error());
  VerifyOptions options;
  options.expect_head = a.expect_head;
  std::string trust_note;
  if (!a.key.empty()) {
    auto key = SigningKey::LoadPublic(a.key);
    if (!key) return BadInput("--key " + key.error());
    options.trusted_key = key->public_hex();
    trust_note = "the key given with --key";
  } else {
    std::string own = SigningKey::DefaultPath();
    struct stat st;
    if (stat(own.c_str(), &st) == 0) {
      auto key = SigningKey::LoadPublic(own);
      if (!key) return BadInput(key.error());
      options.trusted_key = key->public_hex();
      trust_note = "your key, " + own;
    }
  }
  std::ifstream in(*path, std::ios::binary);
  if (!in) return BadInput(*path + ": cannot read it");
  std::string text(std::istreambuf_iterator<char>(in), {});
  VerifyResult r = VerifyLog(text, *path, options);
  if (trust_note.empty()) {
    trust_note =
        "the key the log names (no key of yours to compare: pass --key to check it is "
        "the one you trust)";
  }
  if (a.json) {
    json out = {{"log", *path},
                {"intact", r.ok},
                {"records", r.records},
                {"checkpoints", r.checkpoints},
                {"head", r.head},
                {"key", r.key},
                {"run", r.run},
                {"torn_last_line", r.torn},
                {"unsigned_tail", r.unsigned_tail}};
    if (!r.ok) out["problem"] = r.problem;
    std::printf("%s\n", out.dump().c_str());
  } else if (r.ok) {
    std::printf("%s: intact: %llu records, %llu signed checkpoints, head %s\n", path->c_str(),
                static_cast<unsigned long long>(r.records),
                static_cast<unsigned long long>(r.checkpoints), r.head.c_str());
    std::printf("  signed by %s: %s\n", Short(r.key).c_str(), trust_note.c_str());
    if (r.expected_head_seq) {
      std::printf("  the expected head is record %llu; %llu records follow it\n",
                  static_cast<unsigned long long>(*r.expected_head_seq),
                  static_cast<unsigned long long>(r.records - 1 - *r.expected_head_seq));
    }
  }
  if (!a.json && r.ok && r.unsigned_tail > 0) {
    std::printf(
        "  warning: the last %llu records are chained but no checkpoint signs them yet "
        "(the run has not ended, or it crashed)\n",
        static_cast<unsigned long long>(r.unsigned_tail));
  }
  if (!a.json && r.torn) {
    std::printf(
        "  note: the last line is torn: a crash cut a write short; it is not part of the "
        "record (corral resume removes it)\n");
  }
  if (!r.ok) {
    if (!a.json) std::fprintf(stderr, "corral: audit: NOT intact: %s\n", r.problem.c_str());
    return kExitTaskFailed;
  }
  return kExitOk;
}

std::string Join(const json& list, size_t limit) {
  std::string out;
  size_t n = 0;
  for (const json& v : list) {
    if (n == limit) {
      out += ", ... (" + std::to_string(list.size()) + " in all)";
      break;
    }
    out += (n++ ? ", " : "") + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return out;
}

std::string Str(const json& e, const char* key) {
  auto it = e.find(key);
  if (it == e.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// One readable line per action.
std::string Describe(const json& e) {
  std::string type = Str(e, "type");
  if (type == "run-start") {
    return "run started by " + Str(e, "user") + "@" + Str(e, "host") + " (uid " + Str(e, "uid") +
           "), plan " + Str(e, "plan") + " (sha256 " + Str(e, "plan_sha256").substr(0, 12) +
           "), base " + Str(e, "base").substr(0, 12) + ", corral " + Str(e, "corral");
  }
  if (type == "task-start") return "try " + Str(e, "try") + " started under " + Str(e, "policy");
  if (type == "task-awaiting-approval") return "awaits approval (policy " + Str(e, "policy") + ")";
  if (type == "approval") return "approved by " + Str(e, "by") + " (" + Str(e, "how") + ")";
  if (type == "task-end") {
    std::string s = "ended: " + Str(e, "status");
    if (e.contains("exit_code")) s += ", exit " + Str(e, "exit_code");
    if (!Str(e, "commit").empty()) s += ", commit " + Str(e, "commit").substr(0, 12);
    if (e.contains("lines") && e["lines"].is_array() && !e["lines"].empty()) {
      json changed = json::array();
      for (const json& l : e["lines"]) {
        changed.push_back(Str(l, "path") +
                          (l.value("binary", false)
                               ? " (binary)"
                               : " (+" + Str(l, "added") + " -" + Str(l, "deleted") + ")"));
      }
      s += ", changed " + Join(changed, 8);
    } else if (e.contains("files_changed") && !e["files_changed"].empty()) {
      s += ", changed " + Join(e["files_changed"], 8);
    }
    if (!Str(e, "message").empty()) s += " (" + Str(e, "message") + ")";
    if (e.contains("wall_ms")) {
      s += "; " + Str(e, "wall_ms") + " ms wall, " + Str(e, "cpu_ms") + " ms CPU, " +
           Str(e, "execs") + " programs executed";
    }
    if (e.contains("denied") && e["denied"].is_object()) {
      s += "; denied:";
      for (const auto& [name, count] : e["denied"].items()) s += " " + name + " x" + count.dump();
    }
    return s;
  }
  if (type == "merge") {
    json merged = e.value("merged", json::array());
    std::string s = "merged " + (merged.empty() ? std::string("nothing") : Join(merged, 20)) +
                    " into " + Str(e, "into") + " at " + Str(e, "commit").substr(0, 12);
    if (e.contains("conflicted") && !e["conflicted"].empty()) {
      s += "; left out for conflicts: " + Join(e["conflicted"], 20);
    }
    if (e.contains("conflicts") && e["conflicts"].is_array()) {
      for (const json& c : e["conflicts"]) {
        if (!c.is_object()) continue;
        s += "; " + Str(c, "kind") + " conflict in " + Join(c.value("paths", json::array()), 4) +
             " between " + Join(c.value("tasks", json::array()), 8);
      }
    }
    return s;
  }
  if (type == "exec") {
    std::string argv;
    for (const json& a : e.value("argv", json::array())) {
      argv += (argv.empty() ? "" : " ") + (a.is_string() ? a.get<std::string>() : a.dump());
    }
    std::string end = Str(e, "end");
    std::string how = end == "exited"     ? ", exit " + Str(e, "exit")
                      : end == "signaled" ? ", killed by signal " + Str(e, "signal")
                      : end == "exec"     ? ", then exec again"
                                          : "";
    return "executed " + argv + " (" + Str(e, "path") + ", pid " + Str(e, "pid") + ", parent " +
           Str(e, "ppid") + how + ") in " + Str(e, "cwd") + " [observed, " + Str(e, "phase") + "]";
  }
  if (type == "net") {
    std::string where = Str(e, "method") + " " + Str(e, "host") + ":" + Str(e, "port");
    if (Str(e, "decision") != "allowed") return "refused " + where + ": " + Str(e, "reason");
    std::string s = "reached " + where + " (" + Str(e, "address") + ")";
    if (e.contains("status")) s += ", HTTP " + Str(e, "status");
    s += ", " + Str(e, "bytes_up") + " bytes up, " + Str(e, "bytes_down") + " down, " +
         Str(e, "ms") + " ms";
    if (e.contains("waited_ms")) s += ", held " + Str(e, "waited_ms") + " ms by a rate budget";
    return s;
  }
  if (type == "concurrency") {
    return "concurrency " +
           std::string(e.value("limit", 0) < e.value("was", 0) ? "lowered" : "raised") + " from " +
           Str(e, "was") + " to " + Str(e, "limit") + " (" + Str(e, "why") + ")";
  }
  if (type == "checkpoint") return "signed checkpoint (key " + Short(Str(e, "key")) + ")";
  if (type == "run-resume") return "run resumed";
  if (type == "run-end") return "run ended, exit " + Str(e, "exit");
  json rest = e;
  for (const char* k : {"seq", "prev", "hash", "t", "type", "task"}) rest.erase(k);
  return type + " " + rest.dump();
}

int Show(const Args& a) {
  auto path = LogPath(a);
  if (!path) return BadInput(path.error());
  auto records = EventLog::Read(*path);
  if (!records) return BadInput(records.error());
  for (const json& e : *records) {
    if (!a.task.empty() && Str(e, "task") != a.task) continue;
    if (a.json) {
      std::printf("%s\n", e.dump().c_str());
      continue;
    }
    std::string task = Str(e, "task");
    std::string what;
    try {
      what = Describe(e);
    } catch (const json::exception&) {
      what = "(not of the shape corral writes) " + e.dump();  // a changed log: shown as it is
    }
    std::printf("%-20s %-16s %s\n", Str(e, "t").c_str(), task.empty() ? "-" : task.c_str(),
                what.c_str());
  }
  return kExitOk;
}

}  // namespace

std::function<int()> DefineAudit(CLI::App* app) {
  auto a = std::make_shared<Args>();
  app->require_subcommand(1);
  CLI::App* verify = app->add_subcommand(
      "verify", "Check a run's audit log: the hash chain and the signed checkpoints");
  verify->add_option("run", a->run, "The run, latest, or the path of an events.jsonl");
  verify->add_option("--expect-head", a->expect_head,
                     "A head (hash) recorded earlier that the log must still contain");
  verify->add_option("--key", a->key,
                     "The public key to trust: 64 hex digits or a PEM file (default: yours)");
  verify->add_flag("--json", a->json, "One JSON object instead of text");
  verify->add_option("--repo", a->repo, "The repository (default: the current directory)");
  CLI::App* show = app->add_subcommand("show", "A readable timeline of a run's recorded actions");
  show->add_option("run", a->run, "The run, latest, or the path of an events.jsonl")->required();
  show->add_option("--task", a->task, "Only this task's actions");
  show->add_flag("--json", a->json, "The records as JSON lines");
  show->add_option("--repo", a->repo, "The repository (default: the current directory)");
  return [a, verify] { return verify->parsed() ? Verify(*a) : Show(*a); };
}

}  // namespace corral::launcher
