// corral export argo PLAN [--repo-url URL] [--image IMAGE] [--secret NAME] [--profiles DIR]
//                         [--format yaml|json] [--repo DIR]
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "launcher/argo_export.h"
#include "launcher/commands.h"
#include "launcher/crypto.h"
#include "launcher/oci_seccomp.h"
#include "launcher/policy_file.h"
#include "launcher/spec_from_policy.h"
#include "policy/plan.h"
#include "worktree/worktree.h"

namespace corral::launcher {
namespace {

namespace fs = std::filesystem;

struct ExportRequest {
  std::string plan_path;
  std::string repo = ".";
  std::string repo_url;
  std::string image = "corral-agent:latest";
  std::string secret = "corral-secrets";
  std::string profiles;
  std::string format = "yaml";
};

std::expected<std::string, std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::unexpected(path + ": " + std::strerror(errno));
  return std::string(std::istreambuf_iterator<char>(in), {});
}

int ExportArgo(const ExportRequest& r) {
  if (r.format != "yaml" && r.format != "json") {
    return BadInput("--format: '" + r.format + "' is not one of yaml, json");
  }
  auto text = ReadFile(r.plan_path);
  if (!text) return BadInput(text.error());
  auto plan = policy::ParsePlan(*text, r.plan_path);
  if (!plan) return BadInput(plan.error());

  ArgoInput in;
  in.plan_name = fs::path(r.plan_path).stem().string();
  in.plan_sha256 = Sha256Hex(*text);
  in.image = r.image;
  in.secret = r.secret;
  in.into = plan->into;
  in.setup = plan->setup;
  in.order = plan->order;
  fs::path plan_dir = fs::absolute(r.plan_path).parent_path();
  for (const policy::PlanTask& t : plan->tasks) {
    std::string where = r.plan_path + ":" + std::to_string(t.policy_pos.line) + ":" +
                        std::to_string(t.policy_pos.column) + ": task '" + t.id + "': policy: ";
    fs::path path = fs::path(t.policy).is_absolute() ? fs::path(t.policy) : plan_dir / t.policy;
    auto policy_text = ReadFile(path.string());
    if (!policy_text) return BadInput(where + policy_text.error());
    auto pol = LoadPolicy(path.string());
    if (!pol) return BadInput(where + pol.error());
    if (!pol->secrets.inject.empty() && pol->network.egress != policy::EgressKind::kAllowList) {
      return BadInput(where + path.string() +
                      ": secrets.inject: needs network.egress to be an allow-list (only the "
                      "egress proxy can put the values into requests)");
    }
    std::string sha = Sha256Hex(*policy_text);
    in.tasks.push_back({&t, std::move(*pol), std::move(*policy_text), std::move(sha)});
  }

  auto repo = worktree::Repository::Open(r.repo);
  if (!repo) return BadInput("--repo " + r.repo + ": " + repo.error().message);
  auto base = repo->ResolveCommit(plan->base);
  if (!base) {
    const policy::PlanPos& at = plan->base_pos;
    return BadInput(r.plan_path + ":" + std::to_string(std::max(at.line, 1)) + ":" +
                    std::to_string(std::max(at.column, 1)) + ": run.base: " + base.error().message);
  }
  in.base = *base;
  in.repo_url = r.repo_url;
  if (in.repo_url.empty()) {
    auto url = repo->RemoteUrl("origin");
    if (!url || url->empty()) {
      return BadInput("--repo-url: not given, and the repository has no remote 'origin' to use");
    }
    in.repo_url = *url;
  }

  std::vector<nlohmann::json> docs = ArgoManifests(in);
  if (auto problems = CheckManifests(docs); !problems.empty()) {
    // Names come from the plan; anything else is corral's own bug.
    for (const std::string& p : problems) std::fprintf(stderr, "corral: export: %s\n", p.c_str());
    return BadInput(r.plan_path + ": the exported workflow would not be valid (see above)");
  }
  if (!r.profiles.empty()) {
    for (const ArgoTask& t : in.tasks) {
      fs::path file = fs::path(r.profiles) / LocalhostProfile(t.policy, t.policy_sha256);
      std::error_code ec;
      fs::create_directories(file.parent_path(), ec);
      std::ofstream out(file, std::ios::binary);
      out << OciSeccompProfile(SyscallRules(t.policy));
      if (ec || !out.flush()) return BadInput("--profiles: cannot write " + file.string());
    }
  }
  std::string out;
  if (r.format == "json") {
    for (const auto& d : docs) out += d.dump() + "\n";
  } else {
    out = ToYaml(docs);
  }
  std::fputs(out.c_str(), stdout);
  return std::fflush(stdout) == 0 ? kExitOk : kExitTaskFailed;
}

}  // namespace

std::function<int()> DefineExport(CLI::App* app) {
  auto r = std::make_shared<ExportRequest>();
  app->require_subcommand(1);
  CLI::App* argo = app->add_subcommand("argo", "The plan as an Argo Workflow for Kubernetes");
  argo->add_option("plan", r->plan_path, "The plan file")->required();
  argo->add_option("--repo-url", r->repo_url,
                   "What the pods clone and push to (default: the remote 'origin')");
  argo->add_option("--image", r->image,
                   "The pods' image: sh, git, the agents, corral (default: corral-agent:latest)");
  argo->add_option("--secret", r->secret,
                   "The Kubernetes Secret with the policies' secrets.env keys "
                   "(default: corral-secrets)");
  argo->add_option("--profiles", r->profiles,
                   "Also write each policy's seccomp profile under DIR, at the path the pods "
                   "name (copy DIR to /var/lib/kubelet/seccomp on the nodes)");
  argo->add_option("--format", r->format, "yaml (default) or json: one document per line");
  argo->add_option("--repo", r->repo, "The repository (default: the current directory)");
  return [r] { return ExportArgo(*r); };
}

}  // namespace corral::launcher
