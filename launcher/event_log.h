// The run's event log, events.jsonl: append-only JSON lines, the first a version line. Each record
// is one write(2) and synced before the state change it records takes effect, so the run can be
// rebuilt by replaying it. A torn last line (a crash mid-write) is ignored on read.
#pragma once

#include <expected>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace corral::launcher {

inline constexpr int kEventLogVersion = 1;

class EventLog {
 public:
  // Creates the log with its version line; fails if it exists.
  static std::expected<EventLog, std::string> Create(const std::string& path, const std::string& run);
  EventLog(EventLog&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)) { o.fd_ = -1; }
  EventLog& operator=(EventLog&&) = delete;
  ~EventLog();

  // Opens an existing log for appending (a resumed run); a torn last line is cut off first.
  static std::expected<EventLog, std::string> Open(const std::string& path);

  // Appends one record (a JSON object, written compactly) and fsyncs it. Thread-safe.
  std::expected<void, std::string> Append(const nlohmann::json& record);

  // Every complete record after the version line. Errors name the file and line.
  static std::expected<std::vector<nlohmann::json>, std::string> Read(const std::string& path);

 private:
  EventLog(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
};

}  // namespace corral::launcher
