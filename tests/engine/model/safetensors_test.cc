#include "engine/model/safetensors.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/test_checkpoint.h"

namespace longview {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using json = nlohmann::json;

float Bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof(f));
  return f;
}

std::vector<float> ToFloats(const TensorView& t) {
  std::vector<float> out(t.NumElements());
  absl::Status s = t.ToFloat32(out.data());
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

// Asserts `st` failed with `code`, naming `file` and containing `problem`.
template <typename T>
void ExpectError(const absl::StatusOr<T>& st, absl::StatusCode code, const std::string& file,
                 const std::string& problem) {
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), code) << st.status();
  EXPECT_THAT(std::string(st.status().message()), AllOf(HasSubstr(file), HasSubstr(problem)));
}

// One valid two-tensor file's header and data, to corrupt.
struct Sample {
  std::vector<test::TestTensor> tensors = {
      test::MakeTensor("a", {2, 3}, {1, 2, 3, 4, 5, 6}),
      test::MakeTensor("b", {4}, {-1, -2, -3, -4}, "BF16"),
  };
};

TEST(SafetensorsTest, F32RoundTripWithMetadata) {
  test::ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  const std::vector<float> values = {0.0f,
                                     -0.0f,
                                     1.5f,
                                     -3.25f,
                                     1e-30f,
                                     3.4e38f,
                                     std::numeric_limits<float>::infinity(),
                                     Bits(0x00000001u)};  // smallest float32 subnormal
  test::WriteSafetensors(path, {test::MakeTensor("w", {2, 4}, values)}, {{"format", "pt"}});
  absl::StatusOr<std::unique_ptr<SafetensorsArchive>> st = SafetensorsArchive::OpenFile(path);
  ASSERT_TRUE(st.ok()) << st.status();
  const TensorView* w = (*st)->Find("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype, DType::kF32);
  EXPECT_THAT(w->shape, ElementsAre(2, 4));
  EXPECT_EQ(w->nbytes, 32u);
  EXPECT_EQ(w->file, path);
  const std::vector<float> got = ToFloats(*w);
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(test::FloatBits(got[i]), test::FloatBits(values[i])) << i;
  }
  EXPECT_EQ((*st)->metadata().at("format"), "pt");
  EXPECT_EQ((*st)->Find("missing"), nullptr);
  EXPECT_EQ((*st)->source(), path);
}

TEST(SafetensorsTest, F16KnownBitPatterns) {
  test::ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  const std::vector<uint16_t> bits = {
      0x3C00,  // 1
      0xC000,  // -2
      0x3555,  // 0.333251953125
      0x7BFF,  // 65504, largest normal
      0x0400,  // 2^-14, smallest normal
      0x0001,  // 2^-24, smallest subnormal
      0x03FF,  // 1023 * 2^-24, largest subnormal
      0x8200,  // -512 * 2^-24 = -2^-15, negative subnormal
      0x8000,  // -0
      0x7C00,  // inf
      0xFC00,  // -inf
      0x7E00,  // nan
  };
  test::WriteSafetensors(path, {{"h", "F16", {12}, test::RawBytes(bits)}});
  absl::StatusOr<std::unique_ptr<SafetensorsArchive>> st = SafetensorsArchive::OpenFile(path);
  ASSERT_TRUE(st.ok()) << st.status();
  const std::vector<float> got = ToFloats(*(*st)->Find("h"));
  EXPECT_EQ(got[0], 1.0f);
  EXPECT_EQ(got[1], -2.0f);
  EXPECT_EQ(got[2], 0.333251953125f);
  EXPECT_EQ(got[3], 65504.0f);
  EXPECT_EQ(got[4], std::ldexp(1.0f, -14));
  EXPECT_EQ(got[5], std::ldexp(1.0f, -24));
  EXPECT_EQ(test::FloatBits(got[5]), 0x33800000u);
  EXPECT_EQ(got[6], std::ldexp(1023.0f, -24));
  EXPECT_EQ(got[7], -std::ldexp(1.0f, -15));
  EXPECT_EQ(test::FloatBits(got[8]), 0x80000000u);
  EXPECT_EQ(got[9], std::numeric_limits<float>::infinity());
  EXPECT_EQ(got[10], -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(got[11]));
  EXPECT_EQ(HalfToFloat(0x3C00), 1.0f);
}

