// ParseSessionEmbeddings: the three dtypes decode exactly, arrays and base64 agree, frames cover
// the rows, and every malformed body is refused naming its field.
#include "server/session_embeddings.h"

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace longview {
namespace {

using json = nlohmann::ordered_json;

std::string Base64(const std::vector<uint8_t>& bytes) {
  return absl::Base64Escape(std::string(bytes.begin(), bytes.end()));
}

TEST(SessionEmbeddingsTest, DecodesF32F16AndBf16Exactly) {
  // Row values 1.5, -2, 0.25 (all exact in every dtype), hidden 3, two rows (the second doubled).
  const std::vector<float> want = {1.5f, -2.f, 0.25f, 3.f, -4.f, 0.5f};
  std::vector<uint8_t> f32(want.size() * 4), f16, bf16;
  std::memcpy(f32.data(), want.data(), f32.size());  // little-endian host
  const uint16_t h[] = {0x3E00, 0xC000, 0x3400, 0x4200, 0xC400, 0x3800};  // IEEE half bits
  const uint16_t b[] = {0x3FC0, 0xC000, 0x3E80, 0x4040, 0xC080, 0x3F00};  // bfloat16 bits
  for (int i = 0; i < 6; ++i) {
    f16.push_back(h[i] & 0xff), f16.push_back(h[i] >> 8);
    bf16.push_back(b[i] & 0xff), bf16.push_back(b[i] >> 8);
  }
  for (const auto& [dtype, bytes] : {std::pair{"f32", f32}, {"f16", f16}, {"bfloat16", bf16}}) {
    json e = {{"dtype", dtype}, {"shape", {2, 3}}, {"data", Base64(bytes)}};
    absl::StatusOr<SessionEmbeddings> got = ParseSessionEmbeddings(e, 3);
    ASSERT_TRUE(got.ok()) << dtype << ": " << got.status();
    EXPECT_EQ(got->values, want) << dtype;
    EXPECT_EQ(got->rows, 2);
    ASSERT_EQ(got->frames.size(), 1u);  // one unnamed frame of every row
    EXPECT_EQ(got->frames[0].rows, 2);
    EXPECT_TRUE(got->frames[0].block_id.empty());
  }
  json arrays = {{"data", {{1.5, -2, 0.25}, {3, -4, 0.5}}},
                 {"frames",
                  {{{"block_id", "f0"}, {"timestamp", 0.5}, {"rows", 1}},
                   {{"block_id", "f1"}, {"timestamp", 1.0}, {"rows", 1}}}}};
  absl::StatusOr<SessionEmbeddings> got = ParseSessionEmbeddings(arrays, 3);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->values, want);
  ASSERT_EQ(got->frames.size(), 2u);
  EXPECT_EQ(got->frames[1].block_id, "f1");
  EXPECT_EQ(got->frames[1].start, 1);
  EXPECT_EQ(got->frames[1].timestamp, 1.0);
}

TEST(SessionEmbeddingsTest, RefusesMalformedBodiesNamingTheField) {
  const std::string two_rows = Base64(std::vector<uint8_t>(2 * 3 * 2, 0));
  const std::vector<std::pair<json, std::string>> cases = {
      {json::array(), "embeddings"},
      {{{"data", two_rows}, {"dtype", "bf16"}}, "embeddings.shape"},
      {{{"data", two_rows}, {"dtype", "bf16"}, {"shape", {2, 4}}}, "embeddings.shape"},
      {{{"data", two_rows}, {"dtype", "bf16"}, {"shape", {3, 3}}}, "embeddings.data"},
      {{{"data", "not base64!"}, {"dtype", "bf16"}, {"shape", {2, 3}}}, "embeddings.data"},
      {{{"data", two_rows}, {"dtype", "int8"}, {"shape", {2, 3}}}, "embeddings.dtype"},
      {{{"data", {{1, 2}}}}, "embeddings.data[0]"},
      {{{"data", {{1, 2, "x"}}}}, "embeddings.data[0]"},
      {{{"data", {{1, 2, 3}}}, {"dtype", "f16"}}, "embeddings.dtype"},
      {{{"data", json::array()}}, "embeddings.data"},
      {{{"rows", 2}}, "embeddings.rows"},
      {{{"data", {{1, 2, 3}}}, {"frames", {{{"rows", 2}}}}}, "embeddings.frames[0].rows"},
      {{{"data", {{1, 2, 3}, {1, 2, 3}}}, {"frames", {{{"rows", 1}}}}}, "embeddings.frames"},
      {{{"data", {{1, 2, 3}, {1, 2, 3}}},
        {"frames", {{{"block_id", "a"}, {"rows", 1}}, {{"block_id", "a"}, {"rows", 1}}}}},
       "embeddings.frames[1].block_id"},
      {{{"data", {{1, 2, 3}}}, {"frames", {{{"rows", 1}, {"fps", 2}}}}},
       "embeddings.frames[0].fps"},
      {{{"data", {{1, 2, 3}}}, {"frames", {{{"rows", 1}, {"timestamp", "now"}}}}},
       "embeddings.frames[0].timestamp"},
  };
  for (const auto& [body, field] : cases) {
    absl::StatusOr<SessionEmbeddings> got = ParseSessionEmbeddings(body, 3);
    ASSERT_FALSE(got.ok()) << body.dump();
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << body.dump();
    EXPECT_EQ(got.status().message().rfind(field + ":", 0), 0u)
        << body.dump() << " -> " << got.status();
  }
  // A value that is not finite (an f16 infinity).
  const std::vector<uint8_t> inf = {0x00, 0x7C, 0, 0, 0, 0};
  absl::StatusOr<SessionEmbeddings> got = ParseSessionEmbeddings(
      json{{"data", Base64(inf)}, {"dtype", "f16"}, {"shape", {1, 3}}}, 3);
  EXPECT_EQ(got.status().message().rfind("embeddings.data[0]:", 0), 0u) << got.status();
}

}  // namespace
}  // namespace longview
