// corral::worktree on temporary repositories, read back with the git CLI: what corral writes is
// ordinary git, and the user's branch, index and working tree are never touched.
#include "worktree/worktree.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "tests/testing.h"

// Fault injection. The scan opens folders with openat2, which libc has no wrapper for, through
// syscall(2); this definition takes the place of libc's in this test binary, answers EMFILE (no
// descriptor to spare) for the folder named in g_emfile_folder, and passes every other call on.
std::atomic<const char*> g_emfile_folder{nullptr};

extern "C" long syscall(long number, ...) noexcept {
  va_list ap;
  va_start(ap, number);
  long a[6];
  for (long& x : a) x = va_arg(ap, long);
  va_end(ap);
  const char* folder = g_emfile_folder.load();
  const char* path = reinterpret_cast<const char*>(a[1]);
  if (number == SYS_openat2 && folder && std::strcmp(path, folder) == 0) {
    errno = EMFILE;
    return -1;
  }
  using Syscall = long (*)(long, ...);
  static const Syscall libc = reinterpret_cast<Syscall>(dlsym(RTLD_NEXT, "syscall"));
  return libc(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

namespace corral::worktree {
namespace {

using corral::testing::Output;
using corral::testing::ReadFile;
using corral::testing::RunCommand;
using corral::testing::ScratchDir;
using corral::testing::WriteFile;
namespace fs = std::filesystem;

class WorktreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Git({"init", "-q", "-b", "main"});
    Git({"config", "user.name", "Test"});
    Git({"config", "user.email", "test@example.com"});
    WriteFile(dir_.path() + "/a.txt", "one\ntwo\nthree\n");
    WriteFile(dir_.path() + "/b.txt", "alpha\n");
    WriteFile(dir_.path() + "/.gitignore", "*.log\n");
    Git({"add", "-A"});
    Git({"commit", "-q", "-m", "base"});
    // Uncommitted work of the user's that corral must never touch.
    WriteFile(dir_.path() + "/b.txt", "alpha\nuser edit\n");
    WriteFile(dir_.path() + "/untracked.txt", "mine\n");
    user_state_ = UserState();
    auto repo = Repository::Open(dir_.path());
    ASSERT_TRUE(repo) << repo.error().message;
    repo_.emplace(std::move(*repo));
    auto base = repo_->ResolveCommit("HEAD");
    ASSERT_TRUE(base);
    base_ = *base;
  }

  void TearDown() override {
    EXPECT_EQ(UserState(), user_state_) << "the user's branch, index or working tree changed";
    Output fsck = Git({"fsck", "--strict", "--no-progress"});
    EXPECT_EQ(fsck.status, 0) << fsck.out << fsck.err;
  }

  Output Git(std::vector<std::string> args, const std::string& cwd = "") {
    args.insert(args.begin(), {"/usr/bin/git", "-C", cwd.empty() ? dir_.path() : cwd});
    return RunCommand(args);
  }

  std::string UserState() {
    return Git({"rev-parse", "HEAD", "--symbolic-full-name", "HEAD"}).out +
           Git({"status", "--porcelain=v1", "-uall"}).out + Git({"diff"}).out +
           Git({"diff", "--cached"}).out + Git({"stash", "list"}).out;
  }

  Workspace Create(const std::string& run, const std::string& task) {
    auto ws = repo_->CreateWorkspace(run, task, base_);
    EXPECT_TRUE(ws) << ws.error().message;
    return ws ? *ws : Workspace{};
  }

  // Commits `files` (path -> content) in a new workspace of `task` and returns its branch.
  BranchToMerge Task(const std::string& task,
                     const std::vector<std::pair<std::string, std::string>>& files,
                     const std::vector<std::string>& removed = {}) {
    Workspace ws = Create("r1", task);
    for (const auto& [path, content] : files) {
      fs::create_directories(fs::path(ws.path + "/" + path).parent_path());
      WriteFile(ws.path + "/" + path, content);
    }
    for (const std::string& path : removed) fs::remove(ws.path + "/" + path);
    auto c = repo_->CommitAll(ws, {"r1", task, "p@0", {}, {}, {}});
    EXPECT_TRUE(c && c->committed) << (c ? "no change" : c.error().message);
    return {task, ws.branch};
  }

  ScratchDir dir_{"corral-repo"};
  std::optional<Repository> repo_;
  std::string base_;
  std::string user_state_;
};

TEST_F(WorktreeTest, CreatesABranchAndAWorktreeFromTheBase) {
  Workspace ws = Create("r1", "impl");
  EXPECT_EQ(ws.branch, "corral/r1/impl");
  EXPECT_EQ(ws.path, dir_.path() + "/.git/corral/worktrees/r1/impl");
  EXPECT_EQ(Git({"rev-parse", "corral/r1/impl"}).out, base_ + "\n");
  EXPECT_EQ(ReadFile(ws.path + "/a.txt"), "one\ntwo\nthree\n");
  EXPECT_EQ(ReadFile(ws.path + "/b.txt"), "alpha\n") << "from the base, not the user's edit";
  EXPECT_FALSE(fs::exists(ws.path + "/untracked.txt"));
  EXPECT_NE(
      Git({"worktree", "list"}).out.find(ws.path + "  " + base_.substr(0, 7) + " [corral/r1/impl]"),
      std::string::npos)
      << Git({"worktree", "list"}).out;
  EXPECT_EQ(Git({"status", "--porcelain"}, ws.path).out, "") << "a clean checkout";
}

// A task's next try (or a resumed run's) starts from exactly the start commit: what the last try
// left (untracked, ignored, staged by a commit that a kill cut short, committed) is gone.
TEST_F(WorktreeTest, AResetLeavesNothingOfTheLastTry) {
  Workspace ws = Create("r1", "again");
  WriteFile(ws.path + "/.gitignore", "*.log\n*.tmp\n");  // the base has one: this try changes it
  WriteFile(ws.path + "/build.log", "ignored\n");
  WriteFile(ws.path + "/committed.txt", "c\n");
  ASSERT_TRUE(repo_->CommitAll(ws, {"r1", "again", "p@0", {}, {}, {}}));
  WriteFile(ws.path + "/staged.txt", "s\n");
  EXPECT_EQ(Git({"add", "staged.txt"}, ws.path).status, 0);
  WriteFile(ws.path + "/untracked.txt", "u\n");
  WriteFile(ws.path + "/a.txt", "changed\n");
  auto r = repo_->ResetWorkspace(ws, base_);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(Git({"status", "--porcelain", "--ignored"}, ws.path).out, "") << "after the reset";
  for (const char* gone : {"build.log", "committed.txt", "staged.txt", "untracked.txt"}) {
    EXPECT_FALSE(fs::exists(ws.path + "/" + gone)) << gone;
  }
  EXPECT_EQ(ReadFile(ws.path + "/a.txt"), "one\ntwo\nthree\n");
  EXPECT_EQ(Git({"rev-parse", "HEAD"}, ws.path).out, base_ + "\n");
  EXPECT_EQ(Git({"status", "--porcelain", "--ignored"}, ws.path).out, "");
}

// A worktree half made by a corral killed while it created it is replaced, not an error.
TEST_F(WorktreeTest, AHalfMadeWorktreeIsReplaced) {
  Workspace ws = Create("r1", "half");
  fs::remove(ws.admin_dir + "/HEAD");  // as if killed before the last metadata file
  EXPECT_FALSE(repo_->FindWorkspace("r1", "half"));
  auto again = repo_->CreateWorkspace("r1", "half", base_);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(Git({"status", "--porcelain"}, again->path).out, "");
  EXPECT_EQ(Git({"rev-parse", "corral/r1/half"}).out, base_ + "\n");
  EXPECT_EQ(Git({"worktree", "prune", "--dry-run", "-v"}).out, "");
}

TEST_F(WorktreeTest, BadIdsAndDuplicatesLeaveNothingBehind) {
  EXPECT_EQ(repo_->CreateWorkspace("r1", "a/b", base_).error().message,
            "task id 'a/b' may only hold letters, digits, '_' and '-'");
  EXPECT_EQ(repo_->CreateWorkspace("r.1", "t", base_).error().message,
            "run id 'r.1' may only hold letters, digits, '_' and '-'");
  Create("r1", "t");
  auto again = repo_->CreateWorkspace("r1", "t", base_);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message, "a workspace for task 't' of run 'r1' exists already");
  auto bad_base = repo_->CreateWorkspace("r1", "u", "0123456789012345678901234567890123456789");
  ASSERT_FALSE(bad_base);
  EXPECT_EQ(Git({"branch", "--list", "corral/r1/u"}).out, "");
  EXPECT_FALSE(fs::exists(dir_.path() + "/.git/corral/worktrees/r1/u"));
}

TEST_F(WorktreeTest, AFailedWorktreeAddRollsBackTheBranch) {
  // Make libgit2's worktree step fail: the admin directory cannot be created.
  WriteFile(dir_.path() + "/.git/worktrees", "not a directory");
  auto ws = repo_->CreateWorkspace("r1", "t", base_);
  fs::remove(dir_.path() + "/.git/worktrees");
  ASSERT_FALSE(ws);
  EXPECT_EQ(Git({"branch", "--list", "corral/*"}).out, "");
  EXPECT_FALSE(fs::exists(dir_.path() + "/.git/corral/worktrees/r1/t"));
}

TEST_F(WorktreeTest, SixteenConcurrentWorkspacesAllSucceed) {
  for (int round = 0; round < 3; ++round) {
    std::string run = "c" + std::to_string(round);
    std::vector<std::thread> threads;
    std::vector<std::string> errors(16);
    for (int i = 0; i < 16; ++i) {
      threads.emplace_back([&, i] {
        auto repo =
            Repository::Open(dir_.path());  // one per thread: libgit2 objects are not shared
        if (!repo) {
          errors[i] = repo.error().message;
          return;
        }
        auto ws = repo->CreateWorkspace(run, "t" + std::to_string(i), base_);
        if (!ws) errors[i] = ws.error().message;
      });
    }
    for (auto& t : threads) t.join();
    for (int i = 0; i < 16; ++i) EXPECT_EQ(errors[i], "") << "round " << round << " task " << i;
  }
  Output list = Git({"worktree", "list", "--porcelain"});
  size_t count = 0;
  for (size_t pos = 0; (pos = list.out.find("worktree ", pos)) != std::string::npos; ++pos) ++count;
  EXPECT_EQ(count, 1u + 48u);
  EXPECT_EQ(Git({"worktree", "prune", "--dry-run", "-v"}).out, "") << "no broken worktree";
}

TEST_F(WorktreeTest, CommitsEveryKindOfChange) {
  Workspace ws = Create("r1", "t");
  WriteFile(ws.path + "/a.txt", "one\nTWO\nthree\n");  // modified
  fs::create_directories(ws.path + "/new dir");
  WriteFile(ws.path + "/new dir/n.txt", "new\n");              // new, in a new directory
  fs::rename(ws.path + "/b.txt", ws.path + "/b-renamed.txt");  // renamed
  fs::remove(ws.path + "/.gitignore");                         // deleted
  WriteFile(ws.path + "/run.sh", "#!/bin/sh\n", 0755);         // executable
  fs::create_symlink("/etc/passwd", ws.path + "/escape");      // a symlink out: stored as a link
  WriteFile(ws.path + "/debug.log", "ignored? no longer: .gitignore is deleted\n");
  WriteFile(ws.path + "/line\nbreak", "odd name\n");
  WriteFile(ws.path + "/latin1-\xe9", "odd name\n");
  auto c = repo_->CommitAll(ws, {"r1", "t", "code_implementer@abc123", {}, {}, {}});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->committed);
  EXPECT_EQ(Git({"rev-parse", "corral/r1/t"}).out, c->commit + "\n");
  Output tree = Git({"ls-tree", "-r", "--name-only", "-z", "corral/r1/t"});
  std::string names = tree.out;
  for (const char* name : {"a.txt", "new dir/n.txt", "b-renamed.txt", "run.sh", "escape",
                           "debug.log", "line\nbreak", "latin1-\xe9"}) {
    EXPECT_NE(names.find(std::string(name) + '\0'), std::string::npos) << name;
  }
  EXPECT_EQ(names.find(std::string("b.txt") + '\0'), std::string::npos);
  EXPECT_EQ(names.find(std::string(".gitignore") + '\0'), std::string::npos);
  EXPECT_EQ(Git({"ls-tree", "corral/r1/t", "run.sh"}).out.substr(0, 6), "100755");
  EXPECT_EQ(Git({"ls-tree", "corral/r1/t", "escape"}).out.substr(0, 6), "120000");
  EXPECT_EQ(Git({"cat-file", "-p", "corral/r1/t:escape"}).out, "/etc/passwd");
  Output msg = Git({"log", "-1", "--format=%s%n%(trailers:only)", "corral/r1/t"});
  EXPECT_EQ(
      msg.out,
      "corral: task t\nCorral-Run: r1\nCorral-Task: t\nCorral-Policy: code_implementer@abc123\n\n");
  EXPECT_EQ(Git({"status", "--porcelain"}, ws.path).out, "") << "index matches the commit";
  // Lines added and deleted per file, as git diff --numstat counts them.
  std::map<std::string, std::pair<size_t, size_t>> lines;
  for (const auto& l : c->line_stats) lines[l.path] = {l.added, l.deleted};
  EXPECT_EQ(c->line_stats.size(), c->files_changed.size());
  std::istringstream numstat(
      Git({"diff", "--numstat", "--no-renames", "corral/r1/t~1", "corral/r1/t", "--", "a.txt",
           "new dir/n.txt", "b.txt", ".gitignore", "run.sh"})
          .out);
  int compared = 0;
  for (std::string line; std::getline(numstat, line); ++compared) {
    std::istringstream f(line);
    size_t added, deleted;
    std::string path;
    f >> added >> deleted;
    std::getline(f >> std::ws, path);
    EXPECT_EQ(lines[path], std::make_pair(added, deleted)) << path;
  }
  EXPECT_EQ(compared, 5);
}

