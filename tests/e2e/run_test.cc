// `corral run` end to end: scripted agents in real sandboxes on temporary repositories.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "tests/testing.h"

namespace corral::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// tests/sandbox/http_server.py on loopback, serving `root` (and keeping what is POSTed there),
// until Stop or destruction.
class TestServer {
 public:
  // `tls`: speak HTTPS with a self-signed certificate for localhost, made here (root/cert.pem).
  explicit TestServer(const std::string& root, bool tls = false) {
    std::string port_file = root + "/port";
    std::vector<std::string> argv = {"/usr/bin/python3", HTTP_SERVER, "--root", root,
                                     "--port-file", port_file};
    if (tls) {
      RunCommand({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost", "-addext",
                  "subjectAltName=DNS:localhost", "-days", "1", "-keyout", root + "/key.pem",
                  "-out", root + "/cert.pem"});
      argv.insert(argv.end(), {"--tls", root + "/cert.pem", root + "/key.pem"});
    }
    pid_ = Spawn(argv, root + "/log");
    for (int i = 0; i < 200 && !fs::exists(port_file); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    port_ = ReadFile(port_file);
  }
  ~TestServer() { Stop(); }
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  const std::string& port() const { return port_; }

 private:
  pid_t pid_ = -1;
  std::string port_;
};

class RunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("CORRAL_AUDIT_KEY", (scratch_.path() + "/keys/audit.pem").c_str(), 1);
    Git({"init", "-q", "-b", "main"});
    Git({"config", "user.name", "Test"});
    Git({"config", "user.email", "t@example.com"});
    WriteFile(repo_.path() + "/shared.txt", "one\ntwo\nthree\n");
    Git({"add", "-A"});
    Git({"commit", "-q", "-m", "base"});
    WriteFile(repo_.path() + "/user-edit.txt", "uncommitted work of the user\n");
    user_ = Git({"status", "--porcelain"}).out + Git({"rev-parse", "HEAD"}).out;
  }

  void TearDown() override {
    EXPECT_EQ(Git({"status", "--porcelain"}).out + Git({"rev-parse", "HEAD"}).out, user_);
    Output fsck = Git({"fsck", "--strict", "--no-progress"});
    EXPECT_EQ(fsck.status, 0) << fsck.err;
  }

  Output Git(std::vector<std::string> args) {
    args.insert(args.begin(), {"/usr/bin/git", "-C", repo_.path()});
    return RunCommand(args);
  }

  // Writes the plan (tasks use policies/default.toml unless they say otherwise) and runs it.
  Output Run(const std::string& tasks, const std::vector<std::string>& flags = {}) {
    std::string plan = scratch_.path() + "/plan.toml";
    WriteFile(plan, tasks);
    std::vector<std::string> argv = {CORRAL_BIN, "run", plan, "--repo", repo_.path()};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return RunCommand(argv);
  }

  json Report() {
    std::string runs = repo_.path() + "/.git/corral/runs";
    std::string latest;
    for (const auto& e : fs::directory_iterator(runs)) latest = std::max(latest, e.path().string());
    std::ifstream in(latest + "/report.json");
    return json::parse(in);
  }

  static std::string Task(const std::string& id, const std::string& script,
                          const std::string& extra = "") {
    return "[[task]]\nid = \"" + id +
           "\"\npolicy = \"" POLICIES_DIR "/default.toml\"\nrun = [\"sh\", \"-c\", \"" + script +
           "\"]\n" + extra + "\n";
  }

  static json Find(const json& report, const std::string& id) {
    for (const json& t : report["tasks"]) {
      if (t["id"] == id) return t;
    }
    return nullptr;
  }

  ScratchDir repo_{"corral-run-repo"};
  ScratchDir scratch_{"corral-run"};
  std::string user_;
};

TEST_F(RunTest, DagRunsAndMergesInOrder) {
  Output o = Run(Task("impl", R"(echo impl > impl.txt; printf '{\"ok\": 1}' > $CORRAL_OUTPUT)") +
                 Task("tests", "echo tests > tests.txt") +
                 Task("docs", "echo docs > docs.txt", "depends_on = [\"impl\"]") +
                 Task("review",
                      "cat impl.txt tests.txt docs.txt > review.txt; cat $CORRAL_INPUTS/impl.json",
                      "depends_on = [\"impl\", \"tests\", \"docs\"]"));
  EXPECT_EQ(o.status, 0) << o.err;
  json r = Report();
  for (const char* id : {"impl", "tests", "docs", "review"}) {
    EXPECT_EQ(Find(r, id)["status"], "succeeded") << id << o.err;
  }
  EXPECT_EQ(Find(r, "impl")["output"], json({{"ok", 1}}));
  EXPECT_EQ(Find(r, "review")["files_changed"], json({"review.txt"}));
  EXPECT_EQ(r["merge"]["merged"], json({"impl", "tests", "docs", "review"}));
  std::string merged = r["merge"]["branch"];
  EXPECT_EQ(Git({"show", merged + ":review.txt"}).out, "impl\ntests\ndocs\n");
  std::string log = ReadFile(repo_.path() + "/.git/corral/runs/" + r["run"].get<std::string>() +
                             "/logs/review.log");
  EXPECT_EQ(log, "{\"ok\": 1}");
  EXPECT_EQ(Git({"log", "-1", "--format=%(trailers:key=Corral-Task,valueonly)",
                 "corral/" + r["run"].get<std::string>() + "/impl"})
                .out,
            "impl\n\n");
}

TEST_F(RunTest, AFailingTaskSkipsItsDependents) {
  Output o =
      Run(Task("bad", "echo partial > partial.txt; exit 3") +
          Task("after", "true", "depends_on = [\"bad\"]") + Task("other", "echo ok > ok.txt"));
  EXPECT_EQ(o.status, 1);
  json r = Report();
  EXPECT_EQ(Find(r, "bad")["status"], "failed");
  EXPECT_EQ(Find(r, "bad")["exit_code"], 3);
  EXPECT_EQ(Find(r, "bad")["files_changed"], json({"partial.txt"}))
      << "its work is committed anyway";
  EXPECT_EQ(Find(r, "after")["status"], "skipped");
  EXPECT_EQ(Find(r, "after")["reason"], "dependency 'bad' failed");
  EXPECT_EQ(Find(r, "other")["status"], "succeeded") << Find(r, "other").dump();
  EXPECT_EQ(r["merge"]["merged"], json({"other"}));
}

TEST_F(RunTest, ConflictsAreReportedWithExitThree) {
  Output o = Run(Task("a", "printf 'one\\\\nA\\\\nthree\\\\n' > shared.txt") +
                 Task("b", "printf 'one\\\\nB\\\\nthree\\\\n' > shared.txt") +
                 Task("c", "echo c > c.txt"));
  EXPECT_EQ(o.status, 3) << o.err;
  json r = Report();
  EXPECT_EQ(r["merge"]["merged"], json({"a", "c"}));
  EXPECT_EQ(r["merge"]["conflicted"], json({"b"}));
  EXPECT_EQ(r["merge"]["conflicts"][0]["kind"], "content");
  EXPECT_EQ(r["merge"]["conflicts"][0]["tasks"], json({"a", "b"}));
  EXPECT_EQ(r["merge"]["pairs"][0]["paths"], json({"shared.txt"}));
}

TEST_F(RunTest, TimeoutsAndRetries) {
  // "flaky" fails on its first try only: the workspace is reset between tries.
  Output o = Run(Task("slow", "sleep 30", "timeout = \"1s\"") +
                 Task("flaky",
                      "test -f marker && exit 0; touch marker; touch $CORRAL_OUTPUT.tried; exit 1",
                      "retries = 1"));
  EXPECT_EQ(o.status, 1);
  json r = Report();
  EXPECT_EQ(Find(r, "slow")["status"], "timed-out");
  EXPECT_EQ(Find(r, "slow")["exit_code"], 124);
  EXPECT_EQ(Find(r, "flaky")["tries"], 2);
  EXPECT_EQ(Find(r, "flaky")["status"], "failed") << "the marker did not survive the reset";
}

