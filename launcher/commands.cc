#include "launcher/commands.h"

#include <algorithm>
#include <cstdio>
#include <string_view>
#include <vector>

#include "launcher/version.h"

namespace corral::launcher {

int BadInput(const std::string& message) {
  std::fprintf(stderr, "corral: %s\n", message.c_str());
  return kExitBadInput;
}

std::span<const Command> Commands() {
  static const Command kCommands[] = {
      {"exec",
       "Run one command in a sandbox: corral exec [--policy FILE] [--cwd DIR] -- CMD ARGS...",
       DefineExec},
      {"run", "Run a plan: worktrees, sandboxes, merge, report: corral run PLAN [-j N|auto]",
       DefineRun},
      {"resume", "Continue a run after a crash or an interruption: corral resume RUN",
       DefineResume},
      {"approve", "Approve a task that awaits approval: corral approve RUN TASK", DefineApprove},
      {"status", "A run's tasks and their states: corral status [RUN]", DefineStatus},
      {"runs", "The runs of this repository", DefineRuns},
      {"logs", "A task's captured output: corral logs RUN TASK", DefineLogs},
      {"path", "Where a task's worktree is: corral path RUN TASK", DefinePath},
      {"report", "A run's report: corral report [RUN|latest] [--format json|md]", DefineReport},
      {"merge", "Redo a run's integration merge: corral merge RUN [--into B] [--order t1,t2]",
       DefineMerge},
      {"audit", "Check or show a run's audit log: corral audit verify [RUN] | show RUN",
       DefineAudit},
      {"policy", "Validate policies: corral policy check FILE...", DefinePolicy},
      {"export", "A plan for another runner: corral export argo PLAN [--repo-url URL]",
       DefineExport},
      {"proxy", "A policy's egress proxy on 127.0.0.1 (the sidecar of exported pods)",
       DefineProxy},
      {"clean",
       "Remove task worktrees and branches whose work is kept elsewhere: corral clean RUN|--all",
       DefineClean},
      {"doctor", "What this host gives corral's sandbox, and what to do about the rest",
       DefineDoctor},
      {"demo", "Show a sandboxed command that works and attempts the sandbox blocks", DefineDemo},
  };
  return kCommands;
}

int Main(int argc, char** argv) {
  CLI::App app("corral runs many coding agents at once, each in its own sandbox and worktree.",
               "corral");
  app.set_version_flag("--version", std::string("corral ") + kVersion);
  app.require_subcommand(1);
  std::vector<std::function<int()>> runs;
  std::vector<CLI::App*> subs;
  // Defining every command's options costs about a million instructions at each start, most of
  // what `corral exec` itself spends before the sandbox. When the first argument names a command
  // (no sibling can be reached from inside one), only that command is defined; otherwise all
  // are, for the usage, --help and the error that lists them.
  auto commands = Commands();
  auto named = std::find_if(commands.begin(), commands.end(), [&](const Command& c) {
    return argc > 1 && c.name == std::string_view(argv[1]);
  });
  if (named != commands.end()) commands = std::span<const Command>(&*named, 1);
  for (const Command& c : commands) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    subs.push_back(sub);
    runs.push_back(c.define(sub));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitBadInput;
  }
  for (size_t i = 0; i < subs.size(); ++i) {
    if (subs[i]->parsed()) return runs[i]();
  }
  return kExitBadInput;
}

}  // namespace corral::launcher
