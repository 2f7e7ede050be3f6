// The plan parser (see toml_reader.h for the error format).
#include "policy/plan.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "policy/toml_reader.h"

namespace corral::policy {
namespace {

using internal::Failure;
using internal::TypeName;

std::string CheckTaskId(const std::string& id) {
  if (id.empty() || id.size() > 64) return "must be 1 to 64 characters";
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) {
      return "may only hold letters, digits, '_' and '-'";
    }
  }
  if (id == "merged") return "'merged' is reserved for the integration branch";
  return {};
}

PlanPos PlanPosOf(const toml::source_region& r) {
  return PlanPos{static_cast<int>(r.begin.line), static_cast<int>(r.begin.column)};
}

class PlanReader : public internal::TomlReader {
 public:
  using TomlReader::TomlReader;

  Plan Read(const toml::table& root) const {
    Plan plan;
    CheckKeys(root, "", {"run", "task"});
    if (const toml::table* run = Table(root, "run")) ReadRun(*run, &plan);
    const toml::node* tasks = root.get("task");
    if (!tasks) Fail(root.source(), "task", "a plan needs at least one [[task]]");
    if (!tasks->is_array_of_tables()) {
      Fail(tasks->source(), "task",
           std::string("expected [[task]] tables, got ") + TypeName(*tasks));
    }
    std::map<std::string, size_t> ids;
    for (const toml::node& node : *tasks->as_array()) {
      PlanTask task = ReadTask(*node.as_table());
      if (auto [it, fresh] = ids.emplace(task.id, plan.tasks.size()); !fresh) {
        Fail(
            node.as_table()->get("id")->source(), "task '" + task.id + "'",
            "duplicate id (first at line " + std::to_string(plan.tasks[it->second].pos.line) + ")");
      }
      plan.tasks.push_back(std::move(task));
    }
    CheckGraph(*tasks->as_array(), ids, &plan);
    return plan;
  }

 private:
  void ReadRun(const toml::table& run, Plan* plan) const {
    CheckKeys(run, "run", {"base", "jobs", "into", "setup", "workspaces"});
    if (auto base = String(run, "base", "run")) {
      if (base->empty()) Fail(run.get("base")->source(), "run.base", "must name a commit");
      plan->base = *base;
      plan->base_pos = PlanPosOf(run.get("base")->source());
    }
    if (const toml::node* jobs = run.get("jobs")) {
      if (const auto* s = jobs->as_string(); s && s->get() == "auto") {
        plan->jobs.reset();
      } else if (const auto* i = jobs->as_integer(); i && i->get() >= 1 && i->get() <= 1024) {
        plan->jobs = static_cast<int>(i->get());
      } else {
        Fail(jobs->source(), "run.jobs", "expected a number from 1 to 1024 or \"auto\"");
      }
    }
    if (auto into = String(run, "into", "run")) plan->into = *into;
    if (auto kind = String(run, "workspaces", "run")) {
      if (*kind == "auto") {
        plan->workspaces = Plan::Workspaces::kAuto;
      } else if (*kind == "worktree") {
        plan->workspaces = Plan::Workspaces::kWorktree;
      } else if (*kind == "overlay") {
        plan->workspaces = Plan::Workspaces::kOverlay;
      } else {
        Fail(run.get("workspaces")->source(), "run.workspaces",
             "expected \"auto\", \"worktree\" or \"overlay\", got \"" + *kind + "\"");
      }
    }
    bool has_setup = StringArray(run, "setup", "run",
                                 [&](auto&, const std::string& v) { plan->setup.push_back(v); });
    if (has_setup && plan->setup.empty()) {
      Fail(run.get("setup")->source(), "run.setup", "an empty command; leave setup out instead");
    }
  }

