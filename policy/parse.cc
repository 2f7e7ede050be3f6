// The policy parser: corral::policy's TOML adapter (see toml_reader.h).
#include <algorithm>
#include <set>

#include "policy/policy.h"
#include "policy/seccomp_plan.h"
#include "policy/toml_reader.h"

namespace corral::policy {
namespace {

using internal::Failure;
using internal::TypeName;

class Reader : public internal::TomlReader {
 public:
  Reader(std::string_view source, const ParseOptions& options)
      : TomlReader(source), options_(options) {}

  Policy Read(const toml::table& root, std::string_view default_name) const {
    Policy p;
    CheckKeys(root, "",
              {"name", "description", "target", "requires_human_approval", "filesystem", "network",
               "secrets", "env", "tools", "limits", "syscalls"});
    p.name = String(root, "name", "").value_or(std::string(default_name));
    if (p.name.empty() || !std::all_of(p.name.begin(), p.name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
        })) {
      const toml::node* node = root.get("name");
      Fail(node ? node->source() : root.source(), "name",
           "'" + p.name + "' is not a valid name (letters, digits, '_', '-', '.')");
    }
    p.description = String(root, "description", "").value_or("");
    if (auto target = String(root, "target", "")) {
      if (*target == "local") p.target = Target::kLocal;
      else if (*target == "vm") p.target = Target::kVm;
      else if (*target == "tdx") p.target = Target::kTdx;
      else Fail(root.get("target")->source(), "target", "'" + *target + "' is not one of local, vm, tdx");
    }
    p.requires_human_approval = Bool(root, "requires_human_approval", "").value_or(false);
    ReadFilesystem(root, &p);
    ReadNetwork(root, &p);
    ReadSecretsAndEnv(root, &p);
    ReadTools(root, &p);
    ReadLimits(root, &p);
    ReadSyscalls(root, &p);
    return p;
  }

 private:
  void ReadFilesystem(const toml::table& root, Policy* p) const {
    const toml::table* fs = Table(root, "filesystem");
    std::set<std::string> seen;
    if (fs) CheckKeys(*fs, "filesystem", {"read_only", "read_write", "protect"});
    bool has_ro = fs && StringArray(*fs, "read_only", "filesystem", [&](auto& node, auto& v) {
      std::string path = AbsolutePath(node, "filesystem.read_only", v);
      Unique(&seen, node, "filesystem.read_only", path);
      p->filesystem.read_only.push_back(path);
    });
    if (!has_ro) {
      p->filesystem.read_only_is_default = true;
      for (const char* path : kDefaultReadOnly) p->filesystem.read_only.emplace_back(path);
    }
    if (fs) {
      StringArray(*fs, "read_write", "filesystem", [&](auto& node, auto& v) {
        std::string path = AbsolutePath(node, "filesystem.read_write", v);
        if (seen.count(path)) {
          Fail(node.source(), "filesystem.read_write", "'" + path + "' is also in read_only");
        }
        Unique(&seen, node, "filesystem.read_write", path);
        p->filesystem.read_write.push_back(path);
      });
    }
    // Paths are compared without a trailing "/"; the always-protected ones may be repeated.
    auto bare = [](std::string_view v) {
      return std::string(v.ends_with('/') ? v.substr(0, v.size() - 1) : v);
    };
    std::set<std::string> always, protect_seen;
    for (const char* path : kAlwaysProtected) {
      always.insert(bare(path));
      p->filesystem.protect.emplace_back(path);
    }
    if (!fs) return;
    StringArray(*fs, "protect", "filesystem", [&](auto& node, const std::string& v) {
      if (v.empty() || v.front() == '/') {
        Fail(node.source(), "filesystem.protect", "'" + v + "' must be relative to the workspace");
      }
      if (v != ".") CheckComponents(node, "filesystem.protect", v);
      if (always.count(bare(v))) return;
      Unique(&protect_seen, node, "filesystem.protect", bare(v));
      p->filesystem.protect.push_back(v);
    });
  }

