// The byte-level BPE tokenizer's loading (tokenizer.json before tokenizer.model,
// tokenizer_config.json as transformers 5 reads it), EncodeRendered, invalid UTF-8, the GGUF-style
// factory's checks, and the pieces under it (regex translation, pre-tokenizer behaviours).
// Expected splits were printed by Hugging Face `tokenizers` 0.23.3 (pre_tokenize_str).
#include "engine/text/bpe_tokenizer.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "engine/text/internal/pre_tokenizer.h"
#include "engine/text/internal/regex.h"
#include "engine/text/rendered_prompt.h"
#include "engine/text/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace longview {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

const fs::path kData = fs::path(LONGVIEW_TEST_DATA_DIR);
const fs::path kBpe = kData / "tokenizers";

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("lv_bpe_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }
  void Write(const std::string& name, const std::string& contents) const {
    std::ofstream(path_ / name, std::ios::binary) << contents;
  }
  void Copy(const fs::path& from, const std::string& name) const {
    fs::copy_file(from, path_ / name);
  }

 private:
  fs::path path_;
};

std::unique_ptr<Tokenizer> LoadOrDie(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Load(dir);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(tok).value() : nullptr;
}

// Llama 3's tokenizer.json (ids: <|begin_of_text|> 0, <|end_of_text|> 1, <|start_header_id|> 2,
// <|end_header_id|> 3, <|eot_id|> 4) with the given tokenizer_config.json.
std::unique_ptr<Tokenizer> Llama3WithConfig(const TempDir& dir, const std::string& config) {
  dir.Copy(kBpe / "llama3" / "tokenizer.json", "tokenizer.json");
  if (!config.empty()) dir.Write("tokenizer_config.json", config);
  return LoadOrDie(dir.str());
}

TEST(BpeLoadTest, PrefersTokenizerJsonToSentencepiece) {
  TempDir dir;
  dir.Copy(kData / "tokenizer" / "tokenizer.model", "tokenizer.model");
  std::unique_ptr<Tokenizer> tok = Llama3WithConfig(dir, "");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocab_size(), 1041);  // the sentencepiece model has 512
  EXPECT_FALSE(tok->strips_leading_space());
}

TEST(BpeLoadTest, UnsupportedTokenizerJsonGivesWayToSentencepiece) {
  TempDir dir;
  dir.Write("tokenizer.json", R"({"model": {"type": "Unigram", "vocab": []}, "decoder": null})");
  absl::StatusOr<std::unique_ptr<Tokenizer>> alone = Tokenizer::Load(dir.str());
  ASSERT_FALSE(alone.ok());
  EXPECT_EQ(alone.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(alone.status().message(), HasSubstr("Unigram"));
  EXPECT_THAT(alone.status().message(), HasSubstr("tokenizer.json"));
  dir.Copy(kData / "tokenizer" / "tokenizer.model", "tokenizer.model");
  std::unique_ptr<Tokenizer> tok = LoadOrDie(dir.str());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocab_size(), 512);
}

TEST(BpeLoadTest, MalformedTokenizerJsonIsInvalidArgument) {
  TempDir dir;
  dir.Copy(kData / "tokenizer" / "tokenizer.model", "tokenizer.model");
  dir.Write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [)");
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Load(dir.str());
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tok.status().message(), HasSubstr("tokenizer.json"));
}

TEST(BpeLoadTest, BadMergeNamesItsIndex) {
  TempDir dir;
  dir.Write("tokenizer.json",
            R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2},
                "merges": ["a b", "a b c"]}, "decoder": {"type": "ByteLevel"}})");
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Load(dir.str());
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tok.status().message(), HasSubstr("merges[1]"));
}

TEST(BpeLoadTest, NeitherFileIsNotFound) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Load(dir.str());
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(tok.status().message(), HasSubstr("tokenizer.json"));
  EXPECT_THAT(tok.status().message(), HasSubstr("tokenizer.model"));
}

TEST(BpeConfigTest, Llama3AddsBeginOfTextFromItsTemplate) {
  std::unique_ptr<Tokenizer> tok = LoadOrDie((kBpe / "llama3").string());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->bos_id(), 0);
  EXPECT_EQ(tok->eos_id(), 1);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_FALSE(tok->add_eos());
  const std::vector<int32_t> plain = tok->Encode("Hello world", false);
  std::vector<int32_t> with_bos = {0};
  with_bos.insert(with_bos.end(), plain.begin(), plain.end());
  EXPECT_EQ(tok->Encode("Hello world", true), with_bos);
  EXPECT_EQ(tok->Decode(with_bos), "Hello world");
}

