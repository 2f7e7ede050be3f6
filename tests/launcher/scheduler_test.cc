// The scheduler with a fake runner and a simulated clock: no processes, no sleeping.
#include "launcher/scheduler.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>

namespace corral::launcher {
namespace {

using std::chrono::milliseconds;
using Kind = Outcome::Kind;

// Runs a scheduler to completion. `script(task, try)` says how long a try takes and how it ends.
struct Sim {
  struct Try {
    Millis duration;
    Outcome outcome;
  };
  std::function<Try(size_t task, int attempt, Millis start, size_t running)> script;
  std::map<size_t, std::vector<Millis>> starts;  // per task, the start of each try
  Millis end{0};
  size_t max_running = 0;

  void Run(Scheduler& s) {
    struct Event {
      Millis at;
      size_t task;
      Outcome outcome;
    };
    std::vector<Event> running;
    Millis now{0};
    for (int guard = 0; !s.Done() && guard < 100000; ++guard) {
      size_t busy = s.running();
      for (size_t t : s.TakeStartable(now)) {
        starts[t].push_back(now);
        Try tr = script(t, s.tries(t), now, ++busy);  // what runs once this one has started
        running.push_back({now + tr.duration, t, tr.outcome});
      }
      max_running = std::max(max_running, running.size());
      if (s.Done()) break;
      // Advance to the next finish or wake-up.
      Millis next{INT64_MAX};
      for (const Event& e : running) next = std::min(next, e.at);
      if (auto wake = s.NextWake(now)) next = std::min(next, *wake);
      ASSERT_NE(next.count(), INT64_MAX) << "stuck";
      now = std::max(now, next);
      for (size_t i = 0; i < running.size();) {
        if (running[i].at <= now) {
          s.Finish(running[i].task, running[i].outcome, now);
          running.erase(running.begin() + static_cast<long>(i));
        } else {
          ++i;
        }
      }
    }
    end = now;
  }
};

std::vector<size_t> Iota(size_t n) {
  std::vector<size_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

std::vector<SchedTask> Independent(size_t n, int retries = 0) {
  std::vector<SchedTask> tasks(n);
  for (size_t i = 0; i < n; ++i) tasks[i] = {"t" + std::to_string(i), {}, retries};
  return tasks;
}

TEST(SchedulerTest, SlidingWindowNotWaves) {
  // Durations 5,1,1,1,1,1 with -j 2: the short ones flow past the long one.
  SchedulerOptions o;
  o.jobs = 2;
  Scheduler s(Independent(6), Iota(6), o);
  Sim sim;
  sim.script = [](size_t t, int, Millis, size_t) {
    return Sim::Try{milliseconds(t == 0 ? 5000 : 1000), {}};
  };
  sim.Run(s);
  EXPECT_EQ(sim.starts[2][0], milliseconds(1000));
  EXPECT_EQ(sim.starts[5][0], milliseconds(4000));
  EXPECT_EQ(sim.end, milliseconds(5000));
  EXPECT_EQ(sim.max_running, 2u);
  for (size_t t = 0; t < 6; ++t) EXPECT_EQ(s.state(t), TaskState::kSucceeded);
}

TEST(SchedulerTest, DagFollowsTheCriticalPath) {
  // impl(3s) -> {tests(1s), docs(2s)} -> review(1s); plus an independent lint(4s). -j 8.
  std::vector<SchedTask> tasks = {
      {"impl", {}, 0}, {"tests", {0}, 0}, {"docs", {0}, 0}, {"review", {1, 2}, 0}, {"lint", {}, 0}};
  std::map<size_t, int> dur = {{0, 3000}, {1, 1000}, {2, 2000}, {3, 1000}, {4, 4000}};
  SchedulerOptions o;
  o.jobs = 8;
  Scheduler s(tasks, {0, 4, 1, 2, 3}, o);
  Sim sim;
  sim.script = [&](size_t t, int, Millis, size_t) { return Sim::Try{milliseconds(dur[t]), {}}; };
  sim.Run(s);
  EXPECT_EQ(sim.starts[1][0], milliseconds(3000));
  EXPECT_EQ(sim.starts[3][0], milliseconds(5000));
  EXPECT_EQ(sim.end, milliseconds(6000)) << "the critical path impl+docs+review";
}

TEST(SchedulerTest, SkipsDependentsOfFailures) {
  std::vector<SchedTask> tasks = {{"a", {}, 0}, {"b", {0}, 0}, {"c", {1}, 0},
                                  {"d", {}, 0}, {"e", {3}, 0}, {"f", {5 - 5}, 0}};
  tasks[5].deps = {3};
  SchedulerOptions o;
  Scheduler s(tasks, Iota(6), o);
  Sim sim;
  sim.script = [](size_t t, int, Millis, size_t) {
    Outcome out;
    if (t == 0) out.kind = Kind::kFailed;
    if (t == 3) out.kind = Kind::kTimedOut;
    return Sim::Try{milliseconds(100), out};
  };
  sim.Run(s);
  EXPECT_EQ(s.state(0), TaskState::kFailed);
  EXPECT_EQ(s.state(1), TaskState::kSkipped);
  EXPECT_EQ(s.reason(1), "dependency 'a' failed");
  EXPECT_EQ(s.state(2), TaskState::kSkipped);
  EXPECT_EQ(s.reason(2), "dependency 'a' failed");
  EXPECT_EQ(s.state(3), TaskState::kTimedOut);
  EXPECT_EQ(s.reason(4), "dependency 'd' timed-out");
  EXPECT_EQ(sim.starts.count(1), 0u);
}

TEST(SchedulerTest, ConflictedInputsSkipDependents) {
  std::vector<SchedTask> tasks = {{"x", {}, 0}, {"y", {0}, 0}};
  Scheduler s(tasks, Iota(2), {});
  Sim sim;
  sim.script = [](size_t, int, Millis, size_t) {
    return Sim::Try{milliseconds(1), {Kind::kConflicted, {}}};
  };
  sim.Run(s);
  EXPECT_EQ(s.state(0), TaskState::kConflicted);
  EXPECT_EQ(s.reason(1), "dependency 'x' conflicted");
}

TEST(SchedulerTest, RetriesWithExponentialBackoff) {
  SchedulerOptions o;
  o.backoff_base = milliseconds(1000);
  Scheduler s(Independent(1, /*retries=*/2), Iota(1), o);
  Sim sim;
  sim.script = [](size_t, int attempt, Millis, size_t) {
    return Sim::Try{milliseconds(100), {attempt < 3 ? Kind::kFailed : Kind::kSucceeded, {}}};
  };
  sim.Run(s);
  ASSERT_EQ(sim.starts[0].size(), 3u);
  Millis first_wait = sim.starts[0][1] - milliseconds(100);
  Millis second_wait = sim.starts[0][2] - sim.starts[0][1] - milliseconds(100);
  EXPECT_GE(first_wait, milliseconds(500));  // 1 s step, equal jitter: 0.5 to 1 s
  EXPECT_LE(first_wait, milliseconds(1000));
  EXPECT_GE(second_wait, milliseconds(1000));  // 2 s step
  EXPECT_LE(second_wait, milliseconds(2000));
  EXPECT_EQ(s.state(0), TaskState::kSucceeded);
  EXPECT_EQ(s.tries(0), 3);
}

TEST(SchedulerTest, NoRetriesMeansOneTry) {
  Scheduler s(Independent(1, 0), Iota(1), {});
  Sim sim;
  sim.script = [](size_t, int, Millis, size_t) {
    return Sim::Try{milliseconds(1), {Kind::kFailed, {}}};
  };
  sim.Run(s);
  EXPECT_EQ(s.state(0), TaskState::kFailed);
  EXPECT_EQ(s.tries(0), 1);
}

TEST(SchedulerTest, RateLimitsHonourRetryAfterAndDoNotUseRetries) {
  Scheduler s(Independent(1, 0), Iota(1), {});
  Sim sim;
  sim.script = [](size_t, int attempt, Millis, size_t) {
    if (attempt <= 2) return Sim::Try{milliseconds(10), {Kind::kRateLimited, milliseconds(30000)}};
    return Sim::Try{milliseconds(10), {}};
  };
  sim.Run(s);
  EXPECT_EQ(s.state(0), TaskState::kSucceeded);
  ASSERT_EQ(sim.starts[0].size(), 3u);
  EXPECT_GE(sim.starts[0][1], milliseconds(30010));
  EXPECT_GE(sim.starts[0][2] - sim.starts[0][1], milliseconds(30010));
}

TEST(SchedulerTest, EndlessRateLimitingEndsInFailure) {
  SchedulerOptions o;
  o.rate_limit_retries = 3;
  Scheduler s(Independent(1, 0), Iota(1), o);
  Sim sim;
  sim.script = [](size_t, int, Millis, size_t) {
    return Sim::Try{milliseconds(10), {Kind::kRateLimited, {}}};
  };
  sim.Run(s);
  EXPECT_EQ(s.state(0), TaskState::kFailed);
  EXPECT_EQ(s.reason(0), "rate limited 4 times");
  EXPECT_EQ(s.tries(0), 4);
}

// 40 tasks of 1 s against an API that refuses (429, Retry-After 1 s) whatever runs beyond 5 at
// once. Returns how many tries were refused and when the run ended.
std::pair<int, Millis> AgainstLimitedApi(std::optional<int> jobs, size_t* max_running,
                                         size_t tasks = 40) {
  SchedulerOptions o;
  o.jobs = jobs;
  o.auto_start = 2;
  o.auto_cooldown = milliseconds(1000);
  Scheduler s(Independent(tasks), Iota(tasks), o);
  Sim sim;
  int refused = 0;
  sim.script = [&](size_t, int, Millis, size_t running) {
    if (running > 5) {
      ++refused;
      return Sim::Try{milliseconds(200), {Kind::kRateLimited, milliseconds(1000)}};
    }
    return Sim::Try{milliseconds(1000), {}};
  };
  sim.Run(s);
  for (size_t t = 0; t < tasks; ++t) EXPECT_EQ(s.state(t), TaskState::kSucceeded);
  *max_running = sim.max_running;
  return {refused, sim.end};
}

TEST(SchedulerTest, AutoConcurrencyFindsWhatTheServerBears) {
  size_t auto_max = 0, all_max = 0, five_max = 0;
  auto [auto_refused, auto_end] = AgainstLimitedApi(std::nullopt, &auto_max);
  auto [all_refused, all_end] = AgainstLimitedApi(40, &all_max);
  auto [five_refused, five_end] = AgainstLimitedApi(5, &five_max);
  std::printf(
      "40 tasks, API bears 5: auto %.1f s (%d refused), -j 40 %.1f s (%d refused), -j 5 %.1f s\n",
      auto_end.count() / 1000.0, auto_refused, all_end.count() / 1000.0, all_refused,
      five_end.count() / 1000.0);
  EXPECT_EQ(five_refused, 0);
  EXPECT_EQ(five_end, milliseconds(8000)) << "the best fixed setting, known in hindsight";
  EXPECT_GT(auto_max, 4u) << "it grows";
  EXPECT_LE(auto_max, 8u) << "but gently";
  EXPECT_LT(auto_refused * 5, all_refused) << "it backs off instead of hammering";
  EXPECT_LE(auto_end.count(), five_end.count() * 3 / 2) << "within 1.5x of the best fixed setting";
}

TEST(SchedulerTest, AutoStaysBelowTheWindowThatWasRefused) {
  size_t auto_max = 0, five_max = 0;
  auto [auto_refused, auto_end] = AgainstLimitedApi(std::nullopt, &auto_max, 200);
  auto [five_refused, five_end] = AgainstLimitedApi(5, &five_max, 200);
  std::printf("200 tasks, API bears 5: auto %.1f s (%d refused), -j 5 %.1f s\n",
              auto_end.count() / 1000.0, auto_refused, five_end.count() / 1000.0);
  EXPECT_EQ(five_refused, 0);
  // Without the wait below the refused window: 22 refused (it went back to 6 at every step).
  EXPECT_LE(auto_refused, 15) << "back below a refused window, it stays there a while";
  EXPECT_LE(auto_end.count(), five_end.count() * 21 / 20) << "within 1.05x of the best fixed";
}

TEST(SchedulerTest, AutoStartsLowAndGrows) {
  SchedulerOptions o;
  o.jobs.reset();
  o.auto_start = 2;
  Scheduler s(Independent(30), Iota(30), o);
  EXPECT_EQ(s.limit(), 2);
  Sim sim;
  sim.script = [](size_t, int, Millis, size_t) { return Sim::Try{milliseconds(1000), {}}; };
  sim.Run(s);
  EXPECT_GT(s.limit(), 5);
}

TEST(SchedulerTest, ProxyRateLimitSignalShrinksTheWindowOncePerCooldown) {
  SchedulerOptions o;
  o.jobs.reset();
  o.auto_start = 10;
  o.auto_cooldown = milliseconds(1000);
  Scheduler s(Independent(1), Iota(1), o);
  s.RateLimited(milliseconds(0));
  EXPECT_EQ(s.limit(), 7);  // 10 * 0.7
  s.RateLimited(milliseconds(500));
  EXPECT_EQ(s.limit(), 7);  // within the cooldown: the same episode
  s.RateLimited(milliseconds(1500));
  EXPECT_EQ(s.limit(), 4);  // 4.9
  for (int i = 2; i < 10; ++i) s.RateLimited(milliseconds(1500 * i));
  EXPECT_EQ(s.limit(), 1) << "never below one";
}

TEST(SchedulerTest, ProxyAnswersGrowAFullWindow) {
  SchedulerOptions o;
  o.jobs.reset();
  o.auto_start = 2;
  o.auto_cooldown = milliseconds(1000);
  Scheduler s(Independent(20), Iota(20), o);
  s.Answered(5, milliseconds(0));
  EXPECT_EQ(s.limit(), 2) << "nothing runs: answers say nothing about the window";
  EXPECT_EQ(s.TakeStartable(milliseconds(0)).size(), 2u);
  s.Answered(3, milliseconds(100));
  EXPECT_EQ(s.limit(), 5) << "slow start: one more per answer";
  EXPECT_EQ(s.TakeStartable(milliseconds(100)).size(), 3u);
  s.RateLimited(milliseconds(200));
  EXPECT_EQ(s.limit(), 3);  // 5 * 0.7
  s.Answered(50, milliseconds(700));
  EXPECT_EQ(s.limit(), 3) << "within the cooldown of the rate limit";
  s.Answered(50, milliseconds(1300));
  EXPECT_EQ(s.limit(), 4) << "after it: one more per cooldown, however many answers";
  s.Answered(50, milliseconds(1800));
  EXPECT_EQ(s.limit(), 4);
  s.Answered(1, milliseconds(2400));
  EXPECT_EQ(s.limit(), 4) << "5 was refused: tried again only after four cooldowns without a 429";
  s.Answered(1, milliseconds(4100));
  EXPECT_EQ(s.limit(), 4);
  s.Answered(1, milliseconds(4300));
  EXPECT_EQ(s.limit(), 5);
  s.Answered(1, milliseconds(5000));
  EXPECT_EQ(s.limit(), 5);
  s.Answered(1, milliseconds(5400));
  EXPECT_EQ(s.limit(), 6) << "tried again, then one more per cooldown as before";
  // Two of the five end: three run in a window of six, whose answers test nothing.
  auto ids = std::vector<size_t>{0, 1};
  for (size_t t : ids) s.Finish(t, {Kind::kFailed, {}}, milliseconds(5500));
  s.Answered(1, milliseconds(8000));
  EXPECT_EQ(s.limit(), 6) << "three run in a window of six: not full";
  SchedulerOptions fixed;
  fixed.jobs = 3;
  Scheduler f(Independent(5), Iota(5), fixed);
  EXPECT_EQ(f.TakeStartable(milliseconds(0)).size(), 3u);
  f.Answered(100, milliseconds(0));
  EXPECT_EQ(f.limit(), 3) << "-j N stays N";
}

TEST(SchedulerTest, ResumeFromEveryPrefixGivesTheSameResult) {
  // The DAG a -> b -> d, a -> c -> d, e; c fails once (retries 1), e fails for good.
  auto make = [] {
    std::vector<SchedTask> t = {
        {"a", {}, 0}, {"b", {0}, 0}, {"c", {0}, 1}, {"d", {1, 2}, 0}, {"e", {}, 0}};
    return t;
  };
  auto script = [](size_t t, int attempt, Millis, size_t) {
    Outcome out;
    if (t == 2 && attempt == 1) out.kind = Kind::kFailed;
    if (t == 4) out.kind = Kind::kFailed;
    return Sim::Try{milliseconds(100 * (t + 1)), out};
  };
  Scheduler full(make(), Iota(5), {});
  Sim sim;
  sim.script = script;
  sim.Run(full);
  // Replay: restore the final state of the first k tasks to end, then run the rest.
  std::vector<size_t> end_order;
  for (size_t t : {0, 4, 1, 2, 3}) end_order.push_back(t);
  for (size_t k = 0; k <= 5; ++k) {
    Scheduler resumed(make(), Iota(5), {});
    for (size_t i = 0; i < k; ++i) {
      size_t t = end_order[i];
      resumed.Restore(t, full.state(t), full.tries(t));
    }
    Sim rest;
    rest.script = [&](size_t t, int attempt, Millis now, size_t running) {
      return script(t, attempt, now, running);
    };
    rest.Run(resumed);
    for (size_t t = 0; t < 5; ++t) {
      EXPECT_EQ(resumed.state(t), full.state(t)) << "prefix " << k << " task " << t;
    }
  }
}

}  // namespace
}  // namespace corral::launcher

namespace corral::launcher {
namespace {

TEST(SchedulerTest, ApprovalHoldsATaskAndItsDependents) {
  std::vector<SchedTask> tasks = {{"build", {}, 0}, {"deploy", {0}, 0, true}, {"notify", {1}, 0},
                                  {"docs", {}, 0}};
  Scheduler s(tasks, Iota(4), {});
  Sim sim;
  sim.script = [](size_t, int, Millis, size_t) { return Sim::Try{milliseconds(100), {}}; };
  sim.Run(s);
  EXPECT_TRUE(s.Done());
  EXPECT_TRUE(s.AwaitingApproval());
  EXPECT_EQ(s.state(0), TaskState::kSucceeded);
  EXPECT_EQ(s.state(1), TaskState::kAwaitingApproval);
  EXPECT_EQ(s.reason(1), "its policy requires human approval");
  EXPECT_EQ(s.state(2), TaskState::kPending);
  EXPECT_EQ(s.state(3), TaskState::kSucceeded);
  EXPECT_EQ(sim.starts.count(1), 0u);
  s.Approve(1);
  EXPECT_FALSE(s.Done());
  Sim rest;
  rest.script = sim.script;
  rest.Run(s);
  EXPECT_EQ(s.state(1), TaskState::kSucceeded);
  EXPECT_EQ(s.state(2), TaskState::kSucceeded);
  EXPECT_FALSE(s.AwaitingApproval());
}

}  // namespace
}  // namespace corral::launcher
