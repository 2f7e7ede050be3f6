// The configfs-tsm client: how corral's agent-side helper inside a TD guest asks the kernel for a
// quote (Documentation/ABI/testing/configfs-tsm-report). It makes an entry under
// TSM/report/, writes the 64-byte REPORTDATA to inblob, reads outblob, and checks that the
// provider is tdx_guest and that generation says no other writer changed the entry meanwhile.
// The entry is removed afterwards, whatever happened.
#pragma once

#include <array>
#include <cstdint>
#include <expected>
#include <string>
#include <vector>

namespace corral::launcher::tdx {

// The file operations on configfs. The real ones act on the file system under `root`
// (/sys/kernel/config/tsm); tests override them to act as the kernel does.
class Configfs {
 public:
  explicit Configfs(std::string root) : root_(std::move(root)) {}
  virtual ~Configfs() = default;
  Configfs(const Configfs&) = delete;
  Configfs& operator=(const Configfs&) = delete;

  virtual std::expected<void, std::string> MakeEntry(const std::string& name);
  virtual std::expected<std::string, std::string> Read(const std::string& name,
                                                       const std::string& attribute);
  virtual std::expected<void, std::string> Write(const std::string& name,
                                                 const std::string& attribute,
                                                 const std::string& bytes);
  virtual void RemoveEntry(const std::string& name);

  // root/report/name/attribute
  std::string PathOf(const std::string& name, const std::string& attribute = "") const;

 private:
  std::string root_;
};

// A quote for `report_data` from the TDX provider behind `fs`.
std::expected<std::vector<uint8_t>, std::string> GetQuote(Configfs* fs,
                                                          const std::array<uint8_t, 64>& report_data);

}  // namespace corral::launcher::tdx
