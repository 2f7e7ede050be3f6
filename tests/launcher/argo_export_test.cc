// The Argo export's own checks (what schema validators miss) and its naming. Each check is shown
// to fail on a manifest broken the way it guards against; tests/e2e/argo_test.sh validates the
// output with the Kubernetes and Argo schemas and runs its pods.
#include "launcher/argo_export.h"

#include <gtest/gtest.h>

#include "launcher/crypto.h"

namespace corral::launcher {
namespace {

using json = nlohmann::json;

constexpr const char* kPolicy = "name = \"p\"\n[network]\negress = \"none\"\n";

struct Fixture {
  policy::Plan plan;
  ArgoInput in;
};

std::unique_ptr<Fixture> Make(const std::string& plan_text, const std::string& url) {
  auto f = std::make_unique<Fixture>();
  auto plan = policy::ParsePlan(plan_text, "plan.toml");
  EXPECT_TRUE(plan.has_value()) << plan.error();
  f->plan = std::move(*plan);
  f->in.plan_name = "plan";
  f->in.plan_sha256 = Sha256Hex(plan_text);
  f->in.repo_url = url;
  f->in.base = std::string(40, 'a');
  f->in.image = "img";
  f->in.secret = "s";
  f->in.order = f->plan.order;
  for (const policy::PlanTask& t : f->plan.tasks) {
    auto pol = policy::Parse(kPolicy, "p.toml");
    EXPECT_TRUE(pol.has_value());
    f->in.tasks.push_back({&t, *pol, kPolicy, Sha256Hex(kPolicy)});
  }
  return f;
}

constexpr const char* kPlan =
    "[[task]]\nid = \"a_b\"\npolicy = \"p.toml\"\nrun = [\"true\"]\nprompt = \"p\"\n"
    "[[task]]\nid = \"a-b\"\npolicy = \"p.toml\"\nrun = [\"true\"]\ndepends_on = [\"a_b\"]\n"
    "[[task]]\nid = \"merge\"\npolicy = \"p.toml\"\nrun = [\"true\"]\n";

json& Workflow(std::vector<json>& docs) { return docs.back(); }
json& Template(std::vector<json>& docs, const std::string& name) {
  for (json& t : Workflow(docs)["spec"]["templates"]) {
    if (t["name"] == name) return t;
  }
  throw std::runtime_error("no template " + name);
}

TEST(ArgoExport, WhatItWritesPassesItsOwnChecks) {
  auto f = Make(kPlan, "https://git.example.com/app.git");
  auto docs = ArgoManifests(f->in);
  EXPECT_EQ(CheckManifests(docs), std::vector<std::string>{});
  EXPECT_EQ(docs.front()["kind"], "ConfigMap");
  EXPECT_EQ(Workflow(docs)["kind"], "Workflow");
}

TEST(ArgoExport, TaskIdsBecomeDistinctLabelsAndNeverTakeCorralsOwnNames) {
  auto f = Make(kPlan, "https://git.example.com/app.git");
  auto docs = ArgoManifests(f->in);
  const json& dag = Workflow(docs)["spec"]["templates"][0]["dag"]["tasks"];
  ASSERT_EQ(dag.size(), 3u);
  EXPECT_EQ(dag[0]["name"], "a-b");
  std::string second = dag[1]["name"];
  EXPECT_TRUE(second.starts_with("a-b-")) << second;  // "a-b" was taken by "a_b"
  EXPECT_EQ(dag[1]["dependencies"], json::array({"a-b"}));
  std::string third = dag[2]["name"];
  EXPECT_NE(third, "merge");  // the exit handler's name
  EXPECT_TRUE(third.starts_with("merge-")) << third;
  EXPECT_EQ(Workflow(docs)["spec"]["onExit"], "merge");
}

TEST(ArgoExport, ADanglingTemplateReferenceIsFound) {
  auto f = Make(kPlan, "https://git.example.com/app.git");
  auto docs = ArgoManifests(f->in);
  Workflow(docs)["spec"]["templates"][0]["dag"]["tasks"][0]["template"] = "nowhere";
  auto problems = CheckManifests(docs);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], "Workflow corral-plan-: dag tasks: task 'a-b' names no template: 'nowhere'");
  Workflow(docs)["spec"]["onExit"] = "gone";
  EXPECT_EQ(CheckManifests(docs).size(), 2u);
}