  void ReadNetwork(const toml::table& root, Policy* p) const {
    const toml::table* net = Table(root, "network");
    if (!net) return;
    CheckKeys(*net, "network", {"egress", "rate"});
    if (const toml::node* egress = net->get("egress")) {
      if (const auto* s = egress->as_string()) {
        if (s->get() == "none") p->network.egress = EgressKind::kNone;
        else if (s->get() == "host") p->network.egress = EgressKind::kHost;
        else {
          Fail(egress->source(), "network.egress",
               "'" + s->get() + "' is not \"none\", \"host\" or a list of host patterns");
        }
      } else if (egress->is_array()) {
        p->network.egress = EgressKind::kAllowList;
        std::set<std::string> seen;
        StringArray(*net, "egress", "network", [&](auto& node, auto& v) {
          auto pattern = ParseHostPattern(v);
          if (!pattern) Fail(node.source(), "network.egress", pattern.error());
          Unique(&seen, node, "network.egress", v);
          p->network.allow.push_back(*pattern);
        });
        if (p->network.allow.empty()) {
          Fail(egress->source(), "network.egress", "an empty list allows nothing; write \"none\"");
        }
      } else {
        Fail(egress->source(), "network.egress",
             std::string("expected \"none\", \"host\" or an array of host patterns, got ") +
                 TypeName(*egress));
      }
    }
    if (const toml::table* rate = Table(*net, "rate", "network")) {
      for (auto&& [key, value] : *rate) {
        std::string name = "network.rate." + std::string(key.str());
        if (!value.is_string()) {
          Fail(value.source(), name, std::string("expected a string such as \"50/min\", got ") +
                                         TypeName(value));
        }
        RateLimit r;
        r.host = std::string(key.str());
        if (!ParseRate(value.as_string()->get(), &r)) {
          Fail(value.source(), name,
               "'" + value.as_string()->get() + "' is not a rate (examples: 50/min, 10/s, 1000/h)");
        }
        bool allowed = std::any_of(p->network.allow.begin(), p->network.allow.end(),
                                   [&](const HostPattern& h) {
                                     return h.Matches(r.host, h.port.value_or(443));
                                   });
        if (!allowed) {
          Fail(key.source(), name, "'" + r.host + "' is not allowed by network.egress");
        }
        p->network.rate.push_back(r);
      }
    }
  }

  static bool ParseRate(std::string_view text, RateLimit* r) {
    size_t slash = text.find('/');
    if (slash == std::string_view::npos) return false;
    auto count = ParseSize(text.substr(0, slash));  // a plain number
    std::string_view unit = text.substr(slash + 1);
    if (!count || *count == 0 || *count > UINT32_MAX || text.substr(0, slash).find_first_not_of(
                                                           "0123456789") != std::string_view::npos) {
      return false;
    }
    r->requests = static_cast<uint32_t>(*count);
    if (unit == "s" || unit == "sec") r->per = std::chrono::seconds(1);
    else if (unit == "m" || unit == "min") r->per = std::chrono::seconds(60);
    else if (unit == "h" || unit == "hour") r->per = std::chrono::seconds(3600);
    else return false;
    return true;
  }

  void ReadSecretsAndEnv(const toml::table& root, Policy* p) const {
    std::set<std::string> names;
    if (const toml::table* secrets = Table(root, "secrets")) {
      CheckKeys(*secrets, "secrets", {"env", "inject"});
      StringArray(*secrets, "env", "secrets", [&](auto& node, auto& v) {
        Unique(&names, node, "secrets.env", EnvName(node, "secrets.env", v));
        p->secrets.env.push_back(v);
      });
      if (const toml::table* inject = Table(*secrets, "inject", "secrets")) {
        for (auto&& [key, value] : *inject) {
          std::string name = "secrets.inject." + std::string(key.str());
          EnvName(value, name, std::string(key.str()));
          if (names.count(std::string(key.str()))) {
            Fail(key.source(), name, "'" + std::string(key.str()) + "' is also in secrets.env");
          }
          std::vector<std::string> hosts;
          if (!value.is_array()) {
            Fail(value.source(), name, std::string("expected an array of hosts, got ") + TypeName(value));
          }
          for (const toml::node& h : *value.as_array()) {
            if (!h.is_string()) Fail(h.source(), name, "expected an array of host names");
            auto pattern = ParseHostPattern(h.as_string()->get());
            if (!pattern) Fail(h.source(), name, pattern.error());
            hosts.push_back(h.as_string()->get());
          }
          if (hosts.empty()) Fail(value.source(), name, "names no host; the secret would never be sent");
          p->secrets.inject[std::string(key.str())] = hosts;
        }
      }
    }
    const toml::table* env = Table(root, "env");
    if (env) CheckKeys(*env, "env", {"pass", "set"});
    std::set<std::string> pass_seen;
    bool has_pass = env && StringArray(*env, "pass", "env", [&](auto& node, auto& v) {
      Unique(&pass_seen, node, "env.pass", EnvName(node, "env.pass", v));
      p->env.pass.push_back(v);
    });
    if (!has_pass) {
      for (const char* name : kDefaultEnvPass) p->env.pass.emplace_back(name);
    }
    if (const toml::table* set = env ? Table(*env, "set", "env") : nullptr) {
      for (auto&& [key, value] : *set) {
        std::string name = "env.set." + std::string(key.str());
        EnvName(value, name, std::string(key.str()));
        if (!value.is_string()) {
          Fail(value.source(), name, std::string("expected a string, got ") + TypeName(value));
        }
        if (names.count(std::string(key.str()))) {
          Fail(key.source(), name, "'" + std::string(key.str()) + "' is also a secret");
        }
        p->env.set[std::string(key.str())] = value.as_string()->get();
      }
    }
  }