TEST(SafetensorsTest, BF16KnownBitPatterns) {
  test::ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  const std::vector<uint16_t> bits = {0x3F80, 0xC040, 0x3EAB, 0x0001, 0x8000, 0x7F80, 0x7FC0};
  test::WriteSafetensors(path, {{"b", "BF16", {7}, test::RawBytes(bits)}});
  absl::StatusOr<std::unique_ptr<SafetensorsArchive>> st = SafetensorsArchive::OpenFile(path);
  ASSERT_TRUE(st.ok()) << st.status();
  const std::vector<float> got = ToFloats(*(*st)->Find("b"));
  EXPECT_EQ(got[0], 1.0f);
  EXPECT_EQ(got[1], -3.0f);
  EXPECT_EQ(test::FloatBits(got[2]), 0x3EAB0000u);
  EXPECT_EQ(got[3], std::ldexp(1.0f, -133));  // bf16 subnormal
  EXPECT_EQ(test::FloatBits(got[4]), 0x80000000u);
  EXPECT_EQ(got[5], std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(got[6]));
}

TEST(SafetensorsTest, UnalignedDataAndEmptyTensors) {
  // A header length of 5 mod 8 and a 1-byte tensor first leave the floats misaligned.
  test::ScratchDir dir;
  const std::string path = dir.File("x.safetensors");
  const std::vector<float> values = {1.0f, 2.0f, 3.0f};
  const std::string data = std::string(1, '\x7f') + test::RawBytes(values);
  json header = {{"pad", {{"dtype", "U8"}, {"shape", {1}}, {"data_offsets", {0, 1}}}},
                 {"f", {{"dtype", "F32"}, {"shape", {3}}, {"data_offsets", {1, 13}}}},
                 {"e", {{"dtype", "F32"}, {"shape", {0, 4}}, {"data_offsets", {1, 1}}}}};
  std::string text = header.dump();
  while (text.size() % 8 != 5) text.push_back(' ');
  test::WriteRawSafetensors(path, text, data);
  absl::StatusOr<std::unique_ptr<SafetensorsArchive>> st = SafetensorsArchive::OpenFile(path);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_THAT(ToFloats(*(*st)->Find("f")), ElementsAre(1.0f, 2.0f, 3.0f));
  EXPECT_EQ((*st)->Find("e")->NumElements(), 0);
  EXPECT_THAT((*st)->Names(), ElementsAre("e", "f", "pad"));
}

TEST(SafetensorsTest, ToFloat32RejectsIntegerDtype) {
  test::ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  test::WriteSafetensors(path, {{"ids", "I64", {2}, test::RawBytes(std::vector<int64_t>{1, 2})}});
  absl::StatusOr<std::unique_ptr<SafetensorsArchive>> st = SafetensorsArchive::OpenFile(path);
  ASSERT_TRUE(st.ok()) << st.status();
  std::vector<float> out(2);
  absl::Status s = (*st)->Find("ids")->ToFloat32(out.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              AllOf(HasSubstr(path), HasSubstr("'ids'"), HasSubstr("I64")));
}

TEST(SafetensorsTest, ModelDirPrefersSingleFile) {
  test::ScratchDir dir;
  Sample sample;
  test::WriteSafetensors(dir.File("model.safetensors"), sample.tensors);
  absl::StatusOr<std::unique_ptr<SafetensorsArchive>> st =
      SafetensorsArchive::OpenModelDir(dir.path());
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_THAT((*st)->Names(), ElementsAre("a", "b"));
  EXPECT_THAT(ToFloats(*(*st)->Find("b")), ElementsAre(-1, -2, -3, -4));
}

TEST(SafetensorsTest, ShardedArchiveLoads) {
  test::ScratchDir dir;
  test::WriteShardedSafetensors(
      dir.path(),
      {{"model-00001-of-00002.safetensors",
        {test::MakeTensor("a", {2}, {1, 2}), test::MakeTensor("b", {1}, {3}, "F16")}},
       {"model-00002-of-00002.safetensors", {test::MakeTensor("c", {3}, {4, 5, 6}, "BF16")}}});
  absl::StatusOr<std::unique_ptr<SafetensorsArchive>> st =
      SafetensorsArchive::OpenModelDir(dir.path());
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_THAT((*st)->Names(), ElementsAre("a", "b", "c"));
  EXPECT_THAT(ToFloats(*(*st)->Find("a")), ElementsAre(1, 2));
  EXPECT_THAT(ToFloats(*(*st)->Find("b")), ElementsAre(3));
  EXPECT_THAT(ToFloats(*(*st)->Find("c")), ElementsAre(4, 5, 6));
  EXPECT_THAT((*st)->Find("c")->file, HasSubstr("model-00002-of-00002.safetensors"));
  EXPECT_THAT((*st)->source(), HasSubstr("model.safetensors.index.json"));
}

