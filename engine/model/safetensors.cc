#include "engine/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace longview {

using json = nlohmann::json;

namespace {

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kF32, "F32", 4}, {DType::kF16, "F16", 2}, {DType::kBF16, "BF16", 2},
    {DType::kI64, "I64", 8}, {DType::kI32, "I32", 4}, {DType::kU8, "U8", 1},
    {DType::kI8, "I8", 1},   {DType::kF64, "F64", 8}, {DType::kBool, "BOOL", 1},
    {DType::kI16, "I16", 2}, {DType::kU16, "U16", 2},
};

std::optional<DType> ParseDType(std::string_view name) {
  for (const DTypeInfo& info : kDTypes) {
    if (name == info.name) return info.dtype;
  }
  return std::nullopt;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

uint16_t LoadU16(const std::byte* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

float BitsToFloat(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

}  // namespace

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) {  // inf / nan; keep the payload
    return BitsToFloat(sign | 0x7f800000u | (mantissa << 13));
  }
  if (exponent == 0) {
    if (mantissa == 0) return BitsToFloat(sign);  // +-0
    // Subnormal: value = mantissa * 2^-24; normalise it into a float32 normal.
    uint32_t e = 127 - 15 + 1;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --e;
    }
    mantissa &= 0x3ffu;
    return BitsToFloat(sign | (e << 23) | (mantissa << 13));
  }
  return BitsToFloat(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
}

float BFloat16ToFloat(uint16_t b) { return BitsToFloat(static_cast<uint32_t>(b) << 16); }

const char* DTypeName(DType dtype) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype == dtype) return info.name;
  }
  return "unknown";
}

size_t DTypeSize(DType dtype) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype == dtype) return info.size;
  }
  return 0;
}

int64_t TensorView::NumElements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::Status TensorView::ToFloat32(float* out) const {
  const int64_t n = NumElements();
  if (n < 0 || static_cast<size_t>(n) * DTypeSize(dtype) != nbytes || (nbytes > 0 && !data)) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": tensor '", name, "': shape ", ShapeString(shape), " and dtype ",
                     DTypeName(dtype), " disagree with its ", nbytes, " bytes"));
  }
  switch (dtype) {
    case DType::kF32:
      if (nbytes > 0) std::memcpy(out, data, nbytes);
      return absl::OkStatus();
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = HalfToFloat(LoadU16(data + 2 * i));
      return absl::OkStatus();
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) out[i] = BFloat16ToFloat(LoadU16(data + 2 * i));
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(absl::StrCat(file, ": tensor '", name,
                                                     "': cannot convert dtype ", DTypeName(dtype),
                                                     " to float32 (supported: F32, F16, BF16)"));
  }
}

// One read-only mapping of a whole file.
struct SafetensorsArchive::Mapping {
  std::string path;
  void* addr = nullptr;
  size_t size = 0;

  ~Mapping() {
    if (addr != nullptr) munmap(addr, size);
  }
};

struct SafetensorsOpener {
  using Mapping = SafetensorsArchive::Mapping;