  PlanTask ReadTask(const toml::table& t) const {
    PlanTask task;
    task.pos = PlanPosOf(t.source());
    const toml::node* id = t.get("id");
    if (!id) Fail(t.source(), "task", "needs an id");
    if (!id->is_string())
      Fail(id->source(), "task.id", std::string("expected a string, got ") + TypeName(*id));
    task.id = id->as_string()->get();
    if (std::string e = CheckTaskId(task.id); !e.empty()) {
      Fail(id->source(), "task '" + task.id + "'", "id " + e);
    }
    std::string key = "task '" + task.id + "'";
    CheckKeys(t, key, {"id", "policy", "run", "depends_on", "timeout", "retries", "env", "prompt"});
    const toml::node* policy = t.get("policy");
    if (!policy) Fail(t.source(), key, "needs a policy");
    if (!policy->is_string() || policy->as_string()->get().empty()) {
      Fail(policy->source(), key + ": policy", "expected a path to a policy file");
    }
    task.policy = policy->as_string()->get();
    task.policy_pos = PlanPosOf(policy->source());
    if (!StringArray(t, "run", "", [&](auto&, const std::string& v) { task.run.push_back(v); })) {
      Fail(t.source(), key, "needs run = [\"program\", \"args\"...]");
    }
    if (task.run.empty() || task.run[0].empty()) {
      Fail(t.get("run")->source(), key + ": run", "needs at least the program to run");
    }
    std::set<std::string> deps;
    StringArray(t, "depends_on", "", [&](auto& node, const std::string& v) {
      if (!deps.insert(v).second) Fail(node.source(), key, "depends on '" + v + "' twice");
      task.depends_on.push_back(v);
    });
    if (const toml::node* timeout = t.get("timeout")) {
      if (!timeout->is_string()) {
        Fail(timeout->source(), key + ": timeout",
             std::string("expected a duration such as \"20m\", got ") + TypeName(*timeout));
      }
      auto d = ParseDuration(timeout->as_string()->get());
      if (!d || d->count() == 0) {
        Fail(timeout->source(), key + ": timeout",
             "'" + timeout->as_string()->get() + "' is not a duration (examples: 90s, 30m, 1h)");
      }
      task.timeout = d;
    }
    if (const toml::node* retries = t.get("retries")) {
      const auto* i = retries->as_integer();
      if (!i || i->get() < 0 || i->get() > 10) {
        Fail(retries->source(), key + ": retries", "expected a number from 0 to 10");
      }
      task.retries = static_cast<int>(i->get());
    }
    if (const toml::table* env = Table(t, "env", key)) {
      for (auto&& [name, value] : *env) {
        EnvName(value, key + ": env", std::string(name.str()));
        if (!value.is_string()) {
          Fail(value.source(), key + ": env." + std::string(name.str()),
               std::string("expected a string, got ") + TypeName(value));
        }
        task.env[std::string(name.str())] = value.as_string()->get();
      }
    }
    if (auto prompt = String(t, "prompt", key)) task.prompt = *prompt;
    return task;
  }

  // Unknown dependencies, then cycles; fills plan->order (dependency order, ties in plan order).
  void CheckGraph(const toml::array& tasks, const std::map<std::string, size_t>& ids,
                  Plan* plan) const {
    size_t n = plan->tasks.size();
    std::vector<std::vector<size_t>> deps(n);
    for (size_t i = 0; i < n; ++i) {
      const toml::node* list = tasks[i].as_table()->get("depends_on");
      for (size_t k = 0; k < plan->tasks[i].depends_on.size(); ++k) {
        const std::string& dep = plan->tasks[i].depends_on[k];
        auto it = ids.find(dep);
        if (it == ids.end()) {
          Fail((*list->as_array())[k].source(), "task '" + plan->tasks[i].id + "'",
               "unknown dependency '" + dep + "'");
        }
        if (it->second == i) {
          Fail((*list->as_array())[k].source(), "task '" + dep + "'", "depends on itself");
        }
        deps[i].push_back(it->second);
      }
    }
    std::vector<bool> placed(n, false);
    while (plan->order.size() < n) {
      size_t next = n;
      for (size_t i = 0; i < n && next == n; ++i) {
        if (!placed[i] &&
            std::all_of(deps[i].begin(), deps[i].end(), [&](size_t d) { return placed[d]; })) {
          next = i;
        }
      }
      if (next == n) {
        std::vector<size_t> cycle = FindCycle(deps, placed);
        std::string path;
        for (size_t i : cycle) path += plan->tasks[i].id + " -> ";
        path += plan->tasks[cycle.front()].id;
        const PlanTask& first = plan->tasks[cycle.front()];
        throw Failure{Error{std::string(source_) + ":" + std::to_string(first.pos.line) + ":" +
                            std::to_string(first.pos.column) + ": task '" + first.id +
                            "': dependency cycle " + path}};
      }
      placed[next] = true;
      plan->order.push_back(next);
    }
  }

  // A cycle among the unplaced tasks, starting at its lowest index, in dependency direction.
  static std::vector<size_t> FindCycle(const std::vector<std::vector<size_t>>& deps,
                                       const std::vector<bool>& placed) {
    size_t n = deps.size();
    std::vector<int> state(n, 0);  // 0 new, 1 on stack, 2 done
    std::vector<size_t> stack;
    std::vector<size_t> found;
    std::function<bool(size_t)> visit = [&](size_t u) {
      state[u] = 1;
      stack.push_back(u);
      for (size_t v : deps[u]) {
        if (placed[v]) continue;
        if (state[v] == 1) {
          found.assign(std::find(stack.begin(), stack.end(), v), stack.end());
          return true;
        }
        if (state[v] == 0 && visit(v)) return true;
      }
      stack.pop_back();
      state[u] = 2;
      return false;
    };
    for (size_t i = 0; i < n && found.empty(); ++i) {
      if (!placed[i] && state[i] == 0) visit(i);
    }
    std::rotate(found.begin(), std::min_element(found.begin(), found.end()), found.end());
    return found;
  }
};

}  // namespace

std::expected<Plan, std::string> ParsePlan(std::string_view text, std::string_view source_name) {
  auto plan = internal::ParseDocument<Plan>(text, source_name, [&](const toml::table& root) {
    return PlanReader(source_name).Read(root);
  });
  if (!plan) return std::unexpected(plan.error().message);
  return *plan;
}

}  // namespace corral::policy