TEST(SafetensorsTest, ShardTensorsMissingFromIndexAreAccepted) {
  test::ScratchDir dir;
  test::WriteSafetensors(dir.File("s1.safetensors"),
                         {test::MakeTensor("a", {1}, {1}), test::MakeTensor("extra", {1}, {2})});
  test::WriteFile(dir.File("model.safetensors.index.json"),
                  R"({"metadata": {}, "weight_map": {"a": "s1.safetensors"}})");
  absl::StatusOr<std::unique_ptr<SafetensorsArchive>> st =
      SafetensorsArchive::OpenModelDir(dir.path());
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_THAT((*st)->Names(), ElementsAre("a", "extra"));
}

// --- Malformed inputs: one test per case. ---

TEST(SafetensorsTest, NoModelFilesIsNotFound) {
  test::ScratchDir dir;
  ExpectError(SafetensorsArchive::OpenModelDir(dir.path()), absl::StatusCode::kNotFound, dir.path(),
              "no model.safetensors or model.safetensors.index.json");
}

TEST(SafetensorsTest, MissingFileIsNotFound) {
  test::ScratchDir dir;
  const std::string path = dir.File("nope.safetensors");
  ExpectError(SafetensorsArchive::OpenFile(path), absl::StatusCode::kNotFound, path, "cannot open");
}

TEST(SafetensorsTest, TruncatedShorterThanEightBytes) {
  test::ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  test::WriteFile(path, std::string("\x10\x00\x00\x00\x00", 5));
  ExpectError(SafetensorsArchive::OpenFile(path), absl::StatusCode::kInvalidArgument, path,
              "truncated safetensors file: 5 bytes");
}

TEST(SafetensorsTest, TruncatedInsideHeader) {
  test::ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  const std::string full = test::SafetensorsBytes(Sample().tensors);
  test::WriteFile(path, full.substr(0, 8 + 10));
  ExpectError(SafetensorsArchive::OpenFile(path), absl::StatusCode::kInvalidArgument, path,
              "runs past the end of the 18-byte file (truncated");
}

TEST(SafetensorsTest, TruncatedInsideData) {
  test::ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  const std::string full = test::SafetensorsBytes(Sample().tensors);
  test::WriteFile(path, full.substr(0, full.size() - 3));
  ExpectError(SafetensorsArchive::OpenFile(path), absl::StatusCode::kInvalidArgument, path,
              "tensor 'b': data_offsets [24, 32] out of range");
}

TEST(SafetensorsTest, HeaderLengthPastEnd) {
  test::ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  const std::string header = test::SafetensorsHeader(Sample().tensors);
  test::WriteRawSafetensors(path, header, std::string(32, '\0'), uint64_t{1} << 63);
  ExpectError(SafetensorsArchive::OpenFile(path), absl::StatusCode::kInvalidArgument, path,
              "header length 9223372036854775808 runs past the end");
}

TEST(SafetensorsTest, InvalidHeaderJson) {
  test::ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  test::WriteRawSafetensors(path, R"({"a": {"dtype": "F32",)", "");
  ExpectError(SafetensorsArchive::OpenFile(path), absl::StatusCode::kInvalidArgument, path,
              "invalid header JSON");
}

// A number too large for a double is nlohmann's out_of_range, not a parse_error; it used to escape
// the reader.
TEST(SafetensorsTest, HeaderNumberOverflow) {
  test::ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  test::WriteRawSafetensors(path, R"({"a": {"dtype": "F32", "shape": [1e400]}})", "");
  ExpectError(SafetensorsArchive::OpenFile(path), absl::StatusCode::kInvalidArgument, path,
              "invalid header JSON");
}

TEST(SafetensorsTest, HeaderNotAnObject) {
  test::ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  test::WriteRawSafetensors(path, "[1, 2, 3]", "");
  ExpectError(SafetensorsArchive::OpenFile(path), absl::StatusCode::kInvalidArgument, path,
              "invalid header JSON: expected an object");
}

TEST(SafetensorsTest, UnknownDtype) {
  test::ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  test::WriteSafetensors(path, {{"q", "F8_E4M3", {4}, std::string(4, '\0')}});
  ExpectError(SafetensorsArchive::OpenFile(path), absl::StatusCode::kInvalidArgument, path,
              "tensor 'q': unknown dtype 'F8_E4M3'");
}

TEST(SafetensorsTest, MissingField) {
  test::ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  test::WriteRawSafetensors(path, R"({"a": {"dtype": "F32", "shape": [1]}})", "");
  ExpectError(SafetensorsArchive::OpenFile(path), absl::StatusCode::kInvalidArgument, path,
              "tensor 'a': missing 'data_offsets'");
}

