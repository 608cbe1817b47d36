// Memory-mapped reader for GGUF files (llama.cpp's format): the metadata key-value table, the
// tensor directory, and dequantization of the tensor types GGUF checkpoints of dense models use
// (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K) into float32.
//
//   ASSIGN_OR_RETURN(auto gguf, GgufFile::Open("/models/smollm2.gguf"));
//   ASSIGN_OR_RETURN(int64_t layers, gguf->GetInt("llama.block_count"));
//   const GgufTensor* t = gguf->FindTensor("token_embd.weight");
//   std::vector<float> w(t->NumElements());
//   RETURN_IF_ERROR(gguf->Dequantize(*t, w.data()));
//
// Every malformed input is an InvalidArgument naming the file and the field or tensor at fault:
// a bad magic or version, a count, string or array running past the end of the file, an unknown
// value or tensor type, more than 4 dimensions, a size that overflows, a tensor whose data lies
// outside the file or is misaligned, duplicate keys or tensor names.
// Thread-safety: immutable after opening; safe to read from many threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace longview {

enum class GgufValueType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6,
  kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};

// One metadata value. Scalars fill one of `i` (every integer type and bool), `f` (floats) or
// `s`; arrays fill `strings`, `ints` or `floats` by their element type.
struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  GgufValueType element_type = GgufValueType::kUint8;  // arrays only
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<std::string> strings;
  std::vector<int64_t> ints;
  std::vector<double> floats;
};

// ggml tensor types (the numbering of ggml.h).
enum class GgmlType : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ8_0 = 8, kQ4_K = 12, kQ5_K = 13, kQ6_K = 14,
  kBF16 = 30,
};
const char* GgmlTypeName(GgmlType type);

struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::kF32;
  std::vector<int64_t> dims;  // GGUF order: dims[0] is the contiguous one (HF's last)
  const std::byte* data = nullptr;
  size_t nbytes = 0;

  int64_t NumElements() const;
};

class GgufFile {
 public:
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }

  // nullptr when absent.
  const GgufValue* Find(const std::string& key) const;
  // Typed access; NotFound or InvalidArgument naming the key and the type found.
  absl::StatusOr<int64_t> GetInt(const std::string& key) const;
  absl::StatusOr<double> GetFloat(const std::string& key) const;  // any number
  absl::StatusOr<std::string> GetString(const std::string& key) const;
  absl::StatusOr<const std::vector<std::string>*> GetStringArray(const std::string& key) const;
  absl::StatusOr<const std::vector<int64_t>*> GetIntArray(const std::string& key) const;
  absl::StatusOr<const std::vector<double>*> GetFloatArray(const std::string& key) const;

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* FindTensor(const std::string& name) const;

  // Dequantizes `t` into `out` (NumElements() floats, in GGUF element order).
  absl::Status Dequantize(const GgufTensor& t, float* out) const;

 private:
  GgufFile() = default;
  absl::Status Parse();

  std::string path_;
  const std::byte* map_ = nullptr;
  size_t size_ = 0;
  uint32_t version_ = 0;
  std::unordered_map<std::string, GgufValue> metadata_;
  std::vector<GgufTensor> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

// Elements per block and bytes per block of a tensor type; {0, 0} for an unsupported one.
struct GgmlBlock {
  int64_t elements = 0;
  int64_t bytes = 0;
};
GgmlBlock GgmlBlockOf(GgmlType type);

// Dequantizes `num_blocks` blocks of `type` from `src` into `out`
// (num_blocks * GgmlBlockOf(type).elements floats).
// REQUIRES: GgmlBlockOf(type).elements > 0.
void DequantizeBlocks(GgmlType type, const std::byte* src, int64_t num_blocks, float* out);

}  // namespace longview
