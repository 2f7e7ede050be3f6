// Small file-descriptor I/O shared by corral and its helper.
#pragma once

#include <string>

#include "sandbox/error.h"

namespace corral::sandbox {

// Writes `content` to the file at `path` with one write(2), as kernel interface files
// (/proc/PID/uid_map, cgroup knobs) require. Errors name the path.
Expected<> WriteFile(const std::string& path, const std::string& content);

// Writes all of `data` to `fd`, retrying short writes and EINTR. Errors say `what` failed.
Expected<> WriteAll(int fd, const std::string& data, const std::string& what);

// Reads `fd` until end of file (or an error, which ends the data).
std::string ReadAll(int fd);

}  // namespace corral::sandbox
