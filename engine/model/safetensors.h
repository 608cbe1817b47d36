// Memory-mapped reader for the safetensors format, single file or sharded with
// `model.safetensors.index.json`.
//
//   ASSIGN_OR_RETURN(auto st, SafetensorsArchive::OpenModelDir("/models/llama"));
//   const TensorView* t = st->Find("model.norm.weight");
//   std::vector<float> w(t->NumElements());
//   RETURN_IF_ERROR(t->ToFloat32(w.data()));
//
// Every malformed input is an InvalidArgument (or NotFound) naming the file and the problem:
// truncated file, header length past the end, invalid header JSON, unknown dtype, shape and
// byte size that disagree, offsets out of range or overlapping, a shard the index names that is
// missing, a tensor in the index but not in its shard.
// Thread-safety: immutable after opening; safe to read from many threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace longview {

enum class DType { kF32, kF16, kBF16, kI64, kI32, kU8, kI8, kF64, kBool, kI16, kU16 };
const char* DTypeName(DType dtype);  // safetensors spelling: "F32", "BF16", ...
size_t DTypeSize(DType dtype);

// IEEE binary16 and bfloat16 bit patterns to float32 (exact: subnormals, inf and nan included).
float HalfToFloat(uint16_t bits);
float BFloat16ToFloat(uint16_t bits);

struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;  // inside the mapping, `nbytes` long
  size_t nbytes = 0;
  std::string file;  // which file it came from, for messages

  int64_t NumElements() const;
  // Converts F32 / F16 / BF16 to float32 into `out` (NumElements() floats).
  // InvalidArgument naming the tensor for any other dtype.
  absl::Status ToFloat32(float* out) const;
};

class SafetensorsArchive {
 public:
  // Opens `dir/model.safetensors`, or the shards `dir/model.safetensors.index.json` lists.
  static absl::StatusOr<std::unique_ptr<SafetensorsArchive>> OpenModelDir(const std::string& dir);
  // Opens one safetensors file.
  static absl::StatusOr<std::unique_ptr<SafetensorsArchive>> OpenFile(const std::string& path);

  ~SafetensorsArchive();
  SafetensorsArchive(const SafetensorsArchive&) = delete;
  SafetensorsArchive& operator=(const SafetensorsArchive&) = delete;

  // nullptr when absent.
  const TensorView* Find(std::string_view name) const;
  // Names in sorted order.
  std::vector<std::string> Names() const;
  // The `__metadata__` string map of the (first) file.
  const std::unordered_map<std::string, std::string>& metadata() const { return metadata_; }
  // The file opened: `model.safetensors`, or the index for a sharded archive. For messages.
  const std::string& source() const { return source_; }

 private:
  SafetensorsArchive() = default;
  struct Mapping;
  std::vector<std::unique_ptr<Mapping>> mappings_;
  std::unordered_map<std::string, TensorView> tensors_;
  std::unordered_map<std::string, std::string> metadata_;
  std::string source_;
  friend struct SafetensorsOpener;
};

}  // namespace longview
