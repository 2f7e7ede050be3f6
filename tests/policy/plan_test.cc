// Plan files: the grammar and the task graph, with exact error texts.
#include <gtest/gtest.h>

#include "policy/plan.h"

namespace corral::policy {
namespace {

std::string Error(const std::string& text) {
  auto p = ParsePlan(text, "plan.toml");
  return p ? "(parsed)" : p.error();
}

constexpr const char* kDag = R"([run]
base = "main"
jobs = "auto"
setup = ["sh", "-c", "cp ../.env.example .env"]

[[task]]
id = "review"
depends_on = ["impl", "tests", "docs"]
policy = "policies/reviewer.toml"
run = ["sh", "-c", "true"]

[[task]]
id = "impl"
policy = "policies/code_implementer.toml"
run = ["claude", "-p", "Implement it"]
timeout = "20m"
retries = 1
env = { MODE = "fast" }
prompt = "Implement the rate limiter"

[[task]]
id = "tests"
policy = "p.toml"
run = ["true"]

[[task]]
id = "docs"
depends_on = ["impl"]
policy = "p.toml"
run = ["true"]
)";

TEST(PlanTest, WorkspacesAreWorktreesOrOverlays) {
  using W = Plan::Workspaces;
  for (auto [kind, want] :
       {std::pair{"auto", W::kAuto}, std::pair{"worktree", W::kWorktree},
        std::pair{"overlay", W::kOverlay}}) {
    auto p = ParsePlan(std::string("[run]\nworkspaces = \"") + kind +
                           "\"\n[[task]]\nid = \"a\"\npolicy = \"p.toml\"\nrun = [\"true\"]\n",
                       "plan.toml");
    ASSERT_TRUE(p) << p.error();
    EXPECT_EQ(p->workspaces, want) << kind;
  }
}

TEST(PlanTest, ParsesAndOrders) {
  auto p = ParsePlan(kDag, "plan.toml");
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->base, "main");
  EXPECT_FALSE(p->jobs.has_value());
  EXPECT_EQ(p->setup.size(), 3u);
  EXPECT_EQ(p->workspaces, Plan::Workspaces::kAuto);
  ASSERT_EQ(p->tasks.size(), 4u);
  const PlanTask& impl = p->tasks[1];
  EXPECT_EQ(impl.run, (std::vector<std::string>{"claude", "-p", "Implement it"}));
  EXPECT_EQ(*impl.timeout, std::chrono::minutes(20));
  EXPECT_EQ(impl.retries, 1);
  EXPECT_EQ(impl.env.at("MODE"), "fast");
  EXPECT_EQ(impl.prompt, "Implement the rate limiter");
  EXPECT_EQ(impl.policy_pos.line, 14);
  // Dependency order, ties in plan order: impl, tests, docs, review.
  EXPECT_EQ(p->order, (std::vector<size_t>{1, 2, 3, 0}));
  auto defaults = ParsePlan("[[task]]\nid = \"a\"\npolicy = \"p.toml\"\nrun = [\"true\"]\n", "p");
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->base, "HEAD");
  EXPECT_EQ(defaults->jobs, 4);
  EXPECT_EQ(defaults->tasks[0].retries, 0);
}

struct Case {
  const char* text;
  const char* error;
};

class PlanErrorTest : public ::testing::TestWithParam<Case> {};

TEST_P(PlanErrorTest, ExactMessage) { EXPECT_EQ(Error(GetParam().text), GetParam().error); }

#define TASK(id, extra) "[[task]]\nid = \"" id "\"\npolicy = \"p.toml\"\nrun = [\"true\"]\n" extra

INSTANTIATE_TEST_SUITE_P(
    Errors, PlanErrorTest,
    ::testing::Values(
        Case{"", "plan.toml:1:1: task: a plan needs at least one [[task]]"},
        Case{"[run]\njobz = 4\n" TASK("a", ""),
             "plan.toml:2:1: run.jobz: unknown key (expected one of base, jobs, into, setup, "
             "workspaces)"},
        Case{"[run]\nworkspaces = \"cow\"\n" TASK("a", ""),
             "plan.toml:2:14: run.workspaces: expected \"auto\", \"worktree\" or \"overlay\", "
             "got \"cow\""},
        Case{"[run]\nworkspaces = true\n" TASK("a", ""),
             "plan.toml:2:14: run.workspaces: expected a string, got a boolean"},
        Case{"[run]\njobs = 0\n" TASK("a", ""),
             "plan.toml:2:8: run.jobs: expected a number from 1 to 1024 or \"auto\""},
        Case{"[run]\njobs = \"many\"\n" TASK("a", ""),
             "plan.toml:2:8: run.jobs: expected a number from 1 to 1024 or \"auto\""},
        Case{"[[task]]\npolicy = \"p.toml\"\n", "plan.toml:1:1: task: needs an id"},
        Case{TASK("a b", ""),
             "plan.toml:2:6: task 'a b': id may only hold letters, digits, '_' and '-'"},
        Case{TASK("merged", ""),
             "plan.toml:2:6: task 'merged': id 'merged' is reserved for the integration branch"},
        Case{"[[task]]\nid = \"a\"\nrun = [\"true\"]\n", "plan.toml:1:1: task 'a': needs a policy"},
        Case{"[[task]]\nid = \"a\"\npolicy = \"p.toml\"\n",
             "plan.toml:1:1: task 'a': needs run = [\"program\", \"args\"...]"},
        Case{TASK("a", "colour = 1\n"),
             "plan.toml:5:1: task 'a'.colour: unknown key (expected one of id, policy, run, "
             "depends_on, timeout, retries, env, prompt)"},
        Case{TASK("a", "timeout = \"20 minutes\"\n"),
             "plan.toml:5:11: task 'a': timeout: '20 minutes' is not a duration (examples: 90s, "
             "30m, 1h)"},
        Case{TASK("a", "retries = 11\n"),
             "plan.toml:5:11: task 'a': retries: expected a number from 0 to 10"},
        Case{TASK("a", "") TASK("a", ""), "plan.toml:6:6: task 'a': duplicate id (first at line 1)"},
        Case{TASK("review", "depends_on = [\"impl\", \"docs\"]\n") TASK("impl", ""),
             "plan.toml:5:23: task 'review': unknown dependency 'docs'"},
        Case{TASK("a", "depends_on = [\"a\"]\n"), "plan.toml:5:15: task 'a': depends on itself"},
        Case{TASK("a", "depends_on = [\"c\"]\n") TASK("b", "depends_on = [\"a\"]\n")
                 TASK("c", "depends_on = [\"b\"]\n") TASK("d", ""),
             "plan.toml:1:1: task 'a': dependency cycle a -> c -> b -> a"},
        Case{"task = 3\n", "plan.toml:1:8: task: expected [[task]] tables, got an integer"}));

}  // namespace
}  // namespace corral::policy