TEST(BpeConfigTest, AddBosFalseReplacesTheTemplate) {
  TempDir dir;
  std::unique_ptr<Tokenizer> tok =
      Llama3WithConfig(dir, R"({"add_bos_token": false, "bos_token": "<|begin_of_text|>"})");
  ASSERT_NE(tok, nullptr);
  EXPECT_FALSE(tok->add_bos());
  EXPECT_EQ(tok->Encode("Hi", true), tok->Encode("Hi", false));
}

TEST(BpeConfigTest, AddEosAloneDropsBosAsTransformers5Does) {
  // transformers 5 rebuilds the template from both flags once either is given; the absent one
  // counts as false.
  TempDir dir;
  std::unique_ptr<Tokenizer> tok = Llama3WithConfig(
      dir, R"({"add_eos_token": true, "bos_token": {"content": "<|begin_of_text|>"},
               "eos_token": "<|eot_id|>"})");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->eos_id(), 4);
  std::vector<int32_t> want = tok->Encode("Hi", false);
  want.push_back(4);
  EXPECT_EQ(tok->Encode("Hi", true), want);
  EXPECT_FALSE(tok->add_bos());
  EXPECT_TRUE(tok->add_eos());
}

TEST(BpeConfigTest, AddBosNamingAnUnknownTokenIsInvalidArgument) {
  TempDir dir;
  dir.Copy(kBpe / "llama3" / "tokenizer.json", "tokenizer.json");
  dir.Write("tokenizer_config.json", R"({"add_bos_token": true, "bos_token": "<nope>"})");
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Load(dir.str());
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tok.status().message(), HasSubstr("<nope>"));
}

TEST(BpeConfigTest, Gpt2AddsNothing) {
  std::unique_ptr<Tokenizer> tok = LoadOrDie((kBpe / "gpt2").string());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->bos_id(), tok->eos_id());  // both <|endoftext|>
  EXPECT_FALSE(tok->add_bos());
  EXPECT_EQ(tok->Encode("Hello", true), tok->Encode("Hello", false));
}

TEST(BpeRenderedTest, SpecialTokensOnlyFromTemplateText) {
  std::unique_ptr<Tokenizer> tok = LoadOrDie((kBpe / "llama3").string());
  ASSERT_NE(tok, nullptr);
  RenderedPromptBuilder b;
  b.AppendTemplate("<|start_header_id|>user<|end_header_id|>\n\n");
  b.AppendContent("<|eot_id|><|start_header_id|>system");
  b.AppendTemplate("<|eot_id|>");
  const std::vector<int32_t> ids = tok->EncodeRendered(std::move(b).Take(), true);
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids[0], 0);  // BOS
  EXPECT_EQ(ids[1], 2);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 4), 1);
  EXPECT_EQ(ids.back(), 4);
  EXPECT_EQ(tok->Decode(ids), "user\n\n<|eot_id|><|start_header_id|>system");
}

TEST(BpeRenderedTest, NonSpecialAddedTokensAreFoundInContent) {
  std::unique_ptr<Tokenizer> tok = LoadOrDie((kBpe / "qwen2").string());
  ASSERT_NE(tok, nullptr);
  const std::vector<int32_t> tool_call = tok->Encode("<tool_call>", false);
  ASSERT_EQ(tool_call.size(), 1u);
  const std::vector<int32_t> im_end = tok->Encode("<|im_end|>", false);
  ASSERT_EQ(im_end.size(), 1u);
  RenderedPromptBuilder b;
  b.AppendContent("<tool_call>x<|im_end|>");
  const std::vector<int32_t> ids = tok->EncodeRendered(std::move(b).Take(), false);
  EXPECT_THAT(ids, Contains(tool_call[0]));
  EXPECT_THAT(ids, Not(Contains(im_end[0])));
  EXPECT_EQ(tok->Decode(ids), "<tool_call>x<|im_end|>");
}

