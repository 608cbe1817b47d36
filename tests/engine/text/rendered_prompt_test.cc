// SplitAtSpecialTokens recognises special-token text only wholly inside the template's ranges.
#include "engine/text/rendered_prompt.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace longview {
namespace {

std::vector<std::pair<std::string, int32_t>> Specials() {
  return {{"<s>", 1}, {"</s>", 2}, {"<|im_start|>", 5}, {"<|im", 6}, {"", 9}};
}

std::string Describe(const std::vector<PromptSegment>& segs) {
  std::string out;
  for (const PromptSegment& s : segs) {
    out += s.special_id >= 0 ? "[" + std::to_string(s.special_id) + "]"
                             : "(" + std::string(s.text) + ")";
  }
  return out;
}

TEST(RenderedPromptTest, BuilderMergesAdjacentTemplateText) {
  RenderedPromptBuilder b;
  b.AppendTemplate("<s>");
  b.AppendTemplate("[INST] ");
  b.AppendContent("</s>");
  b.AppendContent("");
  b.AppendTemplate("");
  b.AppendTemplate(" [/INST]");
  RenderedPrompt p = std::move(b).Take();
  EXPECT_EQ(p.text, "<s>[INST] </s> [/INST]");
  ASSERT_EQ(p.special_ranges.size(), 2u);
  EXPECT_EQ(p.special_ranges[0], (TextRange{0, 10}));
  EXPECT_EQ(p.special_ranges[1], (TextRange{14, 22}));
}

TEST(RenderedPromptTest, SplitsOnlyInsideRanges) {
  RenderedPromptBuilder b;
  b.AppendTemplate("<s>a");
  b.AppendContent("</s><|im_start|>");
  b.AppendTemplate("<|im_start|>b</s>");
  EXPECT_EQ(Describe(SplitAtSpecialTokens(std::move(b).Take(), Specials())),
            "[1](a</s><|im_start|>)[5](b)[2]");
}

TEST(RenderedPromptTest, TokenStraddlingARangeEdgeIsText) {
  RenderedPromptBuilder b;
  b.AppendTemplate("x</");
  b.AppendContent("s>");
  EXPECT_EQ(Describe(SplitAtSpecialTokens(std::move(b).Take(), Specials())), "(x</s>)");
}

TEST(RenderedPromptTest, LongestMatchWinsAndNoRangesMeansAllText) {
  RenderedPromptBuilder b;
  b.AppendTemplate("<|im_start|><|im");
  EXPECT_EQ(Describe(SplitAtSpecialTokens(std::move(b).Take(), Specials())), "[5][6]");
  RenderedPrompt plain{.text = "<s>hi</s>", .special_ranges = {}};
  EXPECT_EQ(Describe(SplitAtSpecialTokens(plain, Specials())), "(<s>hi</s>)");
}

}  // namespace
}  // namespace longview
