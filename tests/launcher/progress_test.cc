// The live table's frames and the last-line filter, without a terminal.
#include "launcher/progress.h"

#include <gtest/gtest.h>

namespace corral::launcher {
namespace {

using Clock = ProgressTable::Clock;
using std::chrono::milliseconds;

TEST(ProgressTableTest, AFrameHasAHeaderARowPerTaskAndASummary) {
  ProgressTable table({"impl", "tests", "review"});
  Clock::time_point t0 = Clock::now();
  table.Set(0, "running", 1, t0);
  table.Set(1, "running", 1, t0);
  table.Set(1, "failed", 2, t0 + milliseconds(2500));
  table.SetLastLine(0, "compiling");
  std::vector<std::string> lines = table.Render(t0 + milliseconds(61500), 80, 24);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0], "TASK    STATE               ELAPSED  TRIES  LAST OUTPUT");
  EXPECT_EQ(lines[1], "impl    running               1m01s      1  compiling");
  EXPECT_EQ(lines[2], "tests   failed                 2.5s      2");
  EXPECT_EQ(lines[3], "review  pending                   -      -");
  EXPECT_EQ(lines[4], "3 tasks: 1 running, 1 pending, 1 failed");
}

TEST(ProgressTableTest, ManyTasksShowTheRunningOnesFirstWithinTheHeight) {
  std::vector<std::string> ids;
  ids.reserve(200);
  for (int i = 0; i < 200; ++i) ids.push_back("t" + std::to_string(i));
  ProgressTable table(ids);
  Clock::time_point t0 = Clock::now();
  for (int i = 0; i < 150; ++i) {
    table.Set(i, "running", 1, t0);
    table.Set(i, "succeeded", 1, t0 + milliseconds(i));
  }
  table.Set(170, "running", 1, t0);
  table.Set(190, "running", 1, t0);
  std::vector<std::string> lines = table.Render(t0, 60, 10);
  ASSERT_EQ(lines.size(), 10u);
  // The running ones, then the most recently ended, shown in plan order; 7 rows fit.
  std::vector<std::string> shown;
  for (size_t i = 1; i < 8; ++i) shown.push_back(lines[i].substr(0, 4));
  EXPECT_EQ(shown, (std::vector<std::string>{"t145", "t146", "t147", "t148", "t149", "t170", "t190"}));
  EXPECT_NE(lines[6].find("running"), std::string::npos);
  EXPECT_EQ(lines[8], "... 193 more");
  EXPECT_EQ(lines[9], "200 tasks: 2 running, 48 pending, 150 succeeded");
  for (const std::string& l : lines) EXPECT_LE(l.size(), 59u) << l;
}

TEST(ProgressTableTest, LinesAreCutToTheWidth) {
  ProgressTable table({"a"});
  table.Set(0, "running", 1, Clock::now());
  table.SetLastLine(0, std::string(300, 'x'));
  for (const std::string& l : table.Render(Clock::now(), 40, 10)) EXPECT_LE(l.size(), 39u);
}

TEST(LastLineTest, TheLastNonEmptyLineWithoutEscapesOrControls) {
  EXPECT_EQ(LastLine("one\ntwo\n\n"), "two");
  EXPECT_EQ(LastLine("progress 10%\rprogress 90%"), "progress 90%");
  EXPECT_EQ(LastLine("\x1b[31mred\x1b[0m \x1b]0;title\x07" "after \x1b]8;;http://x\x1b\\link"),
            "red after link");
  EXPECT_EQ(LastLine("a\tb\x01\x7f" "c"), "a bc");
  EXPECT_EQ(LastLine("caf\xc3\xa9 \xff \xc2\x9b" "6n"), "caf\xc3\xa9 ? ??6n");  // C1 CSI too
  EXPECT_EQ(LastLine(""), "");
  EXPECT_EQ(LastLine("\x1b["), "");
}

}  // namespace
}  // namespace corral::launcher
