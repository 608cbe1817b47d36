#include "engine/model/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "engine/model/safetensors.h"  // HalfToFloat, BFloat16ToFloat

namespace longview {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read little-endian
constexpr uint64_t kMaxCount = uint64_t{1} << 32;  // keys, tensors, array elements
constexpr int kMaxArrayDepth = 2;

const char* ValueTypeName(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8: return "uint8";
    case GgufValueType::kInt8: return "int8";
    case GgufValueType::kUint16: return "uint16";
    case GgufValueType::kInt16: return "int16";
    case GgufValueType::kUint32: return "uint32";
    case GgufValueType::kInt32: return "int32";
    case GgufValueType::kFloat32: return "float32";
    case GgufValueType::kBool: return "bool";
    case GgufValueType::kString: return "string";
    case GgufValueType::kArray: return "array";
    case GgufValueType::kUint64: return "uint64";
    case GgufValueType::kInt64: return "int64";
    case GgufValueType::kFloat64: return "float64";
  }
  return "unknown";
}

bool IsInteger(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8: case GgufValueType::kInt8: case GgufValueType::kUint16:
    case GgufValueType::kInt16: case GgufValueType::kUint32: case GgufValueType::kInt32:
    case GgufValueType::kUint64: case GgufValueType::kInt64: case GgufValueType::kBool:
      return true;
    default:
      return false;
  }
}

bool IsFloat(GgufValueType t) {
  return t == GgufValueType::kFloat32 || t == GgufValueType::kFloat64;
}

// A bounds-checked little-endian cursor over the mapping; the first error sticks.
class Cursor {
 public:
  Cursor(const std::byte* data, size_t size, const std::string& path)
      : data_(data), size_(size), path_(path) {}

  size_t pos() const { return pos_; }
  const absl::Status& status() const { return status_; }
  bool ok() const { return status_.ok(); }

  void Fail(const std::string& what) {
    if (status_.ok()) {
      status_ = absl::InvalidArgumentError(absl::StrCat(path_, ": ", what, " (at byte ", pos_, ")"));
    }
  }

  template <typename T>
  T Read(const std::string& what) {
    T v{};
    if (!ok()) return v;
    if (size_ - pos_ < sizeof(T)) {
      Fail(absl::StrCat(what, " runs past the end of the file"));
      return v;
    }
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string ReadString(const std::string& what) {
    const uint64_t n = Read<uint64_t>(what + " length");
    if (!ok()) return {};
    if (n > size_ - pos_) {
      Fail(absl::StrCat(what, ": string of ", n, " bytes runs past the end of the file"));
      return {};
    }
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }

  // Elements of `width` bytes that fit in what is left (a count claiming more fails early).
  bool CheckCount(uint64_t count, uint64_t width, const std::string& what) {
    if (!ok()) return false;
    if (count > kMaxCount || (width > 0 && count > (size_ - pos_) / width)) {
      Fail(absl::StrCat(what, ": ", count, " elements run past the end of the file"));
      return false;
    }
    return true;
  }

 private:
  const std::byte* data_;
  size_t size_;
  const std::string& path_;
  size_t pos_ = 0;
  absl::Status status_;
};

int64_t ReadIntOfType(Cursor& c, GgufValueType t, const std::string& what) {
  switch (t) {
    case GgufValueType::kUint8: return c.Read<uint8_t>(what);
    case GgufValueType::kInt8: return c.Read<int8_t>(what);
    case GgufValueType::kUint16: return c.Read<uint16_t>(what);
    case GgufValueType::kInt16: return c.Read<int16_t>(what);
    case GgufValueType::kUint32: return c.Read<uint32_t>(what);
    case GgufValueType::kInt32: return c.Read<int32_t>(what);
    case GgufValueType::kBool: {
      const uint8_t b = c.Read<uint8_t>(what);
      if (b > 1) c.Fail(absl::StrCat(what, ": bool value ", b));
      return b;
    }
    case GgufValueType::kInt64: return c.Read<int64_t>(what);
    case GgufValueType::kUint64: {
      const uint64_t u = c.Read<uint64_t>(what);
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        c.Fail(absl::StrCat(what, ": uint64 value ", u, " is too large"));
      }
      return static_cast<int64_t>(u);
    }
    default:
      c.Fail(absl::StrCat(what, ": not an integer type"));
      return 0;
  }
}

