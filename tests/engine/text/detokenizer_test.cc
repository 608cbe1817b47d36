#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "engine/text/tokenizer.h"
#include "gtest/gtest.h"

namespace longview {
namespace {

const std::string kTokenizerDir = std::string(LONGVIEW_TEST_DATA_DIR) + "/tokenizer";
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// Strict UTF-8 check (RFC 3629), written independently of the detokenizer's own scanner.
bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    uint32_t cp;
    size_t n;
    if (c < 0x80) {
      cp = c, n = 1;
    } else if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F, n = 2;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F, n = 3;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07, n = 4;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

class DetokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Load(kTokenizerDir);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tok_ = std::move(tok).value();
    // Byte-fallback pieces are the only ones whose bytes are a single byte >= 0x80.
    for (int32_t id = 0; id < tok_->vocab_size(); ++id) {
      const std::string b = tok_->TokenBytes(id);
      if (b.size() == 1 && static_cast<unsigned char>(b[0]) >= 0x80) {
        byte_ids_[static_cast<unsigned char>(b[0])] = id;
      }
    }
    ASSERT_EQ(byte_ids_.size(), 128u);
  }

  int32_t ByteId(unsigned char b) const { return byte_ids_.at(b); }

  // Streams `ids`, checking every chunk is valid UTF-8; returns all chunks and the flush.
  std::string Stream(const std::vector<int32_t>& ids, bool at_text_start,
                     std::vector<std::string>* chunks = nullptr) const {
    IncrementalDetokenizer detok(*tok_, at_text_start);
    std::string out;
    for (int32_t id : ids) {
      const std::string chunk = detok.Push(id);
      EXPECT_TRUE(IsValidUtf8(chunk)) << "chunk after id " << id;
      if (chunks != nullptr) chunks->push_back(chunk);
      out += chunk;
    }
    const std::string rest = detok.Flush();
    EXPECT_TRUE(IsValidUtf8(rest));
    if (chunks != nullptr) chunks->push_back(rest);
    return out + rest;
  }

  std::unique_ptr<Tokenizer> tok_;
  std::map<unsigned char, int32_t> byte_ids_;
};

TEST_F(DetokenizerTest, StreamEqualsDecodeForWholeTexts) {
  const std::vector<std::string> texts = {
      "Hello, world! The quick brown fox.",
      "Café, naïve résumé; Ångström über Straße.",
      "日本語のテキストと中文文本、还有한국어.",
      "Emoji: 😀🎉 thumbs 👍🏽 and a family 👨‍👩‍👧 done",
  };
  for (const std::string& text : texts) {
    SCOPED_TRACE(text);
    const std::vector<int32_t> ids = tok_->Encode(text);  // BOS included: contributes nothing
    EXPECT_EQ(Stream(ids, /*at_text_start=*/true), tok_->Decode(ids));
    EXPECT_EQ(Stream(ids, /*at_text_start=*/true), text);
  }
}

TEST_F(DetokenizerTest, ContinuationKeepsLeadingSpace) {
  const std::vector<int32_t> prompt = tok_->Encode("Tell me:");
  const std::vector<int32_t> generated = tok_->Encode(" über 😀 日本", /*add_special=*/false);
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), generated.begin(), generated.end());
  const std::string prompt_text = tok_->Decode(prompt);
  const std::string full_text = tok_->Decode(all);
  ASSERT_EQ(full_text.substr(0, prompt_text.size()), prompt_text);
  const std::string streamed = Stream(generated, /*at_text_start=*/false);
  EXPECT_EQ(streamed, full_text.substr(prompt_text.size()));
  EXPECT_EQ(streamed.front(), ' ');
}