TEST_F(WorktreeTest, NothingTheAgentPlantedRunsAtCommit) {
  // The agent swaps its .git file for a directory full of traps: config with fsmonitor and a
  // hooks path, hooks, a filter driver. corral opens the worktree through its admin directory.
  Workspace ws = Create("r1", "t");
  std::string marker = dir_.path() + "/.git/trap-sprung";
  fs::remove(ws.path + "/.git");
  fs::create_directories(ws.path + "/.git/hooks");
  WriteFile(ws.path + "/.git/config", "[core]\n\tfsmonitor = touch " + marker +
                                          "\n\thooksPath = hooks\n"
                                          "[filter \"x\"]\n\tclean = touch " +
                                          marker + "\n");
  for (const char* hook : {"pre-commit", "post-commit", "commit-msg", "post-checkout"}) {
    WriteFile(ws.path + "/.git/hooks/" + hook, "#!/bin/sh\ntouch " + marker + "\n", 0755);
  }
  WriteFile(ws.path + "/.gitattributes", "*.txt filter=x\n");
  WriteFile(ws.path + "/a.txt", "changed\n");
  auto c = repo_->CommitAll(ws, {"r1", "t", "p@0", {}, {}, {}});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->committed);
  EXPECT_FALSE(fs::exists(marker)) << "something the agent planted ran";
  EXPECT_EQ(Git({"show", "corral/r1/t:a.txt"}).out, "changed\n");
  Output tree = Git({"ls-tree", "-r", "--name-only", "corral/r1/t"});
  EXPECT_EQ(tree.out.find(".git/"), std::string::npos) << "no nested .git in the commit";
  // Put the worktree back so the user's git (fsck in TearDown) sees a sane repository.
  fs::remove_all(ws.path + "/.git");
  WriteFile(ws.path + "/.git", "gitdir: " + ws.admin_dir + "\n");
}

TEST_F(WorktreeTest, IgnoredFilesStayOut) {
  Workspace ws = Create("r1", "t");
  WriteFile(ws.path + "/build.log", "noise\n");
  auto c = repo_->CommitAll(ws, {"r1", "t", "p@0", {}, {}, {}});
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->committed);
  EXPECT_EQ(c->commit, base_);
}

TEST_F(WorktreeTest, NoChangeMeansNoCommit) {
  Workspace ws = Create("r1", "t");
  auto c = repo_->CommitAll(ws, {"r1", "t", "p@0", {}, {}, {}});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_FALSE(c->committed);
  EXPECT_TRUE(c->files_changed.empty());
  EXPECT_EQ(Git({"rev-parse", "corral/r1/t"}).out, base_ + "\n");
}

TEST_F(WorktreeTest, TheAgentsOwnCommitsAreKept) {
  Workspace ws = Create("r1", "t");
  WriteFile(ws.path + "/agent.txt", "by the agent\n");
  Git({"add", "agent.txt"}, ws.path);
  Git({"-c", "user.name=Agent", "-c", "user.email=a@x", "commit", "-q", "-m", "agent commit"},
      ws.path);
  WriteFile(ws.path + "/after.txt", "uncommitted\n");
  auto c = repo_->CommitAll(ws, {"r1", "t", "p@0", {}, {}, {}});
  ASSERT_TRUE(c && c->committed);
  EXPECT_EQ(c->files_changed, std::vector<std::string>{"after.txt"});
  EXPECT_EQ(Git({"log", "--format=%s", base_ + "..corral/r1/t"}).out,
            "corral: task t\nagent commit\n");
}

