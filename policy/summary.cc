#include <string>

#include "policy/policy.h"

namespace corral::policy {
namespace {

std::string JoinList(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

}  // namespace

std::string Summary(const Policy& p) {
  std::string out = p.name + ": workspace rw";
  if (!p.filesystem.read_only.empty()) out += "; ro " + JoinList(p.filesystem.read_only);
  if (!p.filesystem.read_write.empty()) out += "; rw " + JoinList(p.filesystem.read_write);
  out += "; protect " + JoinList(p.filesystem.protect);
  switch (p.network.egress) {
    case EgressKind::kNone: out += "; network none"; break;
    case EgressKind::kHost: out += "; network HOST (unrestricted)"; break;
    case EgressKind::kAllowList: {
      std::vector<std::string> hosts;
      hosts.reserve(p.network.allow.size());
      for (const HostPattern& h : p.network.allow) hosts.push_back(h.text);
      out += "; network " + JoinList(hosts);
      break;
    }
  }
  if (!p.secrets.env.empty()) out += "; secrets " + JoinList(p.secrets.env);
  if (!p.secrets.inject.empty()) {
    std::vector<std::string> names;
    names.reserve(p.secrets.inject.size());
    for (const auto& [name, hosts] : p.secrets.inject) names.push_back(name);
    out += "; injected " + JoinList(names);
  }
  out += p.tools.allow ? "; tools " + JoinList(*p.tools.allow) : "; tools any";
  const Limits& l = p.limits;
  std::string limits;
  auto add = [&](const std::string& s) { limits += (limits.empty() ? "" : ",") + s; };
  if (l.wall_time) add("wall " + FormatDuration(*l.wall_time));
  if (l.cpu_time) add("cpu " + FormatDuration(*l.cpu_time));
  if (l.memory) add("mem " + FormatSize(*l.memory));
  if (l.pids) add("pids " + std::to_string(*l.pids));
  if (l.file_size) add("fsize " + FormatSize(*l.file_size));
  if (l.open_files) add("nofile " + std::to_string(*l.open_files));
  if (!limits.empty()) out += "; limits " + limits;
  if (!p.syscalls.deny.empty() || !p.syscalls.allow.empty()) {
    out += "; syscalls +" + std::to_string(p.syscalls.deny.size()) + " denied, " +
           std::to_string(p.syscalls.allow.size()) + " allowed";
  }
  if (p.target != Target::kLocal) out += p.target == Target::kVm ? "; target vm" : "; target tdx";
  if (p.requires_human_approval) out += "; needs approval";
  return out;
}

}  // namespace corral::policy
