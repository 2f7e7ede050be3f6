// The audit log's chain and signatures: every kind of tampering that `corral audit verify` must
// name, and the crash it must not call tampering.
#include "launcher/audit.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "launcher/crypto.h"
#include "launcher/event_log.h"
#include "tests/testing.h"

namespace corral::launcher {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    lines.push_back(text.substr(start, end - start + 1));
    start = end + 1;
  }
  return lines;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l;
  return out;
}

class AuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto key = SigningKey::LoadOrCreate(dir_.path() + "/keys/audit.pem");
    ASSERT_TRUE(key) << key.error();
    key_.emplace(std::move(*key));
    path_ = dir_.path() + "/events.jsonl";
    auto log = EventLog::Create(path_, "20261130-000000-abcd", &*key_);
    ASSERT_TRUE(log) << log.error();
    // Lines: 0 the first line, then per pair a task-start and a task-end with its checkpoint.
    for (int i = 0; i < 3; ++i) {
      std::string task = "t" + std::to_string(i);
      ASSERT_TRUE(log->Append({{"type", "task-start"},
                               {"task", task},
                               {"note", "quote \" and newline \n and \"type\":\"checkpoint\""}}));
      ASSERT_TRUE(
          log->AppendSigned({{"type", "task-end"}, {"task", task}}, "2026-11-30T00:00:00Z"));
    }
    text_ = testing::ReadFile(path_);
  }

  VerifyResult Verify(const std::string& text, VerifyOptions options = {}) {
    if (options.trusted_key.empty()) options.trusted_key = key_->public_hex();
    return VerifyLog(text, "events.jsonl", options);
  }

  testing::ScratchDir dir_;
  std::optional<SigningKey> key_;
  std::string path_;
  std::string text_;
};

TEST_F(AuditTest, IntactLogVerifies) {
  VerifyResult r = Verify(text_);
  ASSERT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.records, 10u);  // first line, 6 records, 3 checkpoints
  EXPECT_EQ(r.checkpoints, 3u);
  EXPECT_EQ(r.unsigned_tail, 0u);
  EXPECT_FALSE(r.torn);
  EXPECT_EQ(r.run, "20261130-000000-abcd");
  EXPECT_EQ(r.key, key_->public_hex());
  EXPECT_EQ(r.head.size(), 64u);
}

TEST_F(AuditTest, KeyFileIsPrivateAndReused) {
  struct stat st;
  ASSERT_EQ(stat((dir_.path() + "/keys/audit.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((dir_.path() + "/keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto again = SigningKey::LoadOrCreate(dir_.path() + "/keys/audit.pem");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->public_hex(), key_->public_hex());
  chmod((dir_.path() + "/keys/audit.pem").c_str(), 0644);
  auto loose = SigningKey::LoadOrCreate(dir_.path() + "/keys/audit.pem");
  ASSERT_FALSE(loose);
  EXPECT_NE(loose.error().find("mode 0600"), std::string::npos) << loose.error();
}

TEST_F(AuditTest, FlippedByteIsABodyChange) {
  std::vector<std::string> lines = Lines(text_);
  size_t at = lines[4].find("\"t1\"");
  ASSERT_NE(at, std::string::npos);
  lines[4][at + 2] = '9';
  VerifyResult r = Verify(Join(lines));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "events.jsonl:5: body changed: its bytes do not match its hash");
}

TEST_F(AuditTest, FlippedByteInTheHashIsABodyChange) {
  std::string text = text_;
  size_t at = text.find("\"hash\":\"") + 9;
  text[at] = text[at] == '0' ? '1' : '0';
  VerifyResult r = Verify(text);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "events.jsonl:1: body changed: its bytes do not match its hash");
}

TEST_F(AuditTest, DeletedLineIsASequenceGap) {
  std::vector<std::string> lines = Lines(text_);
  lines.erase(lines.begin() + 2);
  VerifyResult r = Verify(Join(lines));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem,
            "events.jsonl:3: sequence gap: expected seq 2, found 3 (a line is missing or out of "
            "order)");
}

TEST_F(AuditTest, SwappedLinesAreASequenceGap) {
  std::vector<std::string> lines = Lines(text_);
  std::swap(lines[4], lines[5]);
  VerifyResult r = Verify(Join(lines));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem,
            "events.jsonl:5: sequence gap: expected seq 4, found 5 (a line is missing or out of "
            "order)");
}

// What a forger without the key can do: rewrite lines and recompute the hashes from `from` on.
void Rechain(std::vector<std::string>* lines, size_t from) {
  std::string prev = FromHex(lines->at(from - 1).substr(lines->at(from - 1).size() - 67, 64));
  for (size_t i = from; i < lines->size(); ++i) {
    std::string& line = (*lines)[i];
    size_t body = line.find(",\"prev\":\"") + 9 + 64 + 1;
    std::string record = "{" + line.substr(body + 1, line.find(",\"hash\":") - body - 1) + "}";
    if (line[body] != ',') record = "{}";
    std::string hash;
    line = ChainLine(i, prev, record, &hash);
    prev = hash;
  }
}

TEST_F(AuditTest, RechainedEditIsABrokenLinkThenABadSignature) {
  std::vector<std::string> lines = Lines(text_);
  size_t at = lines[4].find("\"t1\"");
  lines[4][at + 2] = '9';
  std::vector<std::string> one = lines;
  one.resize(5);
  Rechain(&one, 4);  // only the edited line gets a new hash
  one.insert(one.end(), lines.begin() + 5, lines.end());
  VerifyResult r = Verify(Join(one));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "events.jsonl:6: link broken: prev is not the hash of line 5");

  // Recomputing every later hash too leaves the checkpoints, which signed other heads.
  Rechain(&lines, 4);
  r = Verify(Join(lines));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "events.jsonl:7: bad signature: the checkpoint's signature does not verify");
}