TEST_F(WorktreeTest, NestedRepositoriesAndUnreadableFilesAreReported) {
  Workspace ws = Create("r1", "t");
  Git({"init", "-q", ws.path + "/vendor/lib"});
  WriteFile(ws.path + "/vendor/lib/x.c", "int x;\n");
  WriteFile(ws.path + "/secret.key", "k\n", 0000);
  WriteFile(ws.path + "/ok.txt", "fine\n");
  auto c = repo_->CommitAll(ws, {"r1", "t", "p@0", {}, {}, {}});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->committed);
  Output tree = Git({"ls-tree", "-r", "--name-only", "corral/r1/t"});
  EXPECT_NE(tree.out.find("ok.txt\n"), std::string::npos);
  EXPECT_EQ(tree.out.find("vendor"), std::string::npos) << "no nested repository, no gitlink";
  ASSERT_FALSE(c->skipped.empty());
  EXPECT_EQ(c->skipped.back().path, "vendor/lib/");
  EXPECT_EQ(c->skipped.back().reason, "nested repository");
  if (geteuid() != 0) {  // root reads a 0000 file; everybody else must get it reported
    ASSERT_EQ(c->skipped.size(), 2u);
    EXPECT_EQ(c->skipped[0].path, "secret.key");
    EXPECT_EQ(c->skipped[0].reason, "unreadable");
  } else {
    EXPECT_NE(tree.out.find("secret.key\n"), std::string::npos);
  }
}

TEST_F(WorktreeTest, AFolderThatCanBeEnteredButNotListedIsNamedOnce) {
  Workspace ws = Create("r1", "t");
  Git({"init", "-q", ws.path + "/locked"});
  WriteFile(ws.path + "/locked/x.c", "int x;\n");
  WriteFile(ws.path + "/ok.txt", "fine\n");
  ASSERT_EQ(chmod((ws.path + "/locked").c_str(), 0100), 0);
  auto c = repo_->CommitAll(ws, {"r1", "t", "p@0", {}, {}, {}});
  chmod((ws.path + "/locked").c_str(), 0755);
  ASSERT_TRUE(c) << c.error().message;
  // Root lists it and libgit2 names a nested repository; anybody else cannot, and the walk for
  // unreadable folders names it (libgit2 passes over it). One entry either way.
  ASSERT_EQ(c->skipped.size(), 1u);
  EXPECT_EQ(c->skipped[0].path, "locked/");
  EXPECT_EQ(c->skipped[0].reason, geteuid() == 0 ? "nested repository" : "unreadable");
}

// The auto-commit stats only what may have changed (a parallel scan against the index's stat
// data) before libgit2 looks closer. Every kind of change that scan could miss, among enough
// files that it runs on several threads; afterwards git itself sees a clean worktree.
class ManyFilesTest : public WorktreeTest {
 protected:
  void SetUp() override {
    WorktreeTest::SetUp();
    ws_ = Create("r1", "many");
    for (int i = 0; i < 3000; ++i) {
      Put("d" + std::to_string(i % 30) + "/f" + std::to_string(i) + ".txt",
          "file " + std::to_string(i % 10) + "\n");
    }
    Put("swap/x.txt", "x\n");
    Put("tofolder.txt", "a file\n");
    Put("link-me/y.txt", "y\n");
    Put("nest/inner/z.txt", "z\n");
    ASSERT_EQ(Git({"add", "-A"}, ws_.path).status, 0);
    ASSERT_EQ(Git({"-c", "user.name=Agent", "-c", "user.email=a@x", "commit", "-q", "-m", "many"},
                  ws_.path)
                  .status,
              0);
  }

  // Writes `content` at `path` of the workspace, making its folders.
  void Put(const std::string& path, const std::string& content) {
    fs::create_directories(fs::path(ws_.path + "/" + path).parent_path());
    WriteFile(ws_.path + "/" + path, content);
  }

  std::string Status() { return Git({"status", "--porcelain=v1", "-uall"}, ws_.path).out; }

  // Commits the workspace while the scan's openat2 of `folder` answers EMFILE.
  auto CommitWhileUnopenable(const char* folder) {
    g_emfile_folder = folder;
    auto c = repo_->CommitAll(ws_, {"r1", "many", "p@0", {}, {}, {}});
    g_emfile_folder = nullptr;
    return c;
  }

  Workspace ws_;
};

TEST_F(ManyFilesTest, EveryKindOfChangeIsCommitted) {
  // Same size, same mtime: only the ctime tells.
  std::string same = ws_.path + "/d7/f7.txt";
  struct stat before;
  ASSERT_EQ(stat(same.c_str(), &before), 0);
  WriteFile(same, "FILE 7\n");
  struct timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, same.c_str(), times, 0), 0);
  fs::remove_all(ws_.path + "/swap");  // a folder becomes a file
  Put("swap", "now a file\n");
  fs::remove(ws_.path + "/tofolder.txt");  // a file becomes a folder
  Put("tofolder.txt/inner.txt", "inner\n");
  fs::remove_all(ws_.path + "/link-me");  // a folder becomes a symlink
  fs::create_symlink("/etc", ws_.path + "/link-me");
  Put("d3/new.txt", "new\n");                                      // new, in a tracked folder
  Put("d4/build.log", "ignored\n");                                // ignored
  fs::remove(ws_.path + "/d9/f9.txt");                             // deleted
  ASSERT_EQ(chmod((ws_.path + "/d11/f11.txt").c_str(), 0755), 0);  // mode
  Put("fresh/deep/n.txt", "n\n");                                  // a new folder
  // A folder above a tracked folder becomes a symlink to one with the same names in it.
  ScratchDir outside;
  fs::create_directories(outside.path() + "/inner");
  WriteFile(outside.path() + "/inner/z.txt", "outside\n");
  WriteFile(outside.path() + "/inner/w.txt", "outside\n");
  fs::remove_all(ws_.path + "/nest");
  fs::create_symlink(outside.path(), ws_.path + "/nest");

  auto c = repo_->CommitAll(ws_, {"r1", "many", "p@0", {}, {}, {}});
  ASSERT_TRUE(c && c->committed) << (c ? "" : c.error().message);
  for (const Skipped& s : c->skipped) ADD_FAILURE() << "skipped " << s.path << ": " << s.reason;
  EXPECT_EQ(Git({"diff", "--name-status", "--no-renames", "HEAD~1", "HEAD"}, ws_.path).out,
            "M\td11/f11.txt\n"
            "A\td3/new.txt\n"
            "M\td7/f7.txt\n"
            "D\td9/f9.txt\n"
            "A\tfresh/deep/n.txt\n"
            "A\tlink-me\n"
            "D\tlink-me/y.txt\n"
            "A\tnest\n"
            "D\tnest/inner/z.txt\n"
            "A\tswap\n"
            "D\tswap/x.txt\n"
            "D\ttofolder.txt\n"
            "A\ttofolder.txt/inner.txt\n");
  EXPECT_EQ(Git({"ls-tree", "HEAD", "link-me"}, ws_.path).out.substr(0, 6), "120000")
      << "a symlink is stored as a link, never followed";
  EXPECT_EQ(Status(), "") << "git sees what corral committed";
}

TEST_F(ManyFilesTest, OutOfFileDescriptorsLosesNothingSilently) {
  for (int i = 0; i < 30; ++i) Put("d" + std::to_string(i) + "/new.txt", "new\n");
  // Room for the worktree's own descriptor and about one folder at a time: the scan's threads
  // are refused most folders (EMFILE), and so may libgit2 be.
  int used = static_cast<int>(std::distance(fs::directory_iterator("/proc/self/fd"), {})) - 1;
  struct rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  struct rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(used + 2);
#ifdef __SANITIZE_ADDRESS__
  // UBSan's vptr check starved of descriptors reports std::thread's own state as invalid (seen
  // with GCC 12): the sanitizer build keeps room, the plain builds (both users) squeeze.
  tight.rlim_cur = saved.rlim_cur;
#endif
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  auto c = repo_->CommitAll(ws_, {"r1", "many", "p@0", {}, {}, {}});
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  if (!c) return;  // an error is fine; a commit without the new files is not
  ASSERT_TRUE(c->committed);
  std::string changed = Git({"diff", "--name-only", "HEAD~1", "HEAD"}, ws_.path).out;
  for (int i = 0; i < 30; ++i) {
    EXPECT_NE(changed.find("d" + std::to_string(i) + "/new.txt\n"), std::string::npos) << i;
  }
}

// The squeeze above depends on the scan's threads meeting; here one folder always finds no
// descriptor: its entries are left to libgit2's diff, never taken for unchanged.
TEST_F(ManyFilesTest, AFolderTheScanCannotOpenIsDiffedWhole) {
  Put("d7/new.txt", "new\n");
  Put("d7/f7.txt", "changed\n");
  Put("d8/new.txt", "new\n");
  auto c = CommitWhileUnopenable("d7");
  ASSERT_TRUE(c && c->committed) << (c ? "" : c.error().message);
  EXPECT_TRUE(c->skipped.empty());
  EXPECT_EQ(Git({"diff", "--name-status", "HEAD~1", "HEAD"}, ws_.path).out,
            "M\td7/f7.txt\nA\td7/new.txt\nA\td8/new.txt\n");
  EXPECT_EQ(Status(), "");
}