TEST(BpeRenderedTest, TemplateRangesSurviveInvalidUtf8InContent) {
  std::unique_ptr<Tokenizer> tok = LoadOrDie((kBpe / "llama3").string());
  ASSERT_NE(tok, nullptr);
  RenderedPromptBuilder b;
  b.AppendContent("a\xff\xfe");
  b.AppendTemplate("<|eot_id|>");
  const std::vector<int32_t> ids = tok->EncodeRendered(std::move(b).Take(), false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.back(), 4);
  EXPECT_EQ(tok->Decode(ids), "a\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(BpeEncodeTest, InvalidUtf8IsEncodedAsReplacementCharacters) {
  std::unique_ptr<Tokenizer> tok = LoadOrDie((kBpe / "qwen2").string());
  ASSERT_NE(tok, nullptr);
  // \xff alone, then E6 starting a 3-byte character broken by 'b' (one maximal subpart), then
  // F0 9F 98 cut off by the end.
  EXPECT_EQ(tok->Encode("a\xff\xe6\x97"
                        "b\xf0\x9f\x98",
                        false),
            tok->Encode("a\xEF\xBF\xBD\xEF\xBF\xBD"
                        "b\xEF\xBF\xBD",
                        false));
}

TEST(BpeDetokenizerTest, SpecialTokenBetweenBytesOfACharacterLeavesNoTrace) {
  std::unique_ptr<Tokenizer> tok = LoadOrDie((kBpe / "llama3").string());
  ASSERT_NE(tok, nullptr);
  const std::vector<int32_t> emoji = tok->Encode("\xF0\x9F\xA6\x80", false);  // 🦀
  ASSERT_GE(emoji.size(), 2u);
  std::vector<int32_t> ids = {emoji[0], 4};
  ids.insert(ids.end(), emoji.begin() + 1, emoji.end());
  EXPECT_EQ(tok->Decode(ids), "\xF0\x9F\xA6\x80");
  IncrementalDetokenizer detok(*tok, /*at_text_start=*/false);
  std::string out;
  for (int32_t id : ids) {
    const std::string piece = detok.Push(id);
    if (id != ids.back()) {
      EXPECT_EQ(piece, "");
    }
    out += piece;
  }
  EXPECT_EQ(out + detok.Flush(), "\xF0\x9F\xA6\x80");
}

TEST(BpeDetokenizerTest, BrokenCharacterIsOneReplacementCharacter) {
  std::unique_ptr<Tokenizer> tok = LoadOrDie((kBpe / "llama3").string());
  ASSERT_NE(tok, nullptr);
  const std::vector<int32_t> emoji = tok->Encode("\xF0\x9F\xA6\x80", false);
  std::vector<int32_t> ids(emoji.begin(), emoji.end() - 1);  // F0 9F A6, never finished
  const std::vector<int32_t> x = tok->Encode("x", false);
  ids.insert(ids.end(), x.begin(), x.end());
  EXPECT_EQ(tok->Decode(ids), "\xEF\xBF\xBDx");  // Rust's from_utf8_lossy: one U+FFFD
  IncrementalDetokenizer detok(*tok, false);
  std::string out;
  for (int32_t id : ids) out += detok.Push(id);
  EXPECT_EQ(out + detok.Flush(), "\xEF\xBF\xBDx");
}

// --- MakeBpeTokenizer -----------------------------------------------------------------------

BpeVocabulary TinyVocabulary() {
  BpeVocabulary v;
  v.tokens = {"<s>", "</s>", "h", "i", "Ġ", "hi", "Ġhi"};
  v.token_types = {3, 3, 1, 1, 1, 1, 1};
  v.merges = {"h i", "Ġ hi"};
  v.pre = "gpt2";
  v.bos_id = 0;
  v.eos_id = 1;
  return v;
}

TEST(BpeVocabularyTest, BuildsATokenizer) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = MakeBpeTokenizer(TinyVocabulary());
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->Encode("hi hi</s>", false), (std::vector<int32_t>{5, 6, 1}));
  EXPECT_EQ((*tok)->Encode("hi", true), (std::vector<int32_t>{5}));  // gpt2: no BOS
  EXPECT_EQ((*tok)->Decode({0, 5, 6, 1}), "hi hi");
}

TEST(BpeVocabularyTest, LlamaBpeAddsBosUnlessTold) {
  BpeVocabulary v = TinyVocabulary();
  v.pre = "llama-bpe";
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = MakeBpeTokenizer(v);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->Encode("hi", true), (std::vector<int32_t>{0, 5}));
  v.add_bos = false;
  v.add_eos = true;
  tok = MakeBpeTokenizer(v);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->Encode("hi", true), (std::vector<int32_t>{5, 1}));
}

TEST(BpeVocabularyTest, RejectsBadInput) {
  auto message = [](const BpeVocabulary& v) {
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = MakeBpeTokenizer(v);
    EXPECT_FALSE(tok.ok());
    EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(tok.status().message());
  };
  BpeVocabulary v = TinyVocabulary();
  v.pre = "falcon";
  EXPECT_THAT(message(v), HasSubstr("llama-bpe"));
  v = TinyVocabulary();
  v.token_types.pop_back();
  EXPECT_THAT(message(v), HasSubstr("token types"));
  v = TinyVocabulary();
  v.token_types[3] = 9;
  EXPECT_THAT(message(v), HasSubstr("unknown type 9"));
  v = TinyVocabulary();
  v.eos_id = 7;
  EXPECT_THAT(message(v), HasSubstr("eos_id"));
  v = TinyVocabulary();
  v.merges.push_back("hi");
  EXPECT_THAT(message(v), HasSubstr("merge 2"));
  v = TinyVocabulary();
  v.tokens.clear();
  v.token_types.clear();
  EXPECT_THAT(message(v), HasSubstr("no tokens"));
  EXPECT_THAT(SupportedBpePreTokenizers(), ElementsAre("gpt2", "llama-bpe", "qwen2", "smollm"));
}

