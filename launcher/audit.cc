#include "launcher/audit.h"

#include <nlohmann/json.hpp>

#include "launcher/crypto.h"

namespace corral::launcher {
namespace {

constexpr std::string_view kHashKey = ",\"hash\":\"";
constexpr size_t kHexHash = 64;
// ,"hash":"<64 hex>"}
constexpr size_t kSuffix = kHashKey.size() + kHexHash + 2;

bool IsHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// The parts of one line that the chain covers.
struct Parsed {
  std::string_view body;  // the bytes the hash covers
  std::string_view hash;  // hex
  std::string_view prev;  // hex
  uint64_t seq = 0;
};

// Parses `{"seq":N,"prev":"<hex>",...,"hash":"<hex>"}` without a JSON parser: the writer puts
// these keys at fixed places, and any other byte is covered by the hash.
bool ParseLine(std::string_view line, Parsed* p) {
  if (line.size() < kSuffix || line.substr(line.size() - 2) != "\"}") return false;
  p->body = line.substr(0, line.size() - kSuffix);
  if (line.substr(p->body.size(), kHashKey.size()) != kHashKey) return false;
  p->hash = line.substr(p->body.size() + kHashKey.size(), kHexHash);
  constexpr std::string_view kSeq = "{\"seq\":";
  constexpr std::string_view kPrev = ",\"prev\":\"";
  if (p->body.substr(0, kSeq.size()) != kSeq) return false;
  size_t i = kSeq.size();
  size_t digits = 0;
  p->seq = 0;
  while (i < p->body.size() && p->body[i] >= '0' && p->body[i] <= '9' && digits < 19) {
    p->seq = p->seq * 10 + static_cast<uint64_t>(p->body[i++] - '0');
    ++digits;
  }
  if (digits == 0 || p->body.substr(i, kPrev.size()) != kPrev) return false;
  i += kPrev.size();
  if (p->body.size() < i + kHexHash + 1 || p->body[i + kHexHash] != '"') return false;
  p->prev = p->body.substr(i, kHexHash);
  return IsHex(p->hash) && IsHex(p->prev);
}

// The record's top-level "type" when it is one that the chain rules care about, "" for other
// records, and "-" when the line is not a JSON object. Only lines that can hold such a type are
// parsed fully; the others are only checked for being JSON.
std::string RecordType(std::string_view body, const std::string& json) {
  bool candidate = false;
  for (std::string_view t : {"checkpoint", "task-end", "run-end", "approval"}) {
    std::string needle = "\"type\":\"" + std::string(t) + "\"";
    candidate |= body.find(needle) != std::string_view::npos;
  }
  if (!candidate) return nlohmann::json::accept(json) ? "" : "-";
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "-";
  auto it = j.find("type");
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string Where(const std::string& name, uint64_t line) {
  return name + ":" + std::to_string(line + 1);
}

}  // namespace

std::string GenesisHash(std::string_view run) {
  return Sha256Raw("corral events genesis\n" + std::string(run));
}

std::string ChainLine(uint64_t seq, const std::string& prev, std::string_view record_json,
                      std::string* hash) {
  std::string line = "{\"seq\":" + std::to_string(seq) + ",\"prev\":\"" + ToHex(prev) + "\"";
  if (record_json.size() > 2) {
    line += ',';
    line.append(record_json.substr(1, record_json.size() - 2));
  }
  std::string input = prev;
  input += line;
  *hash = Sha256Raw(input);
  line += kHashKey;
  line += ToHex(*hash);
  line += "\"}\n";
  return line;
}

std::string CheckpointMessage(std::string_view run, uint64_t seq, std::string_view prev_hex) {
  return "corral checkpoint\n" + std::string(run) + "\n" + std::to_string(seq) + "\n" +
         std::string(prev_hex);
}

VerifyResult VerifyLog(std::string_view text, const std::string& name,
                       const VerifyOptions& options) {
  VerifyResult r;
  auto fail = [&](uint64_t line, const std::string& why) {
    r.ok = false;
    r.problem = Where(name, line) + ": " + why;
    return r;
  };
  std::string prev_hex;   // of the last good line
  std::string must_sign;  // the type of the previous record when a checkpoint must follow it
  std::string input;
  uint64_t line_no = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) {
      r.torn = true;  // a write that a crash cut short: not a record, and not tampering
      break;
    }
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    Parsed p;
    if (!ParseLine(line, &p)) {
      if (line_no == 0) return fail(0, "not a chained corral event log (version 2)");
      return fail(line_no, "body changed: the line is not a chained record any more");
    }
    input.assign(FromHex(p.prev));
    input.append(p.body);
    if (ToHex(Sha256Raw(input)) != p.hash) {
      return fail(line_no, "body changed: its bytes do not match its hash");
    }
    if (p.seq != line_no) {
      return fail(line_no, "sequence gap: expected seq " + std::to_string(line_no) + ", found " +
                               std::to_string(p.seq) +
                               (p.seq < line_no ? " (a line is repeated or out of order)"
                                                : " (a line is missing or out of order)"));
    }
    if (line_no == 0) {
      nlohmann::json first = nlohmann::json::parse(std::string(p.body) + "}", nullptr, false);
      if (first.is_discarded() || !first.is_object() || !first["run"].is_string() ||
          !first["corral_events"].is_number_integer()) {
        return fail(0, "not a corral event log");
      }
      r.run = first["run"].get<std::string>();
      if (first["key"].is_string()) r.key = first["key"].get<std::string>();
      if (!options.trusted_key.empty() && r.key != options.trusted_key) {
        return fail(0, "bad signature: the log is signed by key " + r.key +
                           ", not by the trusted key " + options.trusted_key);
      }
      if (p.prev != ToHex(GenesisHash(r.run))) {
        return fail(0, "link broken: the chain does not start from run " + r.run + "'s genesis");
      }
    } else if (p.prev != prev_hex) {
      return fail(line_no, "link broken: prev is not the hash of line " + std::to_string(line_no));
    }
    std::string json(p.body);
    json += '}';
    std::string type = RecordType(p.body, json);
    if (type == "-") return fail(line_no, "body changed: it is not a JSON object any more");
    if (!must_sign.empty() && type != "checkpoint") {
      return fail(line_no, "unsigned: the " + must_sign + " record on line " +
                               std::to_string(line_no) +
                               " is not followed by its signed checkpoint");
    }
    must_sign = type == "task-end" || type == "run-end" || type == "approval" ? type : "";
    if (type == "checkpoint") {
      nlohmann::json cp = nlohmann::json::parse(json);
      {
        std::string key = cp["key"].is_string() ? cp["key"].get<std::string>() : "";
        std::string sig = cp["sig"].is_string() ? cp["sig"].get<std::string>() : "";
        std::string trusted = options.trusted_key.empty() ? r.key : options.trusted_key;
        if (key != trusted) {
          return fail(line_no, "bad signature: the checkpoint is signed by key " + key +
                                   ", not by the trusted key " + trusted);
        }
        if (!SigningKey::Verify(key, CheckpointMessage(r.run, p.seq, p.prev), sig)) {
          return fail(line_no, "bad signature: the checkpoint's signature does not verify");
        }
        ++r.checkpoints;
        r.last_signed = p.seq;
      }
    }
    prev_hex.assign(p.hash);
    if (!options.expect_head.empty() && p.hash == options.expect_head) r.expected_head_seq = p.seq;
    ++line_no;
  }
  if (line_no == 0) return fail(0, r.torn ? "empty but for a torn line" : "empty");
  r.records = line_no;
  r.head = prev_hex;
  r.unsigned_tail = r.last_signed ? line_no - 1 - *r.last_signed : line_no;
  if (!options.expect_head.empty() && !r.expected_head_seq) {
    r.ok = false;
    r.problem = name + ": truncated before the expected head " + options.expect_head +
                ": the log ends at seq " + std::to_string(line_no - 1) + " with head " + r.head;
    return r;
  }
  r.ok = true;
  return r;
}

}  // namespace corral::launcher
