// corral proxy --policy FILE [--port N]: the egress proxy of a policy's allow-list on its own,
// listening on 127.0.0.1. It is the sidecar of the pods `corral export argo` writes: the agent's
// container shares the pod's loopback and gets HTTP(S)_PROXY pointing here. Every connection,
// allowed or refused, is one JSON line on stdout (the pod's log), as "net" records of a run.
//
// With secrets.inject the proxy holds the values (from its environment or --secrets-file) and
// the pod's agent only placeholders: the proxy makes the CA, writes it and a CA bundle to
// --inject-dir (a volume the agent's container mounts read-only), and last, once it listens,
// `env` there: the variables the agent needs (the placeholders, the trust variables), as shell
// assignments the pod's script sources.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <mutex>

#include "launcher/commands.h"
#include "launcher/egress.h"
#include "launcher/escape.h"
#include "launcher/inject.h"
#include "launcher/policy_file.h"
#include "sandbox/fdio.h"
#include "sandbox/egress_proxy.h"
#include "sandbox/net.h"

namespace corral::launcher {
namespace {

// `dir`/env, whole or not at all: the agent's script waits for it to appear.
std::expected<void, std::string> WriteAgentEnv(const std::string& dir,
                                               const std::map<std::string, std::string>& env) {
  std::string text = "# Written by corral proxy: what the agent's environment needs for "
                     "secrets.inject.\n";
  for (const auto& [name, value] : env) text += "export " + name + "=" + ShellQuote(value) + "\n";
  std::string path = dir + "/env", tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  auto r = fd < 0 ? sandbox::ErrnoError("create") : sandbox::WriteAll(fd, text, "write");
  if (fd >= 0) close(fd);
  if (r && rename(tmp.c_str(), path.c_str()) != 0) r = sandbox::ErrnoError("rename");
  if (!r) {
    unlink(tmp.c_str());
    return std::unexpected("--inject-dir " + dir + ": cannot write env: " + r.error().message);
  }
  return {};
}

}  // namespace

std::function<int()> DefineProxy(CLI::App* app) {
  auto policy_path = std::make_shared<std::string>();
  auto port = std::make_shared<uint16_t>(kProxyPort);
  auto name = std::make_shared<std::string>("proxy");
  auto inject_dir = std::make_shared<std::string>();
  auto secrets_file = std::make_shared<std::string>();
  app->add_option("--policy", *policy_path, "The policy whose [network] egress allow-list to serve")
      ->required();
  app->add_option("--port", *port, "The port on 127.0.0.1 to listen on (default: 3128)");
  app->add_option("--name", *name, "Who the clients are, in the records (default: proxy)");
  app->add_option("--inject-dir", *inject_dir,
                  "For secrets.inject: where to write the CA, a CA bundle and the agent's env");
  app->add_option("--secrets-file", *secrets_file,
                  "NAME=value lines (mode 0600) with the values of secrets.inject");
  return [policy_path, port, name, inject_dir, secrets_file] {
    auto policy = LoadPolicy(*policy_path);
    if (!policy) return BadInput(policy.error());
    if (policy->network.egress != policy::EgressKind::kAllowList) {
      return BadInput("--policy " + *policy_path +
                      ": network.egress is not an allow-list; there is nothing to proxy");
    }
    HostEnv host = HostEnv::FromEnviron();
    if (!secrets_file->empty()) {
      if (auto r = host.LoadSecretsFile(*secrets_file); !r) return BadInput(r.error());
    }
    std::unique_ptr<Injector> injector;
    if (!policy->secrets.inject.empty()) {
      if (inject_dir->empty()) {
        return BadInput("--inject-dir: needed, since " + *policy_path +
                        " has secrets.inject (the agent's side of the CA and the placeholders "
                        "go there)");
      }
      auto made = Injector::Create({&*policy}, host, *inject_dir);
      if (!made) return BadInput(*policy_path + ": " + made.error());
      injector = std::move(*made);
    } else if (!inject_dir->empty()) {
      return BadInput("--inject-dir: " + *policy_path + " has no secrets.inject");
    }
    // Blocked before any thread starts, so only sigwait below sees them.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    auto listener = sandbox::net::ListenLoopback(*port);
    if (!listener) return BadInput("--port " + std::to_string(*port) + ": " + listener.error().message);

    std::mutex out_mu;
    sandbox::EgressProxy proxy([&out_mu](const sandbox::EgressRecord& r) {
      nlohmann::json record = NetRecord(r);
      record["task"] = r.client;
      std::lock_guard lock(out_mu);
      std::fputs((record.dump() + "\n").c_str(), stdout);
      std::fflush(stdout);
    });
    ApplyRates(*policy, &proxy);
    sandbox::EgressClient client = EgressClientFor(*policy, *name);
    if (injector) injector->Apply(*policy, &client);
    uint64_t id = proxy.Serve(*listener, std::move(client));
    if (injector) {
      if (auto r = WriteAgentEnv(*inject_dir, injector->Env(*policy)); !r) {
        proxy.Stop(id);
        return BadInput(r.error());
      }
    }
    std::fprintf(stderr, "corral: proxy for policy %s on 127.0.0.1:%u\n", policy->name.c_str(),
                 static_cast<unsigned>(*port));
    int sig = 0;
    sigwait(&stop, &sig);
    proxy.Stop(id);
    return kExitOk;
  };
}

}  // namespace corral::launcher
