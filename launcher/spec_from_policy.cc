#include "launcher/spec_from_policy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "launcher/crypto.h"
#include "launcher/egress.h"
#include "launcher/host_vm.h"
#include "launcher/vm.h"
#include "policy/seccomp_plan.h"

extern char** environ;

namespace corral::launcher {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  return realpath(path.c_str(), buf) ? std::string(buf) : path;
}

}  // namespace

std::vector<sandbox::SyscallRule> SyscallRules(const policy::Policy& policy) {
  std::vector<sandbox::SyscallRule> out;
  for (const policy::SyscallRule& r : policy::CompileSeccomp(policy)) {
    sandbox::SyscallRule s;
    s.name = r.name;
    s.error = r.action == policy::SyscallAction::kNoSys ? sandbox::DenyErrno::kEnosys
                                                        : sandbox::DenyErrno::kEperm;
    for (const policy::ArgMatch& a : r.args) {
      s.args.push_back({a.index,
                        a.op == policy::ArgOp::kNe ? sandbox::ArgCompare::Op::kNe
                                                   : sandbox::ArgCompare::Op::kMaskedEq,
                        a.mask, a.value});
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::expected<void, std::string> HostEnv::LoadSecretsFile(const std::string& path) {
  const std::string flag = "--secrets-file " + path;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::unexpected(flag + ": " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
      (st.st_mode & 077) != 0) {
    close(fd);
    return std::unexpected(flag +
                           ": must be a regular file of yours that only you can read (chmod 600)");
  }
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) text.append(buf, static_cast<size_t>(n));
  close(fd);
  int line_no = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.front() == '#') continue;
    size_t eq = line.find('=');
    std::string name = line.substr(0, eq);
    bool valid = eq != std::string::npos && !name.empty() &&
                 std::all_of(name.begin(), name.end(), [](char c) {
                   return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
                 });
    // The message never quotes the line: it may hold a value.
    if (!valid) {
      return std::unexpected(path + ":" + std::to_string(line_no) +
                             ": not NAME=value (--secrets-file)");
    }
    secrets[name] = line.substr(eq + 1);
  }
  return {};
}

std::vector<std::pair<std::string, std::string>> HostEnv::SecretsOf(
    const policy::Policy& policy) const {
  std::vector<std::pair<std::string, std::string>> out;
  std::vector<std::string> names = policy.secrets.env;
  for (const auto& [name, hosts] : policy.secrets.inject) names.push_back(name);
  for (const std::string& name : names) {
    if (auto it = secrets.find(name); it != secrets.end()) {
      out.emplace_back(name, it->second);
    } else if (auto v = vars.find(name); v != vars.end()) {
      out.emplace_back(name, v->second);
    }
  }
  return out;
}