// When the worktree's root cannot be opened the scan gives up, and libgit2 diffs everything.
TEST_F(ManyFilesTest, ARootTheScanCannotOpenIsDiffedWhole) {
  Put("d7/new.txt", "new\n");
  Put("top.txt", "new\n");
  auto c = CommitWhileUnopenable(".");
  ASSERT_TRUE(c && c->committed) << (c ? "" : c.error().message);
  EXPECT_EQ(Git({"diff", "--name-status", "HEAD~1", "HEAD"}, ws_.path).out,
            "A\td7/new.txt\nA\ttop.txt\n");
  EXPECT_EQ(Status(), "");
}

TEST_F(ManyFilesTest, ATrackedFolderThatCannotBeReadIsNamedAndKept) {
  Put("d5/f5.txt", "changed\n");  // mode 000: cannot be listed nor entered
  Put("d8/f8.txt", "changed\n");  // mode 111: can be entered, not listed
  Put("d6/f6.txt", "changed too\n");
  ASSERT_EQ(chmod((ws_.path + "/d5").c_str(), 0), 0);
  ASSERT_EQ(chmod((ws_.path + "/d8").c_str(), 0111), 0);
  auto c = repo_->CommitAll(ws_, {"r1", "many", "p@0", {}, {}, {}});
  chmod((ws_.path + "/d5").c_str(), 0755);
  chmod((ws_.path + "/d8").c_str(), 0755);
  ASSERT_TRUE(c && c->committed) << (c ? "" : c.error().message);
  std::string changed = Git({"diff", "--name-status", "HEAD~1", "HEAD"}, ws_.path).out;
  if (geteuid() == 0) {  // root reads them anyway
    EXPECT_TRUE(c->skipped.empty());
    EXPECT_EQ(changed, "M\td5/f5.txt\nM\td6/f6.txt\nM\td8/f8.txt\n");
  } else {  // named, and their files neither deleted nor changed
    ASSERT_EQ(c->skipped.size(), 2u);
    EXPECT_EQ(c->skipped[0].path, "d5/");
    EXPECT_EQ(c->skipped[0].reason, "unreadable");
    EXPECT_EQ(c->skipped[1].path, "d8/");
    EXPECT_EQ(c->skipped[1].reason, "unreadable");
    EXPECT_EQ(changed, "M\td6/f6.txt\n");
  }
}

TEST_F(ManyFilesTest, ADeletedSubmoduleWithAnOddNameIsCommitted) {
  // "#sub" read as a pathspec is a comment: the gitlink must not depend on one.
  std::string head = Git({"rev-parse", "HEAD"}, ws_.path).out.substr(0, 40);
  ASSERT_EQ(
      Git({"update-index", "--add", "--cacheinfo", "160000," + head + ",#sub"}, ws_.path).status,
      0);
  ASSERT_EQ(
      Git({"-c", "user.name=Agent", "-c", "user.email=a@x", "commit", "-q", "-m", "sub"}, ws_.path)
          .status,
      0);
  Put("d1/f1.txt", "changed\n");  // #sub was never checked out: it is gone from the worktree
  auto c = repo_->CommitAll(ws_, {"r1", "many", "p@0", {}, {}, {}});
  ASSERT_TRUE(c && c->committed) << (c ? "" : c.error().message);
  EXPECT_EQ(Git({"diff", "--name-status", "HEAD~1", "HEAD"}, ws_.path).out,
            "D\t#sub\nM\td1/f1.txt\n");
}

TEST_F(WorktreeTest, IntegratesInOrderAndReportsConflicts) {
  BranchToMerge a = Task("a", {{"a.txt", "one\nTWO by a\nthree\n"}});
  BranchToMerge b = Task("b", {{"c.txt", "from b\n"}});
  BranchToMerge c = Task("c", {{"a.txt", "one\ntwo by c\nthree\n"}});
  auto r = repo_->Integrate(base_, {a, b, c}, "corral/r1/merged");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->merged, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r->conflicted, std::vector<std::string>{"c"});
  ASSERT_EQ(r->conflicts.size(), 1u);
  const Conflict& k = r->conflicts[0];
  EXPECT_EQ(k.paths, std::vector<std::string>{"a.txt"});
  EXPECT_EQ(k.kind, "content");
  EXPECT_EQ(k.tasks, (std::vector<std::string>{"a", "c"}));
  ASSERT_EQ(k.hunks.size(), 1u);
  EXPECT_EQ(k.hunks[0].ours, "TWO by a\n");
  EXPECT_EQ(k.hunks[0].base, "two\n");
  EXPECT_EQ(k.hunks[0].theirs, "two by c\n");
  EXPECT_EQ(k.hunks[0].ours_start, 2);
  EXPECT_EQ(k.hunks[0].base_start, 2);
  EXPECT_EQ(k.hunks[0].theirs_start, 2);
  ASSERT_EQ(r->pairs.size(), 1u);
  EXPECT_EQ(r->pairs[0].a, "a");
  EXPECT_EQ(r->pairs[0].b, "c");
  EXPECT_EQ(r->pairs[0].paths, std::vector<std::string>{"a.txt"});
  EXPECT_EQ(Git({"rev-parse", "corral/r1/merged"}).out, r->commit + "\n");
  EXPECT_EQ(Git({"show", "corral/r1/merged:a.txt"}).out, "one\nTWO by a\nthree\n");
  EXPECT_EQ(Git({"show", "corral/r1/merged:c.txt"}).out, "from b\n");
  EXPECT_EQ(Git({"merge-base", "--is-ancestor", "corral/r1/b", "corral/r1/merged"}).status, 0);
  EXPECT_NE(Git({"merge-base", "--is-ancestor", "corral/r1/c", "corral/r1/merged"}).status, 0);
  std::string json = ToJson(*r);
  EXPECT_NE(json.find(R"("conflicted":["c"])"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("pairs":[{"paths":["a.txt"],"tasks":["a","c"]}])"), std::string::npos)
      << json;
  std::string md = ToMarkdown(*r);
  EXPECT_NE(md.find("#### `a.txt`: content (tasks `a`, `c`)"), std::string::npos) << md;
  EXPECT_NE(md.find("| `a` × `c` | `a.txt` |"), std::string::npos) << md;
}

// A conflict in a file whose name and text are Latin-1, not UTF-8: the report is still JSON, the
// bytes shown as U+FFFD.
TEST_F(WorktreeTest, AConflictOutsideUtf8IsStillReported) {
  BranchToMerge a = Task("a", {{"caf\xe9.txt", "one\xa0\n"}});
  BranchToMerge b = Task("b", {{"caf\xe9.txt", "two\xa0\n"}});
  auto r = repo_->Integrate(base_, {a, b}, "corral/r1/merged");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->conflicted, std::vector<std::string>{"b"});
  std::string json;
  ASSERT_NO_THROW(json = ToJson(*r));
  EXPECT_NE(json.find("\"caf\xef\xbf\xbd.txt\""), std::string::npos) << json;
}

TEST_F(WorktreeTest, ConflictKinds) {
  BranchToMerge add1 = Task("add1", {{"new.txt", "one\n"}});
  BranchToMerge add2 = Task("add2", {{"new.txt", "two\n"}});
  BranchToMerge mod = Task("mod", {{"b.txt", "alpha changed\n"}});
  BranchToMerge del = Task("del", {}, {"b.txt"});
  BranchToMerge bin1 = Task("bin1", {{"blob.bin", std::string("\0\1\2a", 4)}});
  BranchToMerge bin2 = Task("bin2", {{"blob.bin", std::string("\0\1\2b", 4)}});
  auto r = repo_->Integrate(base_, {add1, add2, mod, del, bin1, bin2}, "corral/r1/merged");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->merged, (std::vector<std::string>{"add1", "mod", "bin1"}));
  EXPECT_EQ(r->conflicted, (std::vector<std::string>{"add2", "del", "bin2"}));
  ASSERT_EQ(r->conflicts.size(), 3u);
  EXPECT_EQ(r->conflicts[0].kind, "add/add");
  EXPECT_EQ(r->conflicts[0].tasks, (std::vector<std::string>{"add1", "add2"}));
  EXPECT_EQ(r->conflicts[1].kind, "modify/delete");
  EXPECT_EQ(r->conflicts[1].tasks, (std::vector<std::string>{"mod", "del"}));
  EXPECT_EQ(r->conflicts[2].kind, "binary");
  EXPECT_TRUE(r->conflicts[2].hunks.empty());
}

TEST_F(WorktreeTest, RenameRenameConflict) {
  BranchToMerge x = Task("x", {{"x.txt", "one\ntwo\nthree\n"}}, {"a.txt"});
  BranchToMerge y = Task("y", {{"y.txt", "one\ntwo\nthree\n"}}, {"a.txt"});
  auto r = repo_->Integrate(base_, {x, y}, "corral/r1/merged");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->conflicts.size(), 1u);
  EXPECT_EQ(r->conflicts[0].kind, "rename/rename");
  EXPECT_EQ(r->conflicts[0].paths, (std::vector<std::string>{"a.txt", "x.txt", "y.txt"}));
}

