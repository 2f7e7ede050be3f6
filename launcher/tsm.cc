#include "launcher/tsm.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace corral::launcher::tdx {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string Configfs::PathOf(const std::string& name, const std::string& attribute) const {
  return root_ + "/report/" + name + (attribute.empty() ? "" : "/" + attribute);
}

std::expected<void, std::string> Configfs::MakeEntry(const std::string& name) {
  if (mkdir(PathOf(name).c_str(), 0700) != 0) {
    return std::unexpected("mkdir " + PathOf(name) + ": " + std::strerror(errno));
  }
  return {};
}

std::expected<std::string, std::string> Configfs::Read(const std::string& name,
                                                       const std::string& attribute) {
  std::string path = PathOf(name, attribute);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::unexpected(path + ": " + std::strerror(errno));
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return std::unexpected(path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

std::expected<void, std::string> Configfs::Write(const std::string& name,
                                                 const std::string& attribute,
                                                 const std::string& bytes) {
  std::string path = PathOf(name, attribute);
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return std::unexpected(path + ": " + std::strerror(errno));
  // configfs binary attributes take the whole value in one write.
  ssize_t n = write(fd, bytes.data(), bytes.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(bytes.size())) {
    return std::unexpected(path + ": " + (n < 0 ? std::strerror(err) : "short write"));
  }
  return {};
}

void Configfs::RemoveEntry(const std::string& name) { rmdir(PathOf(name).c_str()); }

std::expected<std::vector<uint8_t>, std::string> GetQuote(Configfs* fs,
                                                          const std::array<uint8_t, 64>& report_data) {
  static std::atomic<unsigned> counter{0};
  std::string name = "corral-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  if (auto r = fs->MakeEntry(name); !r) return std::unexpected(r.error());
  auto result = [&]() -> std::expected<std::vector<uint8_t>, std::string> {
    auto provider = fs->Read(name, "provider");
    if (!provider) return std::unexpected(provider.error());
    if (Trim(*provider) != "tdx_guest") {
      return std::unexpected("configfs-tsm: the provider is '" + Trim(*provider) +
                             "', not tdx_guest");
    }
    auto before = fs->Read(name, "generation");
    if (!before) return std::unexpected(before.error());
    std::string blob(report_data.begin(), report_data.end());
    if (auto w = fs->Write(name, "inblob", blob); !w) return std::unexpected(w.error());
    auto written = fs->Read(name, "generation");
    if (!written) return std::unexpected(written.error());
    auto quote = fs->Read(name, "outblob");
    if (!quote) return std::unexpected(quote.error());
    auto after = fs->Read(name, "generation");
    if (!after) return std::unexpected(after.error());
    // Our write is the one generation step between `before` and `written`; nothing after it.
    uint64_t g0 = std::strtoull(before->c_str(), nullptr, 10);
    uint64_t g1 = std::strtoull(written->c_str(), nullptr, 10);
    uint64_t g2 = std::strtoull(after->c_str(), nullptr, 10);
    if (g1 != g0 + 1 || g2 != g1) {
      return std::unexpected("configfs-tsm: generation went " + std::to_string(g0) + ", " +
                             std::to_string(g1) + ", " + std::to_string(g2) +
                             ": another writer changed the report; not using it");
    }
    if (quote->empty()) return std::unexpected("configfs-tsm: outblob is empty");
    return std::vector<uint8_t>(quote->begin(), quote->end());
  }();
  fs->RemoveEntry(name);
  return result;
}

}  // namespace corral::launcher::tdx