  static absl::Status Error(const std::string& file, const std::string& problem) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", problem));
  }

  static absl::StatusOr<std::unique_ptr<Mapping>> Map(const std::string& path) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      const std::string msg =
          absl::StrCat(path, ": cannot open safetensors file: ", std::strerror(err));
      if (err == ENOENT) return absl::NotFoundError(msg);
      if (err == EACCES) return absl::PermissionDeniedError(msg);
      return absl::InvalidArgumentError(msg);
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      close(fd);
      return Error(path, "not a regular file");
    }
    auto m = std::make_unique<Mapping>();
    m->path = path;
    m->size = static_cast<size_t>(st.st_size);
    if (m->size < 8) {
      close(fd);
      return Error(path, absl::StrCat("truncated safetensors file: ", m->size,
                                      " bytes, shorter than the 8-byte header length"));
    }
    void* addr = mmap(nullptr, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    close(fd);
    if (addr == MAP_FAILED) {
      return absl::InternalError(absl::StrCat(path, ": mmap failed: ", std::strerror(err)));
    }
    m->addr = addr;
    return m;
  }

  // Reads the header of `m` and adds its tensors to `tensors`.
  static absl::Status ParseHeader(const Mapping& m, std::map<std::string, TensorView>& tensors,
                                  std::unordered_map<std::string, std::string>* metadata) {
    const std::string& file = m.path;
    const auto* bytes = static_cast<const std::byte*>(m.addr);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) {
      header_len = (header_len << 8) | static_cast<uint8_t>(bytes[i]);
    }
    if (header_len > m.size - 8) {
      return Error(file, absl::StrCat("header length ", header_len, " runs past the end of the ",
                                      m.size, "-byte file (truncated or not safetensors)"));
    }
    const std::string_view header_text(reinterpret_cast<const char*>(bytes + 8), header_len);
    const std::byte* buffer = bytes + 8 + header_len;
    const size_t buffer_size = m.size - 8 - header_len;

    json header;
    try {
      header = json::parse(header_text);
    } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e400
      return Error(file, absl::StrCat("invalid header JSON: ", e.what()));
    }
    if (!header.is_object()) return Error(file, "invalid header JSON: expected an object");

    std::vector<const TensorView*> in_file;
    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        if (!entry.is_object()) return Error(file, "header '__metadata__' is not an object");
        for (const auto& [key, value] : entry.items()) {
          if (!value.is_string()) {
            return Error(file,
                         absl::StrCat("header '__metadata__' entry '", key, "' is not a string"));
          }
          if (metadata != nullptr) (*metadata)[key] = value.get<std::string>();
        }
        continue;
      }
      const std::string where = absl::StrCat("tensor '", name, "': ");
      if (!entry.is_object()) return Error(file, absl::StrCat(where, "entry is not an object"));
      auto dtype_it = entry.find("dtype");
      auto shape_it = entry.find("shape");
      auto offsets_it = entry.find("data_offsets");
      if (dtype_it == entry.end()) return Error(file, absl::StrCat(where, "missing 'dtype'"));
      if (shape_it == entry.end()) return Error(file, absl::StrCat(where, "missing 'shape'"));
      if (offsets_it == entry.end()) {
        return Error(file, absl::StrCat(where, "missing 'data_offsets'"));
      }
      if (!dtype_it->is_string()) return Error(file, absl::StrCat(where, "'dtype' not a string"));
      const std::string dtype_name = dtype_it->get<std::string>();
      std::optional<DType> dtype = ParseDType(dtype_name);
      if (!dtype.has_value()) {
        return Error(file, absl::StrCat(where, "unknown dtype '", dtype_name, "'"));
      }
      TensorView view;
      view.name = name;
      view.dtype = *dtype;
      view.file = file;
      if (!shape_it->is_array()) return Error(file, absl::StrCat(where, "'shape' not a list"));
      // Element count with overflow check.
      uint64_t count = 1;
      bool overflow = false;
      for (const json& d : *shape_it) {
        if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t{1} << 62)) {
          return Error(file, absl::StrCat(where, "'shape' has an invalid dimension ", d.dump()));
        }
        const uint64_t dim = d.get<uint64_t>();
        view.shape.push_back(static_cast<int64_t>(dim));
        overflow = overflow || __builtin_mul_overflow(count, dim, &count);
      }
      uint64_t expected_bytes = 0;
      overflow = overflow || __builtin_mul_overflow(count, DTypeSize(*dtype), &expected_bytes);
      if (!offsets_it->is_array() || offsets_it->size() != 2 ||
          !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
        return Error(file, absl::StrCat(where,
                                        "'data_offsets' must be two non-negative integers, "
                                        "got ",
                                        offsets_it->dump()));
      }
      const uint64_t begin = (*offsets_it)[0].get<uint64_t>();
      const uint64_t end = (*offsets_it)[1].get<uint64_t>();
      if (begin > end) {
        return Error(file, absl::StrCat(where, "data_offsets [", begin, ", ", end,
                                        "] out of range: begin after end"));
      }
      if (end > buffer_size) {
        return Error(file,
                     absl::StrCat(where, "data_offsets [", begin, ", ", end,
                                  "] out of range: the data buffer has ", buffer_size, " bytes"));
      }
      if (overflow || expected_bytes != end - begin) {
        return Error(file, absl::StrCat(where, "shape ", ShapeString(view.shape), " of ",
                                        dtype_name, " does not match the ", end - begin,
                                        " bytes of data_offsets [", begin, ", ", end, "]"));
      }
      view.data = buffer + begin;
      view.nbytes = end - begin;
      auto [it, inserted] = tensors.emplace(name, std::move(view));
      if (!inserted) {
        return Error(file, absl::StrCat(where, "also present in ", it->second.file));
      }
      in_file.push_back(&it->second);
    }

    // Overlap check: sort by start; empty tensors own no bytes and cannot overlap.
    std::erase_if(in_file, [](const TensorView* t) { return t->nbytes == 0; });
    std::sort(in_file.begin(), in_file.end(),
              [](const TensorView* a, const TensorView* b) { return a->data < b->data; });
    for (size_t i = 1; i < in_file.size(); ++i) {
      const TensorView* prev = in_file[i - 1];
      const TensorView* cur = in_file[i];
      if (prev->data + prev->nbytes > cur->data) {
        return Error(file,
                     absl::StrCat("tensors '", prev->name, "' [", prev->data - buffer, ", ",
                                  prev->data - buffer + prev->nbytes, ") and '", cur->name, "' [",
                                  cur->data - buffer, ", ", cur->data - buffer + cur->nbytes,
                                  ") have overlapping data_offsets"));
      }
    }
    return absl::OkStatus();
  }

  static absl::StatusOr<std::unique_ptr<SafetensorsArchive>> OpenFile(const std::string& path) {
    std::unique_ptr<SafetensorsArchive> archive(new SafetensorsArchive());
    archive->source_ = path;
    ASSIGN_OR_RETURN(std::unique_ptr<Mapping> m, Map(path));
    std::map<std::string, TensorView> tensors;
    RETURN_IF_ERROR(ParseHeader(*m, tensors, &archive->metadata_));
    archive->mappings_.push_back(std::move(m));
    for (auto& [name, view] : tensors) archive->tensors_.emplace(name, std::move(view));
    return archive;
  }

  static absl::StatusOr<std::unique_ptr<SafetensorsArchive>> OpenSharded(
      const std::string& dir, const std::string& index_path) {
    std::ifstream in(index_path, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat(index_path, ": cannot open index file"));
    std::ostringstream text;
    text << in.rdbuf();
    json index;
    try {
      index = json::parse(text.str());
    } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e400
      return Error(index_path, absl::StrCat("invalid index JSON: ", e.what()));
    }
    if (!index.is_object()) return Error(index_path, "invalid index JSON: expected an object");
    auto wm = index.find("weight_map");
    if (wm == index.end() || !wm->is_object()) {
      return Error(index_path, "missing or invalid 'weight_map' (expected an object)");
    }
    // Shard file name -> tensors the index puts there. std::map gives a stable shard order.
    std::map<std::string, std::vector<std::string>> shards;
    for (const auto& [tensor, shard] : wm->items()) {
      if (!shard.is_string() || shard.get<std::string>().empty()) {
        return Error(index_path, absl::StrCat("weight_map entry '", tensor,
                                              "' is not a file name: ", shard.dump()));
      }
      const std::string name = shard.get<std::string>();
      const std::filesystem::path p(name);
      if (p.is_absolute() || std::find(p.begin(), p.end(), "..") != p.end()) {
        return Error(index_path, absl::StrCat("weight_map entry '", tensor, "': shard '", name,
                                              "' is outside the model folder"));
      }
      shards[name].push_back(tensor);
    }
    if (shards.empty()) return Error(index_path, "'weight_map' is empty");

    std::unique_ptr<SafetensorsArchive> archive(new SafetensorsArchive());
    archive->source_ = index_path;
    std::map<std::string, TensorView> indexed;    // tensors where the index says
    std::map<std::string, TensorView> unindexed;  // extra tensors the index does not list
    std::map<std::string, std::string> unindexed_dups;
    for (const auto& [shard, names] : shards) {
      const std::string shard_path = (std::filesystem::path(dir) / shard).string();
      auto mapped = Map(shard_path);
      if (!mapped.ok()) {
        if (absl::IsNotFound(mapped.status())) {
          return absl::NotFoundError(
              absl::StrCat(index_path, ": shard '", shard, "' (", shard_path, ") is missing"));
        }
        return mapped.status();
      }
      std::map<std::string, TensorView> tensors;
      RETURN_IF_ERROR(ParseHeader(**mapped, tensors,
                                  archive->mappings_.empty() ? &archive->metadata_ : nullptr));
      archive->mappings_.push_back(*std::move(mapped));
      for (const std::string& name : names) {
        auto it = tensors.find(name);
        if (it == tensors.end()) {
          return Error(shard_path, absl::StrCat("tensor '", name, "' is listed in ", index_path,
                                                " but missing from this shard"));
        }
        indexed.emplace(name, std::move(it->second));
        tensors.erase(it);
      }
      for (auto& [name, view] : tensors) {
        if (wm->contains(name)) continue;  // the index puts it in another shard
        auto [it, inserted] = unindexed.emplace(name, view);
        if (!inserted) unindexed_dups[name] = view.file;
      }
    }
    if (!unindexed_dups.empty()) {
      const auto& [name, file] = *unindexed_dups.begin();
      return Error(index_path, absl::StrCat("tensor '", name,
                                            "' is not in the index but appears "
                                            "in both ",
                                            unindexed[name].file, " and ", file));
    }
    for (auto& [name, view] : indexed) archive->tensors_.emplace(name, std::move(view));
    for (auto& [name, view] : unindexed) archive->tensors_.emplace(name, std::move(view));
    return archive;
  }
};

absl::StatusOr<std::unique_ptr<SafetensorsArchive>> SafetensorsArchive::OpenFile(
    const std::string& path) {
  return SafetensorsOpener::OpenFile(path);
}

absl::StatusOr<std::unique_ptr<SafetensorsArchive>> SafetensorsArchive::OpenModelDir(
    const std::string& dir) {
  const std::filesystem::path base(dir);
  std::error_code ec;
  const std::string single = (base / kSingleFile).string();
  if (std::filesystem::exists(single, ec)) return SafetensorsOpener::OpenFile(single);
  const std::string index = (base / kIndexFile).string();
  if (std::filesystem::exists(index, ec)) return SafetensorsOpener::OpenSharded(dir, index);
  return absl::NotFoundError(
      absl::StrCat(dir, ": no ", kSingleFile, " or ", kIndexFile, " in the model folder"));
}

SafetensorsArchive::~SafetensorsArchive() = default;

const TensorView* SafetensorsArchive::Find(std::string_view name) const {
  auto it = tensors_.find(std::string(name));
  return it == tensors_.end() ? nullptr : &it->second;
}

std::vector<std::string> SafetensorsArchive::Names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, view] : tensors_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace longview