uint64_t WidthOf(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8: case GgufValueType::kInt8: case GgufValueType::kBool: return 1;
    case GgufValueType::kUint16: case GgufValueType::kInt16: return 2;
    case GgufValueType::kUint32: case GgufValueType::kInt32: case GgufValueType::kFloat32:
      return 4;
    case GgufValueType::kUint64: case GgufValueType::kInt64: case GgufValueType::kFloat64:
      return 8;
    case GgufValueType::kString: return 8;  // at least the length
    default: return 0;
  }
}

bool ValidType(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::kFloat64); }

void ReadValue(Cursor& c, GgufValueType type, const std::string& what, int depth,
               GgufValue& v) {
  v.type = type;
  if (IsInteger(type)) {
    v.i = ReadIntOfType(c, type, what);
  } else if (type == GgufValueType::kFloat32) {
    v.f = c.Read<float>(what);
  } else if (type == GgufValueType::kFloat64) {
    v.f = c.Read<double>(what);
  } else if (type == GgufValueType::kString) {
    v.s = c.ReadString(what);
  } else if (type == GgufValueType::kArray) {
    const uint32_t et = c.Read<uint32_t>(what + " element type");
    if (!c.ok()) return;
    if (!ValidType(et)) return c.Fail(absl::StrCat(what, ": unknown element type ", et));
    v.element_type = static_cast<GgufValueType>(et);
    if (v.element_type == GgufValueType::kArray && depth + 1 >= kMaxArrayDepth) {
      return c.Fail(absl::StrCat(what, ": arrays nested too deeply"));
    }
    const uint64_t n = c.Read<uint64_t>(what + " element count");
    if (!c.CheckCount(n, std::max<uint64_t>(1, WidthOf(v.element_type)), what)) return;
    for (uint64_t k = 0; k < n && c.ok(); ++k) {
      const std::string item = absl::StrCat(what, "[", k, "]");
      if (v.element_type == GgufValueType::kString) {
        v.strings.push_back(c.ReadString(item));
      } else if (IsInteger(v.element_type)) {
        v.ints.push_back(ReadIntOfType(c, v.element_type, item));
      } else if (IsFloat(v.element_type)) {
        v.floats.push_back(v.element_type == GgufValueType::kFloat32 ? c.Read<float>(item)
                                                                     : c.Read<double>(item));
      } else {  // nested arrays: read and dropped (no model field uses them)
        GgufValue inner;
        ReadValue(c, GgufValueType::kArray, item, depth + 1, inner);
      }
    }
  } else {
    c.Fail(absl::StrCat(what, ": unknown value type"));
  }
}

float F16(const std::byte* p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  return HalfToFloat(bits);
}

// The 6-bit scale and min of sub-block j of a K-quant super-block (12 packed bytes).
void ScaleMinK4(int j, const uint8_t* q, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *min = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

}  // namespace

const char* GgmlTypeName(GgmlType type) {
  switch (type) {
    case GgmlType::kF32: return "F32";
    case GgmlType::kF16: return "F16";
    case GgmlType::kQ4_0: return "Q4_0";
    case GgmlType::kQ4_1: return "Q4_1";
    case GgmlType::kQ8_0: return "Q8_0";
    case GgmlType::kQ4_K: return "Q4_K";
    case GgmlType::kQ5_K: return "Q5_K";
    case GgmlType::kQ6_K: return "Q6_K";
    case GgmlType::kBF16: return "BF16";
  }
  return "unknown";
}

GgmlBlock GgmlBlockOf(GgmlType type) {
  switch (type) {
    case GgmlType::kF32: return {1, 4};
    case GgmlType::kF16: return {1, 2};
    case GgmlType::kBF16: return {1, 2};
    case GgmlType::kQ8_0: return {32, 34};
    case GgmlType::kQ4_0: return {32, 18};
    case GgmlType::kQ4_1: return {32, 20};
    case GgmlType::kQ4_K: return {256, 144};
    case GgmlType::kQ5_K: return {256, 176};
    case GgmlType::kQ6_K: return {256, 210};
  }
  return {0, 0};
}