TEST_F(WorktreeTest, RenameDeleteAndFileDirectoryConflicts) {
  BranchToMerge ren = Task("ren", {{"moved.txt", "one\ntwo\nthree\n"}}, {"a.txt"});
  BranchToMerge del = Task("del", {}, {"a.txt"});
  BranchToMerge file = Task("file", {{"d", "a file\n"}});
  BranchToMerge dir = Task("dir", {{"d/e.txt", "in a directory\n"}});
  auto r = repo_->Integrate(base_, {ren, del, file, dir}, "corral/r1/merged");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->conflicted, (std::vector<std::string>{"del", "dir"}));
  ASSERT_EQ(r->conflicts.size(), 2u);
  EXPECT_EQ(r->conflicts[0].kind, "rename/delete");
  EXPECT_EQ(r->conflicts[0].tasks, (std::vector<std::string>{"ren", "del"}));
  EXPECT_EQ(r->conflicts[1].kind, "file/directory");
  EXPECT_EQ(r->conflicts[1].tasks, (std::vector<std::string>{"file", "dir"}));
}

TEST_F(WorktreeTest, NeverMovesACheckedOutBranch) {
  BranchToMerge a = Task("a", {{"c.txt", "c\n"}});
  auto r = repo_->Integrate(base_, {a}, "main");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "refusing to update 'main': it is checked out");
}

TEST_F(WorktreeTest, RedoingTheMergeMovesTheBranchFromWhereItWas) {
  BranchToMerge a = Task("a", {{"c.txt", "c\n"}});
  BranchToMerge b = Task("b", {{"d.txt", "d\n"}});
  auto first = repo_->Integrate(base_, {a}, "corral/r1/merged");
  ASSERT_TRUE(first);
  auto second = repo_->Integrate(base_, {a, b}, "corral/r1/merged");
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->merged, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Git({"show", "corral/r1/merged:d.txt"}).out, "d\n");
}

TEST_F(WorktreeTest, RemoveWorkspaceKeepsTheBranch) {
  BranchToMerge a = Task("a", {{"c.txt", "c\n"}});
  auto ws = repo_->FindWorkspace("r1", "a");
  ASSERT_TRUE(ws);
  fs::create_directories(ws->path + "/locked");
  chmod((ws->path + "/locked").c_str(), 0);
  ASSERT_TRUE(repo_->RemoveWorkspace(*ws));
  EXPECT_FALSE(fs::exists(ws->path));
  EXPECT_FALSE(fs::exists(ws->admin_dir));
  EXPECT_NE(Git({"rev-parse", "corral/r1/a"}).out, base_ + "\n");
  EXPECT_EQ(Git({"worktree", "prune", "--dry-run", "-v"}).out, "");
}

std::string Describe(const std::vector<CleanItem>& items) {
  std::string out;
  for (const CleanItem& i : items) {
    const char* action[] = {"removed", "kept", "archived", "running"};
    out += std::string(action[static_cast<int>(i.action)]) + " " +
           (i.branch.empty() ? i.path : i.branch) + ": " + i.reason + "\n";
  }
  return out;
}

TEST_F(WorktreeTest, CleanRemovesOnlyWorkKeptElsewhere) {
  BranchToMerge merged = Task("merged-task", {{"c.txt", "c\n"}});
  BranchToMerge conflicted = Task("conflicted", {{"a.txt", "x\n"}});
  BranchToMerge first = Task("first", {{"a.txt", "y\n"}});
  BranchToMerge squashed = Task("squashed", {{"s.txt", "s\n"}});
  BranchToMerge dirty = Task("dirty", {{"d.txt", "d\n"}});
  BranchToMerge running = Task("running", {{"r.txt", "r\n"}});
  auto r = repo_->Integrate(base_, {merged, first, conflicted, dirty, running}, "corral/r1/merged");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->conflicted, std::vector<std::string>{"conflicted"});
  // "squashed" lands on another branch as a different commit with the same content.
  Git({"branch", "release", base_});
  Output wt = Git({"worktree", "add", "-q", dir_.path() + "/.git/rel", "release"});
  WriteFile(dir_.path() + "/.git/rel/s.txt", "s\n");
  Git({"add", "s.txt"}, dir_.path() + "/.git/rel");
  Git({"commit", "-q", "-m", "squash of squashed"}, dir_.path() + "/.git/rel");
  WriteFile(repo_->FindWorkspace("r1", "dirty")->path + "/late.txt", "not committed\n");
  ASSERT_TRUE(repo_->LockWorkspace(*repo_->FindWorkspace("r1", "running"), "sandbox 123"));

  std::string before = Git({"for-each-ref"}).out;
  auto dry = repo_->Clean({"r1", true, false});
  ASSERT_TRUE(dry) << dry.error().message;
  EXPECT_EQ(Git({"for-each-ref"}).out, before) << "a dry run changes nothing";
  std::string expected =
      "kept corral/r1/conflicted: its work is on no other branch\n"
      "kept corral/r1/dirty: uncommitted changes in " +
      dir_.path() +
      "/.git/corral/worktrees/r1/dirty\n"
      "removed corral/r1/first: reachable from corral/r1/merged\n"
      "removed corral/r1/merged-task: reachable from corral/r1/merged\n"
      "running corral/r1/running: its sandbox is running\n"
      "removed corral/r1/squashed: its changes are on release\n";
  EXPECT_EQ(Describe(*dry), expected);

  auto done = repo_->Clean({"r1", false, false});
  ASSERT_TRUE(done);
  EXPECT_EQ(Describe(*done), expected);
  EXPECT_EQ(Git({"branch", "--list", "corral/r1/*", "--format=%(refname:short)"}).out,
            "corral/r1/conflicted\ncorral/r1/dirty\ncorral/r1/merged\ncorral/r1/running\n");
  EXPECT_FALSE(fs::exists(dir_.path() + "/.git/corral/worktrees/r1/first"));
  EXPECT_EQ(ReadFile(dir_.path() + "/.git/corral/worktrees/r1/dirty/late.txt"), "not committed\n");

  // --force archives what is nowhere else, uncommitted changes included, and never the running one.
  auto forced = repo_->Clean({"r1", false, true});
  ASSERT_TRUE(forced) << forced.error().message;
  EXPECT_EQ(Describe(*forced),
            "archived corral/r1/conflicted: refs/corral/archive/r1/conflicted\n"
            "archived corral/r1/dirty: refs/corral/archive/r1/dirty\n"
            "running corral/r1/running: its sandbox is running\n");
  EXPECT_EQ(Git({"show", "refs/corral/archive/r1/dirty:late.txt"}).out, "not committed\n");
  EXPECT_EQ(Git({"show", "refs/corral/archive/r1/conflicted:a.txt"}).out, "x\n");
  EXPECT_TRUE(fs::exists(dir_.path() + "/.git/corral/worktrees/r1/running/r.txt"));
  Git({"worktree", "remove", "--force", dir_.path() + "/.git/rel"});
}

// The fast path on the host: sixteen overlay workspaces made at once share one export of the
// base; each folder holds only its .git file and the .gitignore, and git sees a clean, sparse
// worktree.
// The export's index is written once the clock has passed its files' times: no entry is racily
// clean (as new as the index), so neither git nor corral's scan reads their content again.
TEST_F(WorktreeTest, AnExportsIndexIsNewerThanEveryFileInIt) {
  // A commit of 200 files more than the base, made aside: the user's index and files stay.
  ScratchDir aside;
  std::vector<std::string> env = {"GIT_INDEX_FILE=" + aside.path() + "/index"};
  auto git = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"/usr/bin/git", "-C", dir_.path()});
    return RunCommand(args, env);
  };
  ASSERT_EQ(git({"read-tree", base_}).status, 0);
  WriteFile(aside.path() + "/f", "f\n");
  std::string blob = git({"hash-object", "-w", aside.path() + "/f"}).out;
  blob.pop_back();
  for (int i = 0; i < 200; ++i) {
    std::string entry = "100644," + blob + ",f" + std::to_string(i);
    ASSERT_EQ(git({"update-index", "--add", "--cacheinfo", entry}).status, 0);
  }
  std::string tree = git({"write-tree"}).out;
  tree.pop_back();
  std::string commit = git({"commit-tree", tree, "-p", base_, "-m", "many"}).out;
  commit.pop_back();
  auto head = repo_->ResolveCommit(commit);
  ASSERT_TRUE(head) << commit;
  auto ws = repo_->CreateWorkspace("o", "t", *head, *head);
  ASSERT_TRUE(ws) << ws.error().message;
  std::string exported = dir_.path() + "/.git/corral/exports/" + *head;
  struct stat ist;
  ASSERT_EQ(stat((exported + "/index").c_str(), &ist), 0);
  Output files = RunCommand({"/usr/bin/git", "--git-dir=" + dir_.path() + "/.git",
                             "--work-tree=" + exported + "/tree", "ls-files", "--debug"},
                            {"GIT_INDEX_FILE=" + exported + "/index"});
  ASSERT_EQ(files.status, 0) << files.err;
  std::istringstream lines(files.out);
  std::string line;
  int entries = 0;
  while (std::getline(lines, line)) {
    long sec = 0, nsec = 0;
    if (std::sscanf(line.c_str(), "  mtime: %ld:%ld", &sec, &nsec) != 2) continue;
    ++entries;
    const struct timespec& index = ist.st_mtim;
    bool older = sec < index.tv_sec || (sec == index.tv_sec && nsec < index.tv_nsec);
    EXPECT_TRUE(older) << "an entry as new as the index: " << sec << ":" << nsec;
  }
  EXPECT_EQ(entries, 203);
  EXPECT_FALSE(fs::exists(exported + "/.clock"));
  EXPECT_EQ(Git({"status", "--porcelain"}, ws->path).out, "");
}

