// secrets.inject: the agent holds a placeholder for each such secret, never its value; the
// egress proxy terminates TLS for the secret's hosts with a CA made for the run, which only the
// run's sandboxes trust, and puts the value in place of the placeholder in the headers of the
// requests to those hosts only.
#pragma once

#include <expected>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "launcher/spec_from_policy.h"
#include "policy/policy.h"
#include "sandbox/egress_proxy.h"
#include "sandbox/sandbox.h"
#include "sandbox/tls_intercept.h"

namespace corral::launcher {

class Injector {
 public:
  // For the secrets.inject of `policies` (none: nullptr, nothing to do): the values from `host`
  // (--secrets-file, then corral's environment), a CA for their hosts, and under `dir` (made
  // here) its certificate and a CA bundle: the host's trust store and the CA. Errors name the
  // policy key.
  static std::expected<std::unique_ptr<Injector>, std::string> Create(
      const std::vector<const policy::Policy*>& policies, const HostEnv& host,
      const std::string& dir);

  // What the agent's environment gets for `policy`: the trust variables of common clients
  // pointed at the bundle, and each secret's placeholder as its variable.
  std::map<std::string, std::string> Env(const policy::Policy& policy) const;
  // The sandbox's side: `dir` read-only, the trust variables of common clients pointed at the
  // bundle, and each secret's placeholder as its variable.
  void Apply(const policy::Policy& policy, sandbox::Spec* spec) const;
  // The proxy's side: which hosts' tunnels it opens, and what it swaps in them.
  void Apply(const policy::Policy& policy, sandbox::EgressClient* client) const;

  const std::string& placeholder(const std::string& name) const { return placeholders_.at(name); }

 private:
  Injector() = default;
  std::shared_ptr<sandbox::InterceptCa> ca_;
  std::string dir_, bundle_, ca_file_;
  std::map<std::string, std::string> placeholders_, values_;  // by variable name
};

}  // namespace corral::launcher
