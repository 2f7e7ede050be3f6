#include "launcher/argo_export.h"

#include <yaml-cpp/yaml.h>

#include <functional>
#include <map>
#include <set>

#include "launcher/crypto.h"
#include "launcher/egress.h"

namespace corral::launcher {
namespace {

using json = nlohmann::json;

constexpr const char* kUid = "1000";
constexpr int kProxyUid = 1001;  // the egress proxy sidecar's
constexpr const char* kProxyUrl = "http://127.0.0.1:3128";
constexpr const char* kPolicyDir = "/etc/corral/policies";
// The proxy sidecar writes the agent's env here once it listens (and for secrets.inject the
// CA); the agent's container mounts it read-only.
constexpr const char* kAgentDir = "/var/run/corral-proxy";

bool IsLabel(const std::string& s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

// A DNS-1123 label made from `s`: lower case, anything else a '-'.
std::string Label(const std::string& s, size_t max = 63) {
  std::string out;
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (ok || (!out.empty() && out.back() != '-')) out += ok ? c : '-';
  }
  if (out.size() > max) out.resize(max);
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "x" : out;
}

// Unique labels: the first to ask gets its preferred name; later ones get a hash suffix.
class Namer {
 public:
  std::string Take(const std::string& preferred) {
    std::string name = Label(preferred);
    for (int n = 0; !taken_.insert(name).second; ++n) {
      name = Label(preferred, 55) + "-" + Sha256Hex(preferred + "#" + std::to_string(n)).substr(0, 7);
    }
    return name;
  }

 private:
  std::set<std::string> taken_;
};

std::string PolicyKey(const ArgoTask& t) {
  return Label(t.policy.name, 50) + "-" + t.policy_sha256.substr(0, 12);
}

// Strings the controller ("{{...}}") or the kubelet ("$(VAR)") would rewrite.
bool Rewritten(const std::string& s) {
  return s.find("{{") != std::string::npos || s.find("$(") != std::string::npos;
}

// Collects the ConfigMap's data and hands out environment entries for literal values.
class Strings {
 public:
  explicit Strings(std::string config_map) : config_map_(std::move(config_map)) {}

  json Env(const std::string& name, const std::string& value, const std::string& key_hint,
           bool always_indirect = false) {
    if (!always_indirect && !Rewritten(value)) return {{"name", name}, {"value", value}};
    std::string key = Label(key_hint, 200);
    data_[key] = value;
    return {{"name", name},
            {"valueFrom", {{"configMapKeyRef", {{"name", config_map_}, {"key", key}}}}}};
  }
  void Put(const std::string& key, const std::string& value) { data_[key] = value; }
  const std::map<std::string, std::string>& data() const { return data_; }

 private:
  std::string config_map_;
  std::map<std::string, std::string> data_;
};

// The port git reaches the repository on, for the NetworkPolicy; 0 for a local path.
int GitPort(const std::string& url) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) {
    // scp-like "user@host:path" is ssh; anything else is a local path.
    auto colon = url.find(':');
    return colon != std::string::npos && url.find('/') > colon ? 22 : 0;
  }
  std::string scheme = url.substr(0, scheme_end);
  std::string rest = url.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find('/'));
  rest = rest.substr(rest.find('@') == std::string::npos ? 0 : rest.find('@') + 1);
  auto colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find(']', colon) == std::string::npos) {
    return std::atoi(rest.c_str() + colon + 1);
  }
  if (scheme == "https") return 443;
  if (scheme == "http") return 80;
  if (scheme == "ssh" || scheme == "git+ssh") return 22;
  if (scheme == "git") return 9418;
  return 0;
}

json Ports(const std::set<int>& ports) {
  json out = json::array();
  for (int p : ports) out.push_back({{"protocol", "TCP"}, {"port", p}});
  return out;
}

