// The attention mode registry and interface (engine/attention/attention_mode.h): parsing names
// the field at fault, and each mode answers its footprint, token limit and selections.
#include "engine/attention/attention_mode.h"

#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/attention.h"

namespace longview {
namespace {

constexpr int64_t kUnset = std::numeric_limits<int64_t>::min();

struct BadRequest {
  const char* name;
  const char* mode;
  int64_t window;  // kUnset: absent
  int64_t sinks;
  const char* field;  // what the message starts with (and *bad_field holds)

  AttentionRequest Request() const {
    AttentionRequest r{.mode = mode};
    if (window != kUnset) r.window = window;
    if (sinks != kUnset) r.sinks = sinks;
    return r;
  }
};

class ParseAttentionBadTest : public ::testing::TestWithParam<BadRequest> {};

TEST_P(ParseAttentionBadTest, NamesTheField) {
  const BadRequest& b = GetParam();
  std::string field;
  absl::StatusOr<Attention> a = ParseAttention(b.Request(), "attention.", &field);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(field, b.field);
  EXPECT_EQ(std::string(a.status().message()).rfind(std::string(b.field) + " ", 0), 0u)
      << a.status();
}

INSTANTIATE_TEST_SUITE_P(
    Requests, ParseAttentionBadTest,
    ::testing::Values(
        BadRequest{"UnknownMode", "hyperattention", kUnset, kUnset, "attention.mode"},
        BadRequest{"LaterMode", "lizard", kUnset, kUnset, "attention.mode"},
        BadRequest{"DenseTakesNoWindow", "dense", 8, kUnset, "attention.window"},
        BadRequest{"DenseTakesNoSinks", "", kUnset, 2, "attention.sinks"},
        BadRequest{"WindowRequired", "sliding_window", kUnset, kUnset, "attention.window"},
        BadRequest{"WindowZero", "sliding_window", 0, kUnset, "attention.window"},
        BadRequest{"WindowNegative", "sliding_window", -1, kUnset, "attention.window"},
        BadRequest{"WindowOverflowing", "sliding_window", std::numeric_limits<int64_t>::max(), 1,
                   "attention.window"},
        BadRequest{"SinksNegative", "sliding_window", 4, -1, "attention.sinks"},
        BadRequest{"SinksBeyondWindow", "sliding_window", 3, 4, "attention.sinks"}),
    [](const ::testing::TestParamInfo<BadRequest>& info) { return info.param.name; });

TEST(ParseAttentionTest, ListsTheModesAndParsesEach) {
  std::vector<std::string> names;
  for (const AttentionModeEntry& e : AttentionModes()) names.emplace_back(e.name);
  EXPECT_EQ(names, (std::vector<std::string>{"dense", "sliding_window", "hip"}));
  absl::StatusOr<Attention> dense = ParseAttention({}, "attention.");
  ASSERT_TRUE(dense.ok());
  EXPECT_EQ((*dense)->name(), "dense");
  EXPECT_EQ(*dense, Attention());
  absl::StatusOr<Attention> sw =
      ParseAttention({.mode = "sliding_window", .window = 64, .sinks = 4}, "x.");
  ASSERT_TRUE(sw.ok()) << sw.status();
  EXPECT_EQ((*sw)->spec(), AttentionSpec(SlidingWindowAttention{.window = 64, .sinks = 4}));
  EXPECT_EQ((*sw)->Params(),
            (std::vector<std::pair<std::string, int64_t>>{{"window", 64}, {"sinks", 4}}));
  // The unknown-mode message lists what is served.
  absl::StatusOr<Attention> bad = ParseAttention({.mode = "nope"}, "longview.attention.");
  EXPECT_NE(bad.status().message().find("supported: dense, sliding_window, hip"), std::string::npos);
  EXPECT_EQ(std::string(bad.status().message()).rfind("longview.attention.mode", 0), 0u);
}

TEST(AttentionModeTest, FootprintsAndWindows) {
  const Attention dense, full = FullAttention(), sw = SlidingWindow(64, 4);
  EXPECT_EQ(dense->Footprint().window, -1);  // the model's own
  EXPECT_EQ(full->Footprint().window, 0);
  EXPECT_EQ(sw->Footprint().window, 64);
  EXPECT_EQ(sw->Footprint().sinks, 4);
  EXPECT_EQ(sw->Footprint().exit, PageExit::kFreed);
  EXPECT_EQ(dense->LayerWindow(16), 16);
  EXPECT_EQ(full->LayerWindow(16), 0);
  EXPECT_EQ(sw->LayerWindow(16), 64);
  EXPECT_EQ(dense->ReleasableWindow(16), 16);
  EXPECT_EQ(full->ReleasableWindow(16), 0);
  EXPECT_EQ(sw->ReleasableWindow(0), 64);
  EXPECT_EQ(dense->PrefixCacheSalt(), 0u);
  EXPECT_NE(sw->PrefixCacheSalt(), SlidingWindow(64)->PrefixCacheSalt());
  EXPECT_NE(full->PrefixCacheSalt(), 0u);
}

TEST(AttentionModeTest, TokenLimitsOnlyStreamingGoesPastTheContext) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(Attention()->MaxSequenceLength(512), 512);
  EXPECT_EQ(SlidingWindow(64)->MaxSequenceLength(512), 512);   // positions are token indices
  EXPECT_EQ(SlidingWindow(64, 4)->MaxSequenceLength(512), kMax);
  EXPECT_EQ(SlidingWindow(510, 4)->MaxSequenceLength(512), 512);  // sinks + window > context
  EXPECT_TRUE(Attention()->CheckLength(500, 12, 512).ok());
  absl::Status dense = Attention()->CheckLength(500, 13, 512);
  EXPECT_EQ(dense.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(dense.message().find("max_tokens"), std::string::npos) << dense;
  // No overflow at the extremes.
  EXPECT_FALSE(Attention()->CheckLength(5, kMax, 512).ok());
  EXPECT_TRUE(SlidingWindow(64, 4)->CheckLength(5, kMax - 5, 512).ok());
  absl::Status wide = SlidingWindow(510, 4)->CheckLength(20, 600, 512);
  EXPECT_NE(wide.message().find("attention.sinks"), std::string::npos) << wide;
  EXPECT_TRUE(SlidingWindow(510, 4)->CheckLength(20, 400, 512).ok());  // fits the context
}

TEST(AttentionModeTest, PagesHeldIsBoundedUnderAWindow) {
  // 100 tokens in pages of 8: 13 pages; under window 16 + sinks 4 with chunks of 8:
  // 1 (sinks) + 3 (window + chunk) + 1.
  EXPECT_EQ(Attention()->PagesHeld(100, 8, 8, 0), 13);
  EXPECT_EQ(SlidingWindow(16, 4)->PagesHeld(100, 8, 8, 0), 5);
  EXPECT_EQ(SlidingWindow(16, 4)->PagesHeld(10, 8, 8, 0), 2);
  EXPECT_EQ(Attention()->PagesHeld(100, 8, 8, 16), 4);  // the model's own window
  EXPECT_EQ(SlidingWindow(16, 4)->PagesHeld(std::numeric_limits<int64_t>::max(), 8, 8, 0), 5);
  // The widest window with a stream of any length: no overflow.
  const int64_t w = std::numeric_limits<int32_t>::max();
  EXPECT_EQ(SlidingWindow(w, 4)->PagesHeld(std::numeric_limits<int64_t>::max(), 16, 2048, 0),
            1 + (w + 2048 + 15) / 16 + 1);
  EXPECT_EQ(SlidingWindow(w, w)->MaxSequenceLength(1 << 20), 1 << 20);
}

TEST(AttentionModeTest, SelectionsAndQueryPositions) {
  const std::vector<int32_t> table = {7, 3, 9, 1};  // 4 pages of 4 tokens
  int64_t q_pos = -1;
  // Dense, model window 0: every key at its own position.
  KvSelection all = Attention()->SelectKv(table, 4, 10, 0, &q_pos);
  EXPECT_EQ(q_pos, 10);
  EXPECT_EQ(all.NumKeys(0), 11);
  // Dense under a model window of 3: keys 8..10.
  KvSelection win = Attention()->SelectKv(table, 4, 10, 3, &q_pos);
  EXPECT_EQ(win.NumKeys(0), 3);
  ASSERT_FALSE(win.spans.empty());
  EXPECT_EQ(win.spans[0].first_position, 8);
  // Plain sliding window: positions are token indices; the model window does not apply.
  KvSelection plain = SlidingWindow(4)->SelectKv(table, 4, 10, 100, &q_pos);
  EXPECT_EQ(q_pos, 10);
  EXPECT_EQ(plain.NumKeys(0), 4);
  EXPECT_EQ(SlidingWindow(4)->QueryPosition(10), 10);
  EXPECT_FALSE(SlidingWindow(4)->PerRowSelection());
  // StreamingLLM: 2 sinks at 0..1, then the window's 4 keys (7..10) at 2..5, query last.
  const Attention streaming = SlidingWindow(4, 2);
  EXPECT_TRUE(streaming->PerRowSelection());
  KvSelection s = streaming->SelectKv(table, 4, 10, 0, &q_pos);
  EXPECT_EQ(q_pos, 5);
  EXPECT_EQ(streaming->QueryPosition(10), 5);
  EXPECT_EQ(s.NumKeys(0), 6);
  // Before anything leaves the window, the positions are the token indices.
  EXPECT_EQ(streaming->QueryPosition(3), 3);
}

TEST(AttentionModeTest, OfRefusesWhatParsingWouldAndNamesThePrefix) {
  absl::StatusOr<Attention> a = Attention::Of(SlidingWindowAttention{.window = 3, .sinks = 4}, "p.");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(std::string(a.status().message()).rfind("p.sinks", 0), 0u) << a.status();
  EXPECT_TRUE(Attention::Of(DenseAttention{.full = true}).ok());
}

}  // namespace
}  // namespace longview
