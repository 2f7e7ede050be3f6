// corral run PLAN [--repo DIR] [-j N|auto] [--json]
#include <memory>

#include "launcher/commands.h"
#include "launcher/run.h"

namespace corral::launcher {

std::function<int()> DefineRun(CLI::App* app) {
  auto r = std::make_shared<RunRequest>();
  auto jobs = std::make_shared<std::string>();
  app->add_option("plan", r->plan_path, "The plan file")->required();
  app->add_option("--repo", r->repo, "The repository (default: the current directory)");
  app->add_option("-j,--jobs", *jobs, "Tasks at once: a number, or auto (default: the plan's)");
  app->add_flag("--json", r->json, "Stream the run's events as JSON lines on stdout");
  app->add_option("--approve", r->approve, "Approve this task up front (repeatable)");
  app->add_option("--secrets-file", r->secrets_file,
                  "NAME=value lines for the policies' secrets.env (mode 0600, yours)");
  return [r, jobs] {
    if (!jobs->empty()) {
      if (*jobs == "auto") {
        r->jobs_auto = true;
      } else {
        char* end = nullptr;
        long n = std::strtol(jobs->c_str(), &end, 10);
        if (*end != '\0' || n < 1 || n > 1024) {
          std::fprintf(stderr, "corral: -j: '%s' is not a number from 1 to 1024 or auto\n",
                       jobs->c_str());
          return kExitBadInput;
        }
        r->jobs = static_cast<int>(n);
      }
    }
    return RunPlan(*r);
  };
}

}  // namespace corral::launcher

namespace corral::launcher {

std::function<int()> DefineResume(CLI::App* app) {
  auto r = std::make_shared<ResumeRequest>();
  app->add_option("run", r->run, "The run to continue")->required();
  app->add_option("--repo", r->repo, "The repository (default: the current directory)");
  app->add_flag("--json", r->json, "Stream the run's events as JSON lines on stdout");
  app->add_option("--secrets-file", r->secrets_file,
                  "NAME=value lines for the policies' secrets.env (mode 0600, yours)");
  return [r] { return ResumeRun(*r); };
}

}  // namespace corral::launcher

namespace corral::launcher {

std::function<int()> DefineApprove(CLI::App* app) {
  auto run = std::make_shared<std::string>();
  auto task = std::make_shared<std::string>();
  auto repo = std::make_shared<std::string>(".");
  app->add_option("run", *run, "The run")->required();
  app->add_option("task", *task, "The task that awaits approval")->required();
  app->add_option("--repo", *repo, "The repository (default: the current directory)");
  return [run, task, repo] { return ApproveTask(*repo, *run, *task); };
}

}  // namespace corral::launcher
