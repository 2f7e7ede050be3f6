// corral policy check FILE...
#include <cstdio>
#include <memory>

#include "launcher/commands.h"
#include "launcher/policy_file.h"

namespace corral::launcher {
namespace {

int Check(const std::vector<std::string>& files) {
  int status = kExitOk;
  for (const std::string& file : files) {
    auto p = LoadPolicy(file);
    if (!p) {
      std::fprintf(stderr, "%s\n", p.error().c_str());
      status = kExitBadInput;
      continue;
    }
    std::printf("%s: ok: %s\n", file.c_str(), policy::Summary(*p).c_str());
    if (p->network.egress == policy::EgressKind::kHost) {
      std::fprintf(stderr,
                   "%s: warning: network.egress = \"host\" gives the agent the host's whole "
                   "network\n",
                   file.c_str());
    }
  }
  return status;
}

}  // namespace

std::function<int()> DefinePolicy(CLI::App* app) {
  auto files = std::make_shared<std::vector<std::string>>();
  app->require_subcommand(1);
  CLI::App* check = app->add_subcommand("check", "Validate policy files and summarize each");
  check->add_option("files", *files, "Policy files")->required();
  return [files] { return Check(*files); };
}

}  // namespace corral::launcher