TEST_F(RunTest, OverlayRetriesStartFromACleanReset) {
  // The first try deletes a file of the base, writes one and fails; the second must see the base
  // again, without the first try's file.
  Output o = Run("[run]\nworkspaces = \"overlay\"\n\n" +
                 Task("flaky",
                      "test -f shared.txt || exit 3; test -f marker && exit 4; touch marker; "
                      "rm shared.txt; exit 1",
                      "retries = 1"));
  EXPECT_EQ(o.status, 1) << o.err;
  json flaky = Find(Report(), "flaky");
  EXPECT_EQ(flaky["tries"], 2) << flaky.dump();
  EXPECT_EQ(flaky["exit_code"], 1) << "3: the deleted file stayed deleted, 4: the new one stayed";
  // The failed last try's work is committed all the same, as a worktree's would be.
  EXPECT_EQ(flaky["files_changed"], json({"marker", "shared.txt"})) << flaky.dump();
}

TEST_F(RunTest, OverlayAgentsCannotPlantOverlayAttributes) {
  // The folder below an overlay workspace is read after the agent by what overlayfs wrote there:
  // an opaque folder would make corral commit deletions the agent never made, a redirect would
  // point the next mount elsewhere. The agent sets every such attribute, in both namespaces
  // overlayfs reads, on a folder of the base it wrote into, on one it made, and on files. (The
  // kernel refuses them, or since 6.7 stores them escaped, as user.overlay.overlay.*.)
  fs::create_directories(repo_.path() + "/keep");
  WriteFile(repo_.path() + "/keep/a.txt", "a\n");
  WriteFile(repo_.path() + "/keep/b.txt", "b\n");
  Git({"add", "keep"});
  Git({"commit", "-q", "-m", "keep"});
  user_ = Git({"status", "--porcelain"}).out + Git({"rev-parse", "HEAD"}).out;
  std::string script = R"PY(
import os
open("keep/new.txt", "w").write("n\n")
os.mkdir("made")
open("made/f", "w").write("f\n")
for path in ["keep", "made", "keep/new.txt", "made/f"]:
    for ns in ["user", "trusted"]:
        for name in ["opaque", "redirect", "origin", "metacopy", "whiteout", "impure", "upper"]:
            key = ns + ".overlay." + name
            try:
                os.setxattr(path, key, b"y" if name == "opaque" else b"/etc")
                print("set", path, key)
            except OSError as e:
                print("refused", path, key, e.errno)
print("a.txt" in os.listdir("keep") and "keep=whole")
)PY";
  Output o = Run("[run]\nworkspaces = \"overlay\"\n\n[[task]]\nid = \"plant\"\npolicy = \"" POLICIES_DIR
                 "/default.toml\"\nrun = [\"python3\", \"-c\", '''" +
                 script + "''']\n");
  ASSERT_EQ(o.status, 0) << o.err;
  json r = Report();
  json plant = Find(r, "plant");
  ASSERT_EQ(plant["status"], "succeeded") << plant.dump();
  std::string run = r["run"];
  std::string log = ReadFile(repo_.path() + "/.git/corral/runs/" + run + "/logs/plant.log");
  EXPECT_NE(log.find("keep=whole"), std::string::npos) << log;
  // What was committed is what the agent did: two new files, no deletion.
  EXPECT_EQ(plant["files_changed"], json({"keep/new.txt", "made/f"})) << plant.dump() << log;
  EXPECT_EQ(Git({"show", "corral/" + run + "/plant:keep/a.txt"}).out, "a\n");
  EXPECT_EQ(Git({"show", "corral/" + run + "/plant:keep/b.txt"}).out, "b\n");
  // And the folder keeps none of overlayfs's attributes, escaped or not, for a later mount.
  std::string worktree = repo_.path() + "/.git/corral/worktrees/" + run + "/plant";
  for (const auto& e : fs::recursive_directory_iterator(worktree)) {
    char names[4096];
    ssize_t n = llistxattr(e.path().c_str(), names, sizeof(names));
    ASSERT_GE(n, 0) << e.path();
    for (ssize_t at = 0; at < n; at += static_cast<ssize_t>(std::strlen(names + at)) + 1) {
      std::string name = names + at;
      EXPECT_EQ(name.find(".overlay."), std::string::npos) << e.path() << ": " << name;
    }
  }
  Output status = RunCommand({"/usr/bin/git", "-C", worktree, "status", "--porcelain"});
  EXPECT_EQ(status.out, "") << status.err;
}

TEST_F(RunTest, BadPlansCreateNothing) {
  Output cycle =
      Run(Task("a", "true", "depends_on = [\"b\"]") + Task("b", "true", "depends_on = [\"a\"]"));
  EXPECT_EQ(cycle.status, 2);
  EXPECT_EQ(cycle.err, "corral: " + scratch_.path() +
                           "/plan.toml:1:1: task 'a': dependency cycle a -> b -> a\n");
  Output missing = Run("[[task]]\nid = \"a\"\npolicy = \"nope.toml\"\nrun = [\"true\"]\n");
  EXPECT_EQ(missing.status, 2);
  EXPECT_EQ(missing.err, "corral: " + scratch_.path() + "/plan.toml:3:10: task 'a': policy: " +
                             scratch_.path() + "/nope.toml: No such file or directory\n");
  EXPECT_FALSE(fs::exists(repo_.path() + "/.git/corral/runs"));
  EXPECT_EQ(Git({"branch", "--list", "corral/*"}).out, "");
}