void DequantizeBlocks(GgmlType type, const std::byte* src, int64_t num_blocks, float* out) {
  const int64_t bytes = GgmlBlockOf(type).bytes;
  for (int64_t b = 0; b < num_blocks; ++b) {
    const std::byte* blk = src + b * bytes;
    const auto* u8 = reinterpret_cast<const uint8_t*>(blk);
    switch (type) {
      case GgmlType::kF32:
        std::memcpy(out, blk, 4);
        out += 1;
        break;
      case GgmlType::kF16:
        *out++ = F16(blk);
        break;
      case GgmlType::kBF16: {
        uint16_t bits;
        std::memcpy(&bits, blk, 2);
        *out++ = BFloat16ToFloat(bits);
        break;
      }
      case GgmlType::kQ8_0: {  // d, 32 x int8
        const float d = F16(blk);
        for (int i = 0; i < 32; ++i) *out++ = d * static_cast<float>(static_cast<int8_t>(u8[2 + i]));
        break;
      }
      case GgmlType::kQ4_0:    // d, 16 bytes of nibbles: low = elements 0..15, high = 16..31
      case GgmlType::kQ4_1: {  // d, m, likewise; x = q * d + m
        const bool has_min = type == GgmlType::kQ4_1;
        const float d = F16(blk);
        const float m = has_min ? F16(blk + 2) : 0.0f;
        const uint8_t* qs = u8 + (has_min ? 4 : 2);
        for (int i = 0; i < 16; ++i) {
          const int lo = qs[i] & 0xF, hi = qs[i] >> 4;
          out[i] = has_min ? lo * d + m : (lo - 8) * d;
          out[i + 16] = has_min ? hi * d + m : (hi - 8) * d;
        }
        out += 32;
        break;
      }
      case GgmlType::kQ4_K:    // d, dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles
      case GgmlType::kQ5_K: {  // the same plus 32 bytes of fifth bits before the nibbles
        const bool five = type == GgmlType::kQ5_K;
        const float d = F16(blk), dmin = F16(blk + 2);
        const uint8_t* scales = u8 + 4;
        const uint8_t* qh = u8 + 16;                  // Q5_K only
        const uint8_t* ql = u8 + (five ? 48 : 16);
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < 4; ++j) {  // 64 elements: two sub-blocks sharing 32 bytes
          uint8_t sc, mn;
          ScaleMinK4(2 * j, scales, &sc, &mn);
          const float d1 = d * sc, m1 = dmin * mn;
          ScaleMinK4(2 * j + 1, scales, &sc, &mn);
          const float d2 = d * sc, m2 = dmin * mn;
          for (int l = 0; l < 32; ++l) {
            const int hi1 = five && (qh[l] & u1) ? 16 : 0;
            out[l] = d1 * static_cast<float>((ql[l] & 0xF) + hi1) - m1;
          }
          for (int l = 0; l < 32; ++l) {
            const int hi2 = five && (qh[l] & u2) ? 16 : 0;
            out[32 + l] = d2 * static_cast<float>((ql[l] >> 4) + hi2) - m2;
          }
          out += 64;
          ql += 32;
          u1 = static_cast<uint8_t>(u1 << 2);
          u2 = static_cast<uint8_t>(u2 << 2);
        }
        break;
      }
      case GgmlType::kQ6_K: {  // 128 bytes low 4 bits, 64 bytes high 2 bits, 16 int8 scales, d
        const uint8_t* ql = u8;
        const uint8_t* qh = u8 + 128;
        const auto* sc = reinterpret_cast<const int8_t*>(u8 + 192);
        const float d = F16(blk + 208);
        for (int n = 0; n < 2; ++n) {  // 128 elements each
          for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            out[l] = d * sc[is] * static_cast<float>(q1);
            out[l + 32] = d * sc[is + 2] * static_cast<float>(q2);
            out[l + 64] = d * sc[is + 4] * static_cast<float>(q3);
            out[l + 96] = d * sc[is + 6] * static_cast<float>(q4);
          }
          out += 128;
          ql += 64;
          qh += 32;
          sc += 8;
        }
        break;
      }
    }
  }
}

