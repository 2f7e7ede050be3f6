#include "launcher/scheduler.h"

#include <algorithm>
#include <cmath>

namespace corral::launcher {

// The multiplicative decrease on a rate limit (as CUBIC's beta): gentler than halving, so a
// window that sits just above what the server bears does not fall far below it.
constexpr double kDecrease = 0.7;
// The window a rate limit refused is tried again only after this many cooldowns without one:
// below it the window grows as before, and there it stays instead of hitting the limit again at
// every step.
constexpr int kProbeCooldowns = 4;

const char* Name(TaskState s) {
  switch (s) {
    case TaskState::kPending:
      return "pending";
    case TaskState::kRunning:
      return "running";
    case TaskState::kBackoff:
      return "waiting-to-retry";
    case TaskState::kSucceeded:
      return "succeeded";
    case TaskState::kFailed:
      return "failed";
    case TaskState::kTimedOut:
      return "timed-out";
    case TaskState::kConflicted:
      return "conflicted";
    case TaskState::kSkipped:
      return "skipped";
    case TaskState::kAwaitingApproval:
      return "awaiting-approval";
  }
  return "?";
}

bool IsFinal(TaskState s) {
  return s != TaskState::kPending && s != TaskState::kRunning && s != TaskState::kBackoff &&
         s != TaskState::kAwaitingApproval;
}

Scheduler::Scheduler(std::vector<SchedTask> tasks, std::vector<size_t> order,
                     SchedulerOptions options)
    : order_(std::move(order)),
      options_(options),
      auto_limit_(std::max(1, options.auto_start)),
      rng_(options.seed) {
  for (SchedTask& t : tasks) {
    Entry e;
    e.spec = std::move(t);
    tasks_.push_back(std::move(e));
  }
}

void Scheduler::Restore(size_t task, TaskState state, int tries, const std::string& reason) {
  Entry& e = tasks_[task];
  e.tries = tries;
  if (IsFinal(state)) {
    e.state = state;
    e.reason = reason;
    if (state != TaskState::kSucceeded) SkipDependents();
  }
}

int Scheduler::limit() const {
  if (options_.jobs) return *options_.jobs;
  return static_cast<int>(std::floor(auto_limit_));
}

std::vector<size_t> Scheduler::TakeStartable(Millis now) {
  std::vector<size_t> start;
  for (size_t t : order_) {
    if (running_ >= static_cast<size_t>(limit())) break;
    Entry& e = tasks_[t];
    bool ready =
        e.state == TaskState::kPending || (e.state == TaskState::kBackoff && e.wake <= now);
    if (!ready) continue;
    bool deps_done = std::all_of(e.spec.deps.begin(), e.spec.deps.end(), [&](size_t d) {
      return tasks_[d].state == TaskState::kSucceeded;
    });
    if (!deps_done) continue;
    if (e.spec.needs_approval && !e.approved) {
      e.state = TaskState::kAwaitingApproval;
      e.reason = "its policy requires human approval";
      continue;
    }
    e.state = TaskState::kRunning;
    ++e.tries;
    ++running_;
    start.push_back(t);
  }
  return start;
}

void Scheduler::Finish(size_t task, const Outcome& outcome, Millis now) {
  Entry& e = tasks_[task];
  if (e.state != TaskState::kRunning) return;
  --running_;
  using K = Outcome::Kind;
  switch (outcome.kind) {
    case K::kSucceeded:
      e.state = TaskState::kSucceeded;
      e.reason.clear();
      Increase(now);
      return;
    case K::kRateLimited:
      Decrease(now);
      if (e.rate_limited < options_.rate_limit_retries) {
        ++e.rate_limited;
        e.state = TaskState::kBackoff;
        e.wake = now + Backoff(e.rate_limited, outcome.retry_after);
        e.reason = "rate limited";
        return;
      }
      e.state = TaskState::kFailed;
      e.reason = "rate limited " + std::to_string(e.rate_limited + 1) + " times";
      break;
    case K::kFailed:
    case K::kTimedOut: {
      int failures = e.tries - e.rate_limited;
      if (failures <= e.spec.retries) {
        e.state = TaskState::kBackoff;
        e.wake = now + Backoff(failures, outcome.retry_after);
        e.reason = outcome.kind == K::kFailed ? "failed; retrying" : "timed out; retrying";
        return;
      }
      e.state = outcome.kind == K::kFailed ? TaskState::kFailed : TaskState::kTimedOut;
      e.reason.clear();
      break;
    }
    case K::kConflicted:
      e.state = TaskState::kConflicted;
      e.reason = "its dependencies' branches conflict";
      break;
  }
  SkipDependents();
}

void Scheduler::Approve(size_t task) {
  Entry& e = tasks_[task];
  e.approved = true;
  if (e.state == TaskState::kAwaitingApproval) {
    e.state = TaskState::kPending;
    e.reason.clear();
  }
}

void Scheduler::RateLimited(Millis now) { Decrease(now); }

void Scheduler::Answered(int count, Millis now) {
  // Answers only say the resource bears the window when the window is used: tasks that are few
  // or slow to start would otherwise grow it without a test.
  if (options_.jobs || running_ < static_cast<size_t>(limit())) return;
  if (!last_decrease_) {
    for (int i = 0; i < count; ++i) Increase(now);
    return;
  }
  // Many answers come from one task: one more per cooldown in which none was refused.
  if (now - std::max(*last_decrease_, last_increase_) < options_.auto_cooldown) return;
  if (Grow(std::floor(auto_limit_) + 1, now)) last_increase_ = now;
}

void Scheduler::Increase(Millis now) {
  // Slow start until the first sign of a limit (one more per success), then about one more per
  // window of successes.
  Grow(auto_limit_ + (last_decrease_ ? 1.0 / auto_limit_ : 1.0), now);
}

bool Scheduler::Grow(double to, Millis now) {
  to = std::min<double>(options_.auto_max, to);
  // refused_at_ is set with last_decrease_.
  if (last_decrease_ && refused_at_ > 0 && std::floor(to) >= std::floor(refused_at_)) {
    if (now - *last_decrease_ < kProbeCooldowns * options_.auto_cooldown) return false;
    refused_at_ = 0;  // quiet long enough: the window is tried again, and grows from there
  }
  auto_limit_ = to;
  return true;
}

void Scheduler::Decrease(Millis now) {
  if (options_.jobs) return;
  // Tries that were already under way when the limit was hit say nothing new: decrease at most
  // once per cooldown.
  if (last_decrease_ && now - *last_decrease_ < options_.auto_cooldown) return;
  last_decrease_ = now;
  refused_at_ = auto_limit_;
  auto_limit_ = std::max(1.0, auto_limit_ * kDecrease);
}

Millis Scheduler::Backoff(int attempt, std::optional<Millis> retry_after) {
  // Exponential with "equal jitter": half the step fixed, half random.
  double step = static_cast<double>(options_.backoff_base.count()) * std::pow(2.0, attempt - 1);
  step = std::min(step, static_cast<double>(options_.backoff_max.count()));
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  Millis wait(static_cast<int64_t>(step * jitter(rng_)));
  if (retry_after) wait = std::max(wait, *retry_after);
  return wait;
}

void Scheduler::SkipDependents() {
  // Tasks are few (hundreds); a fixed point over the order is plenty.
  bool changed = true;
  while (changed) {
    changed = false;
    for (size_t t : order_) {
      Entry& e = tasks_[t];
      if (e.state != TaskState::kPending && e.state != TaskState::kBackoff) continue;
      for (size_t d : e.spec.deps) {
        TaskState ds = tasks_[d].state;
        if (IsFinal(ds) && ds != TaskState::kSucceeded) {
          e.state = TaskState::kSkipped;
          e.reason = ds == TaskState::kSkipped
                         ? tasks_[d].reason
                         : "dependency '" + tasks_[d].spec.id + "' " + Name(ds);
          changed = true;
          break;
        }
      }
    }
  }
}

std::optional<Millis> Scheduler::NextWake(Millis now) const {
  std::optional<Millis> wake;
  for (const Entry& e : tasks_) {
    if (e.state == TaskState::kBackoff && e.wake > now && (!wake || e.wake < *wake)) wake = e.wake;
  }
  return wake;
}

bool Scheduler::Done() const {
  // A pending task whose dependencies all ended or wait can never start: with no task running or
  // backing off, nothing else will happen.
  bool active = std::any_of(tasks_.begin(), tasks_.end(), [](const Entry& e) {
    return e.state == TaskState::kRunning || e.state == TaskState::kBackoff;
  });
  if (active) return false;
  for (const Entry& e : tasks_) {
    if (e.state != TaskState::kPending) continue;
    bool startable = std::all_of(e.spec.deps.begin(), e.spec.deps.end(), [&](size_t d) {
      return tasks_[d].state == TaskState::kSucceeded;
    });
    if (startable) return false;
  }
  return true;
}

bool Scheduler::AwaitingApproval() const {
  return std::any_of(tasks_.begin(), tasks_.end(),
                     [](const Entry& e) { return e.state == TaskState::kAwaitingApproval; });
}

}  // namespace corral::launcher