TEST(ArgoExport, ACycleAndAnUnknownDependencyAreFound) {
  auto f = Make(kPlan, "https://git.example.com/app.git");
  auto docs = ArgoManifests(f->in);
  json& tasks = Workflow(docs)["spec"]["templates"][0]["dag"]["tasks"];
  tasks[0]["dependencies"] = {tasks[1]["name"]};
  auto problems = CheckManifests(docs);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("the dependencies form a cycle"), std::string::npos) << problems[0];
  tasks[0]["dependencies"] = {"ghost"};
  problems = CheckManifests(docs);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("depends on unknown 'ghost'"), std::string::npos) << problems[0];
}

TEST(ArgoExport, ALocalhostProfileWithoutAPathIsFound) {
  auto f = Make(kPlan, "https://git.example.com/app.git");
  auto docs = ArgoManifests(f->in);
  json& sc = Template(docs, "a-b")["container"]["securityContext"]["seccompProfile"];
  EXPECT_EQ(sc["type"], "Localhost");
  EXPECT_EQ(sc["localhostProfile"], LocalhostProfile(f->in.tasks[0].policy, Sha256Hex(kPolicy)));
  sc.erase("localhostProfile");
  auto problems = CheckManifests(docs);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("type Localhost without localhostProfile"), std::string::npos);
}

TEST(ArgoExport, BadNamesAndMissingConfigMapKeysAreFound) {
  auto f = Make(kPlan, "https://git.example.com/app.git");
  auto docs = ArgoManifests(f->in);
  docs.front()["metadata"]["name"] = "Not_A_Label";
  Template(docs, "a-b")["name"] = "UPPER";
  auto problems = CheckManifests(docs);
  // The ConfigMap's name; the template's name; the DAG's reference to the old name; every
  // configMapKeyRef into the renamed ConfigMap.
  EXPECT_GE(problems.size(), 3u);
  bool named = false, keyref = false;
  for (const auto& p : problems) {
    named |= p == "ConfigMap Not_A_Label: metadata.name is not a DNS-1123 label";
    keyref |= p.find(".configMapKeyRef: ConfigMap corral-plan-") != std::string::npos;
  }
  EXPECT_TRUE(named);
  EXPECT_TRUE(keyref);
}

TEST(ArgoExport, StringsArgoOrTheKubeletWouldRewriteTravelInTheConfigMap) {
  std::string plan =
      "[[task]]\nid = \"t\"\npolicy = \"p.toml\"\nrun = [\"echo\", \"{{workflow.name}}\", "
      "\"$(HOME)\", \"plain\"]\nprompt = \"do it\"\nenv = { A = \"{{x}}\", B = \"b\" }\n";
  auto f = Make(plan, "https://git.example.com/app.git");
  auto docs = ArgoManifests(f->in);
  std::map<std::string, json> env;
  for (const json& e : Template(docs, "t")["container"]["env"]) env[e["name"]] = e;
  EXPECT_TRUE(env["CORRAL_ARGV_1"].contains("valueFrom"));
  EXPECT_TRUE(env["CORRAL_ARGV_2"].contains("valueFrom"));
  EXPECT_EQ(env["CORRAL_ARGV_3"]["value"], "plain");
  EXPECT_TRUE(env["A"].contains("valueFrom"));
  EXPECT_EQ(env["B"]["value"], "b");
  const json& data = docs.front()["data"];
  std::string key = env["CORRAL_ARGV_1"]["valueFrom"]["configMapKeyRef"]["key"];
  EXPECT_EQ(data[key], "{{workflow.name}}");
  EXPECT_EQ(CheckManifests(docs), std::vector<std::string>{});
}

TEST(ArgoExport, TheNetworkPolicyOpensTheRepositorysPort) {
  auto port_of = [](const std::string& url) {
    auto f = Make(kPlan, url);
    auto docs = ArgoManifests(f->in);
    const json& egress = docs[1]["spec"]["egress"];
    return egress.size() < 2 ? 0 : egress[1]["ports"][0]["port"].get<int>();
  };
  EXPECT_EQ(port_of("https://git.example.com/app.git"), 443);
  EXPECT_EQ(port_of("https://git.example.com:8443/app.git"), 8443);
  EXPECT_EQ(port_of("http://git.example.com/app.git"), 80);
  EXPECT_EQ(port_of("ssh://git@git.example.com/app.git"), 22);
  EXPECT_EQ(port_of("git@github.com:team/app.git"), 22);
  EXPECT_EQ(port_of("/srv/git/app.git"), 0);
}

TEST(ArgoExport, YamlQuotesEveryStringSoNoneReadsAsANumberOrABoolean) {
  std::string y = ToYaml({json{{"a", "true"}, {"b", "0755"}, {"c", 3}, {"d", false}}});
  EXPECT_EQ(y, "---\na: \"true\"\nb: \"0755\"\nc: 3\nd: false\n");
}

}  // namespace
}  // namespace corral::launcher