json NetworkPolicy(const std::string& name, const std::string& selector_value,
                   const json& egress) {
  return {{"apiVersion", "networking.k8s.io/v1"},
          {"kind", "NetworkPolicy"},
          {"metadata", {{"name", name}, {"labels", {{"app.kubernetes.io/managed-by", "corral"}}}}},
          {"spec",
           {{"podSelector", {{"matchLabels", {{"corral.dev/egress", selector_value}}}}},
            {"policyTypes", {"Egress"}},
            {"egress", egress}}}};
}

// Egress rules: DNS and the repository's git port always (the pod clones and pushes), then what
// the policy allows. Host names are not expressible here: for an allow-list the ports are, and
// the proxy sidecar checks the names.
json EgressRules(const policy::Policy* policy, int git_port) {
  json dns = {{"ports", {{{"protocol", "UDP"}, {"port", 53}}, {{"protocol", "TCP"}, {"port", 53}}}}};
  if (policy && policy->network.egress == policy::EgressKind::kHost) {
    return json::array({json::object()});
  }
  std::set<int> ports;
  if (git_port > 0) ports.insert(git_port);
  if (policy && policy->network.egress == policy::EgressKind::kAllowList) {
    for (const policy::HostPattern& p : policy->network.allow) {
      if (!p.port) return json::array({dns, json::object()});  // a pattern for any port
      ports.insert(*p.port);
    }
  }
  json rules = json::array({dns});
  if (!ports.empty()) rules.push_back({{"ports", Ports(ports)}});
  return rules;
}

json ContainerSecurity(const json& seccomp) {
  return {{"runAsNonRoot", true},
          {"allowPrivilegeEscalation", false},
          {"readOnlyRootFilesystem", true},
          {"privileged", false},
          {"capabilities", {{"drop", {"ALL"}}}},
          {"seccompProfile", seccomp}};
}

json PodSecurity() {
  int uid = std::atoi(kUid);
  return {{"runAsNonRoot", true},
          {"runAsUser", uid},
          {"runAsGroup", uid},
          {"fsGroup", uid},
          {"seccompProfile", {{"type", "RuntimeDefault"}}}};
}

// The shell both scripts start with. No "$(" and no "{{" anywhere in them: the kubelet and the
// controller leave them alone. git never runs the repository's hooks or fsmonitor.
constexpr const char* kScriptHead =
    "set -eu\n"
    "g() { git -c core.hooksPath=/dev/null -c core.fsmonitor=false -c user.name=corral "
    "-c user.email=corral@localhost -c init.defaultBranch=main \"$@\"; }\n"
    "rm -rf \"$CORRAL_WORK/repo\"\n"
    "g clone --quiet --no-checkout \"$CORRAL_REPO_URL\" \"$CORRAL_WORK/repo\"\n"
    "cd \"$CORRAL_WORK/repo\"\n";

std::string Words(const std::string& prefix, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += " \"$" + prefix + std::to_string(i) + "\"";
  return out;
}