TEST_F(WorktreeTest, OverlayWorkspacesShareOneExport) {
  std::vector<std::thread> threads;
  std::vector<std::string> errors(16);
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      auto repo = Repository::Open(dir_.path());
      if (!repo) {
        errors[i] = repo.error().message;
        return;
      }
      auto ws = repo->CreateWorkspace("o", "t" + std::to_string(i), base_, base_);
      if (!ws) errors[i] = ws.error().message;
    });
  }
  for (auto& t : threads) t.join();
  std::string exported = dir_.path() + "/.git/corral/exports/" + base_ + "/tree";
  for (int i = 0; i < 16; ++i) {
    ASSERT_EQ(errors[i], "") << "task " << i;
    auto ws = repo_->FindWorkspace("o", "t" + std::to_string(i));
    ASSERT_TRUE(ws) << ws.error().message;
    EXPECT_EQ(ws->lower, exported);
    EXPECT_EQ(ws->overlay_work, dir_.path() + "/.git/corral/worktrees/o/.t" + std::to_string(i) +
                                    ".overlay");
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(ws->path)) names.insert(e.path().filename());
    EXPECT_EQ(names, (std::set<std::string>{".git", ".gitignore"}));
    EXPECT_EQ(Git({"status", "--porcelain"}, ws->path).out, "");
    EXPECT_EQ(Git({"ls-files", "-v"}, ws->path).out, "H .gitignore\nS a.txt\nS b.txt\n");
  }
  EXPECT_EQ(ReadFile(exported + "/a.txt"), "one\ntwo\nthree\n");
  EXPECT_EQ(ReadFile(exported + "/b.txt"), "alpha\n") << "from the base, not the user's edit";
  size_t exports = 0;
  for (const auto& e : fs::directory_iterator(dir_.path() + "/.git/corral/exports")) {
    exports += e.is_directory();
  }
  EXPECT_EQ(exports, 1u);
  EXPECT_EQ(Git({"worktree", "prune", "--dry-run", "-v"}).out, "") << "no broken worktree";
}

// What overlayfs leaves in the folder is read on the host: a whiteout deletes the file. Clean
// keeps such a workspace, archives it with --force, then removes the export no workspace uses.
TEST_F(WorktreeTest, OverlayChangesAreReadFromTheFolder) {
  auto ws = repo_->CreateWorkspace("o", "t", base_, base_);
  ASSERT_TRUE(ws) << ws.error().message;
  auto unchanged = repo_->Clean({"o", true, false});
  ASSERT_TRUE(unchanged) << unchanged.error().message;
  std::string exports = dir_.path() + "/.git/corral/exports/" + base_;
  EXPECT_EQ(Describe(*unchanged), "removed corral/o/t: reachable from main\n")
      << "a dry run: the export is still used";
  ASSERT_EQ(mknod((ws->path + "/a.txt").c_str(), S_IFCHR, makedev(0, 0)), 0) << strerror(errno);
  WriteFile(ws->path + "/c.txt", "c\n");
  auto kept = repo_->Clean({"o", false, false});
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_EQ(Describe(*kept), "kept corral/o/t: uncommitted changes in " + ws->path + "\n");
  auto forced = repo_->Clean({"o", false, true});
  ASSERT_TRUE(forced) << forced.error().message;
  EXPECT_EQ(Describe(*forced), "archived corral/o/t: refs/corral/archive/o/t\nremoved " + exports +
                                   ": an export no workspace uses\n");
  EXPECT_EQ(Git({"ls-tree", "-r", "--name-only", "refs/corral/archive/o/t"}).out,
            ".gitignore\nb.txt\nc.txt\n");
  EXPECT_FALSE(fs::exists(exports));
  EXPECT_FALSE(fs::exists(ws->path));
  EXPECT_FALSE(fs::exists(ws->overlay_work));
}

// corral killed while it made an overlay workspace, at each point that leaves a file behind:
// the try that resumes it resets it to what a new one holds (the faults e2e test found the index
// cut short by a kill during its copy).
TEST_F(WorktreeTest, AnOverlayWorkspaceAKillCutShortIsReset) {
  auto fresh = repo_->CreateWorkspace("o", "fresh", base_, base_);
  ASSERT_TRUE(fresh) << fresh.error().message;
  std::string want = Git({"ls-files", "-v", "--stage"}, fresh->path).out;
  for (std::string cut : {"empty index", "half an index", "no index", "no overlay work",
                          "a file in the folder"}) {
    SCOPED_TRACE(cut);
    std::string task = "t" + std::to_string(cut.size());
    auto ws = repo_->CreateWorkspace("o", task, base_, base_);
    ASSERT_TRUE(ws) << ws.error().message;
    std::string index = ws->admin_dir + "/index";
    off_t size = cut == "empty index" ? 0 : static_cast<off_t>(fs::file_size(index) / 2);
    if (cut == "empty index" || cut == "half an index") {
      ASSERT_EQ(truncate(index.c_str(), size), 0) << strerror(errno);
    }
    if (cut == "no index") fs::remove(index);
    if (cut == "no overlay work") fs::remove_all(ws->overlay_work);
    if (cut == "a file in the folder") WriteFile(ws->path + "/a.txt", "half written");
    auto found = repo_->FindWorkspace("o", task);
    ASSERT_TRUE(found) << found.error().message;
    auto reset = repo_->ResetWorkspace(*found, base_);
    ASSERT_TRUE(reset) << reset.error().message;
    EXPECT_EQ(Git({"ls-files", "-v", "--stage"}, ws->path).out, want);
    EXPECT_EQ(Git({"status", "--porcelain"}, ws->path).out, "");
    EXPECT_TRUE(fs::is_directory(ws->overlay_work));
    EXPECT_FALSE(fs::exists(ws->path + "/a.txt")) << "the export holds it, not the folder";
  }
}

TEST_F(WorktreeTest, AnOverlayFolderCorralCannotListIsKeptByClean) {
  // libgit2's status passes over a folder it cannot list: as the unprivileged user, corral sees
  // only that the folder is there, and what is in it may be work that is in no commit.
  auto ws = repo_->CreateWorkspace("o", "t", base_, base_);
  ASSERT_TRUE(ws) << ws.error().message;
  fs::create_directories(ws->path + "/private");
  WriteFile(ws->path + "/private/notes.txt", "mine\n");
  ASSERT_EQ(chmod((ws->path + "/private").c_str(), 0), 0);
  auto kept = repo_->Clean({"o", false, false});
  chmod((ws->path + "/private").c_str(), 0700);
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_EQ(Describe(*kept), "kept corral/o/t: uncommitted changes in " + ws->path + "\n");
  EXPECT_EQ(ReadFile(ws->path + "/private/notes.txt"), "mine\n");
}

TEST_F(WorktreeTest, TaskBranchesDoNotVouchForEachOther) {
  // q builds on p; neither is on a branch clean keeps, so both stay. An empty commit is work too.
  Git({"branch", "corral/r2/p", base_});
  Git({"branch", "corral/r2/q", base_});
  Output wt = Git({"worktree", "add", "-q", dir_.path() + "/.git/q", "corral/r2/q"});
  Git({"commit", "-q", "--allow-empty", "-m", "empty but mine"}, dir_.path() + "/.git/q");
  Git({"worktree", "remove", dir_.path() + "/.git/q"});
  Git({"branch", "-f", "corral/r2/p", "corral/r2/q"});
  Git({"branch", "-f", "corral/r2/q", "corral/r2/p"});
  auto items = repo_->Clean({"r2", false, false});
  ASSERT_TRUE(items) << items.error().message;
  EXPECT_EQ(Describe(*items),
            "kept corral/r2/p: its work is on no other branch\n"
            "kept corral/r2/q: its work is on no other branch\n");
}

// --- Git inside the sandbox: the agent's own git directory, and its commits brought back ---

