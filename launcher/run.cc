#include "launcher/run.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string_view>
#include <thread>

#include "launcher/commands.h"
#include "launcher/crypto.h"
#include "launcher/egress.h"
#include "launcher/event_log.h"
#include "launcher/inject.h"
#include "launcher/log_capture.h"
#include "launcher/policy_file.h"
#include "launcher/progress.h"
#include "launcher/redact.h"
#include "launcher/report_html.h"
#include "launcher/scheduler.h"
#include "launcher/spec_from_policy.h"
#include "launcher/vm.h"
#include "launcher/trace.h"
#include "launcher/version.h"
#include "policy/plan.h"
#include "sandbox/egress_proxy.h"
#include "sandbox/fdio.h"
#include "sandbox/host_probe.h"
#include "sandbox/sandbox.h"
#include "worktree/worktree.h"

namespace corral::launcher {
namespace {

// Whether this host mounts the overlay a sandbox needs for an overlay workspace: overlayfs in a
// user namespace, and for corral as root id-mapped layers (`corral doctor` runs the same checks).
bool OverlayWorkspacesWork(const std::string& helper) {
  auto checks = sandbox::RunHostProbe(helper);
  if (!checks) return false;
  bool overlay = false, idmapped = false;
  for (const sandbox::HostCheck& c : *checks) {
    if (c.name.starts_with("overlayfs in a user namespace")) overlay = c.ok;
    if (c.name == "id-mapped mounts") idmapped = c.ok;
  }
  return overlay && (geteuid() != 0 || idmapped);
}

// Milliseconds since the Unix epoch: task-start and task-end carry it (as t_ms) beside the
// second-resolution t, for timelines.
int64_t EpochMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kExitConflicts = 3;
constexpr int kExitAwaitingApproval = 4;
constexpr int kExitTempFail = 75;  // EX_TEMPFAIL: the agent was rate limited
constexpr int kPortRange = 100;
constexpr int kPortFirst = 20000;

std::string UserName() {
  struct passwd* pw = getpwuid(geteuid());
  return pw ? pw->pw_name : std::to_string(geteuid());
}

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

std::string ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Iso8601(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm;
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string OtlpEndpoint() {
  const char* e = std::getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
  return e ? e : "";
}

std::string NewRunId() {
  std::time_t now = std::time(nullptr);
  std::tm tm;
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%d-%H%M%S", &tm);
  std::random_device rd;
  char suffix[8];
  std::snprintf(suffix, sizeof(suffix), "-%04x", rd() & 0xffff);
  return std::string(buf) + suffix;
}

// Everything a task needs, fixed before the run starts.
struct TaskConfig {
  const policy::PlanTask* task;
  policy::Policy policy;
  std::string policy_ref;  // name@sha256
  size_t index;
  std::vector<size_t> deps;
};

// What one try of a task did.
struct TryResult {
  Outcome outcome;
  std::string status;  // the report's status when this try is the last
  std::optional<int> exit_code;
  std::string message;  // why it failed, for people
  std::string commit;
  std::vector<std::string> files_changed;
  std::vector<worktree::Skipped> skipped;
  std::vector<worktree::Skipped> withheld;  // held a secret's value (reason: its name)
  uint64_t log_dropped = 0;                 // output bytes past the log's limit
  std::vector<worktree::CommitResult::LineStat> line_stats;
  json output;  // the task's JSON result, or null
  std::string output_error;
  std::string started_at, ended_at;
  std::vector<worktree::Conflict> input_conflicts;
  json sandbox = json::object();  // what the sandbox measured: times, memory, denials, execs
};

class Runner {
 public:
  Runner(const policy::Plan& plan, std::vector<TaskConfig> tasks, std::string common_dir,
         std::string base, std::string run_id, std::string run_dir, std::string helper,
         EventLog* log, bool json_events, HostEnv host, uint64_t log_limit, Tracer* tracer,
         int sandboxes_fd, std::unique_ptr<Injector> injector)
      : sandboxes_fd_(sandboxes_fd),
        injector_(std::move(injector)),
        host_(std::move(host)),
        log_limit_(log_limit),
        plan_(plan),
        tasks_(std::move(tasks)),
        common_dir_(std::move(common_dir)),
        base_(std::move(base)),
        run_(std::move(run_id)),
        dir_(std::move(run_dir)),
        helper_(std::move(helper)),
        log_(log),
        json_(json_events),
        tracer_(tracer) {
    using W = policy::Plan::Workspaces;
    overlay_workspaces_ = plan_.workspaces == W::kOverlay ||
                          (plan_.workspaces == W::kAuto && OverlayWorkspacesWork(helper_));
    std::vector<std::pair<std::string, std::string>> secrets;
    for (const TaskConfig& c : tasks_) {
      for (auto& s : host_.SecretsOf(c.policy)) secrets.push_back(std::move(s));
    }
    redactor_ = Redactor(std::move(secrets));
  }

  // A task that ended before a crash or interruption: its state, tries and last result.
  struct Restored {
    TaskState state;
    int tries;
    TryResult result;
  };
  int Run(std::optional<int> jobs, const std::map<size_t, Restored>& restored = {},
          const std::set<size_t>& approved = {});

 private:
  TryResult Try(size_t t, int attempt, const std::string& task_span);
  std::expected<std::string, TryResult> StartCommit(size_t t, worktree::Repository& repo);
  // Records an event; `sign` adds a signed checkpoint of the audit log behind it; `sync` false
  // leaves it to the next synced record to make it durable.
  void Event(json record, bool sign = false, bool sync = true);
  // Records the programs a sandbox executed, and adds its measurements to `r`.
  void RecordSandbox(const std::string& task, int attempt, const char* phase,
                     const sandbox::Result& result, TryResult* r);
  void Say(const std::string& line);
  // A message for people that is not a state change: above the live table when there is one.
  void Warn(const std::string& line);
  void Stopper();
  void Egress(const sandbox::EgressRecord& r);
  // Writes dir_/name whole or not at all (a temporary file renamed over it); says why not.
  void WriteReport(const std::string& name, const std::string& content);

  // Held (shared) by every helper of this run until its sandbox is entirely gone; see
  // HoldSandboxes.
  int sandboxes_fd_ = -1;
  std::unique_ptr<Injector> injector_;  // secrets.inject of the run's policies, or null
  HostEnv host_;
  uint64_t log_limit_ = kDefaultLogLimit;
  Redactor redactor_;  // every secret of the run: nothing corral writes shows one
  const policy::Plan& plan_;
  std::vector<TaskConfig> tasks_;
  std::string common_dir_, base_, run_, dir_, helper_;
  bool overlay_workspaces_ = false;
  EventLog* log_;
  bool json_;
  Clock::time_point start_ = Clock::now();
  // Serves every sandbox whose policy has an egress allow-list; budgets are run-wide.
  std::unique_ptr<sandbox::EgressProxy> proxy_;
  Tracer* tracer_;
  Span run_span_;
  std::map<size_t, Span> task_spans_;  // tasks that started and have not reached a final state

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<size_t, TryResult>> done_;
  std::set<pid_t> helpers_;
  int throttled_ = 0;  // HTTP 429s the egress proxy saw since the scheduler last heard
  int answered_ = 0;   // other answers of allowed hosts, likewise
  bool stopping_ = false;
  bool finished_ = false;  // the run ended; the stopper thread is told to leave
  // On a terminal: the live table instead of a line per state change, and (with a terminal on
  // stdin too) approvals asked there. answers_: (task, yes) from the asking thread.
  std::unique_ptr<LiveTable> live_;
  std::vector<std::pair<size_t, bool>> answers_;
  size_t asking_ = 0;  // questions put and not answered yet
  int stop_signal_ = 0;
};

void Runner::Event(json record, bool sign, bool sync) {
  redactor_.Apply(&record);
  record["t"] = Iso8601(std::chrono::system_clock::now());
  bool failed_before = !log_->failure().empty();
  auto r = sign ? log_->AppendSigned(record, record["t"]) : log_->Append(record, sync);
  if (!r && !failed_before) {
    Warn("corral: " + r.error() + "; no more tasks start (corral resume " + run_ + " continues)");
  }
  if (json_) {
    std::lock_guard lock(mu_);
    std::printf("%s\n", record.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
    std::fflush(stdout);
  }
}

void Runner::RecordSandbox(const std::string& task, int attempt, const char* phase,
                           const sandbox::Result& result, TryResult* r) {
  for (const sandbox::ExecRecord& e : result.execs) {
    json record = {{"type", "exec"},  {"task", task}, {"try", attempt},  {"phase", phase},
                   {"observed", true}, {"pid", e.pid}, {"ppid", e.ppid},  {"path", e.path},
                   {"argv", e.argv},   {"cwd", e.cwd}, {"at_ms", e.at_ms}};
    // How it ended, when the kernel said: "exited" with "exit", "signaled" with "signal", or
    // "exec" (it exec'd again); no "end" when not known.
    if (!e.end.empty()) record["end"] = e.end;
    if (e.end == "exited") record["exit"] = e.exit_code;
    if (e.end == "signaled") record["signal"] = e.signal;
    Event(record, false, /*sync=*/false);
  }
  json& s = r->sandbox;
  s["wall_ms"] = s.value("wall_ms", int64_t{0}) + result.wall_time.count();
  s["cpu_ms"] = s.value("cpu_ms", int64_t{0}) + result.cpu_time.count();
  s["peak_memory"] = std::max<uint64_t>(s.value("peak_memory", uint64_t{0}), result.peak_memory);
  s["execs"] = s.value("execs", uint64_t{0}) + result.execs.size() + result.execs_dropped;
  if (result.execs_dropped) s["execs_not_recorded"] = result.execs_dropped;
  if (!result.exited) s["signal"] = result.signal;
  for (const sandbox::Denial& d : result.denials) {
    json& denied = s["denied"];
    if (!denied.is_object()) denied = json::object();
    denied[d.syscall] = denied.value(d.syscall, uint64_t{0}) + d.count;
  }
}

void Runner::Warn(const std::string& line) {
  if (live_) {
    live_->Print(line);
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

void Runner::Say(const std::string& line) {
  if (json_ || live_) return;
  double secs = std::chrono::duration<double>(Clock::now() - start_).count();
  std::fprintf(stderr, "[%6.1fs] %s\n", secs, line.c_str());
}

std::expected<std::string, TryResult> Runner::StartCommit(size_t t, worktree::Repository& repo) {
  const TaskConfig& c = tasks_[t];
  if (c.deps.empty()) return base_;
  // The dependencies' branches merged onto the base, in the plan's order.
  std::vector<worktree::BranchToMerge> inputs;
  for (size_t i : plan_.order) {
    if (std::find(c.deps.begin(), c.deps.end(), i) == c.deps.end()) continue;
    inputs.push_back({tasks_[i].task->id, worktree::TaskBranch(run_, tasks_[i].task->id)});
  }
  auto merged = repo.Integrate(base_, inputs, "refs/corral/inputs/" + run_ + "/" + c.task->id);
  TryResult fail;
  if (!merged) {
    fail.outcome.kind = Outcome::Kind::kFailed;
    fail.status = "failed";
    fail.message = merged.error().message;
    return std::unexpected(fail);
  }
  if (!merged->conflicted.empty()) {
    fail.outcome.kind = Outcome::Kind::kConflicted;
    fail.status = "skipped";
    fail.message = "its dependencies' branches conflict";
    fail.input_conflicts = merged->conflicts;
    return std::unexpected(fail);
  }
  return merged->commit;
}

TryResult Runner::Try(size_t t, int attempt, const std::string& task_span) {
  const TaskConfig& c = tasks_[t];
  const std::string& id = c.task->id;
  TryResult r;
  // The try's span and its steps; each ends with what it did (an error names what failed).
  Span try_span = tracer_->Start("try " + std::to_string(attempt), task_span,
                                 {{"corral.task", id}, {"corral.try", std::to_string(attempt)}});
  struct TrySpanEnd {
    Tracer* tracer;
    Span* span;
    TryResult* r;
    ~TrySpanEnd() {
      tracer->End(
          *span, r->outcome.kind == Outcome::Kind::kSucceeded ? "" : r->status + ": " + r->message);
    }
  } end_try{tracer_, &try_span, &r};
  r.started_at = Iso8601(std::chrono::system_clock::now());
  auto fail = [&](const std::string& message) {
    r.outcome.kind = Outcome::Kind::kFailed;
    r.status = "failed";
    r.message = message;
    r.ended_at = Iso8601(std::chrono::system_clock::now());
    return r;
  };
  auto repo = worktree::Repository::Open(common_dir_);
  if (!repo) return fail(repo.error().message);
  auto start = StartCommit(t, *repo);
  if (!start) {
    TryResult f = start.error();
    f.started_at = r.started_at;
    f.ended_at = Iso8601(std::chrono::system_clock::now());
    return f;
  }
  // The first try makes the workspace; later ones (and a resumed run's) start from a clean reset
  // of it. A lock left by a manager that died is released.
  Span worktree_span = tracer_->Start("worktree", try_span.span_id, {{"corral.base", *start}});
  std::expected<worktree::Workspace, worktree::Error> ws = repo->FindWorkspace(run_, id);
  if (ws) {
    (void)repo->UnlockWorkspace(*ws);
    worktree_span.attributes["corral.worktree.reset"] = "true";
    if (auto reset = repo->ResetWorkspace(*ws, *start); !reset) {
      tracer_->End(worktree_span, reset.error().message);
      return fail(reset.error().message);
    }
  } else {
    // The fast path: an overlay on one export of the base, where the agent runs in corral's own
    // sandbox (a VM's guest sees its workspace through a share, not an overlay).
    bool overlay = overlay_workspaces_ && c.policy.target == policy::Target::kLocal;
    ws = repo->CreateWorkspace(run_, id, *start, overlay ? base_ : "");
    if (!ws) {
      tracer_->End(worktree_span, ws.error().message);
      return fail(ws.error().message);
    }
  }
  worktree_span.attributes["corral.worktree"] = ws->path;
  tracer_->End(worktree_span);

  std::string out_dir = dir_ + "/out/" + id;
  std::string in_dir = dir_ + "/inputs/" + id;
  std::error_code ec;
  fs::remove_all(out_dir, ec);
  for (const std::string& d : {out_dir, in_dir}) {
    fs::create_directories(d, ec);
    if (ec) return fail("create " + d + ": " + ec.message());
  }
  for (size_t d : c.deps) {
    std::string result = dir_ + "/out/" + tasks_[d].task->id + "/result.json";
    if (fs::exists(result)) {
      // Redacted: a dependency's secrets are not this task's to see.
      std::ofstream(in_dir + "/" + tasks_[d].task->id + ".json", std::ios::binary)
          << redactor_.Apply(ReadWhole(result));
    }
  }
  auto spec = SpecFromPolicy(c.policy, ws->path, c.task->run, host_);
  if (!spec) return fail(c.task->policy + ": " + spec.error());
  if (!ws->lower.empty()) {
    if (c.policy.target != policy::Target::kLocal) {
      return fail(ws->path + " is an overlay workspace, which only target = \"local\" shows");
    }
    spec->workspace_lower = ws->lower;
    spec->workspace_overlay_work = ws->overlay_work;
  }
  spec->binds.emplace_back(out_dir, true);
  spec->binds.emplace_back(in_dir, false);
  if (injector_) injector_->Apply(c.policy, &*spec);
  // Git inside: the worktree's .git names a git directory of the agent's own, whose only ref is
  // the task's branch (worktree/sandbox_git.cc). The repository's .git stays out of sight.
  auto git = repo->PrepareSandboxGit(*ws);
  if (!git) return fail(git.error().message);
  // Whatever happens from here, the agent's git directory goes with the try: what it holds is
  // kept in the repository (KeepAgentCommits) or refused for good.
  struct RemoveGitDir {
    worktree::Repository& repo;
    const std::string &run, &task;
    ~RemoveGitDir() { (void)repo.RemoveSandboxGit(run, task); }
  } remove_git_dir{*repo, run_, id};
  spec->binds.emplace_back(git->dir, true);
  spec->binds.emplace_back(git->objects, false);
  spec->files.push_back({ws->path + "/.git", git->git_file});
  std::map<std::string, std::string> env = {
      {"CORRAL_RUN", run_},
      {"CORRAL_TASK", id},
      {"CORRAL_PROMPT", c.task->prompt},
      {"CORRAL_OUTPUT", out_dir + "/result.json"},
      {"CORRAL_INPUTS", in_dir},
      {"CORRAL_RETRY_AFTER", out_dir + "/retry_after"},
      {"CORRAL_PORT_BASE", std::to_string(kPortFirst + kPortRange * static_cast<int>(c.index))},
  };
  for (const auto& [k, v] : c.task->env) env[k] = v;
  for (const auto& [k, v] : env) spec->env.push_back(k + "=" + v);
  if (c.task->timeout) spec->limits.wall_time = c.task->timeout;
  bool in_vm = c.policy.target == policy::Target::kVm;
  spec->observe_exec = true;  // in a VM, its init watches them
  // An instrumented agent's spans join the run's trace under the agent span.
  Span agent_span = tracer_->Start("agent", try_span.span_id, {{"corral.policy", c.policy_ref}});
  spec->env.push_back("TRACEPARENT=" + tracer_->TraceParent(agent_span));
  // The audit log names the agent's variables, never their values.
  std::set<std::string> env_names;
  for (const std::string& kv : spec->env) env_names.insert(kv.substr(0, kv.find('=')));
  r.sandbox["env"] = env_names;

  fs::create_directories(dir_ + "/logs", ec);
  int log_fd = open((dir_ + "/logs/" + id + ".log").c_str(),
                    O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  sandbox::RunOptions options;
  options.helper_path = helper_;
  options.stdin_fd = null_fd;
  // Output reaches the log through a pipe: redacted, and capped at log_limit_.
  LogCapture capture(log_fd, &redactor_, log_limit_);
  int out_fd = capture.write_fd() >= 0 ? capture.write_fd() : log_fd;
  options.stdout_fd = out_fd;
  options.stderr_fd = out_fd;
  options.forward_signals = false;
  options.hold_fd = sandboxes_fd_;
  pid_t helper = 0;
  uint64_t served = 0;
  options.on_proxy_listener = [&](int fd) {
    if (!proxy_) return;
    sandbox::EgressClient client = EgressClientFor(c.policy, id);
    if (injector_) injector_->Apply(c.policy, &client);
    served = proxy_->Serve(fd, std::move(client));
  };
  options.on_start = [&](pid_t pid) {
    std::lock_guard lock(mu_);
    helper = pid;
    helpers_.insert(pid);
    if (stopping_) kill(pid, SIGTERM);
  };
  if (auto lock = repo->LockWorkspace(*ws, "corral run " + run_); !lock)
    return fail(lock.error().message);
  std::expected<sandbox::Result, sandbox::Error> result = sandbox::Result{};
  result->exited = true;
  if (!plan_.setup.empty()) {
    sandbox::Spec setup = *spec;
    setup.argv = plan_.setup;
    Span setup_span = tracer_->Start("setup", try_span.span_id);
    result = in_vm ? vm::Run(setup, options) : sandbox::Run(setup, options);
    if (result) RecordSandbox(id, attempt, "setup", *result, &r);
    if (result && result->ExitStatus() != 0) {
      r.message = "setup failed: " + result->Describe();
    }
    tracer_->End(setup_span, !result ? result.error().message : r.message);
  }
  if (result && r.message.empty()) {
    agent_span.start_ns = Tracer::NowNs();
    result = in_vm ? vm::Run(*spec, options) : sandbox::Run(*spec, options);
    if (result) RecordSandbox(id, attempt, "agent", *result, &r);
    if (result) agent_span.attributes["corral.exit"] = std::to_string(result->ExitStatus());
    tracer_->End(agent_span, !result                     ? result.error().message
                             : result->ExitStatus() != 0 ? result->Describe()
                                                         : "");
  }
  if (served) proxy_->Stop(served);  // its connections' records come before the task's end
  {
    std::lock_guard lock(mu_);
    helpers_.erase(helper);
  }
  (void)repo->UnlockWorkspace(*ws);
  if (uint64_t dropped = capture.Finish(); dropped > 0) r.log_dropped = dropped;
  close(log_fd);
  close(null_fd);

  // Whatever the command did, its changes become a commit, but never a secret's value: first
  // the commits it made itself, checked, then the rest on top.
  Span commit_span = tracer_->Start("commit", try_span.span_id);
  auto kept = repo->KeepAgentCommits(*ws, *git, redactor_.secrets());
  if (!kept) {
    tracer_->End(commit_span, kept.error().message);
    return fail("the agent's commits: " + kept.error().message);
  }
  if (kept->commits) r.sandbox["agent_commits"] = kept->commits;
  if (!kept->refused.empty()) r.sandbox["agent_commits_refused"] = kept->refused;
  auto commit = repo->CommitAll(
      *ws, {run_, id, c.policy_ref, redactor_.secrets(), git->start, kept->not_checked_out});
  if (commit) commit_span.attributes["corral.commit"] = commit->commit;
  tracer_->End(commit_span, commit ? "" : commit.error().message);
  r.ended_at = Iso8601(std::chrono::system_clock::now());
  if (!commit) return fail("commit: " + commit.error().message);
  r.commit = commit->commit;
  r.files_changed = commit->files_changed;
  r.line_stats = commit->line_stats;
  r.skipped = commit->skipped;
  r.withheld = commit->withheld;
  // What the agent left in its output folder is kept in the run's state: redacted.
  if (!redactor_.empty()) {
    for (const auto& e : fs::directory_iterator(out_dir, ec)) {
      if (!e.is_regular_file() || e.is_symlink()) continue;
      std::string text = ReadWhole(e.path().string());
      if (redactor_.Find(text)) std::ofstream(e.path(), std::ios::binary) << redactor_.Apply(text);
    }
  }
  std::string output = out_dir + "/result.json";
  if (fs::exists(output)) {
    r.output = json::parse(ReadWhole(output), nullptr, false);
    if (r.output.is_discarded()) {
      r.output = nullptr;
      r.output_error = "CORRAL_OUTPUT is not valid JSON";
    }
  }
  if (!result) return fail(result.error().message);
  if (!r.message.empty()) return fail(r.message);
  int status = result->ExitStatus();
  r.exit_code = status;
  if (!r.withheld.empty()) {
    r.outcome.kind = Outcome::Kind::kFailed;
    r.status = "secret-leak";
    r.message = "kept " + std::to_string(r.withheld.size()) +
                " file(s) out of the commit: they hold the value of a secret (" +
                r.withheld.front().path + ": " + r.withheld.front().reason + ")";
  } else if (status == 0) {
    r.outcome.kind = Outcome::Kind::kSucceeded;
    r.status = commit->committed ? "succeeded" : "no-changes";
  } else if (result->timed_out) {
    r.outcome.kind = Outcome::Kind::kTimedOut;
    r.status = "timed-out";
    r.message = result->Describe();
  } else if (status == kExitTempFail) {
    r.outcome.kind = Outcome::Kind::kRateLimited;
    r.status = "failed";
    r.message = "rate limited (exit 75)";
    std::string hint = ReadWhole(out_dir + "/retry_after");
    if (!hint.empty()) r.outcome.retry_after = std::chrono::seconds(std::atoi(hint.c_str()));
  } else {
    r.outcome.kind = Outcome::Kind::kFailed;
    r.status = !result->exited && (result->signal == SIGKILL || result->signal == SIGTERM)
                   ? "killed"
                   : "failed";
    r.message = result->Describe();
  }
  return r;
}

void Runner::WriteReport(const std::string& name, const std::string& content) {
  std::string path = dir_ + "/" + name;
  if (auto r = sandbox::ReplaceFile(path, content); !r) {
    Warn("corral: cannot write " + path + ": " + r.error().message);
  }
}

void Runner::Egress(const sandbox::EgressRecord& r) {
  json record = NetRecord(r);
  record["task"] = r.client;
  Event(record, false, /*sync=*/false);
  if (r.status == 429) {
    std::lock_guard lock(mu_);
    ++throttled_;
    cv_.notify_all();
  } else if (r.allowed && r.status >= 200 && r.status < 500) {
    std::lock_guard lock(mu_);
    ++answered_;
    cv_.notify_all();
  }
}

void Runner::Stopper() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  int sig = 0;
  if (sigwait(&set, &sig) != 0) return;
  std::lock_guard lock(mu_);
  if (finished_) return;
  stopping_ = true;
  stop_signal_ = sig;
  for (pid_t pid : helpers_) kill(pid, SIGTERM);  // each sandbox: SIGTERM, grace, SIGKILL
  cv_.notify_all();
}

int Runner::Run(std::optional<int> jobs, const std::map<size_t, Restored>& restored,
                const std::set<size_t>& approved) {
  std::vector<SchedTask> sched_tasks;
  sched_tasks.reserve(tasks_.size());
  for (const TaskConfig& c : tasks_) {
    sched_tasks.push_back({c.task->id, c.deps, c.task->retries, c.policy.requires_human_approval});
  }
  for (const TaskConfig& c : tasks_) {
    if (c.policy.network.egress != policy::EgressKind::kAllowList) continue;
    if (!proxy_) {
      proxy_ = std::make_unique<sandbox::EgressProxy>(
          [this](const sandbox::EgressRecord& r) { Egress(r); });
    }
    ApplyRates(c.policy, proxy_.get());
  }
  SchedulerOptions options;
  options.jobs = jobs;
  Scheduler sched(sched_tasks, plan_.order, options);
  std::map<size_t, TryResult> last;
  for (const auto& [t, r] : restored) {
    sched.Restore(t, r.state, r.tries);
    if (IsFinal(r.state)) last[t] = r.result;
  }
  for (size_t t : approved) sched.Approve(t);
  std::set<size_t> announced;  // tasks reported as awaiting approval

  run_span_ = tracer_->Start("run " + run_, "", {{"corral.run", run_}});
  std::thread stopper([this] { Stopper(); });
  std::map<size_t, std::thread> workers;

  const char* term = std::getenv("TERM");
  if (!json_ && IsTerminal(STDERR_FILENO) && !(term && std::string(term) == "dumb")) {
    std::vector<std::string> ids;
    ids.reserve(tasks_.size());
    for (const TaskConfig& c : tasks_) ids.push_back(c.task->id);
    live_ = std::make_unique<LiveTable>(STDERR_FILENO, std::move(ids), dir_ + "/logs");
  }
  auto show = [&] {
    if (!live_) return;
    for (size_t t = 0; t < tasks_.size(); ++t) {
      auto it = last.find(t);
      bool ended = IsFinal(sched.state(t));
      live_->Set(t, ended && it != last.end() ? it->second.status : Name(sched.state(t)),
                 sched.tries(t));
    }
  };
  // A person at the terminal answers approvals as they come, while the other tasks run.
  // Only in the terminal's foreground: a corral started with & would be stopped by SIGTTIN.
  bool ask = live_ && IsTerminal(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp();
  std::vector<size_t> questions;
  std::thread asker;
  auto put_question = [&](size_t t) {
    {
      std::lock_guard lock(mu_);
      ++asking_;
    }
    if (asker.joinable()) asker.join();  // the one before has been answered
    asker = std::thread([this, t] {
      std::optional<bool> yes = live_->Ask(
          "corral: task '" + tasks_[t].task->id + "' (policy " +
              tasks_[t].policy_ref.substr(0, tasks_[t].policy_ref.find('@')) +
              ") needs a person's approval. Run it?",
          STDIN_FILENO);
      std::lock_guard lock(mu_);
      --asking_;
      if (yes) answers_.emplace_back(t, *yes);
      cv_.notify_all();
    });
  };
  auto asking = [&] {
    std::lock_guard lock(mu_);
    return asking_ > 0 || !answers_.empty();
  };
  show();
  while (!sched.Done() || asking() || !questions.empty()) {
    Millis now = std::chrono::duration_cast<Millis>(Clock::now() - start_);
    bool stopping;
    {
      std::lock_guard lock(mu_);
      stopping = stopping_;
    }
    // A run whose audit log cannot be written starts nothing more: what it did must be on record.
    if (!stopping && log_->failure().empty()) {
      for (size_t t : sched.TakeStartable(now)) {
        int attempt = sched.tries(t);
        Event({{"type", "task-start"},
               {"task", tasks_[t].task->id},
               {"try", attempt},
               {"policy", tasks_[t].policy_ref},
               {"t_ms", EpochMs()}});
        Say(tasks_[t].task->id + ": started" +
            (attempt > 1 ? " (try " + std::to_string(attempt) + ")" : ""));
        if (!task_spans_.count(t)) {
          task_spans_[t] = tracer_->Start(
              "task " + tasks_[t].task->id, run_span_.span_id,
              {{"corral.task", tasks_[t].task->id}, {"corral.policy", tasks_[t].policy_ref}});
        }
        workers[t] = std::thread([this, t, attempt, span = task_spans_[t].span_id] {
          TryResult r = Try(t, attempt, span);
          std::lock_guard lock(mu_);
          done_.emplace_back(t, std::move(r));
          cv_.notify_all();
        });
      }
      for (size_t t = 0; t < tasks_.size(); ++t) {
        if (sched.state(t) == TaskState::kAwaitingApproval && announced.insert(t).second) {
          Event({{"type", "task-awaiting-approval"},
                 {"task", tasks_[t].task->id},
                 {"policy", tasks_[t].policy_ref}});
          std::string hint = tasks_[t].task->id + ": awaiting approval (corral approve " + run_ +
                             " " + tasks_[t].task->id + ", then corral resume " + run_ + ")";
          Say(hint);
          if (ask) {
            questions.push_back(t);
          } else if (live_) {
            live_->Print("corral: " + hint);
          }
        }
      }
      // One question at a time, in the order the tasks came to wait.
      bool free;
      {
        std::lock_guard lock(mu_);
        free = asking_ == 0;
      }
      if (free && !questions.empty()) {
        put_question(questions.front());
        questions.erase(questions.begin());
      }
      show();
    } else if (workers.empty()) {
      break;  // interrupted, and nothing runs any more
    }
    // Starting may have left nothing to wait for (the last ready tasks await approval).
    if (workers.empty() && sched.Done() && !asking() && questions.empty()) break;
    std::vector<std::pair<size_t, TryResult>> finished;
    std::vector<std::pair<size_t, bool>> answers;
    int throttled = 0, answered = 0;
    {
      std::unique_lock lock(mu_);
      auto wake = sched.NextWake(now);
      auto until = wake ? start_ + *wake : Clock::now() + std::chrono::hours(1);
      cv_.wait_until(lock, until, [&] {
        return !done_.empty() || throttled_ > 0 || answered_ > 0 || (stopping_ && !stopping) ||
               !answers_.empty() ||
               (asking_ == 0 && !questions.empty() && !stopping_ && log_->failure().empty());
      });
      finished.swap(done_);
      throttled = std::exchange(throttled_, 0);
      answered = std::exchange(answered_, 0);
      answers.swap(answers_);
    }
    for (auto [t, yes] : answers) {
      if (!yes) continue;  // it keeps waiting: corral approve, or resume asks again
      Event({{"type", "approval"}, {"task", tasks_[t].task->id}, {"by", UserName()},
             {"how", "terminal"}},
            /*sign=*/true);
      sched.Approve(t);
    }
    answers.clear();
    now = std::chrono::duration_cast<Millis>(Clock::now() - start_);
    // An allowed API answered 429: the shared resource is saturated, so -j auto backs off.
    // Otherwise its answers say it bears the load, and -j auto may grow.
    if (answered > 0 && throttled == 0) sched.Answered(answered, now);
    if (throttled > 0) {
      int before = sched.limit();
      sched.RateLimited(now);
      if (sched.limit() != before) {
        Event({{"type", "concurrency"},
               {"limit", sched.limit()},
               {"was", before},
               {"why", "HTTP 429 through the egress proxy"}});
      }
    }
    for (auto& [t, r] : finished) {
      workers[t].join();
      workers.erase(t);
      sched.Finish(t, r.outcome, now);
      TaskState state = sched.state(t);
      json event = {{"type", "task-end"},
                    {"task", tasks_[t].task->id},
                    {"try", sched.tries(t)},
                    {"status", r.status},
                    {"state", Name(state)},
                    {"commit", r.commit},
                    {"files_changed", r.files_changed},
                    {"t_ms", EpochMs()}};
      if (r.exit_code) event["exit_code"] = *r.exit_code;
      if (!r.message.empty()) event["message"] = r.message;
      event["branch"] = worktree::TaskBranch(run_, tasks_[t].task->id);
      event["policy"] = tasks_[t].policy_ref;
      event["target"] = tasks_[t].policy.target == policy::Target::kVm ? "vm" : "local";
      event["worktree"] = worktree::WorkspacePath(common_dir_, run_, tasks_[t].task->id);
      for (const auto& [k, v] : r.sandbox.items()) event[k] = v;
      if (IsFinal(state) && task_spans_.count(t)) {
        task_spans_[t].attributes["corral.status"] = r.status;
        tracer_->End(task_spans_[t],
                     state == TaskState::kSucceeded ? "" : r.status + ": " + r.message);
        task_spans_.erase(t);
      }
      if (r.log_dropped) event["log_dropped_bytes"] = r.log_dropped;
      if (!r.line_stats.empty()) {
        json lines = json::array();
        for (const auto& l : r.line_stats) {
          json one = {{"path", l.path}, {"added", l.added}, {"deleted", l.deleted}};
          if (l.binary) one["binary"] = true;
          lines.push_back(one);
        }
        event["lines"] = lines;
      }
      Event(event, /*sign=*/true);
      std::string line = tasks_[t].task->id + ": " + Name(state);
      if (!r.message.empty()) line += " (" + r.message + ")";
      if (state == TaskState::kSucceeded) {
        line = tasks_[t].task->id + ": " + r.status + " (" +
               std::to_string(r.files_changed.size()) + " files changed)";
      }
      Say(line);
      last[t] = std::move(r);
    }
    show();
  }
  if (live_) {
    show();
    live_->Stop();  // an unanswered question is dropped: the task stays awaiting approval
  }
  if (asker.joinable()) asker.join();
  {
    std::lock_guard lock(mu_);
    finished_ = true;
  }
  pthread_kill(stopper.native_handle(), SIGHUP);  // wakes it; it sees finished_ and leaves
  stopper.join();
  for (auto& [t, w] : workers) w.join();

  // The integration merge of every task that succeeded, in the plan's order.
  auto repo = worktree::Repository::Open(common_dir_);
  std::vector<worktree::BranchToMerge> branches;
  for (size_t t : plan_.order) {
    if (sched.state(t) == TaskState::kSucceeded) {
      branches.push_back({tasks_[t].task->id, worktree::TaskBranch(run_, tasks_[t].task->id)});
    }
  }
  std::string into = plan_.into.empty() ? "corral/" + run_ + "/merged" : plan_.into;
  std::expected<worktree::MergeReport, worktree::Error> merge = worktree::MergeReport{};
  Span merge_span = tracer_->Start("merge", run_span_.span_id, {{"corral.into", into}});
  if (repo && !stop_signal_) merge = repo->Integrate(base_, branches, into);
  tracer_->End(merge_span, !merge                       ? merge.error().message
                           : !merge->conflicted.empty() ? "conflicts"
                                                        : "");
  if (!merge) std::fprintf(stderr, "corral: merge: %s\n", merge.error().message.c_str());

  // The report.
  json tasks = json::array();
  bool any_failed = false;
  for (size_t t = 0; t < tasks_.size(); ++t) {
    const TryResult* r = last.count(t) ? &last[t] : nullptr;
    TaskState state = sched.state(t);
    std::string status = r ? r->status : "skipped";
    if (state == TaskState::kSkipped) status = "skipped";
    // A task held by an approval (its own or a dependency's) has not failed; resume runs it.
    bool held = state == TaskState::kAwaitingApproval ||
                (state == TaskState::kPending && sched.AwaitingApproval());
    if (held) status = "awaiting-approval";
    any_failed |= state != TaskState::kSucceeded && !held;
    json task = {{"id", tasks_[t].task->id},
                 {"status", status},
                 {"exit_code", r && r->exit_code ? json(*r->exit_code) : json(nullptr)},
                 {"tries", sched.tries(t)},
                 {"branch", worktree::TaskBranch(run_, tasks_[t].task->id)},
                 {"commit", r ? json(r->commit) : json(nullptr)},
                 {"started_at", r ? json(r->started_at) : json(nullptr)},
                 {"ended_at", r ? json(r->ended_at) : json(nullptr)},
                 {"files_changed", r ? json(r->files_changed) : json::array()},
                 {"output", r ? r->output : json(nullptr)},
                 {"policy", tasks_[t].policy_ref},
                 {"depends_on", tasks_[t].task->depends_on}};
    if (r && !r->output_error.empty()) task["output_error"] = r->output_error;
    if (state == TaskState::kSkipped || state == TaskState::kAwaitingApproval) {
      task["reason"] = sched.reason(t);
    } else if (held) {
      task["reason"] = "a dependency awaits approval";
    } else if (r && !r->message.empty()) {
      task["reason"] = r->message;
    }
    if (r && r->log_dropped) task["log_dropped_bytes"] = r->log_dropped;
    for (const char* key : {"agent_commits", "agent_commits_refused"}) {
      if (r && r->sandbox.contains(key)) task[key] = r->sandbox[key];
    }
    if (r && !r->line_stats.empty()) {
      json lines = json::array();
      for (const auto& l : r->line_stats) {
        lines.push_back({{"path", l.path}, {"added", l.added}, {"deleted", l.deleted}});
        if (l.binary) lines.back()["binary"] = true;
      }
      task["lines"] = lines;
    }
    if (r && !r->withheld.empty()) {
      json withheld = json::array();
      for (const auto& s : r->withheld)
        withheld.push_back({{"path", s.path}, {"secret", s.reason}});
      task["withheld"] = withheld;
    }
    if (r && !r->skipped.empty()) {
      json skipped = json::array();
      for (const auto& s : r->skipped) skipped.push_back({{"path", s.path}, {"reason", s.reason}});
      task["not_committed"] = skipped;
    }
    tasks.push_back(task);
  }
  json report = {{"run", run_},
                 {"base", base_},
                 {"tasks", tasks},
                 {"merge", merge ? json::parse(worktree::ToJson(*merge)) : json(nullptr)}};
  redactor_.Apply(&report);
  // A file name need not be UTF-8 (git's need not): such bytes show as U+FFFD here.
  WriteReport("report.json", report.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
  std::string md = "# corral run " + run_ + "\n\nbase `" + base_ +
                   "`\n\n| task | status | tries | files changed |\n|---|---|---|---|\n";
  for (const json& t : tasks) {
    md += "| `" + t["id"].get<std::string>() + "` | " + t["status"].get<std::string>() + " | " +
          std::to_string(t["tries"].get<int>()) + " | " +
          std::to_string(t["files_changed"].size()) + " |\n";
  }
  if (merge) md += "\n" + worktree::ToMarkdown(*merge);
  WriteReport("report.md", redactor_.Apply(md));

  bool conflicts = merge && !merge->conflicted.empty();
  bool log_failed = !log_->failure().empty();
  if (log_failed) any_failed = true;
  int status = stop_signal_               ? 128 + stop_signal_
               : any_failed || !merge     ? kExitTaskFailed
               : conflicts                ? kExitConflicts
               : sched.AwaitingApproval() ? kExitAwaitingApproval
                                          : kExitOk;
  if (merge) {
    json m = {{"type", "merge"}, {"into", into}, {"commit", merge->commit}};
    m["merged"] = merge->merged;
    m["conflicted"] = merge->conflicted;
    json conflicts = json::array();
    for (const worktree::Conflict& c : merge->conflicts) {
      conflicts.push_back({{"kind", c.kind}, {"paths", c.paths}, {"tasks", c.tasks}});
    }
    m["conflicts"] = conflicts;
    Event(m);
  }
  Event({{"type", "run-end"},
         {"exit", status},
         {"merge", merge ? json(merge->commit) : json(nullptr)}},
        /*sign=*/true);
  // Built once the log is complete (its merge and run-end records included) from what is on
  // disk: the report, the events (redacted), the logs (redacted).
  if (auto html = ReportHtmlOfRun(dir_)) {
    WriteReport("report.html", redactor_.Apply(*html));
  } else {
    std::fprintf(stderr, "corral: report.html: %s\n", html.error().c_str());
  }
  if (log_failed) {
    std::fprintf(stderr, "corral: run %s stopped: %s\n", run_.c_str(), log_->failure().c_str());
  } else if (!json_) {
    std::string summary = status == 0 ? "every task merged into " + into : "see the report";
    std::fprintf(stderr, "corral: run %s: %s; report: %s/report.md\n", run_.c_str(),
                 summary.c_str(), dir_.c_str());
  }
  tracer_->End(run_span_, status == 0 ? "" : "exit " + std::to_string(status));
  return status;
}

// A plan read and checked, with its tasks' policies. Not movable: tasks point into the plan.
struct Prepared {
  std::string text;
  policy::Plan plan;
  std::vector<TaskConfig> tasks;
};

std::expected<std::unique_ptr<Prepared>, std::string> Prepare(const std::string& plan_path,
                                                              const HostEnv& host) {
  auto p = std::make_unique<Prepared>();
  std::ifstream in(plan_path, std::ios::binary);
  if (!in) return std::unexpected(plan_path + ": " + std::strerror(errno));
  p->text.assign(std::istreambuf_iterator<char>(in), {});
  auto plan = policy::ParsePlan(p->text, plan_path);
  if (!plan) return std::unexpected(plan.error());
  p->plan = std::move(*plan);
  fs::path plan_dir = fs::absolute(plan_path).parent_path();
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < p->plan.tasks.size(); ++i) index[p->plan.tasks[i].id] = i;
  for (size_t i = 0; i < p->plan.tasks.size(); ++i) {
    const policy::PlanTask& t = p->plan.tasks[i];
    std::string where = plan_path + ":" + std::to_string(t.policy_pos.line) + ":" +
                        std::to_string(t.policy_pos.column) + ": task '" + t.id + "': ";
    fs::path policy_path =
        fs::path(t.policy).is_absolute() ? fs::path(t.policy) : plan_dir / t.policy;
    if (!fs::exists(policy_path)) {
      return std::unexpected(where + "policy: " + policy_path.string() +
                             ": No such file or directory");
    }
    auto pol = LoadPolicy(policy_path.string());
    if (!pol) return std::unexpected(where + "policy: " + pol.error());
    // The policy must be one this host can enforce, before anything is created.
    auto spec = SpecFromPolicy(*pol, fs::current_path().string(), t.run, host);
    if (!spec) return std::unexpected(where + t.policy + ": " + spec.error());
    TaskConfig c{&t, *pol, pol->name + "@" + Sha256Hex(ReadWhole(policy_path.string())), i, {}};
    for (const std::string& d : t.depends_on) c.deps.push_back(index[d]);
    p->tasks.push_back(std::move(c));
  }
  return p;
}

// Takes `fd`'s flock exclusively, trying every 20 ms for up to `limit_ms` (`on_wait` runs once if
// the first try finds it taken). An error other than "taken" ends the wait at once; errno says it.
enum class Lock { kTaken, kTimedOut, kFailed };
Lock LockExclusive(int fd, int limit_ms, const std::function<void()>& on_wait = {}) {
  for (int waited_ms = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; waited_ms += 20) {
    if (errno != EWOULDBLOCK && errno != EINTR) return Lock::kFailed;
    if (waited_ms == 0 && on_wait) on_wait();
    if (waited_ms >= limit_ms) return Lock::kTimedOut;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Lock::kTaken;
}

// Holds .git/corral/runs/<run>/lock: one manager per run at a time. A manager killed just now
// may leave the lock held for a moment by a child it had forked (vfork) and not yet exec'd
// (the descriptor is close-on-exec): that is waited for, up to 2 s.
std::expected<int, std::string> LockRun(const std::string& run_dir) {
  int fd = open((run_dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return std::unexpected(Errno("lock " + run_dir));
  switch (LockExclusive(fd, 2000)) {
    case Lock::kTaken:
      return fd;
    case Lock::kFailed: {
      auto error = Errno("lock " + run_dir);
      close(fd);
      return std::unexpected(error);
    }
    case Lock::kTimedOut:
      break;
  }
  close(fd);
  return std::unexpected("run " + run_dir.substr(run_dir.rfind('/') + 1) +
                         " is being run by another corral process");
}

// run_dir/sandboxes.lock: every helper of a run holds it (shared) until its sandbox is entirely
// gone, also after a kill -9 of corral (the helpers outlive it just long enough to end their
// sandboxes). A manager takes it exclusively first, waiting for a killed manager's sandboxes, so
// that none of them still writes in a worktree it resets; then shares it with its own helpers.
std::expected<int, std::string> HoldSandboxes(const std::string& run_dir) {
  std::string path = run_dir + "/sandboxes.lock";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return std::unexpected(Errno("open " + path));
  Lock got = LockExclusive(fd, 60'000, [] {
    std::fprintf(stderr, "corral: waiting for the sandboxes of the previous corral to end\n");
  });
  if (got != Lock::kTaken) {
    auto error = got == Lock::kFailed
                     ? Errno("lock " + path)
                     : "sandboxes of a previous corral of this run are still alive after 60 s";
    close(fd);
    return std::unexpected(error);
  }
  flock(fd, LOCK_SH);
  return fd;
}

// A run id as NewRunId makes them: YYYYMMDD-HHMMSS-xxxx.
bool IsRunId(std::string_view id) {
  if (id.size() != 20 || id[8] != '-' || id[15] != '-') return false;
  for (size_t i = 0; i < id.size(); ++i) {
    if (i == 8 || i == 15) continue;
    char c = id[i];
    bool hex = (c >= '0' && c <= '9') || (i > 15 && c >= 'a' && c <= 'f');
    if (!hex) return false;
  }
  return true;
}

// Removes `runs_dir`/`name`, a hidden run folder, if it holds only what a corral puts there
// before its run-start record is on disk (lock, sandboxes.lock, events.jsonl, an empty logs/):
// through descriptors, never following a symlink.
void RemoveStaging(int runs_fd, const std::string& name) {
  int fd = openat(runs_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return;
  DIR* dir = fdopendir(fd);
  if (!dir) {
    close(fd);
    return;
  }
  static const std::set<std::string> kFiles = {"lock", "sandboxes.lock", "events.jsonl"};
  std::vector<std::string> files;
  bool logs = false, other = false;
  while (const dirent* d = readdir(dir)) {
    std::string entry = d->d_name;
    if (entry == "." || entry == "..") continue;
    struct stat st;
    bool known = fstatat(dirfd(dir), d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (known && kFiles.count(entry) && S_ISREG(st.st_mode)) {
      files.push_back(entry);
    } else if (known && entry == "logs" && S_ISDIR(st.st_mode)) {
      logs = true;
    } else {
      other = true;
    }
  }
  // Anything else, or a logs/ with something in it: not a folder this sweep may remove.
  if (!other && (!logs || unlinkat(dirfd(dir), "logs", AT_REMOVEDIR) == 0)) {
    for (const std::string& f : files) unlinkat(dirfd(dir), f.c_str(), 0);
    unlinkat(runs_fd, name.c_str(), AT_REMOVEDIR);
  }
  closedir(dir);
}

// The hidden run folders (".<run>") that killed corrals left while they made them: their lock is
// free and they are a minute older than `own`, this corral's hidden folder, which it made and
// locked just now (so both times come from the file system's clock). They hold no work: a
// run's tasks start only after its folder was renamed into place.
void RemoveAbandonedStaging(const std::string& runs_dir, const std::string& own) {
  struct stat mine;
  if (stat((runs_dir + "/" + own).c_str(), &mine) != 0) return;
  int runs_fd = open(runs_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (runs_fd < 0) return;
  DIR* runs = fdopendir(runs_fd);
  if (!runs) {
    close(runs_fd);
    return;
  }
  std::vector<std::string> abandoned;
  while (const dirent* d = readdir(runs)) {
    std::string name = d->d_name;
    if (name == own || name.size() < 2 || name[0] != '.' || !IsRunId(name.substr(1))) continue;
    struct stat st;
    if (fstatat(runs_fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) continue;
    if (mine.st_mtim.tv_sec - st.st_mtim.tv_sec < 60) continue;
    abandoned.push_back(name);
  }
  for (const std::string& name : abandoned) {
    int fd = openat(runs_fd, (name + "/lock").c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) continue;
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) == 0) RemoveStaging(runs_fd, name);
    if (fd >= 0) close(fd);
  }
  closedir(runs);
}

void BlockStopSignals() {
  // Signals go to the stopper thread only; every thread started from here inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// The run's secrets.inject (a CA under run_dir/tls), or null when no policy has any.
std::expected<std::unique_ptr<Injector>, std::string> MakeInjector(
    const std::vector<TaskConfig>& tasks, const HostEnv& host, const std::string& run_dir) {
  std::vector<const policy::Policy*> policies;
  policies.reserve(tasks.size());
  for (const TaskConfig& c : tasks) policies.push_back(&c.policy);
  return Injector::Create(policies, host, run_dir + "/tls");
}

}  // namespace

int RunPlan(const RunRequest& request) {
  auto log_limit = LogLimitFromEnv();
  if (!log_limit) return BadInput(log_limit.error());
  HostEnv host = HostEnv::FromEnviron();
  if (!request.secrets_file.empty()) {
    if (auto r = host.LoadSecretsFile(request.secrets_file); !r) return BadInput(r.error());
  }
  auto prepared = Prepare(request.plan_path, host);
  if (!prepared) return BadInput(prepared.error());
  Prepared& p = **prepared;
  for (const std::string& id : request.approve) {
    bool known = std::any_of(p.tasks.begin(), p.tasks.end(),
                             [&](const TaskConfig& c) { return c.task->id == id; });
    if (!known) return BadInput("--approve: the plan has no task '" + id + "'");
  }
  auto repo = worktree::Repository::Open(request.repo);
  if (!repo) return BadInput("--repo " + request.repo + ": " + repo.error().message);
  auto base = repo->ResolveCommit(p.plan.base);
  if (!base) {
    // The default base (HEAD) is not written in the plan: then the plan's first line is named.
    const policy::PlanPos& at = p.plan.base_pos;
    return BadInput(request.plan_path + ":" + std::to_string(std::max(at.line, 1)) + ":" +
                    std::to_string(std::max(at.column, 1)) + ": run.base: " + base.error().message);
  }
  auto helper = HelperPath();
  if (!helper) return BadInput(helper.error());
  auto key = SigningKey::LoadOrCreate(SigningKey::DefaultPath());
  if (!key) return BadInput(key.error());

  // A run exists once its run-start record is on disk: the run directory is made whole under a
  // hidden name and renamed into place (a kill before that leaves no run to resume, only the
  // hidden folder, which the next run removes). The locks are held through descriptors.
  std::string runs_dir = repo->common_dir() + "/corral/runs";
  std::string run_id, run_dir, staging;
  std::error_code ec;
  fs::create_directories(runs_dir, ec);
  if (ec) return BadInput("create " + runs_dir + ": " + ec.message());
  // The hidden folder is this corral's alone: another one that picked the same id (in the same
  // second) draws again.
  for (int tries = 0;; ++tries) {
    run_id = NewRunId();
    run_dir = runs_dir + "/" + run_id;
    staging = runs_dir + "/." + run_id;
    bool taken = fs::exists(run_dir, ec);
    if (!taken && mkdir(staging.c_str(), 0755) == 0) break;
    if (!taken && errno != EEXIST) return BadInput(Errno("create " + staging));
    if (tries >= 100) return BadInput("create " + staging + ": every run id drawn was taken");
  }
  // Until the rename, a failure leaves nothing behind.
  struct RemoveUnlessPlaced {
    const std::string& dir;
    bool placed = false;
    ~RemoveUnlessPlaced() {
      std::error_code ignored;
      if (!placed) fs::remove_all(dir, ignored);
    }
  } remove_staging{staging};
  if (mkdir((staging + "/logs").c_str(), 0755) != 0) return BadInput(Errno("create " + staging));
  auto lock = LockRun(staging);
  if (!lock) return BadInput(lock.error());
  auto sandboxes = HoldSandboxes(staging);
  if (!sandboxes) return BadInput(sandboxes.error());
  RemoveAbandonedStaging(runs_dir, "." + run_id);
  auto log = EventLog::Create(staging + "/events.jsonl", run_id, &*key);
  if (!log) return BadInput(log.error());
  char hostname[256] = {};
  gethostname(hostname, sizeof(hostname) - 1);
  std::optional<int> jobs = request.jobs_auto ? std::nullopt
                            : request.jobs    ? request.jobs
                                              : p.plan.jobs;
  std::string trace_id = Tracer::NewTraceId();
  json order = json::array();
  for (size_t i : p.plan.order) order.push_back(p.plan.tasks[i].id);
  json start = {{"type", "run-start"},
                {"t", Iso8601(std::chrono::system_clock::now())},
                {"plan", fs::absolute(request.plan_path).string()},
                {"plan_sha256", Sha256Hex(p.text)},
                {"base", *base},
                {"corral", kVersion},
                {"host", hostname},
                {"uid", geteuid()},
                {"user", UserName()},
                {"jobs", jobs ? json(*jobs) : json("auto")},
                {"into", p.plan.into.empty() ? "corral/" + run_id + "/merged" : p.plan.into},
                {"order", order},
                {"trace_id", trace_id}};
  if (auto r = log->Append(start); !r) return BadInput(r.error());
  if (rename(staging.c_str(), run_dir.c_str()) != 0) return BadInput(Errno("rename " + staging));
  remove_staging.placed = true;
  log->Moved(run_dir + "/events.jsonl");
  if (request.json)
    std::printf("%s\n", start.dump().c_str());
  else
    std::fprintf(stderr, "corral: run %s: %zu tasks from %s at %s\n", run_id.c_str(),
                 p.tasks.size(), p.plan.base.c_str(), base->substr(0, 12).c_str());
  std::set<size_t> approved;
  for (const std::string& id : request.approve) {
    for (size_t i = 0; i < p.tasks.size(); ++i) {
      if (p.tasks[i].task->id != id) continue;
      approved.insert(i);
      std::string now = Iso8601(std::chrono::system_clock::now());
      (void)log->AppendSigned({{"type", "approval"},
                               {"task", id},
                               {"by", UserName()},
                               {"how", "--approve"},
                               {"t", now}},
                              now);
    }
  }
  auto injector = MakeInjector(p.tasks, host, run_dir);
  if (!injector) return BadInput(injector.error());
  BlockStopSignals();
  Tracer tracer(run_dir + "/trace.otlp.jsonl", trace_id, OtlpEndpoint());
  Runner runner(p.plan, std::move(p.tasks), repo->common_dir(), *base, run_id, run_dir, *helper,
                &*log, request.json, std::move(host), *log_limit, &tracer, *sandboxes,
                std::move(*injector));
  int status = runner.Run(jobs, {}, approved);
  close(*sandboxes);
  close(*lock);
  return status;
}

namespace {

// The events of a run whose log was changed by hand may not have the shapes corral wrote; such a
// log is bad input, never a crash.
template <typename Fn>
int GuardedByLogShape(const std::string& run, Fn fn) {
  try {
    return fn();
  } catch (const nlohmann::json::exception&) {
    return BadInput("the events of run " + run + " are not of the shape corral writes; corral " +
                    "audit verify " + run + " tells whether the log was changed");
  }
}

int ApproveTaskUnguarded(const std::string& repo_path, const std::string& run,
                         const std::string& task);
int ResumeRunUnguarded(const ResumeRequest& request);

}  // namespace

int ApproveTask(const std::string& repo_path, const std::string& run, const std::string& task) {
  return GuardedByLogShape(run, [&] { return ApproveTaskUnguarded(repo_path, run, task); });
}

int ResumeRun(const ResumeRequest& request) {
  return GuardedByLogShape(request.run, [&] { return ResumeRunUnguarded(request); });
}

namespace {

int ApproveTaskUnguarded(const std::string& repo_path, const std::string& run,
                         const std::string& task) {
  auto repo = worktree::Repository::Open(repo_path);
  if (!repo) return BadInput("--repo " + repo_path + ": " + repo.error().message);
  if (std::string e = worktree::CheckId(run, "run id"); !e.empty()) return BadInput(e);
  std::string run_dir = repo->common_dir() + "/corral/runs/" + run;
  auto events = EventLog::Read(run_dir + "/events.jsonl");
  if (!events) return BadInput(events.error());
  bool awaiting = false;
  for (const json& e : *events) {
    if (e.value("task", "") != task) continue;
    std::string type = e.value("type", "");
    if (type == "task-awaiting-approval") awaiting = true;
    if (type == "approval") awaiting = false;
  }
  if (!awaiting) return BadInput("task '" + task + "' of run " + run + " does not await approval");
  auto key = SigningKey::LoadOrCreate(SigningKey::DefaultPath());
  if (!key) return BadInput(key.error());
  auto log = EventLog::Open(run_dir + "/events.jsonl", &*key);
  if (!log) return BadInput(log.error());
  std::string now = Iso8601(std::chrono::system_clock::now());
  if (auto r = log->AppendSigned({{"type", "approval"},
                                  {"task", task},
                                  {"by", UserName()},
                                  {"how", "corral approve"},
                                  {"t", now}},
                                 now);
      !r) {
    return BadInput(r.error());
  }
  std::fprintf(stderr, "corral: approved task '%s' of run %s; continue it with: corral resume %s\n",
               task.c_str(), run.c_str(), run.c_str());
  return kExitOk;
}

int ResumeRunUnguarded(const ResumeRequest& request) {
  auto repo = worktree::Repository::Open(request.repo);
  if (!repo) return BadInput("--repo " + request.repo + ": " + repo.error().message);
  if (std::string e = worktree::CheckId(request.run, "run id"); !e.empty()) return BadInput(e);
  std::string run_dir = repo->common_dir() + "/corral/runs/" + request.run;
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec)) return BadInput("no run " + request.run + " in " + request.repo);
  auto events = fs::exists(run_dir + "/events.jsonl", ec)
                    ? EventLog::Read(run_dir + "/events.jsonl")
                    : std::expected<std::vector<json>, std::string>(std::vector<json>{});
  if (!events) return BadInput(events.error());
  if (events->empty() || events->front().value("type", "") != "run-start") {
    return BadInput("run " + request.run + " never started (" + run_dir +
                    "/events.jsonl has no run-start record: corral was killed while it created "
                    "the run); nothing to resume, corral clean removes it");
  }
  const json& start = events->front();
  for (const json& e : *events) {
    int exit = e.value("exit", 0);
    if (e.value("type", "") == "run-end" && exit < 128 && exit != kExitAwaitingApproval) {
      return BadInput("run " + request.run + " ended (exit " + std::to_string(e.value("exit", 0)) +
                      "); nothing to resume");
    }
  }
  std::string plan_path = start.value("plan", "");
  auto log_limit = LogLimitFromEnv();
  if (!log_limit) return BadInput(log_limit.error());
  HostEnv host = HostEnv::FromEnviron();
  if (!request.secrets_file.empty()) {
    if (auto r = host.LoadSecretsFile(request.secrets_file); !r) return BadInput(r.error());
  }
  auto prepared = Prepare(plan_path, host);
  if (!prepared) return BadInput(prepared.error());
  Prepared& p = **prepared;
  if (Sha256Hex(p.text) != start.value("plan_sha256", "")) {
    return BadInput(plan_path + ": the plan changed since run " + request.run + " started");
  }
  auto helper = HelperPath();
  if (!helper) return BadInput(helper.error());
  auto key = SigningKey::LoadOrCreate(SigningKey::DefaultPath());
  if (!key) return BadInput(key.error());
  auto lock = LockRun(run_dir);
  if (!lock) return BadInput(lock.error());
  // A killed corral's sandboxes end before anything here touches a worktree.
  auto sandboxes = HoldSandboxes(run_dir);
  if (!sandboxes) return BadInput(sandboxes.error());
  // Locks a killed corral held on the run's refs and worktree indexes have no owner now.
  if (auto cleared = repo->ClearStaleLocks(request.run, std::chrono::system_clock::now())) {
    for (const std::string& path : *cleared) {
      std::fprintf(stderr, "corral: removed %s, left by a corral that was killed\n", path.c_str());
    }
  }

  // Replay: tasks that ended keep their results; the others start again, from a clean reset.
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < p.tasks.size(); ++i) index[p.tasks[i].task->id] = i;
  std::map<size_t, Runner::Restored> restored;
  std::set<size_t> approved;
  for (const json& e : *events) {
    std::string type = e.value("type", "");
    auto it = index.find(e.value("task", ""));
    if (it == index.end()) continue;
    if (type == "approval") {
      approved.insert(it->second);
      continue;
    }
    Runner::Restored& r =
        restored.try_emplace(it->second, Runner::Restored{TaskState::kPending, 0, {}})
            .first->second;
    if (type == "task-start") {
      r.tries = e.value("try", r.tries);
      r.state = TaskState::kPending;
    } else if (type == "task-end") {
      std::string state = e.value("state", "");
      for (TaskState s : {TaskState::kSucceeded, TaskState::kFailed, TaskState::kTimedOut,
                          TaskState::kConflicted}) {
        if (state == Name(s)) r.state = s;
      }
      r.result.status = e.value("status", "");
      r.result.commit = e.value("commit", "");
      r.result.files_changed = e.value("files_changed", std::vector<std::string>{});
      r.result.message = e.value("message", "");
      if (e.contains("exit_code")) r.result.exit_code = e["exit_code"].get<int>();
      std::string output = run_dir + "/out/" + it->first + "/result.json";
      if (fs::exists(output)) r.result.output = json::parse(ReadWhole(output), nullptr, false);
      if (r.result.output.is_discarded()) r.result.output = nullptr;
    }
  }
  auto log = EventLog::Open(run_dir + "/events.jsonl", &*key);
  if (!log) return BadInput(log.error());
  std::optional<int> jobs;
  if (start.contains("jobs") && start["jobs"].is_number_integer()) jobs = start["jobs"].get<int>();
  (void)log->Append({{"type", "run-resume"}, {"t", Iso8601(std::chrono::system_clock::now())}});
  size_t finished = 0;
  for (const auto& [t, r] : restored) finished += IsFinal(r.state);
  if (!request.json) {
    std::fprintf(stderr, "corral: resuming run %s: %zu of %zu tasks had ended\n",
                 request.run.c_str(), finished, p.tasks.size());
  }
  auto injector = MakeInjector(p.tasks, host, run_dir);
  if (!injector) return BadInput(injector.error());
  BlockStopSignals();
  Tracer tracer(run_dir + "/trace.otlp.jsonl", start.value("trace_id", Tracer::NewTraceId()),
                OtlpEndpoint());
  Runner runner(p.plan, std::move(p.tasks), repo->common_dir(), start.value("base", ""),
                request.run, run_dir, *helper, &*log, request.json, std::move(host), *log_limit,
                &tracer, *sandboxes, std::move(*injector));
  int status = runner.Run(jobs, restored, approved);
  close(*sandboxes);
  close(*lock);
  return status;
}

}  // namespace

}  // namespace corral::launcher
