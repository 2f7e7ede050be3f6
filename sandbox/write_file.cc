#include "sandbox/write_file.h"

#include <fcntl.h>
#include <unistd.h>

namespace corral::sandbox {

Expected<> WriteFile(const std::string& path, const std::string& content) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open " + path);
  ssize_t n = write(fd, content.data(), content.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(content.size())) return ErrnoError("write " + path, err);
  return {};
}

}  // namespace corral::sandbox