int64_t GgufTensor::NumElements() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot open: ", std::strerror(err)));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  auto f = std::unique_ptr<GgufFile>(new GgufFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ > 0) {
    void* addr = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat(path, ": mmap failed: ", std::strerror(err)));
    }
    f->map_ = static_cast<const std::byte*>(addr);
  }
  ::close(fd);
  RETURN_IF_ERROR(f->Parse());
  return f;
}

GgufFile::~GgufFile() {
  if (map_ != nullptr) munmap(const_cast<std::byte*>(map_), size_);
}

absl::Status GgufFile::Parse() {
  Cursor c(map_, size_, path_);
  const uint32_t magic = c.Read<uint32_t>("magic");
  if (!c.ok()) return c.status();
  if (magic != kMagic) return absl::InvalidArgumentError(absl::StrCat(path_, ": not a GGUF file (bad magic)"));
  version_ = c.Read<uint32_t>("version");
  if (c.ok() && (version_ < 2 || version_ > 3)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": GGUF version ", version_, " is not supported (2 or 3)"));
  }
  const uint64_t num_tensors = c.Read<uint64_t>("tensor count");
  const uint64_t num_kv = c.Read<uint64_t>("metadata count");
  // A key is at least 8 + 4 bytes, a tensor info at least 8 + 4 + 4 + 8.
  if (!c.CheckCount(num_kv, 12, "metadata count")) return c.status();
  for (uint64_t k = 0; k < num_kv && c.ok(); ++k) {
    std::string key = c.ReadString(absl::StrCat("metadata key ", k));
    const uint32_t t = c.Read<uint32_t>(absl::StrCat("metadata '", key, "' type"));
    if (!c.ok()) break;
    if (!ValidType(t)) {
      c.Fail(absl::StrCat("metadata '", key, "' has unknown type ", t));
      break;
    }
    GgufValue v;
    ReadValue(c, static_cast<GgufValueType>(t), absl::StrCat("metadata '", key, "'"), 0, v);
    if (c.ok() && !metadata_.emplace(key, std::move(v)).second) {
      c.Fail(absl::StrCat("metadata key '", key, "' appears twice"));
    }
  }
  if (!c.CheckCount(num_tensors, 24, "tensor count")) return c.status();
  std::vector<uint64_t> offsets;
  for (uint64_t k = 0; k < num_tensors && c.ok(); ++k) {
    GgufTensor t;
    t.name = c.ReadString(absl::StrCat("tensor ", k, " name"));
    const std::string what = absl::StrCat("tensor '", t.name, "'");
    const uint32_t n_dims = c.Read<uint32_t>(what + " dimension count");
    if (c.ok() && (n_dims < 1 || n_dims > 4)) {
      c.Fail(absl::StrCat(what, " has ", n_dims, " dimensions (1 to 4 supported)"));
    }
    int64_t elements = 1;
    for (uint32_t d = 0; d < n_dims && c.ok(); ++d) {
      const uint64_t dim = c.Read<uint64_t>(what + " dimension");
      if (c.ok() && (dim == 0 || dim > (uint64_t{1} << 40) ||
                     static_cast<int64_t>(dim) > std::numeric_limits<int64_t>::max() / elements)) {
        c.Fail(absl::StrCat(what, " has dimension ", dim, " (zero or too large)"));
      }
      elements *= static_cast<int64_t>(dim);
      t.dims.push_back(static_cast<int64_t>(dim));
    }
    const uint32_t type = c.Read<uint32_t>(what + " type");
    const uint64_t offset = c.Read<uint64_t>(what + " offset");
    if (!c.ok()) break;
    t.type = static_cast<GgmlType>(type);
    const GgmlBlock block = GgmlBlockOf(t.type);
    if (block.elements == 0 || std::string(GgmlTypeName(t.type)) == "unknown") {
      c.Fail(absl::StrCat(what, " has tensor type ", type,
                          ", which is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, "
                          "Q5_K, Q6_K)"));
      break;
    }
    if (t.dims[0] % block.elements != 0) {
      c.Fail(absl::StrCat(what, ": its first dimension ", t.dims[0], " is not a multiple of ",
                          GgmlTypeName(t.type), "'s block of ", block.elements));
      break;
    }
    t.nbytes = static_cast<size_t>(elements / block.elements * block.bytes);
    offsets.push_back(offset);
    if (!tensor_index_.emplace(t.name, tensors_.size()).second) {
      c.Fail(absl::StrCat(what, " appears twice"));
      break;
    }
    tensors_.push_back(std::move(t));
  }
  if (!c.ok()) return c.status();
  uint64_t alignment = 32;
  if (const GgufValue* a = Find("general.alignment")) {
    if (!IsInteger(a->type) || a->i < 1 || a->i > (1 << 20) || (a->i & (a->i - 1)) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ": metadata 'general.alignment' must be a power of two"));
    }
    alignment = static_cast<uint64_t>(a->i);
  }
  const uint64_t data_start = (c.pos() + alignment - 1) / alignment * alignment;
  for (size_t k = 0; k < tensors_.size(); ++k) {
    GgufTensor& t = tensors_[k];
    const uint64_t off = offsets[k];
    if (off % alignment != 0) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ": tensor '", t.name, "' offset ", off,
                                                     " is not aligned to ", alignment));
    }
    if (data_start > size_ || off > size_ - data_start || t.nbytes > size_ - data_start - off) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ": tensor '", t.name, "' (", t.nbytes,
                                                     " bytes at offset ", off,
                                                     ") lies past the end of the file"));
    }
    t.data = map_ + data_start + off;
  }
  return absl::OkStatus();
}

