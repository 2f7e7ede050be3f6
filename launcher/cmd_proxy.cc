// corral proxy --policy FILE [--port N]: the egress proxy of a policy's allow-list on its own,
// listening on 127.0.0.1. It is the sidecar of the pods `corral export argo` writes: the agent's
// container shares the pod's loopback and gets HTTP(S)_PROXY pointing here. Every connection,
// allowed or refused, is one JSON line on stdout (the pod's log), as "net" records of a run.
//
// --agent-dir DIR (a volume the agent's container mounts read-only) is how the agent's side
// learns that the proxy is ready: once it listens, the proxy writes `env` there, the shell
// assignments the agent needs, which the pod's script waits for and sources; a failure is
// written there as `error` instead, which the script shows and stops at. With secrets.inject
// the proxy holds the values (from its environment or --secrets-file) and the agent only
// placeholders: the proxy makes the CA and writes it and a CA bundle there too, and `env` holds
// the placeholders and the trust variables.
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
#include "sandbox/caps.h"
#include "sandbox/fdio.h"
#include "sandbox/egress_proxy.h"
#include "sandbox/net.h"

namespace corral::launcher {
namespace {

struct ProxyOptions {
  std::string policy;
  uint16_t port = kProxyPort;
  std::string name = "proxy";
  std::string agent_dir;
  std::string secrets_file;
};

// `dir`/`file`, whole or not at all.
std::expected<void, std::string> WriteWhole(const std::string& dir, const std::string& file,
                                            const std::string& text) {
  if (auto r = sandbox::ReplaceFile(dir + "/" + file, text); !r) {
    return std::unexpected("--agent-dir " + dir + ": cannot write " + file + ": " +
                           r.error().message);
  }
  return {};
}

// The agent's environment from the proxy (for secrets.inject), as shell assignments.
std::string AgentEnv(const std::map<std::string, std::string>& env) {
  std::string text = "# Written by corral proxy once it listened: the agent's environment.\n";
  for (const auto& [name, value] : env) text += "export " + name + "=" + ShellQuote(value) + "\n";
  return text;
}

int Serve(const ProxyOptions& o) {
  // Bad input, said on stderr and, for the agent's script that waits for `env`, as `error` in
  // --agent-dir.
  auto fail = [&o](const std::string& message) {
    if (!o.agent_dir.empty()) {
      (void)WriteWhole(o.agent_dir, "error", "corral proxy: " + message + "\n");
    }
    return BadInput(message);
  };
  if (!o.agent_dir.empty()) {
    // A restarted sidecar's: what the last one wrote says nothing of this one.
    unlink((o.agent_dir + "/env").c_str());
    unlink((o.agent_dir + "/error").c_str());
  }
  auto policy = LoadPolicy(o.policy);
  if (!policy) return fail(policy.error());
  if (policy->network.egress != policy::EgressKind::kAllowList) {
    return fail("--policy " + o.policy +
                ": network.egress is not an allow-list; there is nothing to proxy");
  }
  std::unique_ptr<Injector> injector;
  if (!policy->secrets.inject.empty()) {
    if (o.agent_dir.empty()) {
      return fail("--agent-dir: needed, since " + o.policy +
                  " has secrets.inject (the agent's side of the CA and the placeholders go there)");
    }
    // The values stay in this process: no process of the same user may read its environment
    // or memory (the pod's agent runs as another user too).
    if (auto r = sandbox::caps::SetUndumpable(); !r) return fail(r.error().message);
    HostEnv host = HostEnv::FromEnviron();
    if (!o.secrets_file.empty()) {
      if (auto r = host.LoadSecretsFile(o.secrets_file); !r) return fail(r.error());
    }
    auto made = Injector::Create({&*policy}, host, o.agent_dir);
    if (!made) return fail(o.policy + ": " + made.error());
    injector = std::move(*made);
  }
  // Blocked before any thread starts, so only sigwait below sees them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto listener = sandbox::net::ListenLoopback(o.port);
  if (!listener) return fail("--port " + std::to_string(o.port) + ": " + listener.error().message);

  std::mutex out_mu;
  sandbox::EgressProxy proxy([&out_mu](const sandbox::EgressRecord& r) {
    nlohmann::json record = NetRecord(r);
    record["task"] = r.client;
    std::lock_guard lock(out_mu);
    std::fputs((record.dump() + "\n").c_str(), stdout);
    std::fflush(stdout);
  });
  ApplyRates(*policy, &proxy);
  sandbox::EgressClient client = EgressClientFor(*policy, o.name);
  if (injector) injector->Apply(*policy, &client);
  uint64_t id = proxy.Serve(*listener, std::move(client));
  // Last, once it listens: the agent's script starts the agent when `env` appears.
  if (!o.agent_dir.empty()) {
    std::map<std::string, std::string> env;
    if (injector) env = injector->Env(*policy);
    if (auto r = WriteWhole(o.agent_dir, "env", AgentEnv(env)); !r) {
      proxy.Stop(id);
      return fail(r.error());
    }
  }
  std::fprintf(stderr, "corral: proxy for policy %s on 127.0.0.1:%u\n", policy->name.c_str(),
               static_cast<unsigned>(o.port));
  int sig = 0;
  sigwait(&stop, &sig);
  proxy.Stop(id);
  return kExitOk;
}

}  // namespace

std::function<int()> DefineProxy(CLI::App* app) {
  auto o = std::make_shared<ProxyOptions>();
  app->add_option("--policy", o->policy, "The policy whose [network] egress allow-list to serve")
      ->required();
  app->add_option("--port", o->port, "The port on 127.0.0.1 to listen on (default: 3128)");
  app->add_option("--name", o->name, "Who the clients are, in the records (default: proxy)");
  app->add_option("--agent-dir", o->agent_dir,
                  "Where to write the agent's env once listening (and for secrets.inject the CA)");
  app->add_option("--secrets-file", o->secrets_file,
                  "NAME=value lines (mode 0600) with the values of secrets.inject");
  return [o] { return Serve(*o); };
}

}  // namespace corral::launcher
