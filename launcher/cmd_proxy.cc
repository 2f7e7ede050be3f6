// corral proxy --policy FILE [--port N]: the egress proxy of a policy's allow-list on its own,
// listening on 127.0.0.1. It is the sidecar of the pods `corral export argo` writes: the agent's
// container shares the pod's loopback and gets HTTP(S)_PROXY pointing here. Every connection,
// allowed or refused, is one JSON line on stdout (the pod's log), as "net" records of a run.
#include <signal.h>

#include <cstdio>
#include <memory>
#include <mutex>

#include "launcher/commands.h"
#include "launcher/egress.h"
#include "launcher/policy_file.h"
#include "sandbox/egress_proxy.h"
#include "sandbox/net.h"

namespace corral::launcher {

std::function<int()> DefineProxy(CLI::App* app) {
  auto policy_path = std::make_shared<std::string>();
  auto port = std::make_shared<uint16_t>(kProxyPort);
  auto name = std::make_shared<std::string>("proxy");
  app->add_option("--policy", *policy_path, "The policy whose [network] egress allow-list to serve")
      ->required();
  app->add_option("--port", *port, "The port on 127.0.0.1 to listen on (default: 3128)");
  app->add_option("--name", *name, "Who the clients are, in the records (default: proxy)");
  return [policy_path, port, name] {
    auto policy = LoadPolicy(*policy_path);
    if (!policy) return BadInput(policy.error());
    if (policy->network.egress != policy::EgressKind::kAllowList) {
      return BadInput("--policy " + *policy_path +
                      ": network.egress is not an allow-list; there is nothing to proxy");
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
    uint64_t id = proxy.Serve(*listener, EgressClientFor(*policy, *name));
    std::fprintf(stderr, "corral: proxy for policy %s on 127.0.0.1:%u\n", policy->name.c_str(),
                 static_cast<unsigned>(*port));
    int sig = 0;
    sigwait(&stop, &sig);
    proxy.Stop(id);
    return kExitOk;
  };
}

}  // namespace corral::launcher
