// Writing one value to a kernel interface file (/proc/PID/uid_map, cgroup knobs).
#pragma once

#include <string>

#include "sandbox/error.h"

namespace corral::sandbox {

// Writes `content` with one write(2), as kernel files require. Errors name the path.
Expected<> WriteFile(const std::string& path, const std::string& content);

}  // namespace corral::sandbox
