#include "engine/sampling/sequence_output.h"

#include <memory>

#include "gtest/gtest.h"

namespace longview {
namespace {

std::unique_ptr<Tokenizer> LoadTokenizer() {
  auto tok = Tokenizer::Load(std::string(LONGVIEW_TEST_DATA_DIR) + "/tokenizer");
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(*tok) : nullptr;
}

// Feeds `ids` until the output finishes; returns the text.
std::string Feed(SequenceOutput& out, const std::vector<int32_t>& ids) {
  std::string text;
  for (int32_t id : ids) {
    if (out.finished()) break;
    text += out.Append(id);
  }
  return text;
}

TEST(SequenceOutputTest, StopsAtMaxTokensWithTheWholeText) {
  auto tok = LoadTokenizer();
  ASSERT_TRUE(tok);
  std::vector<int32_t> ids = tok->Encode("In the beginning God", false);
  SequenceOutput out(*tok, EosTokenIds({}, *tok),
                     {.max_tokens = static_cast<int64_t>(ids.size())});
  EXPECT_EQ(Feed(out, ids), " In the beginning God");
  EXPECT_TRUE(out.finished());
  EXPECT_EQ(out.reason(), FinishReason::kLength);
}

TEST(SequenceOutputTest, EosEndsAndFlushesUnlessIgnored) {
  auto tok = LoadTokenizer();
  ASSERT_TRUE(tok);
  std::vector<int32_t> ids = tok->Encode("light", false);
  ids.push_back(tok->eos_id());
  ids.push_back(ids.front());
  SequenceOutput out(*tok, EosTokenIds({}, *tok), {.max_tokens = 100});
  EXPECT_EQ(Feed(out, ids), " light");
  EXPECT_EQ(out.reason(), FinishReason::kEos);
  EXPECT_EQ(out.num_tokens(), static_cast<int64_t>(ids.size()) - 1);
  SequenceOutput ignoring(*tok, EosTokenIds({}, *tok), {.max_tokens = 100, .ignore_eos = true});
  Feed(ignoring, ids);
  EXPECT_FALSE(ignoring.finished());
  // config.json's EOS ids count too.
  SequenceOutput config_eos(*tok, EosTokenIds({ids.front()}, *tok), {.max_tokens = 100});
  EXPECT_EQ(Feed(config_eos, ids), "");
  EXPECT_EQ(config_eos.reason(), FinishReason::kEos);
}

TEST(SequenceOutputTest, StopStringIsNotEmitted) {
  auto tok = LoadTokenizer();
  ASSERT_TRUE(tok);
  std::vector<int32_t> ids = tok->Encode("And God said, Let there be light", false);
  SequenceOutput out(*tok, EosTokenIds({}, *tok), {.stop = {"Let"}, .max_tokens = 100});
  EXPECT_EQ(Feed(out, ids), " And God said, ");
  EXPECT_EQ(out.reason(), FinishReason::kStop);
  EXPECT_STREQ(FinishReasonName(out.reason()), "stop");
}

}  // namespace
}  // namespace longview
