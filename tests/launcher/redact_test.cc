// The redactor: whole strings, JSON, and a stream cut at every possible place.
#include "launcher/redact.h"

#include <gtest/gtest.h>

namespace corral::launcher {
namespace {

TEST(RedactTest, ReplacesEveryValueByName) {
  Redactor r({{"API_KEY", "sk-123456"}, {"TOKEN", "tok"}, {"EMPTY", ""}});
  EXPECT_EQ(r.Apply("key=sk-123456 and tok, tok"),
            "key=[REDACTED:API_KEY] and [REDACTED:TOKEN], [REDACTED:TOKEN]");
  EXPECT_EQ(r.Apply("nothing here"), "nothing here");
  std::string name;
  EXPECT_TRUE(r.Find("xx sk-123456", &name));
  EXPECT_EQ(name, "API_KEY");
  EXPECT_FALSE(r.Find("sk-12345"));
}

TEST(RedactTest, ALongerValueThatHoldsAShorterOneIsReplacedWhole) {
  Redactor r({{"SHORT", "abc"}, {"LONG", "xxabcxx"}});
  EXPECT_EQ(r.Apply("1 xxabcxx 2 abc"), "1 [REDACTED:LONG] 2 [REDACTED:SHORT]");
}

TEST(RedactTest, JsonStringsAndKeys) {
  Redactor r(std::vector<std::pair<std::string, std::string>>{{"K", "s3cr3t"}});
  nlohmann::json j = {
      {"argv", {"curl", "-H", "Authorization: Bearer s3cr3t"}}, {"s3cr3t", 1}, {"n", 5}};
  r.Apply(&j);
  EXPECT_EQ(
      j.dump(),
      R"({"[REDACTED:K]":1,"argv":["curl","-H","Authorization: Bearer [REDACTED:K]"],"n":5})");
}

TEST(RedactTest, AStreamCutAnywhereNeverShowsAValue) {
  Redactor r({{"A", "0123456789abcdef"}, {"B", "zz"}});
  const std::string text = "start 0123456789abcdef mid zz 0123456789abcdef0123456789abcdef end z";
  const std::string want = r.Apply(text);
  // Every way of cutting the text into two or three writes.
  for (size_t i = 0; i <= text.size(); ++i) {
    for (size_t j = i; j <= text.size(); j += 3) {
      Redactor::Stream s(&r);
      std::string out = s.Feed(text.substr(0, i));
      EXPECT_EQ(out.find("0123456789abcdef"), std::string::npos);
      out += s.Feed(text.substr(i, j - i));
      out += s.Feed(text.substr(j));
      out += s.Flush();
      ASSERT_EQ(out, want) << "cut at " << i << " and " << j;
    }
  }
  // One byte at a time.
  Redactor::Stream s(&r);
  std::string out;
  for (char c : text) out += s.Feed(std::string(1, c));
  out += s.Flush();
  EXPECT_EQ(out, want);
}

TEST(RedactTest, AShortValueInsideALongerOneWaitsForTheLongerOne) {
  // Found by the fuzzer: "b" is complete before "aba#" is, but "aba#" starts first.
  Redactor r(std::vector<std::pair<std::string, std::string>>{{"S0", "b"}, {"S1", "aba#"}});
  Redactor::Stream s(&r);
  std::string out = s.Feed("xab");
  out += s.Feed("a#b");
  out += s.Flush();
  EXPECT_EQ(out, "x[REDACTED:S1][REDACTED:S0]");
  EXPECT_EQ(out, r.Apply("xaba#b"));
}

TEST(RedactTest, NoSecretsMeansNoDelay) {
  Redactor r;
  Redactor::Stream s(&r);
  EXPECT_EQ(s.Feed("abc"), "abc");
  EXPECT_EQ(s.Flush(), "");
}

}  // namespace
}  // namespace corral::launcher