std::string TaskScript(size_t setup_argc, size_t agent_argc) {
  std::string s = kScriptHead;
  s +=
      "g checkout --quiet -B \"corral/$CORRAL_RUN/$CORRAL_TASK\" \"$CORRAL_BASE\"\n"
      "mkdir -p \"$CORRAL_INPUTS\" \"$HOME\"\n"
      "i=0\n"
      "for dep in $CORRAL_DEPENDS; do\n"
      "  g fetch --quiet origin \"refs/heads/corral/$CORRAL_RUN/$dep\"\n"
      "  if ! g merge --quiet --no-edit --no-ff -m \"corral: merge $dep\" FETCH_HEAD; then\n"
      "    echo \"corral: the branches of this task's dependencies conflict at $dep\" >&2\n"
      "    exit 3\n"
      "  fi\n"
      "  eval \"printf '%s' \\\"\\$CORRAL_INPUT_$i\\\"\" > \"$CORRAL_INPUTS/$dep.json\"\n"
      "  i=`expr $i + 1`\n"
      "done\n"
      "set +e\n";
  if (setup_argc > 0) {
    s += "(" + Words("CORRAL_SETUP_", setup_argc).substr(1) + ")\n" +
         "status=$?\n"
         "if [ $status -ne 0 ]; then echo \"corral: setup failed: exit $status\" >&2; fi\n"
         "if [ $status -eq 0 ]; then\n";
  } else {
    s += "if true; then\n";
  }
  s += "  (if [ -n \"${CORRAL_PROXY:-}\" ]; then\n"
       "     export HTTP_PROXY=\"$CORRAL_PROXY\" HTTPS_PROXY=\"$CORRAL_PROXY\" "
       "ALL_PROXY=\"$CORRAL_PROXY\"\n"
       "     export http_proxy=\"$CORRAL_PROXY\" https_proxy=\"$CORRAL_PROXY\" "
       "all_proxy=\"$CORRAL_PROXY\"\n"
       "     export NO_PROXY=localhost,127.0.0.1,::1 no_proxy=localhost,127.0.0.1,::1\n"
       "   fi\n"
       "   if [ -n \"${CORRAL_PROXY_DIR:-}\" ]; then\n"
       "     n=0\n"
       "     while [ ! -f \"$CORRAL_PROXY_DIR/env\" ]; do\n"
       "       if [ -f \"$CORRAL_PROXY_DIR/error\" ]; then\n"
       "         cat \"$CORRAL_PROXY_DIR/error\" >&2\n"
       "         exit 125\n"
       "       fi\n"
       "       if [ $n -ge 600 ]; then\n"
       "         echo \"corral: the egress proxy wrote no $CORRAL_PROXY_DIR/env in 60 s\" >&2\n"
       "         exit 125\n"
       "       fi\n"
       "       if sleep 0.1 2>/dev/null; then\n"
       "         n=`expr $n + 1`\n"
       "       else\n"
       "         sleep 1\n"
       "         n=`expr $n + 10`\n"
       "       fi\n"
       "     done\n"
       "     . \"$CORRAL_PROXY_DIR/env\"\n"
       "   fi\n"
       "   exec" +
       Words("CORRAL_ARGV_", agent_argc) +
       ")\n"
       "  status=$?\n"
       "fi\n"
       "set -e\n"
       "g add -A\n"
       "if g diff --cached --quiet; then\n"
       "  echo \"corral: task $CORRAL_TASK changed nothing\" >&2\n"
       "else\n"
       "  printf 'corral: task %s\\n\\nCorral-Run: %s\\nCorral-Task: %s\\nCorral-Policy: %s\\n' "
       "\"$CORRAL_TASK\" \"$CORRAL_RUN\" \"$CORRAL_TASK\" \"$CORRAL_POLICY\" > \"$CORRAL_WORK/message\"\n"
       "  g commit --quiet --no-verify -F \"$CORRAL_WORK/message\"\n"
       "fi\n"
       "g push --quiet --force origin \"HEAD:refs/heads/corral/$CORRAL_RUN/$CORRAL_TASK\"\n"
       "if [ $status -eq 0 ]; then\n"
       "  g push --quiet --force origin \"HEAD:refs/corral/$CORRAL_RUN/succeeded/$CORRAL_TASK\"\n"
       "fi\n"
       "exit $status\n";
  return s;
}