const GgufValue* GgufFile::Find(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

namespace {

absl::Status Missing(const std::string& path, const std::string& key) {
  return absl::NotFoundError(absl::StrCat(path, ": metadata '", key, "' is missing"));
}

absl::Status WrongType(const std::string& path, const std::string& key, const GgufValue& v,
                       const char* want) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": metadata '", key, "' is ",
                                                 ValueTypeName(v.type), ", expected ", want));
}

}  // namespace

absl::StatusOr<int64_t> GgufFile::GetInt(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(path_, key);
  if (!IsInteger(v->type)) return WrongType(path_, key, *v, "an integer");
  return v->i;
}

absl::StatusOr<double> GgufFile::GetFloat(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(path_, key);
  if (IsFloat(v->type)) return v->f;
  if (IsInteger(v->type)) return static_cast<double>(v->i);
  return WrongType(path_, key, *v, "a number");
}

absl::StatusOr<std::string> GgufFile::GetString(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(path_, key);
  if (v->type != GgufValueType::kString) return WrongType(path_, key, *v, "a string");
  return v->s;
}

absl::StatusOr<const std::vector<std::string>*> GgufFile::GetStringArray(
    const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(path_, key);
  if (v->type != GgufValueType::kArray || v->element_type != GgufValueType::kString) {
    return WrongType(path_, key, *v, "an array of strings");
  }
  return &v->strings;
}

absl::StatusOr<const std::vector<int64_t>*> GgufFile::GetIntArray(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(path_, key);
  if (v->type != GgufValueType::kArray || !IsInteger(v->element_type)) {
    return WrongType(path_, key, *v, "an array of integers");
  }
  return &v->ints;
}

absl::StatusOr<const std::vector<double>*> GgufFile::GetFloatArray(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(path_, key);
  if (v->type != GgufValueType::kArray || !IsFloat(v->element_type)) {
    return WrongType(path_, key, *v, "an array of numbers");
  }
  return &v->floats;
}

const GgufTensor* GgufFile::FindTensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

absl::Status GgufFile::Dequantize(const GgufTensor& t, float* out) const {
  const GgmlBlock block = GgmlBlockOf(t.type);
  if (block.elements == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": tensor '", t.name, "' has an unsupported type"));
  }
  DequantizeBlocks(t.type, t.data, t.NumElements() / block.elements, out);
  return absl::OkStatus();
}

}  // namespace longview