TEST_F(RunTest, HiddenFoldersOfKilledCorralsAreRemovedAndOnlyThose) {
  // What a corral killed while it made its run folder leaves: ".<run>" with a free lock (or
  // none yet), an event log and an empty logs/. One still held, made less than a minute ago,
  // holding anything else, not named as a run, or a symlink, is not the sweep's.
  std::string runs = repo_.path() + "/.git/corral/runs";
  auto make = [&](const std::string& name, bool lock, bool old) {
    fs::create_directories(runs + "/" + name + "/logs");
    if (lock) WriteFile(runs + "/" + name + "/lock", "");
    WriteFile(runs + "/" + name + "/events.jsonl", "{\"type\":\"run-start\"}\n");
    if (old) {
      fs::last_write_time(runs + "/" + name,
                          fs::file_time_type::clock::now() - std::chrono::minutes(5));
    }
  };
  make(".20260101-000000-aaaa", true, true);
  make(".20260101-000000-bbbb", false, true);
  make(".20260101-000000-cccc", true, true);   // held
  make(".20260101-000000-dddd", true, false);  // new
  make(".20260101-000000-eeee", true, true);   // holds a file of someone's
  WriteFile(runs + "/.20260101-000000-eeee/notes.txt", "mine\n");
  fs::last_write_time(runs + "/.20260101-000000-eeee",
                      fs::file_time_type::clock::now() - std::chrono::minutes(5));
  make(".mine", false, true);                  // not a run's name
  ScratchDir outside("corral-outside");
  fs::create_directories(outside.path() + "/logs");
  WriteFile(outside.path() + "/events.jsonl", "{}\n");
  fs::last_write_time(outside.path(), fs::file_time_type::clock::now() - std::chrono::minutes(5));
  fs::create_directory_symlink(outside.path(), runs + "/.20260101-000000-ffff");
  int held = open((runs + "/.20260101-000000-cccc/lock").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(held, 0);
  ASSERT_EQ(flock(held, LOCK_EX), 0);
  Output r = Run(Task("a", "true"));
  close(held);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(fs::exists(runs + "/.20260101-000000-aaaa"));
  EXPECT_FALSE(fs::exists(runs + "/.20260101-000000-bbbb"));
  EXPECT_TRUE(fs::exists(runs + "/.20260101-000000-cccc/events.jsonl"));
  EXPECT_TRUE(fs::exists(runs + "/.20260101-000000-dddd/events.jsonl"));
  EXPECT_TRUE(fs::exists(runs + "/.20260101-000000-eeee/notes.txt"));
  EXPECT_TRUE(fs::exists(runs + "/.20260101-000000-eeee/events.jsonl"));
  EXPECT_TRUE(fs::exists(runs + "/.mine/events.jsonl"));
  EXPECT_TRUE(fs::is_symlink(runs + "/.20260101-000000-ffff"));
  EXPECT_TRUE(fs::exists(outside.path() + "/events.jsonl"));
  size_t placed = 0;
  for (const auto& e : fs::directory_iterator(runs)) {
    if (e.path().filename().string()[0] != '.') ++placed;
  }
  EXPECT_EQ(placed, 1u) << "the run itself";
  Output listed = RunCommand({CORRAL_BIN, "runs", "--repo", repo_.path()});
  EXPECT_EQ(listed.status, 0) << listed.err;
  EXPECT_EQ(listed.out.find(".2026"), std::string::npos) << listed.out;
}

TEST_F(RunTest, TheAgentCannotReachTheMainRepository) {
  // The common git dir is not in the sandbox: refs, config and hooks are out of reach.
  Output o =
      Run(Task("attack",
               "git -C $CORRAL_INPUTS/../../.. update-ref refs/heads/main HEAD 2>&1; "
               "ls " +
                   repo_.path() + "/.git/config 2>&1; echo planted > .git/hooks-x 2>&1; true"));
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_FALSE(fs::exists(repo_.path() + "/.git/hooks-x"));
  json r = Report();
  EXPECT_EQ(Find(r, "attack")["status"], "no-changes");
  std::string log = ReadFile(repo_.path() + "/.git/corral/runs/" + r["run"].get<std::string>() +
                             "/logs/attack.log");
  EXPECT_NE(
      log.find("ls: cannot access '" + repo_.path() + "/.git/config': No such file or directory"),
      std::string::npos)
      << log;
}

TEST_F(RunTest, GitWorksInsideButOnlyOnTheTasksBranch) {
  // The agent commits with git, then tries to move main, plant config and hooks, replace its
  // .git file and reach a sibling task's worktree. Afterwards the user runs git in the repository
  // and in the task's worktree: nothing planted runs.
  std::string marker = scratch_.path() + "/planted";
  std::string config = ReadFile(repo_.path() + "/.git/config");
  auto hooks_of = [&] {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(repo_.path() + "/.git/hooks")) names.insert(e.path());
    return names;
  };
  std::set<std::string> hooks = hooks_of();
  std::string script = R"(
git status --porcelain; echo status=$?
echo b > b.txt && git add b.txt && git commit -qm 'agent: b'; echo commit=$?
git update-ref refs/heads/main HEAD; git branch -f other HEAD
git config core.fsmonitor 'touch MARKER'; git config core.hooksPath /tmp
hooks="$(git rev-parse --git-common-dir)/hooks"; mkdir -p "$hooks"
printf '#!/bin/sh
touch MARKER
' > "$hooks/post-checkout"; chmod +x "$hooks/post-checkout"
echo 'gitdir: /elsewhere' > .git || echo replace=refused
rm -f .git || echo remove=refused
git -C ../other status || echo sibling=unreachable
test -e REPO/.git/config || echo repository=unseen
echo c > c.txt
git log --format=%s
)";
  for (auto [from, to] : {std::pair{"MARKER", marker}, std::pair{"REPO", repo_.path()}}) {
    for (size_t at; (at = script.find(from)) != std::string::npos;) script.replace(at, strlen(from), to);
  }
  Output o = Run("[[task]]\nid = \"agent\"\npolicy = \"" POLICIES_DIR
                 "/default.toml\"\nrun = [\"sh\", \"-c\", '''" + script + "''']\n\n" +
                 Task("other", "echo other > other.txt; sleep 1"));
  EXPECT_EQ(o.status, 0) << o.err;
  json r = Report();
  std::string run = r["run"];
  json agent = Find(r, "agent");
  EXPECT_EQ(agent["status"], "succeeded") << agent.dump();
  EXPECT_EQ(agent["agent_commits"], 1) << agent.dump();
  EXPECT_EQ(agent["files_changed"], json({"b.txt", "c.txt"}));
  std::string log = ReadFile(repo_.path() + "/.git/corral/runs/" + run + "/logs/agent.log");
  for (const char* line : {"status=0\n", "commit=0\n", "replace=refused\n", "remove=refused\n",
                           "sibling=unreachable\n", "repository=unseen\n", "agent: b\nbase\n"}) {
    EXPECT_NE(log.find(line), std::string::npos) << line << " in:\n" << log;
  }
  std::string branch = "corral/" + run + "/agent";
  EXPECT_EQ(Git({"log", "--format=%s", branch}).out, "corral: task agent\nagent: b\nbase\n");
  EXPECT_EQ(Git({"for-each-ref", "--format=%(refname)"}).out,
            "refs/heads/corral/" + run + "/agent\nrefs/heads/corral/" + run +
                "/merged\nrefs/heads/corral/" + run + "/other\nrefs/heads/main\n");
  EXPECT_EQ(ReadFile(repo_.path() + "/.git/config"), config);
  EXPECT_EQ(hooks_of(), hooks);
  // The user opens the task's worktree with git: its real .git, and nothing the agent planted.
  std::string worktree = repo_.path() + "/.git/corral/worktrees/" + run + "/agent";
  EXPECT_EQ(ReadFile(worktree + "/.git"),
            "gitdir: " + repo_.path() + "/.git/worktrees/" + run + ".agent\n");
  Output status = RunCommand({"/usr/bin/git", "-C", worktree, "status", "--porcelain"});
  EXPECT_EQ(status.status, 0) << status.err;
  EXPECT_EQ(status.out, "");
  EXPECT_EQ(RunCommand({"/usr/bin/git", "-C", worktree, "checkout", "-q", "-b", "user-look"}).status, 0);
  EXPECT_EQ(RunCommand({"/usr/bin/git", "-C", worktree, "checkout", "-q", branch}).status, 0);
  Git({"status"});
  EXPECT_FALSE(fs::exists(marker)) << "a hook or fsmonitor the agent planted ran";
  Git({"branch", "-D", "user-look"});
}

// The fast path: workspaces = "overlay" commits exactly what a checked-out worktree would, for
// every kind of change, also in a task that starts from its dependency's branch; the export below
// stays as it was, the agent never sees it, and the worktree the user opens is a clean, sparse one.
TEST_F(RunTest, OverlayWorkspacesCommitWhatWorktreesDo) {
  for (const auto& [path, content] :
       std::vector<std::pair<std::string, std::string>>{{"keep/a.txt", "a\n"},
                                                        {"keep/b.txt", "b\n"},
                                                        {"gone.txt", "gone\n"},
                                                        {"olddir/x.txt", "x\n"},
                                                        {"olddir/sub/y.txt", "y\n"},
                                                        {"tool.sh", "echo tool\n"},
                                                        {"fileToDir", "f\n"},
                                                        {"dirToFile/z.txt", "z\n"},
                                                        {".gitignore", "build/\n"}}) {
    fs::create_directories(fs::path(repo_.path() + "/" + path).parent_path());
    WriteFile(repo_.path() + "/" + path, content);
  }
  Git({"add", "-A", ":!user-edit.txt"});
  Git({"commit", "-q", "-m", "more"});
  user_ = Git({"status", "--porcelain"}).out + Git({"rev-parse", "HEAD"}).out;
  std::string base = Git({"rev-parse", "HEAD"}).out;
  base.pop_back();
  std::string export_dir = repo_.path() + "/.git/corral/exports/" + base + "/tree";
  std::string first = R"SH(git status --porcelain | wc -l | sed 's/^/dirty=/'
test -f keep/b.txt && echo whole=yes
test -e EXPORT && echo export=visible
ls -d /overlay-lower /overlay-upper /oldroot 2>/dev/null && echo staging=visible
grep -q overlay /proc/self/mountinfo && echo overlay=mounted
echo changed >> shared.txt
rm gone.txt
rm -r olddir && mkdir olddir && echo anew > olddir/new.txt
mkdir -p build && echo junk > build/out.o
echo new > added.txt
chmod +x tool.sh
mv keep/a.txt keep/renamed.txt
ln -s shared.txt link
rm fileToDir && mkdir fileToDir && echo inner > fileToDir/inner
rm -r dirToFile && echo file > dirToFile
printf x > "$(printf 'odd\nname')"; printf y > "$(printf '\377.bin')"
)SH";
  std::string second = R"(git status --porcelain | wc -l | sed 's/^/dirty=/'