std::string MergeScript() {
  std::string s = kScriptHead;
  s +=
      "into=\"${CORRAL_INTO:-corral/$CORRAL_RUN/merged}\"\n"
      "g checkout --quiet -B \"$into\" \"$CORRAL_BASE\"\n"
      "merged= conflicted= skipped=\n"
      "for t in $CORRAL_ORDER; do\n"
      "  if ! g fetch --quiet origin \"refs/corral/$CORRAL_RUN/succeeded/$t\" 2>/dev/null; then\n"
      "    skipped=\"$skipped $t\"\n"
      "  elif g merge --quiet --no-edit --no-ff -m \"corral: merge task $t\" FETCH_HEAD; then\n"
      "    merged=\"$merged $t\"\n"
      "  else\n"
      "    g merge --abort\n"
      "    conflicted=\"$conflicted $t\"\n"
      "  fi\n"
      "done\n"
      "g push --quiet --force origin \"HEAD:refs/heads/$into\"\n"
      "echo \"corral: run $CORRAL_RUN: into $into\"\n"
      "echo \"corral: merged:$merged\"\n"
      "echo \"corral: conflicted:$conflicted\"\n"
      "echo \"corral: not merged (failed, skipped or not run):$skipped\"\n"
      "[ -z \"$conflicted\" ]\n";
  return s;
}

// Adds `var` to `env`, replacing an entry of the same name (the last word wins, as in a sandbox).
void SetEnv(json* env, json var) {
  for (json& e : *env) {
    if (e["name"] == var["name"]) {
      e = std::move(var);
      return;
    }
  }
  env->push_back(std::move(var));
}

json Volume(const std::string& name) { return {{"name", name}, {"emptyDir", json::object()}}; }

json Mount(const std::string& name, const std::string& path, bool read_only = false) {
  json m = {{"name", name}, {"mountPath", path}};
  if (read_only) m["readOnly"] = true;
  return m;
}

}  // namespace

std::string LocalhostProfile(const policy::Policy& policy, const std::string& policy_sha256) {
  return "corral/" + Label(policy.name, 50) + "-" + policy_sha256.substr(0, 12) + ".json";
}