class SandboxGitTest : public WorktreeTest {
 protected:
  void SetUp() override {
    WorktreeTest::SetUp();
    ws_ = Create("r1", "agent");
    auto g = repo_->PrepareSandboxGit(ws_);
    ASSERT_TRUE(g) << g.error().message;
    git_ = *g;
    refs_ = Git({"for-each-ref"}).out;
    config_ = ReadFile(dir_.path() + "/.git/config");
  }

  void TearDown() override {
    // Nothing of the repository but the task's branch ever changes.
    EXPECT_EQ(OtherRefs(Git({"for-each-ref"}).out), OtherRefs(refs_));
    EXPECT_EQ(ReadFile(dir_.path() + "/.git/config"), config_);
    WorktreeTest::TearDown();
  }

  // git as the agent runs it inside: the worktree's .git names the agent's git directory.
  Output AgentGit(std::vector<std::string> args) {
    args.insert(args.begin(), {"/usr/bin/git", "--git-dir=" + git_.dir, "--work-tree=" + ws_.path,
                               "-C", ws_.path});
    return RunCommand(args);
  }

  std::string Branch() { return Git({"rev-parse", "corral/r1/agent"}).out; }

  static std::string OtherRefs(const std::string& refs) {
    std::string out;
    std::istringstream lines(refs);
    for (std::string line; std::getline(lines, line);) {
      if (!line.ends_with("\trefs/heads/corral/r1/agent")) out += line + "\n";
    }
    return out;
  }

  Workspace ws_;
  SandboxGit git_;
  std::string refs_, config_;
};

TEST_F(SandboxGitTest, TheAgentsGitDirectoryHoldsOnlyItsBranch) {
  EXPECT_EQ(ReadFile(git_.git_file), "gitdir: " + git_.dir + "\n");
  EXPECT_EQ(git_.start + "\n", Branch());
  EXPECT_EQ(AgentGit({"status", "--porcelain"}).out, "");
  EXPECT_EQ(AgentGit({"for-each-ref", "--format=%(refname)"}).out,
            "refs/heads/corral/r1/agent\n");
  EXPECT_EQ(AgentGit({"config", "--local", "--get", "user.email"}).out, "test@example.com\n");
  EXPECT_EQ(AgentGit({"config", "--local", "--get", "core.hooksPath"}).status, 1);
  EXPECT_EQ(AgentGit({"log", "--format=%s"}).out, "base\n");
}

TEST_F(SandboxGitTest, TheAgentsCommitsAreKeptAndTheRestGoesOnTop) {
  WriteFile(ws_.path + "/new.txt", "agent\n");
  ASSERT_EQ(AgentGit({"add", "new.txt"}).status, 0);
  ASSERT_EQ(AgentGit({"commit", "-q", "-m", "agent: one"}).status, 0);
  WriteFile(ws_.path + "/a.txt", "changed\n");
  ASSERT_EQ(AgentGit({"commit", "-q", "-a", "-m", "agent: two"}).status, 0);
  // What the agent plants in its own git directory stays there.
  ASSERT_EQ(AgentGit({"update-ref", "refs/heads/main", "HEAD"}).status, 0);
  ASSERT_EQ(AgentGit({"config", "core.fsmonitor", "touch " + dir_.path() + "/planted"}).status, 0);
  WriteFile(ws_.path + "/later.txt", "uncommitted\n");

  auto kept = repo_->KeepAgentCommits(ws_, git_, {});
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_EQ(kept->commits, 2u);
  EXPECT_EQ(kept->refused, "");
  EXPECT_EQ(kept->head + "\n", Branch());
  auto c = repo_->CommitAll(ws_, {"r1", "agent", "p@0", {}, git_.start, {}});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->committed);
  EXPECT_EQ(c->files_changed, (std::vector<std::string>{"a.txt", "later.txt", "new.txt"}))
      << "everything since the start, the agent's commits included";
  EXPECT_EQ(Git({"log", "--format=%s", "corral/r1/agent"}).out,
            "corral: task agent\nagent: two\nagent: one\nbase\n");
  EXPECT_EQ(Git({"status", "--porcelain"}, ws_.path).out, "") << "the user's view agrees";
  EXPECT_FALSE(fs::exists(dir_.path() + "/planted"));
}

TEST_F(SandboxGitTest, CommitsThatSayEverythingLeaveNoAutoCommit) {
  WriteFile(ws_.path + "/new.txt", "agent\n");
  ASSERT_EQ(AgentGit({"add", "new.txt"}).status, 0);
  ASSERT_EQ(AgentGit({"commit", "-q", "-m", "agent: all"}).status, 0);
  ASSERT_TRUE(repo_->KeepAgentCommits(ws_, git_, {}));
  auto c = repo_->CommitAll(ws_, {"r1", "agent", "p@0", {}, git_.start, {}});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->committed) << "the task changed something: its own commit";
  EXPECT_EQ(c->files_changed, std::vector<std::string>{"new.txt"});
  EXPECT_EQ(Git({"log", "--format=%s", "corral/r1/agent"}).out, "agent: all\nbase\n");
}

TEST_F(SandboxGitTest, PackedObjectsAndABranchOfItsOwnAreKept) {
  ASSERT_EQ(AgentGit({"checkout", "-q", "-b", "feature"}).status, 0);
  WriteFile(ws_.path + "/f.txt", "feature\n");
  ASSERT_EQ(AgentGit({"add", "f.txt"}).status, 0);
  ASSERT_EQ(AgentGit({"commit", "-q", "-m", "agent: feature"}).status, 0);
  ASSERT_EQ(AgentGit({"gc", "-q", "--prune=now"}).status, 0);
  auto kept = repo_->KeepAgentCommits(ws_, git_, {});
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_EQ(kept->refused, "");
  EXPECT_EQ(kept->commits, 1u);
  EXPECT_EQ(Git({"log", "-1", "--format=%s", "corral/r1/agent"}).out, "agent: feature\n");
}

TEST_F(SandboxGitTest, ASecretInACommitKeepsThemAllOut) {
  WriteFile(ws_.path + "/n.txt", "fine\n");
  ASSERT_EQ(AgentGit({"add", "n.txt"}).status, 0);
  ASSERT_EQ(AgentGit({"commit", "-q", "-m", "token s3cr3t-value"}).status, 0);
  auto kept = repo_->KeepAgentCommits(ws_, git_, {{"API_KEY", "s3cr3t-value"}});
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_EQ(kept->commits, 0u);
  EXPECT_NE(kept->refused.find("holds the value of secret API_KEY"), std::string::npos)
      << kept->refused;
  EXPECT_EQ(kept->refused.find("s3cr3t-value"), std::string::npos);
  EXPECT_EQ(Branch(), git_.start + "\n");
  // The commit object never reached the repository.
  std::string tip = AgentGit({"rev-parse", "HEAD"}).out;
  tip.pop_back();
  EXPECT_NE(Git({"cat-file", "-e", tip}).status, 0);
}

TEST_F(SandboxGitTest, ALinkInTheObjectStoreKeepsThemAllOut) {
  // A symlink in place of an object would have corral copy a file the agent cannot read.
  WriteFile(dir_.path() + "/../outside-secret", "private\n");
  WriteFile(ws_.path + "/n.txt", "fine\n");
  ASSERT_EQ(AgentGit({"add", "n.txt"}).status, 0);
  ASSERT_EQ(AgentGit({"commit", "-q", "-m", "agent"}).status, 0);
  std::string tip = AgentGit({"rev-parse", "HEAD"}).out;
  std::string object = git_.dir + "/objects/" + tip.substr(0, 2) + "/" + tip.substr(2, 38);
  ASSERT_TRUE(fs::exists(object));
  fs::remove(object);
  fs::create_symlink(dir_.path() + "/../outside-secret", object);
  auto kept = repo_->KeepAgentCommits(ws_, git_, {});
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_NE(kept->refused.find("not a plain file"), std::string::npos) << kept->refused;
  EXPECT_EQ(Branch(), git_.start + "\n");
}

TEST_F(SandboxGitTest, HistoryThatLeavesTheStartIsNotKept) {
  ASSERT_EQ(AgentGit({"checkout", "-q", "--orphan", "elsewhere"}).status, 0);
  ASSERT_EQ(AgentGit({"commit", "-q", "-m", "unrelated"}).status, 0);
  auto kept = repo_->KeepAgentCommits(ws_, git_, {});
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_NE(kept->refused.find("does not descend"), std::string::npos) << kept->refused;
  EXPECT_EQ(Branch(), git_.start + "\n");
}

