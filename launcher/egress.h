// The launcher's side of network egress: a policy's allow-list and budgets as the egress proxy
// (sandbox/egress_proxy.h) takes them.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "policy/policy.h"
#include "sandbox/egress_proxy.h"

namespace corral::launcher {

// The port the proxy listens on inside every sandbox with an allow-list (each sandbox has its own
// network namespace, so they never collide).
inline constexpr uint16_t kProxyPort = 3128;

// `name` (a task) under `policy`: host:port must match a pattern of the allow-list; it may resolve
// to an internal address only when the matching pattern names such a host itself ("localhost",
// an IP address), never through a wildcard or another name (no DNS rebinding into the host).
sandbox::EgressClient EgressClientFor(const policy::Policy& policy, const std::string& name);

// The policy's [network] rate budgets, shared by everything the proxy serves.
void ApplyRates(const policy::Policy& policy, sandbox::EgressProxy* proxy);

// Whether the allow-list names a loopback host, which then goes through the proxy (to the host's
// loopback) instead of staying inside the sandbox.
bool NamesLoopback(const policy::Policy& policy);

// The "net" record of the run's events log for one connection or refusal (without "task": the
// caller names the sandbox it came from).
nlohmann::json NetRecord(const sandbox::EgressRecord& r);

}  // namespace corral::launcher
