// Helpers shared by corral's end-to-end tests: run the built corral binary, make scratch dirs.
#pragma once

#include <gtest/gtest.h>

#include <sys/types.h>

#include <string>
#include <vector>

namespace corral::testing {

struct Output {
  int status = -1;  // exit status, or 128+N for signal N
  std::string out;
  std::string err;
};

// Runs `argv` with stdin from /dev/null and `env_add` ("NAME=value", each replacing a variable
// of the same name) added to this process's environment; captures stdout and stderr.
Output RunCommand(const std::vector<std::string>& argv, const std::vector<std::string>& env_add = {});

// Starts `argv` with stdin from /dev/null and stdout/stderr to `log`; returns its pid.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log);

// A fresh directory under /tmp, removed (made writable first) at destruction.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix = "corral-test");
  ~ScratchDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& content, int mode = 0644);

// Whether the running kernel is at least major.minor.
bool KernelAtLeast(int major, int minor);

// Marks a test skipped because the kernel lacks `feature`; fails it instead when
// CORRAL_REQUIRE_FEATURES=1 (set in CI), where every feature must be present.
#define CORRAL_SKIP_WITHOUT(feature)                                                  \
  do {                                                                                \
    if (std::getenv("CORRAL_REQUIRE_FEATURES") &&                                     \
        std::string(std::getenv("CORRAL_REQUIRE_FEATURES")) == "1") {                 \
      FAIL() << "kernel feature missing, required in CI: " << (feature);             \
    }                                                                                 \
    GTEST_SKIP() << "kernel feature missing: " << (feature);                          \
  } while (0)

}  // namespace corral::testing
