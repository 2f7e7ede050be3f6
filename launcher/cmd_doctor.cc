// corral doctor [--json]: what this host gives corral, and what to do about what it does not.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "launcher/commands.h"
#include "launcher/host_vm.h"
#include "launcher/spec_from_policy.h"
#include "launcher/vm.h"
#include "sandbox/host_probe.h"

namespace corral::launcher {

std::function<int()> DefineDoctor(CLI::App* app) {
  auto json = std::make_shared<bool>(false);
  app->add_flag("--json", *json, "One JSON object instead of text");
  return [json] {
    auto helper = HelperPath();
    if (!helper) return BadInput(helper.error());
    auto checks = sandbox::RunHostProbe(*helper);
    if (!checks) return BadInput(checks.error().message);
    for (auto& c : ProbeVirtualization()) checks->push_back(std::move(c));
    checks->push_back(ProbeQemu());
    checks->push_back(vm::Probe());
    std::string firmware, missing;
    for (const std::string& m : MissingForTdx("/", "", &firmware)) {
      missing += (missing.empty() ? "" : "; ") + m;
    }
    checks->push_back({"launch a TDX trust domain (target tdx)", missing.empty(), false,
                       missing.empty() ? "TDX host, /dev/kvm, " + firmware + ", QEMU with tdx-guest"
                                       : "missing: " + missing,
                       missing.empty() ? "" : "see each missing piece above"});
    bool ready = true;
    for (const auto& c : *checks) ready &= c.ok || !c.essential;
    if (*json) {
      nlohmann::json out = {{"ready", ready},
                            {"uid", geteuid()},
                            {"checks", nlohmann::json::parse(sandbox::ToJson(*checks))}};
      std::printf("%s\n", out.dump(2).c_str());
    } else {
      std::printf("corral doctor: this host, for corral running as uid %u\n", geteuid());
      for (const auto& c : *checks) {
        std::printf("  %-4s %s: %s\n", c.ok ? "ok" : (c.essential ? "FAIL" : "no"), c.name.c_str(),
                    c.detail.c_str());
        if (!c.fix.empty()) std::printf("       -> %s\n", c.fix.c_str());
      }
      std::printf("%s\n", ready ? "corral exec and corral run work here."
                                : "corral cannot sandbox commands here until the FAIL lines are "
                                  "fixed.");
    }
    return ready ? kExitOk : kExitTaskFailed;
  };
}

}  // namespace corral::launcher
