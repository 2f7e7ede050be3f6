// What this host gives corral's sandbox, for `corral doctor`: each check really tries the
// feature (in a child process that exits, so nothing stays behind) and says what to do when it
// is missing.
#pragma once

#include <string>
#include <vector>

#include "sandbox/error.h"

namespace corral::sandbox {

struct HostCheck {
  std::string name;
  bool ok = false;
  bool essential = false;  // corral exec cannot run without it
  std::string detail;      // what was found
  std::string fix;         // what a user can do, when !ok
};

// Runs in the single-threaded helper (corral-sandbox --probe); prints the JSON of the checks.
std::vector<HostCheck> ProbeHost();
std::string ToJson(const std::vector<HostCheck>& checks);
Expected<std::vector<HostCheck>> HostChecksFromJson(const std::string& text);

// The launcher's side: runs `helper --probe` and reads its answer.
Expected<std::vector<HostCheck>> RunHostProbe(const std::string& helper_path);

}  // namespace corral::sandbox
