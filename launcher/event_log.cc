#include "launcher/event_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <mutex>

namespace corral::launcher {
namespace {

std::mutex g_append;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace

std::expected<EventLog, std::string> EventLog::Create(const std::string& path,
                                                      const std::string& run) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return std::unexpected(Errno("create " + path));
  EventLog log(fd, path);
  auto r = log.Append({{"corral_events", kEventLogVersion}, {"run", run}});
  if (!r) return std::unexpected(r.error());
  return log;
}

std::expected<EventLog, std::string> EventLog::Open(const std::string& path) {
  if (auto records = Read(path); !records) return std::unexpected(records.error());
  std::ifstream in(path, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t keep = all.rfind('\n');
  keep = keep == std::string::npos ? 0 : keep + 1;
  if (keep != all.size() && truncate(path.c_str(), static_cast<off_t>(keep)) != 0) {
    return std::unexpected(Errno("cut the torn last line of " + path));
  }
  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return std::unexpected(Errno("open " + path));
  return EventLog(fd, path);
}

EventLog::~EventLog() {
  if (fd_ >= 0) close(fd_);
}

std::expected<void, std::string> EventLog::Append(const nlohmann::json& record) {
  std::string line = record.dump() + "\n";
  std::lock_guard lock(g_append);
  ssize_t n = write(fd_, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) return std::unexpected(Errno("append to " + path_));
  if (fdatasync(fd_) != 0) return std::unexpected(Errno("sync " + path_));
  return {};
}

std::expected<std::vector<nlohmann::json>, std::string> EventLog::Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::unexpected(Errno(path));
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
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
      if (j.value("corral_events", 0) != kEventLogVersion) {
        return std::unexpected(path + ":1: not a corral event log of version " +
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
