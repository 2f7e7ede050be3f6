// A plan as an Argo Workflow for Kubernetes (`corral export argo`): the same DAG, the same
// policies, enforced by the cluster instead of corral's own sandbox.
//
// Each task is a pod that clones the repository at the base, merges its dependencies' branches,
// runs the agent, commits what it changed and pushes corral/<run>/<task>; the workflow's exit
// handler merges the branches of the tasks that succeeded, in the plan's order, and pushes the
// integration branch. Pods run as non-root with every capability dropped, a read-only root
// filesystem and the policy's seccomp rules as a Localhost profile; egress is a NetworkPolicy plus
// `corral proxy` as a sidecar for allow-lists; secrets come from a Kubernetes Secret by reference.
//
// Strings that Argo or the kubelet would rewrite ("{{...}}", "$(...)") never appear in the
// manifest: such values travel in the ConfigMap and reach the pod through configMapKeyRef.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/plan.h"
#include "policy/policy.h"

namespace corral::launcher {

struct ArgoTask {
  const policy::PlanTask* task = nullptr;
  policy::Policy policy;
  std::string policy_text;    // the policy file's bytes, for the proxy sidecar
  std::string policy_sha256;  // of policy_text
};

struct ArgoInput {
  std::string plan_name;    // the plan file's stem
  std::string plan_sha256;  // of the plan file
  std::string repo_url;     // what the pods clone and push to
  std::string base;         // a full commit id
  std::string image;        // has sh, git, the agents, and corral (for the proxy sidecar)
  std::string secret;       // the Kubernetes Secret holding secrets.env values
  std::string into;         // the plan's [run] into; empty: corral/<workflow>/merged
  std::vector<std::string> setup;
  std::vector<ArgoTask> tasks;  // in plan order
  std::vector<size_t> order;    // the plan's merge order (indices into tasks)
};

// The seccomp profile name a policy's pods use, relative to the kubelet's seccomp directory:
// "corral/<name>-<first 12 hex of sha256>.json".
std::string LocalhostProfile(const policy::Policy& policy, const std::string& policy_sha256);

// The documents, in the order to create them: a ConfigMap (policies and strings the manifest
// cannot hold literally), a NetworkPolicy per egress shape, and the Workflow.
std::vector<nlohmann::json> ArgoManifests(const ArgoInput& input);

// What a schema validator does not see: names that Kubernetes or Argo would refuse, template and
// task references that lead nowhere, DAG cycles, a Localhost seccomp profile without a path, a
// configMapKeyRef to a key the ConfigMap lacks. Empty when none.
std::vector<std::string> CheckManifests(const std::vector<nlohmann::json>& docs);

// The documents as one YAML stream ("---" between documents).
std::string ToYaml(const std::vector<nlohmann::json>& docs);

}  // namespace corral::launcher
