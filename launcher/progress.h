// Progress of a run on a terminal: a live table of its tasks (state, elapsed time, tries, last
// line of output), redrawn in place as docker compose does, and questions put to the person at
// the terminal (approvals). Off a terminal, corral prints one line per state change instead.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace corral::launcher {

// The tasks' rows and their rendering: pure, so tests can look at frames.
class ProgressTable {
 public:
  using Clock = std::chrono::steady_clock;

  explicit ProgressTable(std::vector<std::string> ids);

  // `state` is a TaskState name ("running", "succeeded", ...). A task's clock starts when it
  // first runs and stops when it reaches a final state.
  void Set(size_t task, const std::string& state, int tries, Clock::time_point now);
  void SetLastLine(size_t task, std::string line);
  bool Running(size_t task) const;
  const std::string& id(size_t task) const { return rows_.at(task).id; }
  size_t size() const { return rows_.size(); }

  // At most `height` lines of at most `width` columns: a header, the tasks (running ones first
  // when they do not all fit, then the most recently ended, then the rest), and a summary.
  std::vector<std::string> Render(Clock::time_point now, size_t width, size_t height) const;

 private:
  struct Row {
    std::string id, state = "pending", last_line;
    int tries = 0;
    std::optional<Clock::time_point> started, ended;
  };
  std::vector<Row> rows_;
};

// The last non-empty line of `text` (a log's tail), made safe to print on a terminal: escape
// sequences and other control characters dropped, invalid UTF-8 replaced.
std::string LastLine(std::string_view text);

// Draws a ProgressTable on a terminal (`fd`, which must be one) every `period`, reading each
// running task's last line from `log_dir`/<id>.log. Thread-safe.
class LiveTable {
 public:
  LiveTable(int fd, std::vector<std::string> ids, std::string log_dir,
            std::chrono::milliseconds period = std::chrono::milliseconds(250));
  ~LiveTable();  // stops, leaving the last frame on the screen

  void Set(size_t task, const std::string& state, int tries);  // shown at the next frame
  // Prints `text` above the table (a message that is not a task's state).
  void Print(const std::string& text);
  // Puts a yes/no question under the table and waits for a line on `in_fd`; the table stays
  // still meanwhile. nullopt when `Stop` was called first or `in_fd` ended.
  std::optional<bool> Ask(const std::string& question, int in_fd);
  void Stop();

 private:
  void Loop();
  void DrawLocked();
  void EraseLocked();

  int fd_;
  std::string log_dir_;
  std::chrono::milliseconds period_;
  std::mutex mu_;
  std::condition_variable cv_;
  ProgressTable table_;
  size_t drawn_ = 0;  // lines of the last frame
  bool asking_ = false, stop_ = false;
  std::thread thread_;
};

// Whether both descriptors are terminals (the live table and questions need a person there).
bool IsTerminal(int fd);

}  // namespace corral::launcher
