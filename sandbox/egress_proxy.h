// The egress proxy: the only way out of a sandbox whose policy has an egress allow-list.
//
// The sandbox has no route out. Inside its network namespace a socket listens on 127.0.0.1 (see
// Spec::proxy_port); corral gets that socket and this proxy, running in corral's process on the
// host's network, accepts the sandbox's connections on it. It serves HTTP CONNECT (tunnels, for
// https) and plain absolute-form HTTP requests, checks every target against the sandbox's
// allow-list, resolves names itself and refuses loopback, private and link-local addresses
// unless the policy names such a host, holds requests back to stay inside per-host budgets
// shared by all sandboxes, and reports every connection, allowed or refused.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>  // for egress_proxy.cc: Boost 1.74's Asio uses std::exchange without it
#include <vector>

#include "sandbox/tls_intercept.h"

namespace corral::sandbox {

// One connection through the proxy, or one refusal.
struct EgressRecord {
  std::string client;  // the sandbox it came from (EgressClient::name)
  std::string method;  // CONNECT, GET, POST, ...
  std::string host;
  uint16_t port = 0;
  bool allowed = false;
  std::string reason;       // why it was refused or failed
  std::string address;      // the address connected to
  uint64_t bytes_up = 0;    // from the sandbox to the server
  uint64_t bytes_down = 0;  // from the server to the sandbox
  int64_t ms = 0;           // from accept to close
  int64_t waited_ms = 0;    // held back by a rate budget
  int status = 0;           // the HTTP status of a plain-HTTP response (0 for tunnels)
};

// A sandbox as the proxy sees it.
struct EgressClient {
  std::string name;    // who it is in records (a task id)
  std::string policy;  // named in refusals
  // Whether host:port may be reached: nullopt when not; otherwise whether it may resolve to a
  // loopback, private or link-local address (when the policy names such a host itself).
  std::function<std::optional<bool>(const std::string& host, uint16_t port)> check;
  // secrets.inject: for a host whose tunnels the proxy opens itself, the (placeholder, value)
  // pairs to swap in the headers of the requests inside; empty for the other hosts, whose
  // tunnels pass untouched. The proxy shows the sandbox a certificate `ca` signed, and checks
  // the server's against the host's trust store.
  std::function<std::vector<std::pair<std::string, std::string>>(const std::string& host,
                                                                 uint16_t port)>
      inject;
  std::shared_ptr<InterceptCa> ca;
};

class EgressProxy {
 public:
  using Sink = std::function<void(const EgressRecord&)>;
  // Starts the proxy's thread. `sink` is called on it for every connection when it ends.
  explicit EgressProxy(Sink sink);
  ~EgressProxy();
  EgressProxy(const EgressProxy&) = delete;
  EgressProxy& operator=(const EgressProxy&) = delete;

  // A budget of `requests` per `per` for `host`, shared by every client: requests beyond it wait.
  void SetRate(const std::string& host, uint32_t requests, std::chrono::milliseconds per);

  // Serves connections accepted on `listener` (which it takes over) for `client`. Thread-safe.
  uint64_t Serve(int listener, EgressClient client);
  // Stops serving: closes the listener and the client's connections, and returns once their
  // records went to the sink. Thread-safe.
  void Stop(uint64_t id);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace corral::sandbox