TEST_F(DetokenizerTest, HoldsBackSplitEmojiUntilComplete) {
  // 😀 = F0 9F 98 80, pushed as four byte-fallback tokens after some text.
  std::vector<int32_t> ids = tok_->Encode("ab", /*add_special=*/false);
  IncrementalDetokenizer detok(*tok_, /*at_text_start=*/true);
  std::string out;
  for (int32_t id : ids) out += detok.Push(id);
  EXPECT_EQ(out, "ab");
  EXPECT_EQ(detok.Push(ByteId(0xF0)), "");
  EXPECT_EQ(detok.Push(ByteId(0x9F)), "");
  EXPECT_EQ(detok.Push(ByteId(0x98)), "");
  EXPECT_EQ(detok.Push(ByteId(0x80)), "😀");
  EXPECT_EQ(detok.Flush(), "");
}

TEST_F(DetokenizerTest, EveryChunkIsValidAcrossMultiByteCharacters) {
  const std::string text = "é日😀ü한🎉";
  const std::vector<int32_t> ids = tok_->Encode(text, /*add_special=*/false);
  std::vector<std::string> chunks;
  EXPECT_EQ(Stream(ids, /*at_text_start=*/true, &chunks), text);
  // At least one character came as several byte tokens, so some chunks were held back.
  int num_empty = 0;
  for (const std::string& c : chunks) num_empty += c.empty() ? 1 : 0;
  EXPECT_GT(num_empty, 1);
}

TEST_F(DetokenizerTest, FlushReplacesDanglingBytes) {
  const std::vector<int32_t> ids = {ByteId(0xF0), ByteId(0x9F)};
  IncrementalDetokenizer detok(*tok_, /*at_text_start=*/true);
  EXPECT_EQ(detok.Push(ids[0]), "");
  EXPECT_EQ(detok.Push(ids[1]), "");
  const std::string rest = detok.Flush();
  EXPECT_TRUE(IsValidUtf8(rest));
  EXPECT_NE(rest.find(kReplacement), std::string::npos);
  EXPECT_EQ(rest, tok_->Decode(ids));
  EXPECT_EQ(detok.Flush(), "");
}

TEST_F(DetokenizerTest, InvalidBytesAreReplacedWithoutWaitingForFlush) {
  IncrementalDetokenizer detok(*tok_, /*at_text_start=*/false);
  EXPECT_EQ(detok.Push(ByteId(0xFF)), kReplacement);  // never valid in UTF-8
  EXPECT_EQ(detok.Push(ByteId(0xE6)), "");            // could start a 3-byte character...
  const std::vector<int32_t> word = tok_->Encode("ok", /*add_special=*/false);
  std::string out;
  for (int32_t id : word) out += detok.Push(id);  // ...but a new character breaks it
  EXPECT_EQ(out, std::string(kReplacement) + " ok");
  EXPECT_EQ(detok.Flush(), "");
}

TEST_F(DetokenizerTest, ControlTokensEmitNothing) {
  IncrementalDetokenizer detok(*tok_, /*at_text_start=*/true);
  EXPECT_EQ(detok.Push(tok_->bos_id()), "");
  std::string out;
  for (int32_t id : tok_->Encode("Hi there", /*add_special=*/false)) out += detok.Push(id);
  EXPECT_EQ(detok.Push(tok_->eos_id()), "");
  EXPECT_EQ(out + detok.Flush(), "Hi there");
}

TEST_F(DetokenizerTest, RandomTokenStreamsMatchDecode) {
  // Random ids, byte pieces over-represented so that broken and complete sequences both occur.
  std::mt19937 rng(20261126);
  std::uniform_int_distribution<int32_t> any_id(0, tok_->vocab_size() - 1);
  std::uniform_int_distribution<int> coin(0, 2);
  std::uniform_int_distribution<int> high_byte(0x80, 0xFF);
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<int32_t> ids;
    const int n = 1 + trial % 17;
    for (int i = 0; i < n; ++i) {
      ids.push_back(coin(rng) == 0 ? ByteId(static_cast<unsigned char>(high_byte(rng)))
                                   : any_id(rng));
    }
    SCOPED_TRACE(::testing::PrintToString(ids));
    EXPECT_EQ(Stream(ids, /*at_text_start=*/true), tok_->Decode(ids));
  }
}

}  // namespace
}  // namespace longview