TEST_F(AuditTest, RemovedCheckpointIsUnsigned) {
  std::vector<std::string> lines = Lines(text_);
  lines.erase(lines.begin() + 6);
  Rechain(&lines, 6);
  VerifyResult r = Verify(Join(lines));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem,
            "events.jsonl:7: unsigned: the task-end record on line 6 is not followed by its signed "
            "checkpoint");
}

TEST_F(AuditTest, RechainedGarbageIsNotJson) {
  std::vector<std::string> lines = Lines(text_);
  size_t at = lines[6].find("\"type\"");
  lines[6][at] = 'x';  // hides the checkpoint from a verifier that only looks for the text
  Rechain(&lines, 6);
  VerifyResult r = Verify(Join(lines));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "events.jsonl:7: body changed: it is not a JSON object any more");
}

TEST_F(AuditTest, LogRebuiltWithAnotherKeyIsRefused) {
  auto other = SigningKey::LoadOrCreate(dir_.path() + "/other/audit.pem");
  ASSERT_TRUE(other);
  std::string forged = dir_.path() + "/forged.jsonl";
  auto log = EventLog::Create(forged, "20261130-000000-abcd", &*other);
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->AppendSigned({{"type", "task-end"}, {"task", "t0"}}, "2026-11-30T00:00:00Z"));
  VerifyResult r = Verify(testing::ReadFile(forged));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "events.jsonl:1: bad signature: the log is signed by key " +
                           other->public_hex() + ", not by the trusted key " + key_->public_hex());
  // Without a key to trust, the log verifies against the key it names, and says which.
  VerifyResult self = VerifyLog(testing::ReadFile(forged), "forged", {});
  EXPECT_TRUE(self.ok) << self.problem;
  EXPECT_EQ(self.key, other->public_hex());
}

TEST_F(AuditTest, TruncatedTailIsFoundWithTheExpectedHead) {
  VerifyResult full = Verify(text_);
  ASSERT_TRUE(full.ok);
  std::vector<std::string> lines = Lines(text_);
  lines.resize(lines.size() - 3);
  std::string cut = Join(lines);
  VerifyResult alone = Verify(cut);
  EXPECT_TRUE(alone.ok) << "a clean cut at a line end is only visible against a known head";
  VerifyOptions options;
  options.expect_head = full.head;
  VerifyResult r = Verify(cut, options);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "events.jsonl: truncated before the expected head " + full.head +
                           ": the log ends at seq 6 with head " + alone.head);
  VerifyResult grown = Verify(text_, {.trusted_key = "", .expect_head = alone.head});
  EXPECT_TRUE(grown.ok);
  EXPECT_EQ(grown.expected_head_seq, 6u);
}

TEST_F(AuditTest, TornLastLineIsACrashNotTampering) {
  std::string text = text_ + "{\"seq\":10,\"prev\":\"ab";
  VerifyResult r = Verify(text);
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_TRUE(r.torn);
  EXPECT_EQ(r.records, 10u);
}

TEST_F(AuditTest, ReopenedLogContinuesTheChain) {
  // A crash left a torn line; resume cuts it and appends behind the last good record.
  testing::WriteFile(path_, text_ + "{\"seq\":10,\"pr");
  auto log = EventLog::Open(path_, &*key_);
  ASSERT_TRUE(log) << log.error();
  ASSERT_TRUE(log->Append({{"type", "run-resume"}}));
  VerifyResult r = Verify(testing::ReadFile(path_));
  ASSERT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.records, 11u);
  EXPECT_EQ(r.unsigned_tail, 1u);
  ASSERT_TRUE(log->AppendSigned({{"type", "run-end"}}, "2026-11-30T00:00:01Z"));
  r = Verify(testing::ReadFile(path_));
  ASSERT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.unsigned_tail, 0u);
  EXPECT_EQ(r.checkpoints, 4u);
  auto records = EventLog::Read(path_);
  ASSERT_TRUE(records);
  EXPECT_EQ(records->back().value("type", ""), "checkpoint");
}

TEST_F(AuditTest, Version1LogsStayReadable) {
  std::string v1 = dir_.path() + "/v1.jsonl";
  testing::WriteFile(v1, "{\"corral_events\":1,\"run\":\"r\"}\n{\"type\":\"run-start\"}\n");
  auto records = EventLog::Read(v1);
  ASSERT_TRUE(records) << records.error();
  EXPECT_EQ(records->size(), 1u);
  VerifyResult r = VerifyLog(testing::ReadFile(v1), "v1.jsonl", {});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "v1.jsonl:1: not a chained corral event log (version 2)");
}

TEST(CryptoTest, Sha256KnownAnswer) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(CryptoTest, PublicKeyFromHexVerifies) {
  testing::ScratchDir dir;
  auto key = SigningKey::LoadOrCreate(dir.path() + "/k.pem");
  ASSERT_TRUE(key);
  std::string sig = key->Sign("message");
  EXPECT_TRUE(SigningKey::Verify(key->public_hex(), "message", sig));
  EXPECT_FALSE(SigningKey::Verify(key->public_hex(), "messagE", sig));
  auto pub = SigningKey::LoadPublic(key->public_hex());
  ASSERT_TRUE(pub);
  EXPECT_EQ(pub->Sign("x"), "");
  EXPECT_FALSE(SigningKey::LoadPublic("not-a-key"));
}

}  // namespace
}  // namespace corral::launcher