TEST(SafetensorsTest, NegativeShapeDimension) {
  test::ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  test::WriteRawSafetensors(path,
                            R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})",
                            std::string(4, '\0'));
  ExpectError(SafetensorsArchive::OpenFile(path), absl::StatusCode::kInvalidArgument, path,
              "tensor 'a': 'shape' has an invalid dimension -1");
}

TEST(SafetensorsTest, ShapeDtypeByteCountMismatch) {
  test::ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  test::WriteSafetensors(path, {{"a", "F32", {2, 3}, std::string(20, '\0')}});
  ExpectError(SafetensorsArchive::OpenFile(path), absl::StatusCode::kInvalidArgument, path,
              "tensor 'a': shape [2, 3] of F32 does not match the 20 bytes");
}

TEST(SafetensorsTest, OffsetsOutOfRange) {
  test::ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  test::WriteRawSafetensors(path,
                            R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                            std::string(8, '\0'));
  ExpectError(SafetensorsArchive::OpenFile(path), absl::StatusCode::kInvalidArgument, path,
              "tensor 'a': data_offsets [4, 12] out of range: the data buffer has 8 bytes");
}

TEST(SafetensorsTest, OffsetsBeginAfterEnd) {
  test::ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  test::WriteRawSafetensors(path,
                            R"({"a": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})",
                            std::string(8, '\0'));
  ExpectError(SafetensorsArchive::OpenFile(path), absl::StatusCode::kInvalidArgument, path,
              "tensor 'a': data_offsets [8, 4] out of range: begin after end");
}

TEST(SafetensorsTest, OverlappingOffsets) {
  test::ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  test::WriteRawSafetensors(path, R"({
      "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                            std::string(12, '\0'));
  ExpectError(SafetensorsArchive::OpenFile(path), absl::StatusCode::kInvalidArgument, path,
              "tensors 'a' [0, 8) and 'b' [4, 12) have overlapping data_offsets");
}

TEST(SafetensorsTest, MissingShard) {
  test::ScratchDir dir;
  test::WriteShardedSafetensors(dir.path(),
                                {{"s1.safetensors", {test::MakeTensor("a", {1}, {1})}},
                                 {"s2.safetensors", {test::MakeTensor("b", {1}, {2})}}});
  std::filesystem::remove(dir.File("s2.safetensors"));
  ExpectError(SafetensorsArchive::OpenModelDir(dir.path()), absl::StatusCode::kNotFound,
              dir.File("model.safetensors.index.json"), "shard 's2.safetensors'");
  ExpectError(SafetensorsArchive::OpenModelDir(dir.path()), absl::StatusCode::kNotFound,
              dir.File("s2.safetensors"), "is missing");
}

TEST(SafetensorsTest, TensorMissingFromItsShard) {
  test::ScratchDir dir;
  test::WriteSafetensors(dir.File("s1.safetensors"), {test::MakeTensor("a", {1}, {1})});
  test::WriteFile(dir.File("model.safetensors.index.json"),
                  R"({"weight_map": {"a": "s1.safetensors", "ghost": "s1.safetensors"}})");
  ExpectError(SafetensorsArchive::OpenModelDir(dir.path()), absl::StatusCode::kInvalidArgument,
              dir.File("s1.safetensors"), "tensor 'ghost' is listed in");
}

TEST(SafetensorsTest, InvalidIndexJson) {
  test::ScratchDir dir;
  const std::string index = dir.File("model.safetensors.index.json");
  test::WriteFile(index, R"({"weight_map": )");
  ExpectError(SafetensorsArchive::OpenModelDir(dir.path()), absl::StatusCode::kInvalidArgument,
              index, "invalid index JSON");
}

TEST(SafetensorsTest, IndexNumberOverflow) {
  test::ScratchDir dir;
  const std::string index = dir.File("model.safetensors.index.json");
  test::WriteFile(index, R"({"metadata": {"total_size": -1e999}, "weight_map": {}})");
  ExpectError(SafetensorsArchive::OpenModelDir(dir.path()), absl::StatusCode::kInvalidArgument,
              index, "invalid index JSON");
}

TEST(SafetensorsTest, IndexShardOutsideModelFolder) {
  test::ScratchDir dir;
  const std::string index = dir.File("model.safetensors.index.json");
  test::WriteFile(index, R"({"weight_map": {"a": "../elsewhere.safetensors"}})");
  ExpectError(SafetensorsArchive::OpenModelDir(dir.path()), absl::StatusCode::kInvalidArgument,
              index, "outside the model folder");
}

}  // namespace
}  // namespace longview