TEST_F(SandboxGitTest, ATreeWithADotGitEntryIsNotKept) {
  WriteFile(ws_.path + "/hook", "#!/bin/sh\n");
  std::string blob = AgentGit({"hash-object", "-w", "hook"}).out;
  ASSERT_EQ(blob.size(), 41u);
  blob.pop_back();
  Output tree = RunCommand(
      {"/bin/sh", "-c",
       "printf '100644 blob " + blob + "\\t.GIT\\n' | git --git-dir=" + git_.dir + " mktree"});
  ASSERT_EQ(tree.status, 0) << tree.err;
  std::string head = AgentGit({"rev-parse", "HEAD"}).out;
  head.pop_back();
  Output commit = AgentGit({"commit-tree", tree.out.substr(0, 40), "-p", head, "-m", "x"});
  ASSERT_EQ(commit.status, 0) << commit.err;
  ASSERT_EQ(AgentGit({"update-ref", "HEAD", commit.out.substr(0, 40)}).status, 0);
  auto kept = repo_->KeepAgentCommits(ws_, git_, {});
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_NE(kept->refused.find("an entry named '.GIT'"), std::string::npos) << kept->refused;
  EXPECT_EQ(Branch(), git_.start + "\n");
}

TEST_F(SandboxGitTest, ASparseCheckoutTheAgentMadeDeletesNothing) {
  // b.txt leaves the worktree with `git sparse-checkout`; it is not a deletion.
  fs::create_directories(ws_.path + "/dir");
  WriteFile(ws_.path + "/dir/in.txt", "in\n");
  ASSERT_EQ(AgentGit({"add", "dir/in.txt"}).status, 0);
  ASSERT_EQ(AgentGit({"commit", "-q", "-m", "agent: dir"}).status, 0);
  Output sparse = AgentGit({"sparse-checkout", "set", "--no-cone", "/dir/", "/.gitignore"});
  ASSERT_EQ(sparse.status, 0) << sparse.err;
  ASSERT_FALSE(fs::exists(ws_.path + "/b.txt"));
  ASSERT_FALSE(fs::exists(ws_.path + "/a.txt"));
  WriteFile(ws_.path + "/dir/in.txt", "changed\n");
  auto kept = repo_->KeepAgentCommits(ws_, git_, {});
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_EQ(kept->not_checked_out, (std::set<std::string>{"a.txt", "b.txt"}));
  auto c = repo_->CommitAll(ws_, {"r1", "agent", "p@0", {}, git_.start, kept->not_checked_out});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->files_changed, std::vector<std::string>{"dir/in.txt"});
  EXPECT_EQ(Git({"show", "corral/r1/agent:b.txt"}).out, "alpha\n");
  EXPECT_EQ(Git({"show", "corral/r1/agent:a.txt"}).out, "one\ntwo\nthree\n");
  EXPECT_EQ(Git({"show", "corral/r1/agent:dir/in.txt"}).out, "changed\n");
}

TEST_F(SandboxGitTest, AnObjectStoreThatIsASymlinkIsRefused) {
  // Another repository on the host that the agent cannot read: its objects must not be copied.
  ScratchDir other("corral-other-repo");
  Git({"init", "-q", other.path()});
  WriteFile(other.path() + "/private.txt", "private of another repository\n");
  Git({"-C", other.path(), "add", "private.txt"});
  Git({"-C", other.path(), "-c", "user.name=o", "-c", "user.email=o@o", "commit", "-q", "-m", "o"});
  std::string theirs = Git({"-C", other.path(), "rev-parse", "HEAD"}).out;
  std::string blob = Git({"-C", other.path(), "rev-parse", "HEAD:private.txt"}).out;
  fs::remove_all(git_.dir + "/objects");
  fs::create_symlink(other.path() + "/.git/objects", git_.dir + "/objects");
  WriteFile(git_.dir + "/refs/heads/corral/r1/agent", theirs);
  auto kept = repo_->KeepAgentCommits(ws_, git_, {});
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_NE(kept->refused.find("not a folder"), std::string::npos) << kept->refused;
  blob.pop_back();
  EXPECT_NE(Git({"cat-file", "-e", blob}).status, 0) << "another repository's object was copied";
}

TEST_F(SandboxGitTest, HistoryOffTheStartCopiesNothing) {
  ASSERT_EQ(AgentGit({"checkout", "-q", "--orphan", "elsewhere"}).status, 0);
  WriteFile(ws_.path + "/orphan.txt", "orphan\n");
  ASSERT_EQ(AgentGit({"add", "orphan.txt"}).status, 0);
  ASSERT_EQ(AgentGit({"commit", "-q", "-m", "unrelated"}).status, 0);
  std::string blob = AgentGit({"rev-parse", "HEAD:orphan.txt"}).out;
  blob.pop_back();
  auto kept = repo_->KeepAgentCommits(ws_, git_, {});
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_NE(kept->refused.find("does not descend"), std::string::npos) << kept->refused;
  EXPECT_NE(Git({"cat-file", "-e", blob}).status, 0) << "checked after copying";
}

TEST_F(SandboxGitTest, AnEntryOfTheWrongTypeIsRefused) {
  // A tree entry with a folder's mode naming a blob the repository has (a.txt's).
  std::string blob = Git({"rev-parse", git_.start + ":a.txt"}).out;
  blob.pop_back();
  std::string raw = "40000 dir";
  raw += '\0';
  for (size_t i = 0; i < 40; i += 2)
    raw += static_cast<char>(std::stoi(blob.substr(i, 2), nullptr, 16));
  WriteFile(git_.dir + "/crafted-tree", raw);
  Output tree =
      AgentGit({"hash-object", "-t", "tree", "-w", "--literally", git_.dir + "/crafted-tree"});
  ASSERT_EQ(tree.status, 0) << tree.err;
  Output commit = AgentGit({"commit-tree", tree.out.substr(0, 40), "-p", git_.start, "-m", "x"});
  ASSERT_EQ(commit.status, 0) << commit.err;
  ASSERT_EQ(AgentGit({"update-ref", "HEAD", commit.out.substr(0, 40)}).status, 0);
  auto kept = repo_->KeepAgentCommits(ws_, git_, {});
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_NE(kept->refused.find("is a blob where a tree belongs"), std::string::npos)
      << kept->refused;
  EXPECT_EQ(Branch(), git_.start + "\n");
}

TEST_F(SandboxGitTest, TheAutoCommitStartsFromTheAgentsCommits) {
  // The agent commits a change to a.txt, then makes its worktree sparse without a.txt, and
  // edits a file it marked skip-worktree: the commit on top keeps all three.
  WriteFile(ws_.path + "/a.txt", "agent's\n");
  ASSERT_EQ(AgentGit({"commit", "-q", "-a", "-m", "agent: a"}).status, 0);
  ASSERT_EQ(AgentGit({"update-index", "--skip-worktree", "b.txt"}).status, 0);
  WriteFile(ws_.path + "/b.txt", "edited while skipped\n");
  fs::remove(ws_.path + "/a.txt");  // as a sparse checkout leaves it
  ASSERT_EQ(AgentGit({"update-index", "--skip-worktree", "a.txt"}).status, 0);
  auto kept = repo_->KeepAgentCommits(ws_, git_, {});
  ASSERT_TRUE(kept) << kept.error().message;
  auto c = repo_->CommitAll(ws_, {"r1", "agent", "p@0", {}, git_.start, kept->not_checked_out});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(Git({"show", "corral/r1/agent:a.txt"}).out, "agent's\n");
  EXPECT_EQ(Git({"show", "corral/r1/agent:b.txt"}).out, "edited while skipped\n");
}

// Tries of a run's tasks start and end at once: one ending removes the run's git folder when it
// is the last in it, never from under one starting (the faults e2e test saw "create
// .../gitdirs/<run>/t4/objects/info: No such file or directory").
TEST_F(WorktreeTest, SandboxGitDirectoriesComeAndGoConcurrently) {
  constexpr int kTasks = 4, kTries = 150;
  std::vector<Workspace> workspaces;
  for (int i = 0; i < kTasks; ++i) workspaces.push_back(Create("r1", "t" + std::to_string(i)));
  std::vector<std::string> errors(kTasks);
  std::vector<std::thread> threads;
  for (int i = 0; i < kTasks; ++i) {
    threads.emplace_back([&, i] {
      auto repo = Repository::Open(dir_.path());
      for (int k = 0; repo && k < kTries && errors[i].empty(); ++k) {
        auto g = repo->PrepareSandboxGit(workspaces[i]);
        if (!g) errors[i] = g.error().message;
        if (auto r = repo->RemoveSandboxGit("r1", workspaces[i].task); !r) {
          errors[i] = r.error().message;
        }
      }
      if (!repo) errors[i] = repo.error().message;
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kTasks; ++i) EXPECT_EQ(errors[i], "") << "task " << i;
  EXPECT_FALSE(fs::exists(dir_.path() + "/.git/corral/gitdirs/r1")) << "the last one removed it";
}

TEST_F(SandboxGitTest, RemovingTheWorkspaceRemovesTheAgentsGitDirectory) {
  ASSERT_TRUE(repo_->RemoveWorkspace(ws_));
  EXPECT_FALSE(fs::exists(git_.dir));
  EXPECT_FALSE(fs::exists(git_.git_file));
}

}  // namespace
}  // namespace corral::worktree
