#include "engine/sampling/stop_strings.h"

#include "gtest/gtest.h"

namespace longview {
namespace {

TEST(StopStringsTest, HoldsBackPossiblePrefixesAndCutsBeforeTheStop) {
  StopStringMatcher m({"END", "\n\n"});
  EXPECT_EQ(m.Push("hello E"), "hello ");  // "E" may start "END"
  EXPECT_EQ(m.Push("x"), "Ex");
  EXPECT_EQ(m.Push(" more\n"), " more");
  EXPECT_EQ(m.Push("\nrest"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.matched(), "\n\n");
  EXPECT_EQ(m.Push("ignored"), "");
}

TEST(StopStringsTest, StopSplitAcrossPiecesAndEarliestWins) {
  StopStringMatcher m({"cde", "bc"});
  EXPECT_EQ(m.Push("a"), "a");
  EXPECT_EQ(m.Push("bcde"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.matched(), "bc");
}

TEST(StopStringsTest, FlushReturnsHeldTextWhenNoStopCame) {
  StopStringMatcher m({"STOP"});
  EXPECT_EQ(m.Push("abc ST"), "abc ");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.Flush(), "ST");
}

TEST(StopStringsTest, NoStopsPassesEverything) {
  StopStringMatcher m({});
  EXPECT_EQ(m.Push("abc"), "abc");
  EXPECT_EQ(m.Flush(), "");
}

}  // namespace
}  // namespace longview
