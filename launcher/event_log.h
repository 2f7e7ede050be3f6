// The run's event log, events.jsonl, which is also its audit log: append-only JSON lines written
// by corral alone. Each record is one write(2), synced before the state change it records takes
// effect, so the run can be rebuilt by replaying it. A torn last line (a crash mid-write) is
// ignored on read.
//
// Version 2 chains the records (see audit.h): each line is
//   {"seq":N,"prev":"<hash of line N-1>",<the record's keys, sorted>,"hash":"<hash>"}
// where hash = SHA-256(prev as 32 bytes || the line's bytes before ,"hash":). Line 0 names the
// run and the public key that signs its checkpoints; its prev is a genesis value derived from
// the run id. Checkpoint records sign the head of the chain.
#pragma once

#include <cstdint>
#include <expected>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "launcher/crypto.h"

namespace corral::launcher {

inline constexpr int kEventLogVersion = 2;

class EventLog {
 public:
  // Creates the log with its first line; fails if it exists. `key` signs checkpoints.
  static std::expected<EventLog, std::string> Create(const std::string& path,
                                                     const std::string& run, const SigningKey* key);
  // Opens an existing log for appending (a resumed run); a torn last line is cut off first.
  static std::expected<EventLog, std::string> Open(const std::string& path, const SigningKey* key);
  // The file was renamed (its folder moved into place): messages name `path` from now on.
  void Moved(std::string path) { path_ = std::move(path); }
  EventLog(EventLog&& o) noexcept;
  EventLog& operator=(EventLog&&) = delete;
  ~EventLog();

  // Appends one record (a JSON object, written compactly) with one write(2), and fsyncs it
  // unless `sync` is false (many records at once; the next synced one makes them durable).
  // Thread-safe.
  std::expected<void, std::string> Append(const nlohmann::json& record, bool sync = true);
  // Appends `record` and, right behind it, a checkpoint: a record whose signature covers the
  // chain up to it. The verifier requires one after every task-end, approval and run-end.
  std::expected<void, std::string> AppendSigned(const nlohmann::json& record,
                                                const std::string& at);

  // Why the log cannot be written, once a record could not be (a full disk, an I/O error):
  // the file was cut back to the last whole record, and every later append fails with this.
  // Empty while the log is fine. Thread-safe.
  std::string failure() const;

  // Every complete record after the first line. Errors name the file and line.
  static std::expected<std::vector<nlohmann::json>, std::string> Read(const std::string& path);

 private:
  EventLog(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  std::expected<void, std::string> Write(const std::string& line, bool sync = true);
  std::expected<void, std::string> AppendLocked(const std::string& record_json, bool sync = true);

  int fd_;
  std::string path_;
  std::string run_;
  const SigningKey* key_ = nullptr;
  bool chained_ = true;  // false for a version-1 log, which is continued as it was
  uint64_t seq_ = 0;     // of the next record
  std::string prev_;     // raw hash of the last record
  std::string failure_;  // see failure()
};

}  // namespace corral::launcher
