// corral's git layer against the git CLI, side by side in one run, on generated repositories:
//   1. creating a task workspace      vs `git worktree add -b BRANCH PATH BASE` (a checkout,
//      and an overlay workspace on the base's export: the fast path)
//   2. committing 100 changed files   vs `git add -A && git commit` (in a checkout, and in an
//      overlay workspace)
//   3. integrating 8 task branches    vs a chain of `git merge-tree --write-tree` + `git commit-tree`
// Usage: git_bench [FILES...]   (default: 20000 80000). Prints medians and ratios.
#include <spawn.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "worktree/worktree.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using corral::worktree::Repository;

std::string Run(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  if (pclose(p) != 0) {
    std::fprintf(stderr, "git_bench: failed: %s\n", command.c_str());
    std::exit(1);
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void Write(const std::string& path, const std::string& content) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << content;
}

// The commit's changes but its deletions: 60 files of the base changed, 20 new.
void WriteChanges(const std::string& dir) {
  for (int k = 0; k < 60; ++k) Write(dir + "/d" + std::to_string(k) + "/f" + std::to_string(k) + ".txt", "changed\n");
  for (int k = 0; k < 20; ++k) Write(dir + "/new/n" + std::to_string(k) + ".txt", "new\n");
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A repository of `files` files in 100 directories, committed once.
std::string MakeRepo(const std::string& root, int files) {
  std::string repo = root + "/repo";
  Run("git init -q -b main " + repo + " && git -C " + repo + " config user.name bench && git -C " + repo +
      " config user.email bench@example.com");
  for (int i = 0; i < files; ++i) {
    Write(repo + "/d" + std::to_string(i % 100) + "/f" + std::to_string(i) + ".txt",
          "file " + std::to_string(i) + "\nline two\nline three\n");
  }
  Run("git -C " + repo + " add -A && git -C " + repo + " commit -q -m base");
  return repo;
}

void Report(const char* what, double corral_ms, double git_ms, const char* target) {
  std::printf("  %-34s corral %9.1f ms   git %9.1f ms   ratio %.2fx (target %s)\n", what,
              corral_ms, git_ms, corral_ms / git_ms, target);
}

// Which parts to run: GIT_BENCH_PARTS, comma-separated (default: all). The commit needs the
// workspaces the creation makes.
struct Parts {
  bool create = true, commit = true, integrate = true;
};

Parts PartsFromEnv() {
  const char* env = std::getenv("GIT_BENCH_PARTS");
  if (!env) return {};
  Parts p{false, false, false};
  for (std::string_view rest = env; !rest.empty();) {
    std::string_view part = rest.substr(0, rest.find(','));
    rest.remove_prefix(std::min(rest.size(), part.size() + 1));
    bool* flag = part == "create"      ? &p.create
                 : part == "commit"    ? &p.commit
                 : part == "integrate" ? &p.integrate
                                       : nullptr;
    if (!flag) {
      std::fprintf(stderr, "git_bench: GIT_BENCH_PARTS: unknown part '%.*s' (create, commit, integrate)\n",
                   static_cast<int>(part.size()), part.data());
      std::exit(2);
    }
    *flag = true;
  }
  p.create = p.create || p.commit;
  return p;
}

void Bench(int files, const Parts& parts) {
  std::string root = fs::temp_directory_path() / ("corral-git-bench-" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  auto t0 = Clock::now();
  std::string repo_path = MakeRepo(root, files);
  std::printf("%d files (repository made in %.1f s)\n", files, Ms(Clock::now() - t0) / 1000);
  auto repo = Repository::Open(repo_path);
  if (!repo) {
    std::fprintf(stderr, "git_bench: %s\n", repo.error().message.c_str());
    std::exit(1);
  }
  std::string base = *repo->ResolveCommit("HEAD");
  const int reps = 3;
  // 1. Workspace creation.
  std::vector<double> ours, theirs;
  for (int i = 0; i < reps && parts.create; ++i) {
    auto start = Clock::now();
    auto ws = repo->CreateWorkspace("bench", "w" + std::to_string(i), base);
    ours.push_back(Ms(Clock::now() - start));
    if (!ws) std::exit((std::fprintf(stderr, "%s\n", ws.error().message.c_str()), 1));
    start = Clock::now();
    Run("git -C " + repo_path + " worktree add -q -b plain/w" + std::to_string(i) + " " + root +
        "/plain-w" + std::to_string(i) + " " + base);
    theirs.push_back(Ms(Clock::now() - start));
  }
  if (!ours.empty()) {
    Report("create a workspace", Median(ours), Median(theirs), "1.0x (a checkout)");
  }
  // 1b. The fast path: an overlay workspace on the base's export. The export (a checkout made
  // once per base, shared by every task of every run on it) is timed apart; `git worktree add`
  // again beside it.
  std::vector<double> overlay, plain;
  double export_ms = 0;
  for (int i = 0; i < reps && parts.create; ++i) {
    auto start = Clock::now();
    auto ws = repo->CreateWorkspace("bench", "o" + std::to_string(i), base, base);
    double ms = Ms(Clock::now() - start);
    if (!ws) std::exit((std::fprintf(stderr, "%s\n", ws.error().message.c_str()), 1));
    if (i == 0) {
      export_ms = ms;
    } else {
      overlay.push_back(ms);
    }
    start = Clock::now();
    Run("git -C " + repo_path + " worktree add -q -b plain/o" + std::to_string(i) + " " + root +
        "/plain-o" + std::to_string(i) + " " + base);
    if (i > 0) plain.push_back(Ms(Clock::now() - start));
  }
  if (!overlay.empty()) {
    std::printf("  (the export of the base, once: %.0f ms)\n", export_ms);
    Report("create an overlay workspace", Median(overlay), Median(plain), "0.1x");
  }

  // 2. Commit 100 changed files (60 modified, 20 new, 20 deleted).
  ours.clear();
  theirs.clear();
  for (int i = 0; i < reps && parts.commit; ++i) {
    auto ws = repo->FindWorkspace("bench", "w" + std::to_string(i));
    std::string plain = root + "/plain-w" + std::to_string(i);
    for (const std::string& dir : {ws->path, plain}) {
      WriteChanges(dir);
      for (int k = 60; k < 80; ++k) fs::remove(dir + "/d" + std::to_string(k) + "/f" + std::to_string(k) + ".txt");
    }
    auto start = Clock::now();
    auto c = repo->CommitAll(*ws, {"bench", "w" + std::to_string(i), "bench@0", {}, {}, {}});
    ours.push_back(Ms(Clock::now() - start));
    if (!c || !c->committed) std::exit((std::fprintf(stderr, "commit failed\n"), 1));
    start = Clock::now();
    Run("git -C " + plain + " add -A && git -C " + plain + " commit -q -m x");
    theirs.push_back(Ms(Clock::now() - start));
  }
  if (!ours.empty()) Report("commit 100 changed files", Median(ours), Median(theirs), "at most 1.0x");
  // 2b. The same commit in an overlay workspace. What the agent's writes leave in the folder
  // below the mount is made here directly: the changed and new files (overlayfs copies a file up
  // whole) and a whiteout for each deleted one.
  ours.clear();
  theirs.clear();
  for (int i = 0; i < reps && parts.commit; ++i) {
    auto ws = repo->FindWorkspace("bench", "o" + std::to_string(i));
    std::string plain = root + "/plain-o" + std::to_string(i);
    for (const std::string& dir : {ws->path, plain}) WriteChanges(dir);
    for (int k = 60; k < 80; ++k) {
      std::string name = "/d" + std::to_string(k) + "/f" + std::to_string(k) + ".txt";
      fs::remove(plain + name);
      fs::create_directories(ws->path + "/d" + std::to_string(k));
      if (mknod((ws->path + name).c_str(), S_IFCHR, makedev(0, 0)) != 0) {
        std::exit((std::perror("git_bench: whiteout"), 1));
      }
    }
    auto start = Clock::now();
    auto c = repo->CommitAll(*ws, {"bench", "o" + std::to_string(i), "bench@0", {}, {}, {}});
    ours.push_back(Ms(Clock::now() - start));
    if (!c || !c->committed) std::exit((std::fprintf(stderr, "overlay commit failed\n"), 1));
    if (c->files_changed.size() != 100) {
      std::exit((std::fprintf(stderr, "overlay commit: %zu files changed, not 100\n", c->files_changed.size()), 1));
    }
    start = Clock::now();
    Run("git -C " + plain + " add -A && git -C " + plain + " commit -q -m x");
    theirs.push_back(Ms(Clock::now() - start));
  }
  if (!ours.empty()) Report("commit 100 files, overlay", Median(ours), Median(theirs), "at most 1.0x");

  // 3. Integrate 8 branches, each changing its own 10 files, made with the git CLI.
  if (!parts.integrate) {
    fs::remove_all(root);
    return;
  }
  std::vector<corral::worktree::BranchToMerge> branches;
  for (int b = 0; b < 8; ++b) {
    std::string name = "feature/b" + std::to_string(b);
    std::string dir = root + "/feature-" + std::to_string(b);
    Run("git -C " + repo_path + " worktree add -q -b " + name + " " + dir + " " + base);
    for (int k = 0; k < 10; ++k) {
      int f = 1000 + b * 10 + k;
      Write(dir + "/d" + std::to_string(f % 100) + "/f" + std::to_string(f) + ".txt", "branch " + std::to_string(b) + "\n");
    }
    Run("git -C " + dir + " commit -q -am b" + std::to_string(b));
    branches.push_back({"b" + std::to_string(b), name});
  }
  ours.clear();
  theirs.clear();
  for (int i = 0; i < reps; ++i) {
    auto start = Clock::now();
    auto r = repo->Integrate(base, branches, "bench/merged" + std::to_string(i));
    ours.push_back(Ms(Clock::now() - start));
    if (!r || r->merged.size() != 8) std::exit((std::fprintf(stderr, "integrate failed\n"), 1));
    std::string chain = "cur=" + base + "; cd " + repo_path;
    for (const auto& b : branches) {
      chain += "; t=$(git merge-tree --write-tree $cur " + b.branch + ") && cur=$(git commit-tree $t -p $cur -p " +
               b.branch + " -m merge)";
    }
    chain += "; git update-ref refs/heads/plain/merged" + std::to_string(i) + " $cur";
    start = Clock::now();
    Run("sh -c '" + chain + "'");
    theirs.push_back(Ms(Clock::now() - start));
  }
  Report("integrate 8 branches", Median(ours), Median(theirs), "at most 1.0x");
  fs::remove_all(root);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(std::atoi(argv[i]));
  if (sizes.empty()) sizes = {20000, 80000};
  const Parts parts = PartsFromEnv();
  std::printf("corral's git layer vs the git CLI (%s), medians of 3\n", Run("git --version").c_str());
  for (int files : sizes) Bench(files, parts);
  return 0;
}