std::vector<json> ArgoManifests(const ArgoInput& in) {
  std::string plan = Label(in.plan_name, 40);
  std::string config_map = "corral-" + plan + "-" + in.plan_sha256.substr(0, 12);
  Strings strings(config_map);
  int git_port = GitPort(in.repo_url);

  Namer names;
  std::string dag_name = names.Take("tasks");
  std::string merge_name = names.Take("merge");
  std::vector<std::string> task_names;
  task_names.reserve(in.tasks.size());
  for (const ArgoTask& t : in.tasks) task_names.push_back(names.Take(t.task->id));
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < in.tasks.size(); ++i) index[in.tasks[i].task->id] = i;

  json common_env = json::array({
      json{{"name", "CORRAL_RUN"}, {"value", "{{workflow.name}}"}},
      strings.Env("CORRAL_REPO_URL", in.repo_url, "repo-url"),
      json{{"name", "CORRAL_BASE"}, {"value", in.base}},
      json{{"name", "HOME"}, {"value", "/tmp/home"}},
      json{{"name", "CORRAL_WORK"}, {"value", "/work"}},
  });

  json templates = json::array();
  json dag_tasks = json::array();
  std::map<std::string, json> network_policies;  // name -> document
  for (size_t i = 0; i < in.tasks.size(); ++i) {
    const ArgoTask& t = in.tasks[i];
    const policy::PlanTask& pt = *t.task;
    const policy::Policy& pol = t.policy;
    const std::string& name = task_names[i];
    std::string key = PolicyKey(t);
    bool proxied = pol.network.egress == policy::EgressKind::kAllowList;
    strings.Put("policy-" + key + ".toml", t.policy_text);

    json env = common_env;
    env.push_back({{"name", "CORRAL_TASK"}, {"value", pt.id}});
    env.push_back({{"name", "CORRAL_POLICY"}, {"value", pol.name + "@" + t.policy_sha256}});
    env.push_back(strings.Env("CORRAL_PROMPT", pt.prompt, name + ".prompt", !pt.prompt.empty()));
    env.push_back({{"name", "CORRAL_OUTPUT"}, {"value", "/tmp/corral-output.json"}});
    env.push_back({{"name", "CORRAL_INPUTS"}, {"value", "/tmp/corral-inputs"}});
    std::string depends;
    for (const std::string& d : pt.depends_on) depends += (depends.empty() ? "" : " ") + d;
    env.push_back({{"name", "CORRAL_DEPENDS"}, {"value", depends}});
    json inputs = json::array();
    json arguments = json::array();
    for (size_t d = 0; d < pt.depends_on.size(); ++d) {
      std::string param = "input-" + std::to_string(d);
      const std::string& dep_name = task_names[index.at(pt.depends_on[d])];
      inputs.push_back({{"name", param}});
      arguments.push_back(
          {{"name", param}, {"value", "{{tasks." + dep_name + ".outputs.parameters.result}}"}});
      env.push_back({{"name", "CORRAL_INPUT_" + std::to_string(d)},
                     {"value", "{{inputs.parameters." + param + "}}"}});
    }
    for (size_t a = 0; a < in.setup.size(); ++a) {
      env.push_back(strings.Env("CORRAL_SETUP_" + std::to_string(a), in.setup[a],
                                "setup-" + std::to_string(a)));
    }
    for (size_t a = 0; a < pt.run.size(); ++a) {
      env.push_back(strings.Env("CORRAL_ARGV_" + std::to_string(a), pt.run[a],
                                name + ".argv-" + std::to_string(a)));
    }
    // The agent's own environment: the plan's, the policy's, its secrets by reference.
    std::map<std::string, std::string> set = pol.env.set;
    for (const auto& [k, v] : pt.env) set[k] = v;
    for (const auto& [k, v] : set) SetEnv(&env, strings.Env(k, v, name + ".env-" + k));
    for (const std::string& s : pol.secrets.env) {
      SetEnv(&env, {{"name", s},
                    {"valueFrom", {{"secretKeyRef", {{"name", in.secret}, {"key", s}}}}}});
    }
    if (proxied) env.push_back({{"name", "CORRAL_PROXY"}, {"value", kProxyUrl}});
    // The sidecar says it is ready in a volume of the pod, read-only here. For secrets.inject
    // the values go to the sidecar alone; the agent gets the placeholders and the CA there.
    json main_mounts = {Mount("work", "/work"), Mount("tmp", "/tmp")};
    if (proxied) {
      env.push_back({{"name", "CORRAL_PROXY_DIR"}, {"value", kAgentDir}});
      main_mounts.push_back(Mount("proxy", kAgentDir, true));
    }

    json seccomp = {{"type", "Localhost"}, {"localhostProfile", LocalhostProfile(pol, t.policy_sha256)}};
    json container = {
        {"name", "main"},
        {"image", in.image},
        {"command", {"/bin/sh", "-c", TaskScript(in.setup.size(), pt.run.size())}},
        {"workingDir", "/work"},
        {"env", env},
        {"securityContext", ContainerSecurity(seccomp)},
        {"volumeMounts", main_mounts},
    };
    if (pol.limits.memory) {
      std::string bytes = std::to_string(*pol.limits.memory);
      container["resources"] = {{"limits", {{"memory", bytes}}}, {"requests", {{"memory", bytes}}}};
    }
    std::string egress_label = pol.network.egress == policy::EgressKind::kHost ? "host" : key;
    json tmpl = {
        {"name", name},
        {"metadata",
         {{"labels", {{"corral.dev/task", name}, {"corral.dev/egress", egress_label}}},
          {"annotations", {{"corral.dev/task-id", pt.id}, {"corral.dev/policy", pol.name}}}}},
        {"securityContext", PodSecurity()},
        {"volumes", {Volume("work"), Volume("tmp")}},
        {"container", container},
        {"outputs",
         {{"parameters",
           {{{"name", "result"},
             {"valueFrom", {{"path", "/tmp/corral-output.json"}, {"default", ""}}}}}}}},
    };
    if (!inputs.empty()) tmpl["inputs"] = {{"parameters", inputs}};
    auto deadline = pt.timeout ? pt.timeout : pol.limits.wall_time;
    if (deadline) tmpl["activeDeadlineSeconds"] = std::max<int64_t>(1, (deadline->count() + 999) / 1000);
    if (pt.retries > 0) {
      tmpl["retryStrategy"] = {{"limit", std::to_string(pt.retries)}, {"retryPolicy", "Always"}};
    }
    if (pol.target != policy::Target::kLocal) {
      std::string runtime = pol.target == policy::Target::kTdx ? "kata-qemu-tdx" : "kata-qemu";
      tmpl["podSpecPatch"] = json{{"runtimeClassName", runtime}}.dump();
    }
    if (proxied) {
      tmpl["volumes"].push_back(
          {{"name", "policies"}, {"configMap", {{"name", config_map}}}});
      json sidecar = {
          {"name", "egress-proxy"},
          {"image", in.image},
          {"command",
           {"corral", "proxy", "--policy", std::string(kPolicyDir) + "/policy-" + key + ".toml",
            "--name", pt.id}},
          {"securityContext", ContainerSecurity({{"type", "RuntimeDefault"}})},
          {"volumeMounts", {Mount("policies", kPolicyDir, true)}},
      };
      // Another user than the agent's, so that the agent cannot read the proxy's environment
      // (the values of secrets.inject) even where the pod's containers share their processes.
      sidecar["securityContext"]["runAsUser"] = kProxyUid;
      sidecar["securityContext"]["runAsGroup"] = kProxyUid;
      sidecar["command"].push_back("--agent-dir");
      sidecar["command"].push_back(kAgentDir);
      sidecar["volumeMounts"].push_back(Mount("proxy", kAgentDir));
      tmpl["volumes"].push_back(Volume("proxy"));
      if (!pol.secrets.inject.empty()) {
        json secrets = json::array();
        for (const auto& [s, hosts] : pol.secrets.inject) {
          secrets.push_back(
              {{"name", s}, {"valueFrom", {{"secretKeyRef", {{"name", in.secret}, {"key", s}}}}}});
        }
        sidecar["env"] = secrets;
      }
      tmpl["sidecars"] = json::array({sidecar});
    }
    templates.push_back(tmpl);
    if (egress_label != "host") {
      network_policies.emplace("corral-egress-" + key,
                               NetworkPolicy("corral-egress-" + key, key, EgressRules(&pol, git_port)));
    }

    json deps = json::array();
    for (const std::string& d : pt.depends_on) deps.push_back(task_names[index.at(d)]);
    if (pol.requires_human_approval) {
      // `argo resume` (or the UI) is the approval; the task waits for it.
      std::string approve = names.Take("approve-" + name);
      templates.push_back({{"name", approve}, {"suspend", json::object()}});
      json a = {{"name", approve}, {"template", approve}};
      if (!deps.empty()) a["dependencies"] = deps;
      dag_tasks.push_back(a);
      deps.push_back(approve);
    }
    json dag_task = {{"name", name}, {"template", name}};
    if (!deps.empty()) dag_task["dependencies"] = deps;
    if (!arguments.empty()) dag_task["arguments"] = {{"parameters", arguments}};
    dag_tasks.push_back(dag_task);
  }

  std::string order;
  for (size_t i : in.order) order += (order.empty() ? "" : " ") + in.tasks[i].task->id;
  json merge_env = common_env;
  merge_env.push_back({{"name", "CORRAL_ORDER"}, {"value", order}});
  if (!in.into.empty()) merge_env.push_back(strings.Env("CORRAL_INTO", in.into, "into"));
  templates.push_back({
      {"name", merge_name},
      {"metadata", {{"labels", {{"corral.dev/egress", "corral-merge"}}}}},
      {"securityContext", PodSecurity()},
      {"volumes", {Volume("work"), Volume("tmp")}},
      {"container",
       {{"name", "main"},
        {"image", in.image},
        {"command", {"/bin/sh", "-c", MergeScript()}},
        {"workingDir", "/work"},
        {"env", merge_env},
        {"securityContext", ContainerSecurity({{"type", "RuntimeDefault"}})},
        {"volumeMounts", {Mount("work", "/work"), Mount("tmp", "/tmp")}}}},
  });
  network_policies.emplace("corral-egress-merge",
                           NetworkPolicy("corral-egress-merge", "corral-merge",
                                         EgressRules(nullptr, git_port)));
  templates.insert(templates.begin(), json{{"name", dag_name}, {"dag", {{"tasks", dag_tasks}}}});

  json workflow = {
      {"apiVersion", "argoproj.io/v1alpha1"},
      {"kind", "Workflow"},
      {"metadata",
       {{"generateName", "corral-" + plan + "-"},
        {"labels", {{"app.kubernetes.io/managed-by", "corral"}, {"corral.dev/plan", plan}}},
        {"annotations",
         {{"corral.dev/plan-sha256", in.plan_sha256}, {"corral.dev/base", in.base}}}}},
      {"spec",
       {{"entrypoint", dag_name},
        {"onExit", merge_name},
        {"securityContext", PodSecurity()},
        {"templates", templates}}},
  };

  json data = json::object();
  for (const auto& [k, v] : strings.data()) data[k] = v;
  std::vector<json> docs;
  docs.push_back({{"apiVersion", "v1"},
                  {"kind", "ConfigMap"},
                  {"metadata",
                   {{"name", config_map}, {"labels", {{"app.kubernetes.io/managed-by", "corral"}}}}},
                  {"data", data}});
  for (auto& [name, doc] : network_policies) docs.push_back(std::move(doc));
  docs.push_back(std::move(workflow));
  return docs;
}

