#include "launcher/egress.h"

#include <arpa/inet.h>

namespace corral::launcher {
namespace {

bool IsAddress(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

sandbox::EgressClient EgressClientFor(const policy::Policy& policy, const std::string& name) {
  sandbox::EgressClient client;
  client.name = name;
  client.policy = policy.name;
  client.check = [allow = policy.network.allow](const std::string& host,
                                                uint16_t port) -> std::optional<bool> {
    for (const policy::HostPattern& p : allow) {
      if (p.Matches(host, port)) return !p.wildcard && (p.host == "localhost" || IsAddress(p.host));
    }
    return std::nullopt;
  };
  return client;
}

void ApplyRates(const policy::Policy& policy, sandbox::EgressProxy* proxy) {
  for (const policy::RateLimit& r : policy.network.rate) {
    proxy->SetRate(r.host, r.requests,
                   std::chrono::duration_cast<std::chrono::milliseconds>(r.per));
  }
}

bool NamesLoopback(const policy::Policy& policy) {
  for (const policy::HostPattern& p : policy.network.allow) {
    if (p.host == "localhost" || p.host == "127.0.0.1" || p.host == "::1") return true;
  }
  return false;
}

nlohmann::json NetRecord(const sandbox::EgressRecord& r) {
  nlohmann::json record = {{"type", "net"},
                           {"method", r.method},
                           {"host", r.host},
                           {"port", r.port},
                           {"decision", r.allowed ? "allowed" : "refused"},
                           {"bytes_up", r.bytes_up},
                           {"bytes_down", r.bytes_down},
                           {"ms", r.ms}};
  if (!r.reason.empty()) record["reason"] = r.reason;
  if (!r.address.empty()) record["address"] = r.address;
  if (r.status) record["status"] = r.status;
  if (r.waited_ms) record["waited_ms"] = r.waited_ms;
  return record;
}

}  // namespace corral::launcher
