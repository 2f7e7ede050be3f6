// Small file helpers private to corral::worktree.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "worktree/error.h"

namespace corral::worktree {

// Writes `content` to `path`, opened with O_WRONLY | O_CREAT | O_CLOEXEC | `flags` (O_EXCL: a
// file that must not exist yet; O_TRUNC | O_NOFOLLOW: replace one, never through a symlink).
// Errors name the path.
Expected<> WriteFileAt(const std::string& path, const std::string& content, int flags);

// Removes a tree an agent may have made unreadable or unwritable.
void RemoveTree(const std::string& path);

// An flock on a file, exclusive unless asked otherwise: serializes the worktree metadata step across threads (each holds
// its own open file description) and processes. libgit2 1.5.1 races when worktrees are added
// concurrently.
class FileLock {
 public:
  // `mode`: LOCK_EX, or LOCK_SH for one of many readers.
  static Expected<FileLock> Acquire(const std::string& path, int mode = LOCK_EX) {
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return Fail("lock " + path + ": " + std::strerror(errno));
    while (flock(fd, mode) != 0) {
      if (errno != EINTR) {
        close(fd);
        return Fail("lock " + path + ": " + std::strerror(errno));
      }
    }
    return FileLock(fd);
  }
  FileLock(FileLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  ~FileLock() {
    if (fd_ >= 0) close(fd_);  // releases the lock
  }

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace corral::worktree