std::vector<std::string> CheckManifests(const std::vector<json>& docs) {
  std::vector<std::string> problems;
  std::map<std::string, std::set<std::string>> config_keys;
  for (const json& d : docs) {
    if (d.value("kind", "") == "ConfigMap") {
      const json data = d.value("data", json::object());
      for (const auto& [k, v] : data.items()) {
        config_keys[d["metadata"].value("name", "")].insert(k);
      }
    }
  }
  auto problem = [&](const std::string& where, const std::string& what) {
    problems.push_back(where + ": " + what);
  };
  for (const json& d : docs) {
    std::string kind = d.value("kind", "?");
    const json meta = d.value("metadata", json::object());
    std::string where = kind + " " + meta.value("name", meta.value("generateName", "?"));
    if (meta.contains("name") && !IsLabel(meta.value("name", ""))) {
      problem(where, "metadata.name is not a DNS-1123 label");
    }
    if (meta.contains("generateName")) {
      std::string g = meta.value("generateName", "");
      if (g.size() > 58 || !g.ends_with("-") || !IsLabel(g.substr(0, g.size() - 1))) {
        problem(where, "metadata.generateName is not a DNS-1123 label prefix ending in '-'");
      }
    }
    // Anywhere in the document: Localhost profiles need a path; configMapKeyRefs need the key.
    std::function<void(const json&, const std::string&)> walk = [&](const json& j,
                                                                    const std::string& path) {
      if (j.is_object()) {
        if (j.contains("seccompProfile") && j["seccompProfile"].value("type", "") == "Localhost" &&
            j["seccompProfile"].value("localhostProfile", "").empty()) {
          problem(where, path + ".seccompProfile: type Localhost without localhostProfile");
        }
        if (j.contains("configMapKeyRef")) {
          const json& ref = j["configMapKeyRef"];
          std::string cm = ref.value("name", "");
          if (!config_keys.count(cm) || !config_keys[cm].count(ref.value("key", ""))) {
            problem(where, path + ".configMapKeyRef: ConfigMap " + cm + " has no key '" +
                               ref.value("key", "") + "'");
          }
        }
        for (const auto& [k, v] : j.items()) walk(v, path + "." + k);
      } else if (j.is_array()) {
        for (size_t i = 0; i < j.size(); ++i) walk(j[i], path + "[" + std::to_string(i) + "]");
      }
    };
    walk(d, "");
    if (kind != "Workflow") continue;
    const json spec = d.value("spec", json::object());
    std::set<std::string> templates;
    for (const json& t : spec.value("templates", json::array())) {
      std::string name = t.value("name", "");
      if (!IsLabel(name)) problem(where, "template '" + name + "': not a DNS-1123 label");
      if (!templates.insert(name).second) problem(where, "template '" + name + "' defined twice");
    }
    for (const char* ref : {"entrypoint", "onExit"}) {
      if (spec.contains(ref) && !templates.count(spec.value(ref, ""))) {
        problem(where, std::string("spec.") + ref + " names no template: '" + spec.value(ref, "") + "'");
      }
    }
    for (const json& t : spec.value("templates", json::array())) {
      if (!t.contains("dag")) continue;
      std::string tname = t.value("name", "");
      std::map<std::string, std::vector<std::string>> edges;
      for (const json& task : t["dag"].value("tasks", json::array())) {
        std::string n = task.value("name", "");
        if (!IsLabel(n)) problem(where, "dag " + tname + ": task '" + n + "': not a DNS-1123 label");
        if (edges.count(n)) problem(where, "dag " + tname + ": task '" + n + "' defined twice");
        if (!templates.count(task.value("template", ""))) {
          problem(where, "dag " + tname + ": task '" + n + "' names no template: '" +
                             task.value("template", "") + "'");
        }
        edges[n] = task.value("dependencies", std::vector<std::string>{});
      }
      for (const auto& [n, deps] : edges) {
        for (const std::string& dep : deps) {
          if (!edges.count(dep)) problem(where, "dag " + tname + ": task '" + n + "' depends on unknown '" + dep + "'");
        }
      }
      // A depth-first search for a cycle: 1 on the stack, 2 done.
      std::map<std::string, int> state;
      std::function<bool(const std::string&)> cyclic = [&](const std::string& n) {
        if (state[n] == 1) return true;
        if (state[n] == 2 || !edges.count(n)) return false;
        state[n] = 1;
        for (const std::string& dep : edges[n]) {
          if (cyclic(dep)) return true;
        }
        state[n] = 2;
        return false;
      };
      for (const auto& [n, deps] : edges) {
        if (state[n] == 0 && cyclic(n)) {
          problem(where, "dag " + tname + ": the dependencies form a cycle through '" + n + "'");
          break;
        }
      }
    }
  }
  return problems;
}

