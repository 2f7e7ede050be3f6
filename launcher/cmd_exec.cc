// corral exec [--policy FILE] [--cwd DIR] [--result FILE] [--observe-exec] [-v] -- CMD ARGS...
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "launcher/commands.h"
#include "launcher/egress.h"
#include "launcher/inject.h"
#include "launcher/policy_file.h"
#include "launcher/spec_from_policy.h"
#include "launcher/vm.h"
#include "sandbox/egress_proxy.h"
#include "sandbox/sandbox.h"

namespace corral::launcher {
namespace {

struct ExecOptions {
  std::string policy;
  std::string cwd;
  std::string result_file;
  bool verbose = false;
  bool observe_exec = false;
  std::string secrets_file;
  std::vector<std::string> command;
};

int SetupFailed(const std::string& message) {
  std::fprintf(stderr, "corral: %s\n", message.c_str());
  return kExitSandboxSetup;
}

int RunExec(const ExecOptions& o) {
  // The helper starts first: it execs and starts up while this process reads the policy and
  // builds the Spec. One that cannot start is started again below, which reports why.
  sandbox::RunOptions run_options;
  auto helper_path = HelperPath();
  std::optional<sandbox::Helper> early;
  if (helper_path) {
    run_options.helper_path = *helper_path;
    if (auto started = sandbox::Helper::Start(run_options)) early.emplace(std::move(*started));
  }
  auto policy = o.policy.empty() ? DefaultPolicy() : LoadPolicy(o.policy);
  if (!policy) {
    std::fprintf(stderr, "corral: %s\n", policy.error().c_str());
    return kExitBadInput;
  }
  char buf[PATH_MAX];
  std::string dir = o.cwd.empty() ? "." : o.cwd;
  if (!realpath(dir.c_str(), buf)) {
    std::fprintf(stderr, "corral: --cwd %s: %s\n", dir.c_str(), std::strerror(errno));
    return kExitBadInput;
  }
  HostEnv host = HostEnv::FromEnviron();
  if (!o.secrets_file.empty()) {
    if (auto r = host.LoadSecretsFile(o.secrets_file); !r) {
      std::fprintf(stderr, "corral: %s\n", r.error().c_str());
      return kExitBadInput;
    }
  }
  auto spec = SpecFromPolicy(*policy, buf, o.command, host);
  if (!spec) {
    // The policy is valid but this host cannot honour it: say which file and key.
    return SetupFailed((o.policy.empty() ? "default.toml (built in)" : o.policy) + ": " +
                       spec.error());
  }
  spec->observe_exec = o.observe_exec;
  // secrets.inject: a CA for this one sandbox, in a folder that goes when it ends.
  std::string tls_dir;
  std::unique_ptr<Injector> injector;
  if (!policy->secrets.inject.empty()) {
    char tmpl[] = "/tmp/corral-tls-XXXXXX";
    if (!mkdtemp(tmpl)) return SetupFailed(std::string("mkdtemp: ") + std::strerror(errno));
    tls_dir = tmpl;
    auto made = Injector::Create({&*policy}, host, tls_dir);
    if (!made) {
      std::filesystem::remove_all(tls_dir);
      return SetupFailed((o.policy.empty() ? "default.toml (built in)" : o.policy) + ": " +
                         made.error());
    }
    injector = std::move(*made);
    injector->Apply(*policy, &*spec);
  }
  struct RemoveDir {
    const std::string& dir;
    ~RemoveDir() {
      std::error_code ec;
      if (!dir.empty()) std::filesystem::remove_all(dir, ec);
    }
  } remove_tls{tls_dir};
  if (!helper_path) return SetupFailed(helper_path.error());
  // With an allow-list, the proxy serves this one sandbox; refusals are said on stderr.
  std::optional<sandbox::EgressProxy> proxy;
  uint64_t served = 0;
  if (spec->proxy_port != 0) {
    proxy.emplace([verbose = o.verbose](const sandbox::EgressRecord& r) {
      if (r.allowed && !verbose) return;
      std::string line = r.method + " " + r.host + ":" + std::to_string(r.port) + " ";
      if (r.allowed) {
        line += "allowed (" + std::to_string(r.bytes_up) + " bytes up, " +
                std::to_string(r.bytes_down) + " down";
        if (r.status) line += ", HTTP " + std::to_string(r.status);
        if (r.waited_ms) line += ", held " + std::to_string(r.waited_ms) + " ms by a rate budget";
        if (!r.reason.empty()) line += "; " + r.reason;
        line += ")";
      } else {
        line += "refused: " + r.reason;
      }
      std::fprintf(stderr, "corral: egress: %s\n", line.c_str());
    });
    ApplyRates(*policy, &*proxy);
    run_options.on_proxy_listener = [&](int fd) {
      sandbox::EgressClient client = EgressClientFor(*policy, "exec");
      if (injector) injector->Apply(*policy, &client);
      served = proxy->Serve(fd, std::move(client));
    };
  }
  sandbox::Expected<sandbox::Result> result;
  if (policy->target == policy::Target::kVm) {
    early.reset();
    result = vm::Run(*spec, run_options);
  } else if (early) {
    result = early->Run(*spec, run_options.on_proxy_listener, run_options.forward_signals);
  } else {
    result = sandbox::Run(*spec, run_options);
  }
  if (proxy && served) proxy->Stop(served);
  if (!result) return SetupFailed(result.error().message);
  const sandbox::Result& r = *result;
  if (!o.result_file.empty()) {
    std::ofstream out(o.result_file);
    out << sandbox::ToJson(r) << "\n";
    out.close();
    if (!out) std::fprintf(stderr, "corral: --result %s: cannot write\n", o.result_file.c_str());
  }
  bool abnormal = r.timed_out || r.oom_killed || r.cpu_limit_hit || r.exec_errno != 0 ||
                  !r.exited || (!r.denials.empty() && r.exit_code != 0);
  if (abnormal || o.verbose) {
    std::fprintf(stderr, "corral: %s: %s\n", o.command[0].c_str(), r.Describe().c_str());
  }
  if (o.verbose) {
    for (const std::string& note : r.notes)
      std::fprintf(stderr, "corral: note: %s\n", note.c_str());
    for (const sandbox::ExecRecord& e : r.execs) {
      std::string argv;
      for (const std::string& a : e.argv) argv += " " + a;
      std::string end = e.end == "exited"     ? ", exit " + std::to_string(e.exit_code)
                        : e.end == "signaled" ? ", signal " + std::to_string(e.signal)
                        : e.end == "exec"     ? ", exec again"
                                              : "";
      std::fprintf(stderr, "corral: exec: pid %d (parent %d%s) in %s:%s\n", e.pid, e.ppid,
                   end.c_str(), e.cwd.c_str(), argv.c_str());
    }
  }
  return r.ExitStatus();
}

}  // namespace

std::function<int()> DefineExec(CLI::App* app) {
  auto o = std::make_shared<ExecOptions>();
  app->add_option("--policy", o->policy,
                  "Policy file (default: the built-in policies/default.toml)");
  app->add_option("--cwd", o->cwd, "Workspace directory, read-write inside (default: current)");
  app->add_option("--result", o->result_file, "Write the structured result as JSON to this file");
  app->add_option("--secrets-file", o->secrets_file,
                  "NAME=value lines for the policy's secrets.env (mode 0600, yours)");
  app->add_flag("--observe-exec", o->observe_exec,
                "Record every program the command executes (in --result, and with -v on stderr)");
  app->add_flag("-v,--verbose", o->verbose,
                "Say how the command ended and how limits were enforced");
  app->add_option("command", o->command, "The command and its arguments, after --")->required();
  return [o] { return RunExec(*o); };
}

}  // namespace corral::launcher
