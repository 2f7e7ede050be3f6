// The audit trail's chain and its verification: what `corral audit verify` checks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace corral::launcher {

// The hash that line 0 of run `run`'s log chains from.
std::string GenesisHash(std::string_view run);

// Line `seq` of a chained log, given the record's compact JSON ("{...}") and the previous raw
// hash; sets *hash to the new line's raw hash. The line ends with '\n'.
std::string ChainLine(uint64_t seq, const std::string& prev, std::string_view record_json,
                      std::string* hash);

// What a checkpoint's signature covers: the run, the checkpoint's own sequence number and the
// hash of the record before it.
std::string CheckpointMessage(std::string_view run, uint64_t seq, std::string_view prev_hex);

struct VerifyOptions {
  // Public key (hex) the checkpoints must be signed with; when empty, the key the log names.
  std::string trusted_key;
  std::string expect_head;  // a head (hex) the log must contain, when set
};

struct VerifyResult {
  bool ok = false;
  std::string problem;   // the first bad record and why, when !ok
  uint64_t records = 0;  // lines that verified, the first one included
  uint64_t checkpoints = 0;
  std::string head;  // hash of the last good line (hex)
  std::string key;   // the public key the log names
  std::string run;
  std::optional<uint64_t> last_signed;  // seq of the last checkpoint
  uint64_t unsigned_tail = 0;           // chained records after the last checkpoint
  bool torn = false;                    // the last line was cut short by a crash; it is not counted
  std::optional<uint64_t> expected_head_seq;  // where --expect-head was found
};

// Checks the chain of the log in `text` (named `name` in messages): every line's hash, sequence
// number and link, every checkpoint's signature and key.
VerifyResult VerifyLog(std::string_view text, const std::string& name,
                       const VerifyOptions& options);

}  // namespace corral::launcher