rm added.txt keep/renamed.txt && echo again >> olddir/new.txt && rm -r fileToDir
)";
  for (size_t at; (at = first.find("EXPORT")) != std::string::npos;) first.replace(at, 6, export_dir);
  auto plan = [&](bool overlay) {
    std::string p = "[run]\nworkspaces = \"";
    p += overlay ? "overlay\"\n\n" : "worktree\"\n\n";
    p += "[[task]]\nid = \"one\"\npolicy = \"" POLICIES_DIR "/default.toml\"\n";
    p += "run = [\"sh\", \"-c\", '''" + first + "''']\n\n";
    p += "[[task]]\nid = \"two\"\ndepends_on = [\"one\"]\npolicy = \"" POLICIES_DIR "/default.toml\"\n";
    p += "run = [\"sh\", \"-c\", '''" + second + "''']\n";
    return p;
  };
  std::map<std::string, std::string> trees[2];
  std::string overlay_run;
  std::set<std::string> runs;  // both may start within the same second: Report() could mix them
  for (bool overlay : {false, true}) {
    Output o = Run(plan(overlay));
    ASSERT_EQ(o.status, 0) << o.err;
    std::string run;
    for (const auto& e : fs::directory_iterator(repo_.path() + "/.git/corral/runs")) {
      if (runs.insert(e.path().filename()).second) run = e.path().filename();
    }
    json r = json::parse(ReadFile(repo_.path() + "/.git/corral/runs/" + run + "/report.json"));
    for (const char* id : {"one", "two"}) {
      ASSERT_EQ(Find(r, id)["status"], "succeeded") << id << Find(r, id).dump();
      trees[overlay][id] = Git({"rev-parse", "corral/" + run + "/" + id + "^{tree}"}).out;
      std::string log = ReadFile(repo_.path() + "/.git/corral/runs/" + run + "/logs/" + id + ".log");
      EXPECT_NE(log.find("dirty=0\n"), std::string::npos) << id << ": " << log;
      EXPECT_EQ(log.find("export=visible"), std::string::npos) << log;
      EXPECT_EQ(log.find("staging=visible"), std::string::npos) << log;
      if (std::string(id) == "one") {
        EXPECT_EQ(log.find("overlay=mounted") != std::string::npos, overlay) << log;
      }
      if (std::string(id) == "one") {
        EXPECT_NE(log.find("whole=yes"), std::string::npos) << log;
      }
    }
    if (overlay) overlay_run = run;
  }
  EXPECT_EQ(trees[1]["one"], trees[0]["one"]);
  EXPECT_EQ(trees[1]["two"], trees[0]["two"]);
  EXPECT_EQ(Git({"show", "corral/" + overlay_run + "/two:olddir/new.txt"}).out, "anew\nagain\n");
  EXPECT_EQ(Git({"ls-tree", "corral/" + overlay_run + "/one", "link"}).out.substr(0, 6), "120000");
  EXPECT_EQ(Git({"show", "corral/" + overlay_run + "/one:odd\nname"}).out, "x");
  EXPECT_EQ(Git({"show", "corral/" + overlay_run + "/one:\377.bin"}).out, "y");
  EXPECT_EQ(Git({"ls-tree", "corral/" + overlay_run + "/one", "tool.sh"}).out.substr(0, 6), "100755");
  // The export is the base, untouched.
  EXPECT_EQ(ReadFile(export_dir + "/shared.txt"), "one\ntwo\nthree\n");
  EXPECT_EQ(ReadFile(export_dir + "/olddir/sub/y.txt"), "y\n");
  EXPECT_TRUE(fs::exists(export_dir + "/gone.txt"));
  EXPECT_FALSE(fs::exists(export_dir + "/added.txt"));
  // The user's view of an overlay task's worktree: only what changed is there, git says clean.
  for (const char* id : {"one", "two"}) {
    std::string worktree = repo_.path() + "/.git/corral/worktrees/" + overlay_run + "/" + id;
    Output status = RunCommand({"/usr/bin/git", "-C", worktree, "status", "--porcelain"});
    EXPECT_EQ(status.status, 0) << status.err;
    EXPECT_EQ(status.out, "") << id;
    EXPECT_FALSE(fs::exists(worktree + "/keep/b.txt")) << id;
    std::string files = RunCommand({"/usr/bin/git", "-C", worktree, "ls-files", "-v"}).out;
    EXPECT_NE(files.find("S keep/b.txt"), std::string::npos) << files;
    for (const auto& e : fs::recursive_directory_iterator(worktree)) {
      EXPECT_FALSE(e.is_character_file()) << e.path() << ": a whiteout left behind";
    }
  }
  std::string one = repo_.path() + "/.git/corral/worktrees/" + overlay_run + "/one";
  EXPECT_EQ(ReadFile(one + "/shared.txt"), "one\ntwo\nthree\nchanged\n");
  EXPECT_FALSE(fs::exists(one + "/gone.txt"));
  // Clean sees what git sees: nothing uncommitted (keep/b.txt, not in the folder, is not deleted).
  Output clean =
      RunCommand({CORRAL_BIN, "clean", overlay_run, "--dry-run", "--repo", repo_.path()});
  EXPECT_NE(clean.out.find("would remove corral/" + overlay_run + "/one ("), std::string::npos)
      << clean.out << clean.err;
}

TEST_F(RunTest, TheAgentHoldsNoDescriptorOfCorrals) {
  // corral's helper holds the run's sandboxes.lock (fd 4) and its socket to corral (fd 3) while
  // the sandbox lives; neither, nor anything else of corral's, reaches the agent.
  Output o = Run(Task("probe",
                      "for fd in $(seq 3 64); do [ -e /proc/self/fd/$fd ] && "
                      "echo open $fd $(readlink /proc/self/fd/$fd); done; echo checked"));
  EXPECT_EQ(o.status, 0) << o.err;
  json r = Report();
  std::string log = ReadFile(repo_.path() + "/.git/corral/runs/" + r["run"].get<std::string>() +
                             "/logs/probe.log");
  EXPECT_EQ(log, "checked\n");
}