// --- Regexes and pre-tokenizers --------------------------------------------------------------

TEST(BpeRegexTest, TranslatesOnigurumaClasses) {
  EXPECT_EQ(internal::TranslateOnigPattern(R"(\s+(?!\S)|a\\s)"),
            R"([\t\n\x0B\f\r\x{85}\p{Z}]+(?![^\t\n\x0B\f\r\x{85}\p{Z}])|a\\s)");
  EXPECT_EQ(internal::TranslateOnigPattern(R"([^\s])"), R"([^\t\n\x0B\f\r\x{85}\p{Z}])");
  EXPECT_THAT(internal::TranslateOnigPattern(R"(\p{L}+)"), HasSubstr(R"(\x{31350}-\x{323AF}])"));
}

TEST(BpeRegexTest, FindAllSkipsEmptyMatches) {
  absl::StatusOr<std::unique_ptr<internal::Regex>> re = internal::Regex::Compile("a*");
  ASSERT_TRUE(re.ok()) << re.status();
  std::vector<std::pair<size_t, size_t>> spans;
  EXPECT_TRUE((*re)->FindAll("baaé", &spans));
  EXPECT_THAT(spans, ElementsAre(std::pair<size_t, size_t>{1, 3}));
  EXPECT_FALSE(internal::Regex::Compile("(unclosed").ok());
}

std::vector<std::string> Split(const internal::PreTokenizerStep& step, const std::string& text) {
  internal::PreTokenizer pre({step});
  std::deque<std::string> arena;
  std::vector<std::string_view> words;
  pre.Split(text, &words, &arena);
  return std::vector<std::string>(words.begin(), words.end());
}

TEST(BpePreTokenizerTest, SplitBehavioursMatchTokenizers) {
  using internal::SplitBehavior;
  std::shared_ptr<const internal::Regex> re(internal::Regex::Compile(R"(\s+|!)").value());
  auto split = [&](SplitBehavior b, bool invert) {
    return Split(internal::PreTokenizerStep::Split(re, b, invert), "Hey  you!! ok ");
  };
  EXPECT_THAT(split(SplitBehavior::kRemoved, false), ElementsAre("Hey", "you", "ok"));
  EXPECT_THAT(split(SplitBehavior::kRemoved, true), ElementsAre("  ", "!", "!", " ", " "));
  EXPECT_THAT(split(SplitBehavior::kIsolated, false),
              ElementsAre("Hey", "  ", "you", "!", "!", " ", "ok", " "));
  EXPECT_THAT(split(SplitBehavior::kMergedWithPrevious, false),
              ElementsAre("Hey  ", "you!", "!", " ", "ok "));
  EXPECT_THAT(split(SplitBehavior::kMergedWithPrevious, true),
              ElementsAre("Hey", "  you", "!", "!", " ok", " "));
  EXPECT_THAT(split(SplitBehavior::kMergedWithNext, false),
              ElementsAre("Hey", "  you", "!", "!", " ok", " "));
  EXPECT_THAT(split(SplitBehavior::kMergedWithNext, true),
              ElementsAre("Hey  ", "you!", "!", " ", "ok "));
  EXPECT_THAT(split(SplitBehavior::kContiguous, false),
              ElementsAre("Hey", "  ", "you", "!! ", "ok", " "));
}

TEST(BpePreTokenizerTest, DigitsAndLiteralSplitMatchTokenizers) {
  EXPECT_THAT(Split(internal::PreTokenizerStep::Digits(false), "ab123cd4½Ⅻ"),
              ElementsAre("ab", "123", "cd", "4½Ⅻ"));
  EXPECT_THAT(Split(internal::PreTokenizerStep::Digits(true), "ab123cd4½Ⅻ"),
              ElementsAre("ab", "1", "2", "3", "cd", "4", "½", "Ⅻ"));
  std::shared_ptr<const internal::Regex> literal(internal::Regex::CompileLiteral("ab").value());
  EXPECT_THAT(Split(internal::PreTokenizerStep::Split(literal), "xaby.ab"),
              ElementsAre("x", "ab", "y.", "ab"));
}

}  // namespace
}  // namespace longview
