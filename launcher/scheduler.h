// The run's scheduler: which task starts when. Pure: no processes, no clock of its own (the caller
// passes the time), so it is tested with a fake runner and a simulated clock.
//
// - A sliding window: a ready task starts as soon as a slot is free, never in waves.
// - Dependents of a task that failed, timed out or conflicted are skipped, with the reason.
// - Retries: a failure or timeout is tried again while the task's `retries` allow; a rate-limited
//   try (exit 75, EX_TEMPFAIL) is retried up to `rate_limit_retries` times without using them.
//   Exponential backoff with jitter between tries, at least the Retry-After the agent gave.
// - `jobs = auto`: additive increase, multiplicative decrease. The window starts at `auto_start`,
//   grows by one per success until the first rate limit (slow start), then by about one per
//   window of successes, and shrinks to 0.7 of itself (at most once per `auto_cooldown`) on a
//   rate limit reported by a task or by the egress proxy; back below the window that was
//   refused, it reaches it again only after four cooldowns without a rate limit. Answers the
//   egress proxy sees allowed
//   hosts give, while the window is full, count too: agents that talk to an API say within seconds
//   whether it bears the load, long before they end. Each answer is a success in slow start;
//   after it, a cooldown of answers without a rate limit is worth one more.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace corral::launcher {

using Millis = std::chrono::milliseconds;

enum class TaskState {
  kPending,  // waits for dependencies
  kRunning,
  kBackoff,  // waits to be tried again
  kSucceeded,
  kFailed,
  kTimedOut,
  kConflicted,        // its dependencies' branches could not be merged
  kSkipped,           // a dependency did not succeed
  kAwaitingApproval,  // needs a person's yes (Approve); its dependents wait with it
};

const char* Name(TaskState s);
bool IsFinal(TaskState s);

struct Outcome {
  enum class Kind { kSucceeded, kFailed, kTimedOut, kRateLimited, kConflicted };
  Kind kind = Kind::kSucceeded;
  std::optional<Millis> retry_after;  // from the agent (CORRAL_RETRY_AFTER)
};

struct SchedulerOptions {
  std::optional<int> jobs = 4;  // nullopt: auto
  int auto_start = 2;
  int auto_max = 32;
  Millis auto_cooldown{2000};
  Millis backoff_base{1000};
  Millis backoff_max{60000};
  int rate_limit_retries = 10;
  uint64_t seed = 1;  // for the jitter
};

struct SchedTask {
  std::string id;            // for reasons ("dependency 'impl' failed")
  std::vector<size_t> deps;  // indices of the tasks it depends on
  int retries = 0;
  bool needs_approval = false;  // waits as kAwaitingApproval until Approve
};

class Scheduler {
 public:
  // `order` lists every task once, dependencies first: ready tasks start in that order.
  Scheduler(std::vector<SchedTask> tasks, std::vector<size_t> order, SchedulerOptions options);

  // For resume: a task that already ended (final state) or was tried `tries` times.
  void Restore(size_t task, TaskState state, int tries, const std::string& reason = {});

  // The tasks to start now; they are running from here on, their try count increased.
  std::vector<size_t> TakeStartable(Millis now);

  // A running task ended.
  void Finish(size_t task, const Outcome& outcome, Millis now);

  // A person approved the task: it may start once its dependencies succeeded.
  void Approve(size_t task);

  // The egress proxy saw HTTP 429 from an allowed host.
  void RateLimited(Millis now);
  // The egress proxy saw `count` answers (not 429, not a server error) from allowed hosts.
  void Answered(int count, Millis now);

  // When the next backoff ends after `now`, if any task waits for one. (A task whose backoff
  // already ended waits for a free slot, which only a Finish makes.)
  std::optional<Millis> NextWake(Millis now) const;

  // Nothing runs or can start any more: every task ended, or waits for an approval (itself or a
  // dependency).
  bool Done() const;
  bool AwaitingApproval() const;
  size_t running() const { return running_; }
  // The current window: `jobs`, or the adaptive limit.
  int limit() const;

  TaskState state(size_t t) const { return tasks_[t].state; }
  int tries(size_t t) const { return tasks_[t].tries; }
  const std::string& reason(size_t t) const { return tasks_[t].reason; }
  size_t size() const { return tasks_.size(); }

 private:
  struct Entry {
    SchedTask spec;
    TaskState state = TaskState::kPending;
    int tries = 0;
    int rate_limited = 0;
    bool approved = false;
    Millis wake{0};
    std::string reason;
  };
  void SkipDependents();
  void Decrease(Millis now);
  void Increase(Millis now);
  // Sets the window to `to` (at most auto_max) unless that reaches the window the last rate
  // limit refused before kProbeCooldowns cooldowns without one. Whether it did.
  bool Grow(double to, Millis now);
  Millis Backoff(int attempt, std::optional<Millis> retry_after);

  std::vector<Entry> tasks_;
  std::vector<size_t> order_;
  SchedulerOptions options_;
  size_t running_ = 0;
  double auto_limit_;
  std::optional<Millis> last_decrease_;
  double refused_at_ = 0;    // the window when the last rate limit came; 0: none, or tried again
  Millis last_increase_{0};  // by answers, after slow start
  std::mt19937_64 rng_;
};

}  // namespace corral::launcher