TEST_F(RunTest, TasksCannotTouchEachOtherOrTheirInputs) {
  // "b" runs after "a" and tries to write into a's worktree (a sibling path) and into its own
  // read-only inputs.
  Output o = Run(Task("a", "echo a > a.txt; echo '{}' > $CORRAL_OUTPUT") +
                 Task("b", "echo x > ../a/planted.txt; echo x > $CORRAL_INPUTS/a.json; ls ..; true",
                      "depends_on = [\"a\"]"));
  EXPECT_EQ(o.status, 0) << o.err;
  json r = Report();
  std::string run = r["run"];
  std::string log = ReadFile(repo_.path() + "/.git/corral/runs/" + run + "/logs/b.log");
  EXPECT_NE(log.find("../a/planted.txt: Directory nonexistent"), std::string::npos) << log;
  EXPECT_NE(log.find("a.json: Read-only file system"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(repo_.path() + "/.git/corral/worktrees/" + run + "/a/planted.txt"));
  EXPECT_EQ(ReadFile(repo_.path() + "/.git/corral/runs/" + run + "/out/a/result.json"), "{}\n");
}

TEST_F(RunTest, StatusLogsReportAndMergeReadTheRunBack) {
  Output o = Run(Task("a", "printf 'one\\\\nA\\\\nthree\\\\n' > shared.txt; echo said a") +
                 Task("b", "printf 'one\\\\nB\\\\nthree\\\\n' > shared.txt") +
                 Task("c", "echo c > c.txt"));
  ASSERT_EQ(o.status, 3) << o.err;
  std::string run = Report()["run"];
  auto corral = [&](std::vector<std::string> args) {
    args.insert(args.begin(), CORRAL_BIN);
    args.push_back("--repo");
    args.push_back(repo_.path());
    return RunCommand(args);
  };
  Output status = corral({"status", run});
  EXPECT_EQ(status.out,
            "run " + run +
                " (ended, exit 3)\n  a                        succeeded\n"
                "  b                        succeeded\n  c                        succeeded\n");
  EXPECT_EQ(corral({"runs"}).out, run + "  ended, exit 3  3 succeeded\n");
  EXPECT_EQ(corral({"logs", run, "a"}).out, "said a\n");
  Output path = corral({"path", run, "a"});
  EXPECT_EQ(path.status, 0) << path.err;
  EXPECT_EQ(path.out,
            fs::canonical(repo_.path()).string() + "/.git/corral/worktrees/" + run + "/a\n");
  EXPECT_EQ(corral({"path", run, "zz"}).status, 2);
  EXPECT_EQ(corral({"logs", run, "zz"}).status, 2);
  Output report = corral({"report", "latest", "--format", "json"});
  EXPECT_EQ(json::parse(report.out)["merge"]["conflicted"], json({"b"}));
  Output html = corral({"report", run, "--format", "html"});
  EXPECT_EQ(html.status, 0) << html.err;
  EXPECT_TRUE(html.out.starts_with("<!DOCTYPE html>")) << html.out.substr(0, 200);
  EXPECT_EQ(corral({"report", run, "--format", "pdf"}).status, 2);
  // Redo the merge in another order, into another branch: now a is the one left out.
  Output merge = corral({"merge", run, "--order", "b,a,c", "--into", "integration"});
  EXPECT_EQ(merge.status, 3) << merge.err;
  json m = json::parse(ReadFile(repo_.path() + "/.git/corral/runs/" + run + "/merge.json"));
  EXPECT_EQ(m["merged"], json({"b", "c"}));
  EXPECT_EQ(m["conflicted"], json({"a"}));
  EXPECT_EQ(Git({"show", "integration:shared.txt"}).out, "one\nB\nthree\n");
  EXPECT_EQ(corral({"merge", run, "--order", "c", "--into", "integration"}).status, 0);
  EXPECT_EQ(corral({"merge", run, "--order", "nope"}).err,
            "corral: --order: run " + run + " has no task 'nope'\n");
}

// Tasks start at the same moment from different threads: a task that ends must end at once, not
// when a task started beside it does. (A helper that inherited another task's socket end kept
// that task's reply open until it exited itself.)
TEST_F(RunTest, ATaskEndsWhileTheTasksStartedBesideItStillRun) {
  std::string plan = scratch_.path() + "/plan.toml";
  std::string text = Task("waiter", "while [ ! -e $CORRAL_INPUTS/go ]; do sleep 0.05; done");
  for (int i = 0; i < 8; ++i) text += Task("quick" + std::to_string(i), "true");
  WriteFile(plan, text);
  pid_t corral =
      Spawn({CORRAL_BIN, "run", plan, "--repo", repo_.path(), "-j", "9"}, scratch_.path() + "/log");
  std::string runs = repo_.path() + "/.git/corral/runs";
  std::string run, events;
  int ended = 0;
  // A hang guard, not a timing check: the quick tasks end in well under a second.
  for (int i = 0; i < 1200 && ended < 8; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(runs, ec)) run = e.path().filename();
    if (run.empty()) continue;
    events = ReadFile(runs + "/" + run + "/events.jsonl");
    ended = 0;
    for (size_t at = 0; (at = events.find("\"type\":\"task-end\"", at)) != std::string::npos; ++at) {
      ++ended;
    }
  }
  EXPECT_EQ(ended, 8) << "quick tasks waited for the waiter\n" << events;
  EXPECT_EQ(events.find("\"task\":\"waiter\",\"try\":1,\"type\":\"task-end\""), std::string::npos);
  if (!run.empty()) WriteFile(runs + "/" + run + "/inputs/waiter/go", "");
  int status = 0;
  waitpid(corral, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadFile(scratch_.path() + "/log");
}

TEST_F(RunTest, ResumeAfterKillNineKeepsFinishedWork) {
  std::string plan = scratch_.path() + "/plan.toml";
  WriteFile(plan,
            Task("fast", "echo fast ran; echo f > f.txt") +
                // Waits until the test lets it go (a file in its inputs folder, which
                // survives the resume): no timing decides which tasks ended first.
                Task("slow",
                     "echo slow started; while [ ! -e $CORRAL_INPUTS/go ]; do sleep 0.05; done; "
                     "echo s > s.txt") +
                Task("after", "cat s.txt f.txt > both.txt", "depends_on = [\"slow\", \"fast\"]"));
  pid_t corral = Spawn({CORRAL_BIN, "run", plan, "--repo", repo_.path()}, scratch_.path() + "/log");
  // Wait until "fast" has ended and "slow" runs, then kill corral outright.
  std::string runs = repo_.path() + "/.git/corral/runs";
  std::string run;
  // Generous: a loaded machine (CI builds beside it) may take seconds to sync an event.
  for (int i = 0; i < 1200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(runs, ec)) run = e.path().filename();
    if (!run.empty() &&
        ReadFile(runs + "/" + run + "/events.jsonl")
                .find("\"task\":\"fast\",\"try\":1,\"type\":\"task-end\"") != std::string::npos &&
        ReadFile(runs + "/" + run + "/logs/slow.log") == "slow started\n") {
      break;
    }
  }
  ASSERT_FALSE(run.empty());
  // A second manager of a run that is being run is refused.
  Output second = RunCommand({CORRAL_BIN, "resume", run, "--repo", repo_.path()});
  EXPECT_EQ(second.status, 2);
  EXPECT_EQ(second.err, "corral: run " + run + " is being run by another corral process\n");
  kill(corral, SIGKILL);
  waitpid(corral, nullptr, 0);
  // The sandbox goes with corral (its helper dies with it); on a loaded machine that takes a
  // moment, so wait for it, up to 10 s.
  std::string left;
  for (int i = 0; i < 100; ++i) {
    left = RunCommand({"/usr/bin/pgrep", "-f", "CORRAL_INPUTS/go"}).out;
    if (left.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(left, "") << "a sandbox outlived corral";
  WriteFile(runs + "/" + run + "/inputs/slow/go", "");
  // The run's lock still held a moment after the kill, as by a child the killed corral had
  // forked and not yet exec'd: the resume waits for it instead of calling the run taken.
  std::string lock = runs + "/" + run + "/lock";
  pid_t holder = Spawn({"/usr/bin/flock", lock, "/bin/sleep", "0.5"}, scratch_.path() + "/holder");
  for (int i = 0; i < 200; ++i) {
    if (RunCommand({"/usr/bin/flock", "-n", "-E", "99", lock, "/bin/true"}).status == 99) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  Output resumed = RunCommand({CORRAL_BIN, "resume", run, "--repo", repo_.path()});
  waitpid(holder, nullptr, 0);
  EXPECT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resuming run " + run + ": 1 of 3 tasks had ended"), std::string::npos)
      << resumed.err;
  EXPECT_EQ(ReadFile(runs + "/" + run + "/logs/fast.log"), "fast ran\n")
      << "fast did not run again";
  EXPECT_EQ(ReadFile(runs + "/" + run + "/logs/slow.log"), "slow started\nslow started\n");
  json r = Report();
  for (const char* id : {"fast", "slow", "after"})
    EXPECT_EQ(Find(r, id)["status"], "succeeded") << id;
  EXPECT_EQ(Find(r, "fast")["tries"], 1);
  EXPECT_EQ(Find(r, "slow")["tries"], 2);
  EXPECT_EQ(Git({"show", r["merge"]["branch"].get<std::string>() + ":both.txt"}).out, "s\nf\n");

  Output audit = RunCommand({CORRAL_BIN, "audit", "verify", run, "--repo", repo_.path()});
  EXPECT_EQ(audit.status, 0) << audit.out << audit.err << "the crash and the resume keep the chain";

  Output again = RunCommand({CORRAL_BIN, "resume", run, "--repo", repo_.path()});
  EXPECT_EQ(again.status, 2);
  EXPECT_EQ(again.err, "corral: run " + run + " ended (exit 0); nothing to resume\n");
}

TEST_F(RunTest, ApprovalsHoldATaskUntilAPersonSaysYes) {
  WriteFile(scratch_.path() + "/approve.toml",
            "requires_human_approval = true\n[env]\npass = [\"PATH\"]\n");
  std::string tasks =
      Task("build", "echo b > b.txt") +
      "[[task]]\nid = \"deploy\"\npolicy = \"approve.toml\"\n"
      "run = [\"sh\", \"-c\", \"echo deployed > d.txt\"]\ndepends_on = [\"build\"]\n\n" +
      Task("notify", "echo n > n.txt", "depends_on = [\"deploy\"]");
  Output o = Run(tasks);
  EXPECT_EQ(o.status, 4) << o.err;
  json r = Report();
  std::string run = r["run"];
  EXPECT_EQ(Find(r, "build")["status"], "succeeded");
  EXPECT_EQ(Find(r, "deploy")["status"], "awaiting-approval");
  EXPECT_EQ(Find(r, "deploy")["reason"], "its policy requires human approval");
  EXPECT_EQ(Find(r, "notify")["status"], "awaiting-approval");
  EXPECT_EQ(Find(r, "deploy")["tries"], 0) << "it never started";
  auto corral = [&](std::vector<std::string> args) {
    args.insert(args.begin(), CORRAL_BIN);
    args.push_back("--repo");
    args.push_back(repo_.path());
    return RunCommand(args);
  };
  Output wrong = corral({"approve", run, "notify"});
  EXPECT_EQ(wrong.status, 2);
  EXPECT_EQ(wrong.err, "corral: task 'notify' of run " + run + " does not await approval\n");
  EXPECT_EQ(corral({"approve", run, "deploy"}).status, 0);
  EXPECT_NE(ReadFile(repo_.path() + "/.git/corral/runs/" + run + "/events.jsonl")
                .find("\"how\":\"corral approve\",\"t\""),
            std::string::npos);
  Output resumed = corral({"resume", run});
  EXPECT_EQ(resumed.status, 0) << resumed.err;
  r = Report();
  for (const char* id : {"build", "deploy", "notify"})
    EXPECT_EQ(Find(r, id)["status"], "succeeded") << id;
  EXPECT_EQ(Git({"show", r["merge"]["branch"].get<std::string>() + ":d.txt"}).out, "deployed\n");
  Output audit = corral({"audit", "show", run, "--task", "deploy"});
  EXPECT_NE(audit.out.find("approved by "), std::string::npos) << audit.out;
  EXPECT_NE(audit.out.find("(corral approve)"), std::string::npos) << audit.out;
  EXPECT_EQ(corral({"audit", "verify", run}).status, 0);
  // Approved up front: the run goes through.
  Output upfront = Run(tasks, {"--approve", "deploy"});
  EXPECT_EQ(upfront.status, 0) << upfront.err;
  EXPECT_EQ(Run(tasks, {"--approve", "nope"}).err,
            "corral: --approve: the plan has no task 'nope'\n");
}

TEST_F(RunTest, AuditLogVerifiesAndTamperingIsNamed) {
  Output o = Run(Task("a", "echo a > a.txt") + Task("b", "echo b > b.txt", "depends_on = [\"a\"]"));
  ASSERT_EQ(o.status, 0) << o.err;
  std::string run = Report()["run"];
  std::string log = repo_.path() + "/.git/corral/runs/" + run + "/events.jsonl";
  auto corral = [&](std::vector<std::string> args) {
    args.insert(args.begin(), CORRAL_BIN);
    args.push_back("--repo");
    args.push_back(repo_.path());
    return RunCommand(args);
  };
  Output verify = corral({"audit", "verify", "--json"});
  ASSERT_EQ(verify.status, 0) << verify.out << verify.err;
  json v = json::parse(verify.out);
  EXPECT_EQ(v["intact"], true);
  EXPECT_EQ(v["run"], run);
  EXPECT_EQ(v["checkpoints"], 3) << "one per task end and one at the run end";
  EXPECT_EQ(v["unsigned_tail"], 0);
  std::string head = v["head"];
  EXPECT_EQ(corral({"audit", "verify", run, "--expect-head", head}).status, 0);
  Output text = corral({"audit", "verify", run});
  EXPECT_NE(text.out.find(": intact: 13 records, 3 signed checkpoints, head " + head),
            std::string::npos)
      << text.out;

  Output show = corral({"audit", "show", run});
  EXPECT_EQ(show.status, 0);
  for (const char* what :
       {"run started by ", "try 1 started under default@", "ended: succeeded, exit 0",
        "changed a.txt (+1 -0)", "merged a, b into corral/", "run ended, exit 0"}) {
    EXPECT_NE(show.out.find(what), std::string::npos) << what << "\n" << show.out;
  }
  std::string how = testing::KernelAtLeast(6, 15) ? ", exit 0" : "";
  EXPECT_NE(show.out.find("executed sh -c echo b > b.txt (/usr/bin/sh, pid 2, parent 1" + how + ") in "),
            std::string::npos)
      << show.out;
  EXPECT_NE(show.out.find("programs executed"), std::string::npos) << show.out;
  Output only_b = corral({"audit", "show", run, "--task", "b", "--json"});
  size_t lines = 0;
  for (size_t at = 0; (at = only_b.out.find('\n', at)) != std::string::npos; ++at) ++lines;
  EXPECT_EQ(lines, 3u) << "task-start, exec, task-end: " << only_b.out;
  EXPECT_EQ(json::parse(only_b.out.substr(0, only_b.out.find('\n')))["task"], "b");

  // One changed byte: the first bad record is named, with its line.
  std::string text_log = ReadFile(log);
  size_t at = text_log.find("a.txt");
  text_log[at] = 'z';
  WriteFile(log, text_log);
  Output bad = corral({"audit", "verify", run});
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("NOT intact: " + log + ":"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find(": body changed: its bytes do not match its hash"), std::string::npos)
      << bad.err;
  // A log made with another key than the one trusted.
  Output other = corral({"audit", "verify", run, "--key", std::string(64, 'a')});
  EXPECT_EQ(other.status, 1);
  EXPECT_NE(other.err.find(":1: bad signature: the log is signed by key "), std::string::npos)
      << other.err;
  EXPECT_EQ(corral({"audit", "verify", "nope"}).status, 2);
  // Records of another shape (found by the fuzzer): bad input for every reader, never a crash.
  text_log = ReadFile(log);
  size_t type_at = text_log.find("\"type\":\"task-end\"");
  ASSERT_NE(type_at, std::string::npos);
  text_log.replace(type_at, 17, "\"type\":5");
  WriteFile(log, text_log);
  for (const char* cmd : {"status", "resume"}) {
    Output o2 = corral({cmd, run});
    EXPECT_EQ(o2.status, 2) << cmd << o2.err;
    EXPECT_NE(o2.err.find("not of the shape corral writes"), std::string::npos) << cmd << o2.err;
  }
  EXPECT_EQ(corral({"audit", "show", run}).status, 0) << "shown as it is";
  size_t version_at = text_log.find("\"corral_events\":2");
  text_log.replace(version_at, 17, "\"corral_events\":\"2\"");
  WriteFile(log, text_log);
  for (const char* cmd : {"status", "resume"}) {
    Output o2 = corral({cmd, run});
    EXPECT_EQ(o2.status, 2) << cmd << o2.err;
    EXPECT_NE(o2.err.find("not a corral event log of version 1 to 2"), std::string::npos) << o2.err;
  }
  EXPECT_EQ(corral({"audit", "show", run}).status, 2);
}

TEST_F(RunTest, NetworkConnectionsAreAuditedAndThrottlingIsHeard) {
  ScratchDir site("corral-run-site");
  WriteFile(site.path() + "/index.html", "hi\n");
  TestServer server(site.path());
  std::string port = server.port();
  ASSERT_FALSE(port.empty());
  WriteFile(scratch_.path() + "/net.toml",
            "[network]\negress = [\"localhost:" + port + "\"]\n[env]\npass = [\"PATH\"]\n");
  std::string script = "curl -sS http://localhost:" + port +
                       "/index.html > got.txt; curl -sS http://localhost:" + port +
                       "/status/429; curl -sS http://example.com/ || true";
  Output o = Run("[[task]]\nid = \"fetch\"\npolicy = \"net.toml\"\nrun = [\"sh\", \"-c\", \"" +
                     script + "\"]\n",
                 {"-j", "auto"});
  server.Stop();
  EXPECT_EQ(o.status, 0) << o.err;
  std::string run = Report()["run"];
  EXPECT_EQ(Git({"show", "corral/" + run + "/fetch:got.txt"}).out, "hi\n");
  Output show = RunCommand({CORRAL_BIN, "audit", "show", run, "--repo", repo_.path()});
  for (const std::string& want : std::vector<std::string>{
           "reached GET localhost:" + port + " (127.0.0.1), HTTP 200",
           "reached GET localhost:" + port + " (127.0.0.1), HTTP 429",
           "refused GET example.com:80: the policy 'net' does not allow example.com:80",
           "concurrency lowered from 2 to 1 (HTTP 429 through the egress proxy)"}) {
    EXPECT_NE(show.out.find(want), std::string::npos) << want << "\n" << show.out;
  }
  EXPECT_EQ(RunCommand({CORRAL_BIN, "audit", "verify", run, "--repo", repo_.path()}).status, 0);
}

TEST_F(RunTest, SecretValuesNeverReachAnythingCorralWrites) {
  const std::string token = "tok-5f3a9c71e2d84b06";
  ScratchDir site("corral-run-site");
  WriteFile(site.path() + "/index.html", "hi\n");
  TestServer server(site.path());
  std::string port = server.port();
  std::string secrets = scratch_.path() + "/secrets.env";
  WriteFile(secrets, "# for the test\nTOKEN=" + token + "\n", 0644);
  WriteFile(scratch_.path() + "/s.toml",
            "[network]\negress = [\"localhost:" + port +
                "\"]\n[secrets]\nenv = [\"TOKEN\"]\n[env]\npass = [\"PATH\"]\n");
  std::string plan =
      "[[task]]\nid = \"leaky\"\npolicy = \"s.toml\"\n"
      "run = [\"sh\", \"-c\", \"printf %s $TOKEN > secret.txt; echo fine > clean.txt\"]\n\n"
      "[[task]]\nid = \"talker\"\npolicy = \"s.toml\"\n"
      "run = [\"sh\", \"-c\", \"echo my token is $TOKEN; echo err $TOKEN >&2; "
      "printf '{\\\"token\\\": \\\"%s\\\"}' $TOKEN > $CORRAL_OUTPUT; "
      "curl -sS -o /dev/null http://localhost:" +
      port +
      "/index.html?k=$TOKEN; sh -c 'true '$TOKEN; "
      "echo talked > talked.txt\"]\n\n" +
      "[[task]]\nid = \"committer\"\npolicy = \"s.toml\"\n"
      "run = [\"sh\", \"-c\", \"echo ok > c.txt; git add c.txt; git commit -qm \\\"key $TOKEN\\\"\"]\n\n" +
      Task("reader", "cat $CORRAL_INPUTS/talker.json > seen.txt", "depends_on = [\"talker\"]");
  // A secrets file others can read is refused, and nothing is created.
  Output loose = Run(plan, {"--secrets-file", secrets});
  EXPECT_EQ(loose.status, 2);
  EXPECT_EQ(loose.err,
            "corral: --secrets-file " + secrets +
                ": must be a regular file of yours that only you can read (chmod 600)\n");
  EXPECT_FALSE(fs::exists(repo_.path() + "/.git/corral/runs"));
  chmod(secrets.c_str(), 0600);
  Output o = Run(plan, {"--secrets-file", secrets});
  server.Stop();
  EXPECT_EQ(o.status, 1) << o.err;
  json r = Report();
  std::string run = r["run"];
  EXPECT_EQ(Find(r, "leaky")["status"], "secret-leak");
  EXPECT_EQ(Find(r, "leaky")["withheld"],
            json::parse(R"([{"path":"secret.txt","secret":"TOKEN"}])"));
  EXPECT_EQ(Find(r, "leaky")["files_changed"], json({"clean.txt"}));
  EXPECT_EQ(Find(r, "talker")["status"], "succeeded");
  EXPECT_EQ(Find(r, "talker")["output"], json({{"token", "[REDACTED:TOKEN]"}}));
  EXPECT_EQ(Find(r, "reader")["status"], "succeeded");
  // A commit whose message holds the value is not kept; its files are, by the auto-commit.
  json committer = Find(r, "committer");
  EXPECT_EQ(committer["status"], "succeeded") << committer.dump();
  EXPECT_EQ(committer["files_changed"], json({"c.txt"}));
  EXPECT_NE(committer.value("agent_commits_refused", "").find("holds the value of secret TOKEN"),
            std::string::npos)
      << committer.dump();
  EXPECT_FALSE(fs::exists(repo_.path() + "/.git/corral/gitdirs/" + run + "/committer"))
      << "the agent's own git directory is gone once its commits were looked at";
  std::string log = ReadFile(repo_.path() + "/.git/corral/runs/" + run + "/logs/talker.log");
  EXPECT_NE(log.find("my token is [REDACTED:TOKEN]\n"), std::string::npos) << log;
  EXPECT_NE(log.find("err [REDACTED:TOKEN]\n"), std::string::npos) << log;
  EXPECT_EQ(Git({"show", "corral/" + run + "/reader:seen.txt"}).out,
            R"({"token": "[REDACTED:TOKEN]"})");

  // Every file corral wrote, every object of every branch, corral's own output: no value.
  EXPECT_EQ(o.out.find(token), std::string::npos);
  EXPECT_EQ(o.err.find(token), std::string::npos);
  // (The worktree keeps what the agent wrote, secret.txt included, for the user to look at.)
  for (const auto& e : fs::recursive_directory_iterator(repo_.path() + "/.git/corral/runs")) {
    if (e.is_regular_file()) {
      EXPECT_EQ(ReadFile(e.path()).find(token), std::string::npos) << e.path();
    }
  }
  EXPECT_EQ(Git({"log", "--all", "-p", "--format=%B"}).out.find(token), std::string::npos);
  std::istringstream refs(Git({"for-each-ref", "--format=%(refname)"}).out);
  int searched = 0;
  for (std::string ref; std::getline(refs, ref); ++searched) {
    EXPECT_EQ(Git({"grep", "-q", token, ref}).status, 1) << ref;
  }
  EXPECT_GE(searched, 4);
  EXPECT_EQ(Git({"grep", "-q", "fine", "corral/" + run + "/leaky"}).status, 0) << "control";
  Output show = RunCommand({CORRAL_BIN, "audit", "show", run, "--repo", repo_.path()});
  EXPECT_NE(show.out.find("executed sh -c true [REDACTED:TOKEN]"), std::string::npos) << show.out;
  EXPECT_EQ(RunCommand({CORRAL_BIN, "audit", "verify", run, "--repo", repo_.path()}).status, 0);
  // The log names the agent's variables, the secret's among them, without values.
  std::string events = ReadFile(repo_.path() + "/.git/corral/runs/" + run + "/events.jsonl");
  size_t end = events.find("\"task\":\"talker\",\"try\":1,\"type\":\"task-end\"");
  ASSERT_NE(end, std::string::npos);
  size_t line = events.rfind('\n', end) + 1;
  json talker_end = json::parse(events.substr(line, events.find('\n', line) - line));
  json names = talker_end["env"];
  EXPECT_NE(std::find(names.begin(), names.end(), "TOKEN"), names.end()) << names;
  EXPECT_NE(std::find(names.begin(), names.end(), "CORRAL_PROMPT"), names.end()) << names;
}

TEST_F(RunTest, InjectedSecretsStayOutOfTheRun) {
  // The task calls an HTTPS API with its placeholder; the API gets the value; nothing of the
  // run (worktree, commit, logs, reports, events) ever holds it.
  const std::string value = "inj-run-4b8e61f0c2";
  ScratchDir site("corral-run-tls");
  WriteFile(site.path() + "/index.html", "api says hi\n");
  TestServer server(site.path(), /*tls=*/true);
  std::string host = "localhost:" + server.port();
  WriteFile(scratch_.path() + "/api.toml",
            "[network]\negress = [\"" + host + "\"]\n[secrets]\ninject = { API_KEY = [\"" +
                host + "\"] }\n[env]\npass = [\"PATH\"]\n");
  std::string plan = "[[task]]\nid = \"caller\"\npolicy = \"api.toml\"\n"
                     "run = [\"sh\", \"-c\", \"echo $API_KEY > key.txt; curl -sS -H "
                     "'Authorization: Bearer '$API_KEY https://" + host + "/index.html\"]\n";
  WriteFile(scratch_.path() + "/plan.toml", plan);
  Output o = RunCommand({CORRAL_BIN, "run", scratch_.path() + "/plan.toml", "--repo", repo_.path()},
                        {"API_KEY=" + value, "SSL_CERT_FILE=" + site.path() + "/cert.pem"});
  server.Stop();
  EXPECT_EQ(o.status, 0) << o.err;
  json r = Report();
  std::string run = r["run"];
  EXPECT_EQ(Find(r, "caller")["status"], "succeeded") << Find(r, "caller").dump();
  EXPECT_EQ(ReadFile(repo_.path() + "/.git/corral/runs/" + run + "/logs/caller.log"),
            "api says hi\n");
  EXPECT_NE(ReadFile(site.path() + "/headers.log").find("/index.html Bearer " + value + "\n"),
            std::string::npos);
  std::string key = Git({"show", "corral/" + run + "/caller:key.txt"}).out;
  EXPECT_EQ(key.substr(0, 22), "corral-inject-API_KEY-") << key;
  for (const auto& e : fs::recursive_directory_iterator(repo_.path() + "/.git")) {
    if (!e.is_regular_file() || e.path().string().find("/objects/") != std::string::npos) continue;
    EXPECT_EQ(ReadFile(e.path()).find(value), std::string::npos) << e.path();
  }
  EXPECT_EQ(Git({"log", "--all", "-p"}).out.find(value), std::string::npos);
  EXPECT_EQ(o.out.find(value), std::string::npos);
  EXPECT_EQ(o.err.find(value), std::string::npos);
}

TEST_F(RunTest, CapturedOutputIsCappedAndSaysSo) {
  // 4 MiB of output, a grandchild that keeps stdout open, and a 1 MiB cap: the task ends, the log
  // stops at the cap and says how much it dropped.
  WriteFile(
      scratch_.path() + "/plan.toml",
      Task("loud", "(sleep 600 &) ; head -c 4194304 /dev/zero | tr '\\\\0' x; echo done >&2"));
  Output o = RunCommand({CORRAL_BIN, "run", scratch_.path() + "/plan.toml", "--repo", repo_.path()},
                        {"CORRAL_LOG_LIMIT=1MiB"});
  EXPECT_EQ(o.status, 0) << o.err;
  json r = Report();
  EXPECT_EQ(Find(r, "loud")["status"], "no-changes");
  EXPECT_EQ(Find(r, "loud")["log_dropped_bytes"], 4194304 + 5 - 1048576);
  std::string log = ReadFile(repo_.path() + "/.git/corral/runs/" + r["run"].get<std::string>() +
                             "/logs/loud.log");
  EXPECT_EQ(log.substr(0, 3), "xxx");
  EXPECT_EQ(
      log.size(),
      1048576 +
          std::string(
              "\n[corral: the log stops at 1MiB; 3145733 more bytes of output were dropped]\n")
              .size());
  EXPECT_NE(log.find("[corral: the log stops at 1MiB; 3145733 more bytes of output were dropped]"),
            std::string::npos);
  Output bad =
      RunCommand({CORRAL_BIN, "run", scratch_.path() + "/plan.toml", "--repo", repo_.path()},
                 {"CORRAL_LOG_LIMIT=lots"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_EQ(bad.err, "corral: CORRAL_LOG_LIMIT: 'lots' is not a size (examples: 64MiB, 1GiB)\n");
}

TEST_F(RunTest, TracesAreOtlpJsonAndReachACollector) {
  ScratchDir collector("corral-collector");
  TestServer server(collector.path());
  std::string port = server.port();
  WriteFile(scratch_.path() + "/plan.toml",
            Task("a", "echo $TRACEPARENT > tp.txt") + Task("b", "true", "depends_on = [\"a\"]"));
  Output o = RunCommand({CORRAL_BIN, "run", scratch_.path() + "/plan.toml", "--repo", repo_.path()},
                        {"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:" + port});
  server.Stop();
  ASSERT_EQ(o.status, 0) << o.err;
  std::string run = Report()["run"];
  std::istringstream lines(
      ReadFile(repo_.path() + "/.git/corral/runs/" + run + "/trace.otlp.jsonl"));
  std::map<std::string, json> spans;  // by span id
  std::multiset<std::string> names;
  std::string trace_id;
  std::vector<std::string> file_lines;
  auto hex = [](const std::string& s, size_t n) {
    return s.size() == n && s.find_first_not_of("0123456789abcdef") == std::string::npos;
  };
  for (std::string line; std::getline(lines, line);) {
    file_lines.push_back(line);
    json request = json::parse(line);  // one ExportTraceServiceRequest per line
    const json& rs = request.at("resourceSpans").at(0);
    EXPECT_EQ(rs.at("resource").at("attributes").at(0).at("value").at("stringValue"), "corral");
    const json& span = rs.at("scopeSpans").at(0).at("spans").at(0);
    if (trace_id.empty()) trace_id = span.at("traceId");
    EXPECT_EQ(span.at("traceId"), trace_id);
    EXPECT_TRUE(hex(span.at("traceId"), 32)) << span;
    EXPECT_TRUE(hex(span.at("spanId"), 16)) << span;
    // 64-bit integers are strings in OTLP/JSON; enums are numbers.
    std::string start = span.at("startTimeUnixNano"), end = span.at("endTimeUnixNano");
    EXPECT_EQ(start.find_first_not_of("0123456789"), std::string::npos);
    EXPECT_LE(std::stoull(start), std::stoull(end));
    EXPECT_GT(std::stoull(start), 1700000000000000000ULL);
    EXPECT_EQ(span.at("kind"), 1);
    EXPECT_EQ(span.at("status").at("code"), 1) << span;
    spans[span.at("spanId")] = span;
    names.insert(
        span.at("name").get<std::string>().substr(0, span.at("name").get<std::string>().find(' ')));
  }
  EXPECT_EQ(names,
            (std::multiset<std::string>{"run", "task", "task", "try", "try", "worktree", "worktree",
                                        "agent", "agent", "commit", "commit", "merge"}));
  int roots = 0;
  for (const auto& [id, span] : spans) {
    if (!span.contains("parentSpanId")) {
      ++roots;
      continue;
    }
    EXPECT_TRUE(spans.count(span.at("parentSpanId"))) << "a dangling parent: " << span;
  }
  EXPECT_EQ(roots, 1);
  // The agent got a W3C traceparent naming its own span in the run's trace.
  std::string tp = Git({"show", "corral/" + run + "/a:tp.txt"}).out;
  ASSERT_EQ(tp.size(), 56u) << tp;
  EXPECT_EQ(tp.substr(0, 3 + 32 + 1), "00-" + trace_id + "-");
  EXPECT_EQ(spans.at(tp.substr(36, 16)).at("name"), "agent");
  EXPECT_EQ(tp.substr(52), "-01\n");
  // The collector got every span, at /v1/traces.
  for (size_t i = 0; i < file_lines.size(); ++i) {
    char n[32];
    std::snprintf(n, sizeof(n), "%04zu", i);
    EXPECT_EQ(ReadFile(collector.path() + "/posted/" + n + ".path"), "/v1/traces");
    EXPECT_EQ(ReadFile(collector.path() + "/posted/" + n), file_lines[i]);
  }
}

}  // namespace
}  // namespace corral::testing