  void ReadTools(const toml::table& root, Policy* p) const {
    const toml::table* tools = Table(root, "tools");
    if (!tools) return;
    CheckKeys(*tools, "tools", {"allow"});
    std::vector<std::string> allow;
    std::set<std::string> seen;
    if (!StringArray(*tools, "allow", "tools", [&](auto& node, const std::string& v) {
          if (v.empty()) Fail(node.source(), "tools.allow", "empty program name");
          if (v.front() == '/') {
            AbsolutePath(node, "tools.allow", v);
          } else if (v.find('/') != std::string::npos) {
            Fail(node.source(), "tools.allow",
                 "'" + v + "' must be a program name or an absolute path");
          }
          Unique(&seen, node, "tools.allow", v);
          allow.push_back(v);
        })) {
      return;
    }
    p->tools.allow = std::move(allow);
  }

  void ReadLimits(const toml::table& root, Policy* p) const {
    const toml::table* limits = Table(root, "limits");
    if (!limits) return;
    CheckKeys(*limits, "limits",
              {"wall_time", "cpu_time", "memory", "pids", "file_size", "open_files"});
    p->limits.wall_time = Duration(*limits, "wall_time", "limits");
    p->limits.cpu_time = Duration(*limits, "cpu_time", "limits");
    p->limits.memory = Size(*limits, "memory");
    p->limits.file_size = Size(*limits, "file_size");
    p->limits.pids = Count(*limits, "pids");
    p->limits.open_files = Count(*limits, "open_files");
    if (p->limits.memory && *p->limits.memory < (1u << 20)) {
      Fail(limits->get("memory")->source(), "limits.memory", "must be at least 1MiB");
    }
    if (p->limits.open_files && *p->limits.open_files < 8) {
      Fail(limits->get("open_files")->source(), "limits.open_files", "must be at least 8");
    }
  }

  void ReadSyscalls(const toml::table& root, Policy* p) const {
    const toml::table* sys = Table(root, "syscalls");
    if (!sys) return;
    CheckKeys(*sys, "syscalls", {"deny", "allow"});
    std::set<std::string> seen;
    auto read = [&](std::string_view key, std::vector<SyscallName>* out) {
      std::string name = "syscalls." + std::string(key);
      StringArray(*sys, key, "syscalls", [&](auto& node, const std::string& v) {
        if (options_.known_syscall && !options_.known_syscall(v)) {
          Fail(node.source(), name, "unknown syscall '" + v + "'");
        }
        if (seen.count(v)) Fail(node.source(), name, "'" + v + "' is listed twice");
        seen.insert(v);
        out->push_back(SyscallName{v, Pos(node)});
      });
    };
    read("deny", &p->syscalls.deny);
    read("allow", &p->syscalls.allow);
    for (const SyscallName& s : p->syscalls.allow) {
      if (!BaselineDenies(s.name)) {
        Fail(s.pos, "syscalls.allow",
             "'" + s.name + "' is not denied by the baseline, so allowing it changes nothing");
      }
    }
  }

  const ParseOptions& options_;
};

std::string Stem(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash != std::string_view::npos) path.remove_prefix(slash + 1);
  size_t dot = path.rfind('.');
  if (dot != std::string_view::npos && dot > 0) path = path.substr(0, dot);
  return std::string(path);
}

}  // namespace

std::expected<Policy, Error> Parse(std::string_view text, std::string_view source_name,
                                   const ParseOptions& options) {
  return internal::ParseDocument<Policy>(text, source_name, [&](const toml::table& root) {
    return Reader(source_name, options).Read(root, Stem(source_name));
  });
}

}  // namespace corral::policy
