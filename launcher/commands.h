// The table of corral's subcommands. Each lives in its own file (cmd_*.cc) and registers here.
#pragma once

#include <functional>
#include <span>
#include <string>

#include <CLI/CLI.hpp>

namespace corral::launcher {

// Exit statuses of every command but `exec` (DESIGN.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitTaskFailed = 1;
inline constexpr int kExitBadInput = 2;
// `corral exec` when the sandbox could not be set up.
inline constexpr int kExitSandboxSetup = 125;

// Prints "corral: MESSAGE" on stderr and returns kExitBadInput.
int BadInput(const std::string& message);

struct Command {
  const char* name;
  const char* help;
  // Adds the command's options to `app` and returns what runs it after parsing.
  std::function<int()> (*define)(CLI::App* app);
};

std::span<const Command> Commands();

// Entry point of the corral binary.
int Main(int argc, char** argv);

std::function<int()> DefineExec(CLI::App* app);
std::function<int()> DefinePolicy(CLI::App* app);
std::function<int()> DefineDemo(CLI::App* app);
std::function<int()> DefineClean(CLI::App* app);
std::function<int()> DefineRun(CLI::App* app);
std::function<int()> DefineRuns(CLI::App* app);
std::function<int()> DefineResume(CLI::App* app);
std::function<int()> DefineApprove(CLI::App* app);
std::function<int()> DefineStatus(CLI::App* app);
std::function<int()> DefineLogs(CLI::App* app);
std::function<int()> DefineReport(CLI::App* app);
std::function<int()> DefineMerge(CLI::App* app);
std::function<int()> DefineAudit(CLI::App* app);
std::function<int()> DefineDoctor(CLI::App* app);
std::function<int()> DefinePath(CLI::App* app);
std::function<int()> DefineExport(CLI::App* app);
std::function<int()> DefineProxy(CLI::App* app);

}  // namespace corral::launcher
