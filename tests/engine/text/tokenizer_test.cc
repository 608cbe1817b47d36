#include "engine/text/tokenizer.h"

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace longview {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kTokenizerDir = std::string(LONGVIEW_TEST_DATA_DIR) + "/tokenizer";

// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("lv_tokenizer_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  void Write(const std::string& name, const std::string& contents) const {
    std::ofstream(path_ / name, std::ios::binary) << contents;
  }
  void CopyModel() const {
    fs::copy_file(fs::path(kTokenizerDir) / "tokenizer.model", path_ / "tokenizer.model");
  }

 private:
  fs::path path_;
};

std::unique_ptr<Tokenizer> LoadOrDie(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Load(dir);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(tok).value() : nullptr;
}

const std::vector<std::string>& SampleTexts() {
  static const std::vector<std::string> texts = {
      "Hello, world! The quick brown fox jumps over the lazy dog.",
      "Café, naïve résumé; Ångström über Straße. ¿Qué tal?",
      "日本語のテキストと中文文本、还有한국어.",
      "Emoji: 😀🎉 thumbs 👍🏽 and a family 👨‍👩‍👧 done",
      "Mixed: x = 3.14 → ∞ ≠ 42, €5 🚀!",
  };
  return texts;
}

class TokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tok_ = LoadOrDie(kTokenizerDir);
    ASSERT_NE(tok_, nullptr);
  }
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(TokenizerTest, ReportsModelProperties) {
  EXPECT_EQ(tok_->vocab_size(), 512);
  EXPECT_EQ(tok_->bos_id(), 1);
  EXPECT_EQ(tok_->eos_id(), 2);
  EXPECT_TRUE(tok_->add_bos());
  EXPECT_FALSE(tok_->add_eos());
  EXPECT_TRUE(tok_->strips_leading_space());
}

TEST_F(TokenizerTest, RoundTripsText) {
  for (const std::string& text : SampleTexts()) {
    SCOPED_TRACE(text);
    const std::vector<int32_t> with_bos = tok_->Encode(text);
    ASSERT_FALSE(with_bos.empty());
    EXPECT_EQ(with_bos.front(), tok_->bos_id());
    EXPECT_EQ(tok_->Decode(with_bos), text);
    const std::vector<int32_t> plain = tok_->Encode(text, /*add_special=*/false);
    EXPECT_EQ(std::vector<int32_t>(with_bos.begin() + 1, with_bos.end()), plain);
    EXPECT_EQ(tok_->Decode(plain), text);
  }
}

TEST_F(TokenizerTest, UsesByteFallbackForRareCharacters) {
  // A 512-piece vocabulary has no piece for an emoji: it must come out as its 4 UTF-8 bytes.
  const std::vector<int32_t> ids = tok_->Encode("😀", /*add_special=*/false);
  std::string bytes;
  int num_single_byte = 0;
  for (int32_t id : ids) {
    const std::string b = tok_->TokenBytes(id);
    if (b.size() == 1 && static_cast<unsigned char>(b[0]) >= 0x80) ++num_single_byte;
    bytes += b;
  }
  EXPECT_EQ(num_single_byte, 4);
  EXPECT_THAT(bytes, HasSubstr("😀"));
}

TEST_F(TokenizerTest, TokenBytesConcatenateToText) {
  for (const std::string& text : SampleTexts()) {
    SCOPED_TRACE(text);
    std::string bytes;
    for (int32_t id : tok_->Encode(text)) bytes += tok_->TokenBytes(id);
    // BOS contributes nothing; the dummy-prefix space is still there.
    EXPECT_EQ(bytes, " " + text);
  }
}

TEST_F(TokenizerTest, TokenBytesOfSpecialAndOutOfRangeIds) {
  EXPECT_EQ(tok_->TokenBytes(tok_->bos_id()), "");
  EXPECT_EQ(tok_->TokenBytes(tok_->eos_id()), "");
  EXPECT_EQ(tok_->TokenBytes(0), " \xE2\x81\x87 ");  // <unk> renders as " ⁇ "
  EXPECT_EQ(tok_->TokenBytes(-1), "");
  EXPECT_EQ(tok_->TokenBytes(tok_->vocab_size()), "");
  EXPECT_EQ(tok_->TokenBytes(1 << 30), "");
}