namespace {

void Emit(YAML::Emitter& out, const json& j) {
  switch (j.type()) {
    case json::value_t::object:
      if (j.empty()) out << YAML::Flow;
      out << YAML::BeginMap;
      for (const auto& [k, v] : j.items()) {
        out << YAML::Key << k << YAML::Value;
        Emit(out, v);
      }
      out << YAML::EndMap;
      break;
    case json::value_t::array:
      if (j.empty()) out << YAML::Flow;
      out << YAML::BeginSeq;
      for (const json& v : j) Emit(out, v);
      out << YAML::EndSeq;
      break;
    case json::value_t::string: {
      // Quoted, so no string reads as a number or a boolean; scripts as literal blocks.
      const std::string& s = j.get_ref<const std::string&>();
      bool block = s.find('\n') != std::string::npos && s.find('\t') == std::string::npos &&
                   s.find('\r') == std::string::npos;
      out << (block ? YAML::Literal : YAML::DoubleQuoted) << s;
      break;
    }
    case json::value_t::boolean:
      out << j.get<bool>();
      break;
    case json::value_t::null:
      out << YAML::Null;
      break;
    default:
      out << j.dump();  // numbers
  }
}

}  // namespace

std::string ToYaml(const std::vector<json>& docs) {
  std::string out;
  for (const json& d : docs) {
    YAML::Emitter e;
    e.SetIndent(2);
    Emit(e, d);
    out += "---\n" + std::string(e.c_str()) + "\n";
  }
  return out;
}

}  // namespace corral::launcher