HostEnv HostEnv::FromEnviron() {
  HostEnv env;
  for (char** e = environ; e && *e; ++e) {
    std::string entry(*e);
    size_t eq = entry.find('=');
    if (eq != std::string::npos) env.vars[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  return env;
}

std::expected<sandbox::Spec, std::string> SpecFromPolicy(const policy::Policy& policy,
                                                         const std::string& workspace,
                                                         const std::vector<std::string>& argv,
                                                         const HostEnv& host) {
  if (policy.target == policy::Target::kTdx) {
    // Say exactly what this host lacks for a trust domain before anything else.
    std::string firmware, missing;
    for (const std::string& m : MissingForTdx("/", "", &firmware)) {
      missing += (missing.empty() ? "" : "; ") + m;
    }
    if (!missing.empty()) {
      return std::unexpected("target: \"tdx\": this host cannot launch a trust domain; missing: " +
                             missing);
    }
    return std::unexpected(
        "target: \"tdx\": this host can launch trust domains, but this version of corral does "
        "not start tasks in VMs yet (corral export argo runs them on Kata TDX nodes)");
  }
  sandbox::Spec spec;
  spec.argv = argv;
  spec.workspace = workspace;
  spec.cwd = workspace;
  spec.share_network = policy.network.egress == policy::EgressKind::kHost;

  for (const std::string& path : policy.filesystem.read_only) {
    if (!Exists(path)) {
      if (policy.filesystem.read_only_is_default) continue;
      return std::unexpected("filesystem.read_only: " + path + " does not exist on this host");
    }
    if (path == workspace) continue;
    spec.binds.emplace_back(path, false);
  }
  for (const std::string& path : policy.filesystem.read_write) {
    if (!Exists(path)) {
      return std::unexpected("filesystem.read_write: " + path + " does not exist on this host");
    }
    if (path == workspace) continue;
    spec.binds.emplace_back(path, true);
  }
  for (const std::string& p : policy.filesystem.protect) {
    if (p == "." || p == "./") {
      spec.workspace_read_only = true;
      continue;
    }
    bool dir = p.back() == '/';
    spec.protect.push_back({dir ? p.substr(0, p.size() - 1) : p, dir});
  }

  auto lookup = [&](const std::string& name) -> const std::string* {
    auto it = host.vars.find(name);
    return it == host.vars.end() ? nullptr : &it->second;
  };
  std::map<std::string, std::string> env;
  for (const std::string& name : policy.env.pass) {
    if (const std::string* v = lookup(name)) env[name] = *v;
  }
  for (const auto& [name, value] : policy.env.set) env[name] = value;
  for (const std::string& name : policy.secrets.env) {
    auto it = host.secrets.find(name);
    const std::string* v = it != host.secrets.end() ? &it->second : lookup(name);
    if (!v) {
      return std::unexpected("secrets.env: " + name +
                             " is not set in corral's environment or --secrets-file");
    }
    env[name] = *v;
  }
  // secrets.inject: the agent gets a placeholder (see inject.h); the value must exist, and only
  // the egress proxy of an allow-list can put it into requests.
  for (const auto& [name, hosts] : policy.secrets.inject) {
    if (policy.network.egress != policy::EgressKind::kAllowList) {
      return std::unexpected("secrets.inject." + name +
                             ": needs network.egress to be an allow-list (only the egress proxy "
                             "can put the value into requests)");
    }
    if (!host.secrets.count(name) && !lookup(name)) {
      return std::unexpected("secrets.inject." + name +
                             ": is not set in corral's environment or --secrets-file");
    }
  }
  if (policy.network.egress == policy::EgressKind::kAllowList) {
    // Every client library reads one of these; the proxy is the only way out.
    spec.proxy_port = kProxyPort;
    std::string url = "http://127.0.0.1:" + std::to_string(kProxyPort);
    for (const char* name :
         {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"}) {
      env[name] = url;
    }
    // The sandbox's own loopback (an agent's dev server) stays direct, unless the policy sends
    // loopback names to the host's loopback through the proxy.
    if (!NamesLoopback(policy)) {
      env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1,::1";
    }
  }
  for (const auto& [name, value] : env) spec.env.push_back(name + "=" + value);

  if (policy.tools.allow) {
    std::string path_list = env.count("PATH") ? env["PATH"] : "/usr/local/bin:/usr/bin:/bin";
    std::vector<std::string> programs;
    for (const std::string& tool : *policy.tools.allow) {
      std::string found = tool.front() == '/' ? (Exists(tool) ? tool : "") : Which(tool, path_list);
      if (found.empty()) {
        return std::unexpected("tools.allow: '" + tool + "' is not " +
                               (tool.front() == '/' ? "on this host" : "found in PATH"));
      }
      programs.push_back(RealPath(found));
    }
    spec.exec_allow = programs;
  }

  const policy::Limits& l = policy.limits;
  spec.limits.wall_time = l.wall_time;
  spec.limits.cpu_time = l.cpu_time;
  spec.limits.memory = l.memory;
  spec.limits.pids = l.pids;
  spec.limits.file_size = l.file_size;
  spec.limits.open_files = l.open_files;
  if (l.memory && *l.memory < spec.limits.tmp_size) spec.limits.tmp_size = *l.memory;
  spec.syscalls = SyscallRules(policy);
  // The key that signs the audit logs never shows inside a sandbox, whatever the policy binds.
  if (std::string key = SigningKey::DefaultPath(); Exists(key)) spec.hide.push_back(RealPath(key));
  // What the VM target cannot honour is a policy error, said where the policy is named (a plan
  // is refused when it loads), not when a VM would start.
  if (policy.target == policy::Target::kVm) {
    if (std::string why = vm::Unsupported(spec); !why.empty()) return std::unexpected(why);
  }
  return spec;
}

std::string Which(const std::string& name, const std::string& path_list) {
  size_t start = 0;
  while (start <= path_list.size()) {
    size_t end = path_list.find(':', start);
    if (end == std::string::npos) end = path_list.size();
    std::string candidate = path_list.substr(start, end - start) + "/" + name;
    struct stat st;
    if (candidate.front() == '/' && stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = end + 1;
  }
  return {};
}

std::string SelfDir() {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "";
  std::string path(self, n);
  return path.substr(0, path.rfind('/'));
}

std::expected<std::string, std::string> LibexecPath(const std::string& name) {
  std::string dir = SelfDir();
  if (dir.empty()) return std::unexpected("cannot find corral's own binary");
  for (const std::string& candidate :
       {dir + "/../libexec/corral/" + name, dir + "/" + name, dir + "/../sandbox/" + name}) {
    if (access(candidate.c_str(), X_OK) == 0) return RealPath(candidate);
  }
  return std::unexpected("cannot find the " + name + " helper in " + dir +
                         " or in ../libexec/corral");
}

std::expected<std::string, std::string> HelperPath() { return LibexecPath("corral-sandbox"); }

}  // namespace corral::launcher
