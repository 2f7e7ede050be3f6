// How fast `corral audit verify` checks a big audit log: builds a log of N records (default
// 1,000,000) in the real chained format, with a signed checkpoint after every 1,000th record,
// then times the verifier in-process and the corral CLI on the same file.
//
//   build/tests/bench/audit_bench [N] [path/to/corral]
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "launcher/audit.h"
#include "launcher/crypto.h"

using corral::launcher::ChainLine;
using corral::launcher::CheckpointMessage;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000000;
  std::string corral = argc > 2 ? argv[2] : "";
  char dir_template[] = "/tmp/corral-audit-bench-XXXXXX";
  std::string dir = mkdtemp(dir_template);
  auto key = corral::launcher::SigningKey::LoadOrCreate(dir + "/key.pem");
  if (!key) {
    std::fprintf(stderr, "%s\n", key.error().c_str());
    return 1;
  }
  const std::string run = "20261130-120000-beef";
  std::string text;
  std::string prev = corral::launcher::GenesisHash(run), hash;
  uint64_t seq = 0;
  nlohmann::json first = {{"corral_events", 2}, {"key", key->public_hex()}, {"run", run}};
  text += ChainLine(seq++, prev, first.dump(), &hash);
  prev = hash;
  while (seq < n) {
    nlohmann::json record = {{"type", "exec"},
                             {"task", "task-" + std::to_string(seq % 200)},
                             {"argv", {"/usr/bin/git", "diff", "--stat", "src/file" + std::to_string(seq)}},
                             {"cwd", "/work/repo/.git/corral/worktrees/run/task"},
                             {"pid", 1000 + seq % 30000},
                             {"ppid", 999},
                             {"t", "2026-11-30T12:00:00Z"}};
    if (seq % 1000 == 999) {
      record = {{"type", "checkpoint"},
                {"key", key->public_hex()},
                {"sig", key->Sign(CheckpointMessage(run, seq, corral::launcher::ToHex(prev)))},
                {"t", "2026-11-30T12:00:00Z"}};
    }
    text += ChainLine(seq++, prev, record.dump(), &hash);
    prev = hash;
  }
  std::string path = dir + "/events.jsonl";
  std::ofstream(path, std::ios::binary) << text;
  std::printf("audit log: %llu records, %.1f MB\n", static_cast<unsigned long long>(n),
              text.size() / 1e6);

  corral::launcher::VerifyOptions options;
  options.trusted_key = key->public_hex();
  auto start = Clock::now();
  auto r = corral::launcher::VerifyLog(text, path, options);
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  if (!r.ok || r.records != n) {
    std::fprintf(stderr, "verify failed: %s\n", r.problem.c_str());
    return 1;
  }
  std::printf("VerifyLog in-process: %.3f s, %.0f records/s (target: at least 200000)\n", secs,
              n / secs);
  if (!corral.empty()) {
    std::string cmd = corral + " audit verify " + path + " --key " + key->public_hex() + " >/dev/null";
    start = Clock::now();
    int status = std::system(cmd.c_str());
    secs = std::chrono::duration<double>(Clock::now() - start).count();
    if (status != 0) {
      std::fprintf(stderr, "%s: exit %d\n", cmd.c_str(), WEXITSTATUS(status));
      return 1;
    }
    std::printf("corral audit verify: %.3f s, %.0f records/s\n", secs, n / secs);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