TEST_F(TokenizerTest, DecodeDropsControlAndOutOfRangeIds) {
  std::vector<int32_t> ids = tok_->Encode("Hello world", /*add_special=*/false);
  std::vector<int32_t> noisy = {tok_->bos_id(), -5};
  noisy.insert(noisy.end(), ids.begin(), ids.end());
  noisy.push_back(tok_->vocab_size() + 7);
  noisy.push_back(tok_->eos_id());
  EXPECT_EQ(tok_->Decode(noisy), "Hello world");
}

TEST(TokenizerLoadTest, NoBosWhenConfigDisablesIt) {
  TempDir dir;
  dir.CopyModel();
  dir.Write("tokenizer_config.json", R"({"add_bos_token": false, "add_eos_token": true})");
  std::unique_ptr<Tokenizer> tok = LoadOrDie(dir.path().string());
  ASSERT_NE(tok, nullptr);
  EXPECT_FALSE(tok->add_bos());
  EXPECT_TRUE(tok->add_eos());
  const std::vector<int32_t> ids = tok->Encode("Hello");
  ASSERT_FALSE(ids.empty());
  EXPECT_NE(ids.front(), tok->bos_id());
  EXPECT_EQ(ids.back(), tok->eos_id());
  EXPECT_EQ(tok->Decode(ids), "Hello");
  const std::vector<int32_t> plain = tok->Encode("Hello", /*add_special=*/false);
  EXPECT_EQ(plain, std::vector<int32_t>(ids.begin(), ids.end() - 1));
}

TEST(TokenizerLoadTest, DefaultsWithoutConfig) {
  TempDir dir;
  dir.CopyModel();
  std::unique_ptr<Tokenizer> tok = LoadOrDie(dir.path().string());
  ASSERT_NE(tok, nullptr);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_FALSE(tok->add_eos());
  EXPECT_EQ(tok->Encode("Hi").front(), tok->bos_id());
}

TEST(TokenizerLoadTest, NullFlagsKeepDefaults) {
  TempDir dir;
  dir.CopyModel();
  dir.Write("tokenizer_config.json", R"({"add_bos_token": null, "model_max_length": 8})");
  std::unique_ptr<Tokenizer> tok = LoadOrDie(dir.path().string());
  ASSERT_NE(tok, nullptr);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_FALSE(tok->add_eos());
}

TEST(TokenizerLoadTest, MissingModelIsNotFound) {
  TempDir dir;
  dir.Write("tokenizer_config.json", "{}");
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Load(dir.path().string());
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(tok.status().message(), HasSubstr((dir.path() / "tokenizer.model").string()));
}

TEST(TokenizerLoadTest, MissingDirectoryIsNotFound) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Load("/nonexistent/longview/model");
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(tok.status().message(), HasSubstr("tokenizer.model"));
}

TEST(TokenizerLoadTest, CorruptModelIsInvalidArgument) {
  TempDir dir;
  dir.Write("tokenizer.model", std::string("this is not a sentencepiece model \xff\xfe\x01", 38));
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Load(dir.path().string());
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tok.status().message(), HasSubstr((dir.path() / "tokenizer.model").string()));
}

TEST(TokenizerLoadTest, TruncatedModelIsInvalidArgument) {
  TempDir dir;
  std::ifstream in(fs::path(kTokenizerDir) / "tokenizer.model", std::ios::binary);
  std::string model((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(model.size(), 100u);
  dir.Write("tokenizer.model", model.substr(0, model.size() / 2));
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Load(dir.path().string());
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tok.status().message(), HasSubstr("tokenizer.model"));
}

TEST(TokenizerLoadTest, MalformedConfigIsInvalidArgument) {
  TempDir dir;
  dir.CopyModel();
  dir.Write("tokenizer_config.json", R"({"add_bos_token": fal)");
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Load(dir.path().string());
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tok.status().message(), HasSubstr("tokenizer_config.json"));
}

TEST(TokenizerLoadTest, WronglyTypedFlagIsInvalidArgument) {
  TempDir dir;
  dir.CopyModel();
  dir.Write("tokenizer_config.json", R"({"add_eos_token": "yes"})");
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Load(dir.path().string());
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tok.status().message(), HasSubstr("tokenizer_config.json"));
  EXPECT_THAT(tok.status().message(), HasSubstr("add_eos_token"));
}

}  // namespace
}  // namespace longview
