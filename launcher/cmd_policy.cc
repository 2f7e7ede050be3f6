// corral policy check FILE... | corral policy export FILE --format oci-seccomp|bpf
#include <cstdio>
#include <memory>

#include "launcher/commands.h"
#include "launcher/oci_seccomp.h"
#include "launcher/policy_file.h"
#include "launcher/spec_from_policy.h"
#include "sandbox/sandbox.h"

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

int Export(const std::string& file, const std::string& format) {
  auto p = LoadPolicy(file);
  if (!p) {
    std::fprintf(stderr, "corral: %s\n", p.error().c_str());
    return kExitBadInput;
  }
  if (format == "oci-seccomp") {
    std::fputs(OciSeccompProfile(SyscallRules(*p)).c_str(), stdout);
    return kExitOk;
  }
  if (format != "bpf") {
    std::fprintf(stderr, "corral: --format: '%s' is not supported (supported: oci-seccomp, bpf)\n",
                 format.c_str());
    return kExitBadInput;
  }
  auto bpf = sandbox::CompileBpf(SyscallRules(*p));
  if (!bpf) {
    std::fprintf(stderr, "corral: %s\n", bpf.error().message.c_str());
    return kExitTaskFailed;
  }
  std::fwrite(bpf->data(), 1, bpf->size(), stdout);
  return kExitOk;
}

}  // namespace

std::function<int()> DefinePolicy(CLI::App* app) {
  auto files = std::make_shared<std::vector<std::string>>();
  auto format = std::make_shared<std::string>();
  app->require_subcommand(1);
  CLI::App* check = app->add_subcommand("check", "Validate policy files and summarize each");
  check->add_option("files", *files, "Policy files")->required();
  CLI::App* exp = app->add_subcommand(
      "export", "Write a policy's seccomp rules (--format oci-seccomp or bpf) to stdout");
  exp->add_option("file", *files, "Policy file")->required()->expected(1);
  exp->add_option("--format", *format,
                  "oci-seccomp: an OCI/Docker/Kubernetes seccomp profile (JSON); bpf: the raw BPF "
                  "program, as bwrap --seccomp reads it")
      ->required();
  return [files, format, check] {
    return check->parsed() ? Check(*files) : Export(files->front(), *format);
  };
}

}  // namespace corral::launcher
