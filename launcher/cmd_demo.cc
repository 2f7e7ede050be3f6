// corral demo: a tour of `corral exec` in a scratch workspace. Each step shows the command line a
// user would type and what they would see.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "launcher/commands.h"
#include "launcher/default_policy.h"
#include "launcher/escape.h"
#include "launcher/vm.h"
#include "worktree/worktree.h"

extern char** environ;

namespace corral::launcher {
namespace {

struct Step {
  const char* what;
  bool expect_success;
  std::vector<std::string> argv;  // after "corral exec --"
};

int RunSelf(const std::string& self, std::vector<std::string> args) {
  args.insert(args.begin(), self);
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  if (posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string Quote(const std::string& s) {
  return s.find_first_of(" '\"$&|;<>()*") == std::string::npos ? s : ShellQuote(s);
}

constexpr int kExitConflicts = 3;

// The main job: a plan of five scripted agents on a scratch repository. Two of them edit the
// same line, so the report shows a conflict (exit 3) while the others merge.
int RunDemoPlan(const std::string& corral) {
  std::string dir = std::filesystem::temp_directory_path() / "corral-demo-run-XXXXXX";
  if (!mkdtemp(dir.data())) return kExitTaskFailed;
  auto repo = worktree::Repository::InitWithFiles(
      dir + "/repo", {{"README.md", "# calc\n\nA calculator.\n"}, {"calc.py", "def add(a, b):\n    return a + b\n"}},
      "the project before the agents");
  if (!repo) {
    std::fprintf(stderr, "corral demo: %s\n", repo.error().message.c_str());
    return kExitTaskFailed;
  }
  std::ofstream(dir + "/default.toml") << kDefaultPolicyToml;
  std::ofstream(dir + "/plan.toml") << R"([run]
jobs = 3

[[task]]
id = "impl"
policy = "default.toml"
prompt = "Add subtraction"
run = ["sh", "-c", "printf 'def sub(a, b):\\n    return a - b\\n' >> calc.py"]

[[task]]
id = "tests"
policy = "default.toml"
run = ["sh", "-c", "printf 'from calc import add\\nassert add(2, 2) == 4\\n' > test_calc.py"]

[[task]]
id = "docs"
policy = "default.toml"
run = ["sh", "-c", "sed -i 's/A calculator./A calculator that adds and subtracts./' README.md"]

[[task]]
id = "rival-docs"
policy = "default.toml"
run = ["sh", "-c", "sed -i 's/A calculator./A tiny calculator./' README.md"]

[[task]]
id = "review"
depends_on = ["impl", "tests", "docs"]
policy = "default.toml"
run = ["sh", "-c", "grep -q 'def sub' calc.py && echo '{\"verdict\": \"approve\"}' > $CORRAL_OUTPUT"]
)";
  std::printf("== The main job: five agents on a scratch repository (%s/repo)\n", dir.c_str());
  std::printf("$ corral run plan.toml --repo repo\n");
  std::fflush(stdout);
  int code = RunSelf(corral, {"run", dir + "/plan.toml", "--repo", dir + "/repo"});
  std::string runs = dir + "/repo/.git/corral/runs";
  std::error_code ec;
  for (const auto& run : std::filesystem::directory_iterator(runs, ec)) {
    std::ifstream in(run.path() / "report.md");
    std::printf("\n%s", std::string(std::istreambuf_iterator<char>(in), {}).c_str());
  }
  std::printf("\n-> exit %d (%s)\n", code,
              code == kExitConflicts ? "3: the rival edit conflicts and was left out, as it should be"
                                     : "UNEXPECTED");
  std::filesystem::remove_all(dir, ec);
  return code;
}

// The same fences behind a hypervisor: the default policy with target = "vm". Returns 1 when it
// did not behave as expected; a host without the vm target's pieces says why and counts as 0.
int RunVmStep(const std::string& corral, const std::string& workspace) {
  sandbox::HostCheck vm_ready = vm::Probe();
  std::printf("== The same policy with target = \"vm\": the command runs in a QEMU VM\n");
  if (!vm_ready.ok) {
    std::printf("(skipped: %s; %s)\n\n", vm_ready.detail.c_str(), vm_ready.fix.c_str());
    return 0;
  }
  std::string policy = workspace + ".vm.toml";
  std::ofstream(policy) << "target = \"vm\"\n" << kDefaultPolicyToml;
  std::vector<std::string> argv = {"sh", "-c",
                                   "uname -r; echo 'written inside the VM' > vm.txt; cat vm.txt; "
                                   "echo x > /etc/corral-demo"};
  std::string line = "corral exec --policy vm.toml --";
  for (const std::string& a : argv) line += " " + Quote(a);
  std::printf("$ %s\n", line.c_str());
  std::fflush(stdout);
  std::vector<std::string> args = {"exec", "--policy", policy, "--cwd", workspace, "--"};
  args.insert(args.end(), argv.begin(), argv.end());
  int code = RunSelf(corral, args);
  std::error_code ec;
  std::filesystem::remove(policy, ec);
  // The guest's kernel is Debian's, not the host's; /etc is read-only in there too.
  bool ok = code == 2;
  std::printf("-> exit %d (%s)\n\n", code,
              ok ? "the guest ran it on its own kernel; /etc stayed read-only" : "UNEXPECTED");
  return ok ? 0 : 1;
}

int Demo() {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return kExitBadInput;
  std::string corral(self, n);
  std::string workspace = std::filesystem::temp_directory_path() / "corral-demo-XXXXXX";
  if (!mkdtemp(workspace.data())) {
    std::perror("corral demo: mkdtemp");
    return kExitTaskFailed;
  }
  const Step steps[] = {
      {"The command works in its workspace", true,
       {"sh", "-c", "echo 'written inside the sandbox' > note.txt && cat note.txt && id -u"}},
      {"System directories are read-only", false, {"sh", "-c", "echo x > /etc/corral-demo"}},
      {"Nothing else of the host is there (no home directory, no host /tmp)", false,
       {"ls", std::getenv("HOME") ? std::getenv("HOME") : "/root"}},
      {"The only network interface is loopback (egress = \"none\")", true,
       {"cat", "/proc/net/dev"}},
      {"Creating namespaces is denied by seccomp", false, {"unshare", "--user", "true"}},
      {".git/hooks cannot be planted", false,
       {"sh", "-c", "mkdir -p .git/hooks && echo evil > .git/hooks/pre-commit"}},
  };
  std::printf("corral demo: workspace %s, policy policies/default.toml (built in)\n\n",
              workspace.c_str());
  int unexpected = 0;
  for (const Step& step : steps) {
    std::string line = "corral exec --";
    for (const std::string& a : step.argv) line += " " + Quote(a);
    std::printf("== %s\n$ %s\n", step.what, line.c_str());
    std::fflush(stdout);
    std::vector<std::string> args = {"exec", "--cwd", workspace, "--"};
    args.insert(args.end(), step.argv.begin(), step.argv.end());
    int code = RunSelf(corral, args);
    bool ok = code == 0;
    std::printf("-> exit %d (%s)\n\n", code,
                ok == step.expect_success ? (ok ? "allowed" : "blocked, as it should be")
                                          : "UNEXPECTED");
    if (ok != step.expect_success) ++unexpected;
  }
  unexpected += RunVmStep(corral, workspace);
  std::filesystem::remove_all(workspace);
  std::printf("%s\n\n", unexpected == 0 ? "corral demo: every fence held."
                                        : "corral demo: some steps did not behave as expected.");
  if (RunDemoPlan(corral) != kExitConflicts) ++unexpected;
  return unexpected == 0 ? kExitOk : kExitTaskFailed;
}

}  // namespace

std::function<int()> DefineDemo(CLI::App*) { return [] { return Demo(); }; }

}  // namespace corral::launcher
