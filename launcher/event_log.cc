#include "launcher/event_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <mutex>

#include "launcher/audit.h"
#include "sandbox/fdio.h"

namespace corral::launcher {
namespace {

std::mutex g_append;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

std::string ReadAll(const std::string& path, bool* ok) {
  std::ifstream in(path, std::ios::binary);
  *ok = static_cast<bool>(in);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The record without the chain's own keys, which only the log writes.
std::string RecordJson(const nlohmann::json& record) {
  nlohmann::json copy = record;
  for (const char* k : {"seq", "prev", "hash"}) copy.erase(k);
  // Values need not be UTF-8 (file names, an agent's arguments): an odd byte becomes U+FFFD.
  return copy.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

EventLog::EventLog(EventLog&& o) noexcept
    : fd_(o.fd_),
      path_(std::move(o.path_)),
      run_(std::move(o.run_)),
      key_(o.key_),
      chained_(o.chained_),
      seq_(o.seq_),
      prev_(std::move(o.prev_)),
      failure_(std::move(o.failure_)) {
  o.fd_ = -1;
}

std::expected<EventLog, std::string> EventLog::Create(const std::string& path,
                                                      const std::string& run,
                                                      const SigningKey* key) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return std::unexpected(Errno("create " + path));
  EventLog log(fd, path);
  log.run_ = run;
  log.key_ = key;
  log.prev_ = GenesisHash(run);
  nlohmann::json first = {{"corral_events", kEventLogVersion}, {"run", run}};
  if (key) first["key"] = key->public_hex();
  if (auto r = log.Append(first); !r) return std::unexpected(r.error());
  return log;
}

std::expected<EventLog, std::string> EventLog::Open(const std::string& path,
                                                    const SigningKey* key) {
  if (auto records = Read(path); !records) return std::unexpected(records.error());
  bool ok = false;
  std::string all = ReadAll(path, &ok);
  size_t keep = all.rfind('\n');
  keep = keep == std::string::npos ? 0 : keep + 1;
  if (keep != all.size() && truncate(path.c_str(), static_cast<off_t>(keep)) != 0) {
    return std::unexpected(Errno("cut the torn last line of " + path));
  }
  all.resize(keep);
  nlohmann::json first = nlohmann::json::parse(all.substr(0, all.find('\n')));
  size_t last_start = all.rfind('\n', keep - 2);
  last_start = last_start == std::string::npos ? 0 : last_start + 1;
  nlohmann::json last = nlohmann::json::parse(all.substr(last_start, keep - 1 - last_start));

  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return std::unexpected(Errno("open " + path));
  EventLog log(fd, path);
  log.key_ = key;
  // Read() checked the version; the rest may be anything a tampered log holds.
  log.run_ = first["run"].is_string() ? first["run"].get<std::string>() : "";
  log.chained_ = first["corral_events"].get<int>() >= 2;
  if (log.chained_) {
    if (!last.contains("seq") || !last["seq"].is_number_unsigned() || !last["hash"].is_string() ||
        FromHex(last["hash"].get<std::string>()).size() != 32) {
      return std::unexpected(path +
                             ": the last record has no seq or hash; run corral audit verify");
    }
    log.seq_ = last["seq"].get<uint64_t>() + 1;
    log.prev_ = FromHex(last["hash"].get<std::string>());
  }
  return log;
}

EventLog::~EventLog() {
  if (fd_ >= 0) close(fd_);
}

std::expected<void, std::string> EventLog::Write(const std::string& line, bool sync) {
  if (!failure_.empty()) return std::unexpected(failure_);
  off_t before = lseek(fd_, 0, SEEK_END);
  std::string what = "append to " + path_;
  auto written = sandbox::WriteAll(fd_, line, what);
  if (written && sync && fdatasync(fd_) != 0) written = sandbox::ErrnoError(what);
  if (!written) {
    // No torn record of corral's own making: the log ends at its last whole record, and stays
    // there (a record left out would make a later one a lie about what happened in between).
    if (before >= 0 && ftruncate(fd_, before) == 0) fdatasync(fd_);
    failure_ = written.error().message + "; the log ends at its last whole record and takes no more";
    return std::unexpected(failure_);
  }
  return {};
}

std::string EventLog::failure() const {
  std::lock_guard lock(g_append);
  return failure_;
}

std::expected<void, std::string> EventLog::AppendLocked(const std::string& record_json, bool sync) {
  std::string hash;
  std::string line = ChainLine(seq_, prev_, record_json, &hash);
  if (auto r = Write(line, sync); !r) return r;
  ++seq_;
  prev_ = std::move(hash);
  return {};
}

std::expected<void, std::string> EventLog::Append(const nlohmann::json& record, bool sync) {
  std::lock_guard lock(g_append);
  if (!chained_) return Write(RecordJson(record) + "\n", sync);
  return AppendLocked(RecordJson(record), sync);
}

std::expected<void, std::string> EventLog::AppendSigned(const nlohmann::json& record,
                                                        const std::string& at) {
  std::lock_guard lock(g_append);
  if (!chained_) return Write(RecordJson(record) + "\n");
  if (!key_) return AppendLocked(RecordJson(record));
  // The record and its checkpoint in one write: a kill between two writes would leave a record
  // that must be signed without its signature, which the verifier rightly calls tampering.
  std::string record_hash, checkpoint_hash;
  std::string line = ChainLine(seq_, prev_, RecordJson(record), &record_hash);
  std::string sig = key_->Sign(CheckpointMessage(run_, seq_ + 1, ToHex(record_hash)));
  if (sig.empty()) return std::unexpected("could not sign a checkpoint of " + path_);
  nlohmann::json checkpoint = {
      {"type", "checkpoint"}, {"key", key_->public_hex()}, {"sig", sig}, {"t", at}};
  line += ChainLine(seq_ + 1, record_hash, checkpoint.dump(), &checkpoint_hash);
  if (auto r = Write(line); !r) return r;
  seq_ += 2;
  prev_ = std::move(checkpoint_hash);
  return {};
}

std::expected<std::vector<nlohmann::json>, std::string> EventLog::Read(const std::string& path) {
  bool ok = false;
  std::string all = ReadAll(path, &ok);
  if (!ok) return std::unexpected(Errno(path));
  std::vector<nlohmann::json> records;
  size_t start = 0;
  int line_no = 0;
  while (start < all.size()) {
    size_t end = all.find('\n', start);
    ++line_no;
    if (end == std::string::npos) break;  // torn last line: the write never completed
    nlohmann::json j = nlohmann::json::parse(all.substr(start, end - start), nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return std::unexpected(path + ":" + std::to_string(line_no) + ": not a JSON object");
    }
    if (line_no == 1) {
      auto v = j.find("corral_events");
      int version = v != j.end() && v->is_number_integer() ? v->get<int>() : 0;
      if (version < 1 || version > kEventLogVersion) {
        return std::unexpected(path + ":1: not a corral event log of version 1 to " +
                               std::to_string(kEventLogVersion));
      }
    } else {
      records.push_back(std::move(j));
    }
    start = end + 1;
  }
  if (line_no == 0) return std::unexpected(path + ": empty");
  return records;
}

}  // namespace corral::launcher
