#include "server/session_embeddings.h"

#include <cmath>
#include <cstring>
#include <string>
#include <unordered_set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/api_error.h"

namespace longview {
namespace {

using json = nlohmann::ordered_json;

enum class Dtype { kF32, kF16, kBF16 };

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24
    const float v = std::ldexp(static_cast<float>(mant), -24);
    return sign != 0 ? -v : v;
  }
  uint32_t bits = exp == 0x1f ? sign | 0x7f800000u | (mant << 13)  // inf / NaN
                              : sign | ((exp + 112) << 23) | (mant << 13);
  float f = 0;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

float Decode(const unsigned char* p, Dtype t) {
  if (t == Dtype::kF32) {
    uint32_t bits = static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
                    static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
    float f = 0;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
  }
  const uint16_t h = static_cast<uint16_t>(p[0] | p[1] << 8);
  if (t == Dtype::kF16) return HalfToFloat(h);
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f = 0;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

absl::Status Bad(const std::string& field, const std::string& message) {
  return InvalidParam(field, absl::StrCat(field, ": ", message));
}

absl::Status ParseFrames(const json& frames, SessionEmbeddings& out) {
  const std::string f = "embeddings.frames";
  if (!frames.is_array() || frames.empty()) return Bad(f, "must be a non-empty array of frames");
  int64_t start = 0;
  std::unordered_set<std::string> ids;
  for (size_t i = 0; i < frames.size(); ++i) {
    const std::string at = absl::StrFormat("%s[%d]", f, i);
    const json& fr = frames[i];
    if (!fr.is_object()) return Bad(at, "must be an object {block_id, timestamp, rows}");
    SessionFrame frame;
    for (const auto& [key, v] : fr.items()) {
      if (key == "block_id") {
        if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>().size() > 256) {
          return Bad(at + ".block_id", "must be a string of 1 to 256 characters");
        }
        frame.block_id = v.get<std::string>();
        if (!ids.insert(frame.block_id).second) {
          return Bad(at + ".block_id", absl::StrCat("`", frame.block_id, "` names two frames"));
        }
      } else if (key == "timestamp") {
        if (!v.is_number() || !std::isfinite(v.get<double>())) {
          return Bad(at + ".timestamp", "must be a finite number (seconds into the stream)");
        }
        frame.timestamp = v.get<double>();
      } else if (key == "rows") {
        if (!v.is_number_integer() || v.get<int64_t>() < 1) {
          return Bad(at + ".rows", "must be an integer of at least 1");
        }
        frame.rows = v.get<int64_t>();
      } else {
        return Bad(at + "." + key, "is not a frame field (known: block_id, timestamp, rows)");
      }
    }
    if (frame.rows == 0) return Bad(at + ".rows", "is required");
    if (frame.rows > out.rows - start) {
      return Bad(at + ".rows", absl::StrFormat("the frames cover more than the %d rows given",
                                               out.rows));
    }
    frame.start = start;
    start += frame.rows;
    out.frames.push_back(std::move(frame));
  }
  if (start != out.rows) {
    return Bad(f, absl::StrFormat("the frames cover %d of the %d rows given", start, out.rows));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SessionEmbeddings> ParseSessionEmbeddings(const json& value, int64_t hidden) {
  if (!value.is_object()) {
    return Bad("embeddings", "must be an object {data, dtype, shape, frames}");
  }
  for (const auto& [key, v] : value.items()) {
    if (key != "data" && key != "dtype" && key != "shape" && key != "frames") {
      return Bad("embeddings." + key, "is not an embeddings field (known: data, dtype, shape, "
                                      "frames)");
    }
  }
  SessionEmbeddings out;
  Dtype dtype = Dtype::kF32;
  if (value.contains("dtype")) {
    const json& d = value["dtype"];
    const std::string s = d.is_string() ? d.get<std::string>() : "";
    if (s == "f32" || s == "float32") {
      dtype = Dtype::kF32;
    } else if (s == "f16" || s == "float16") {
      dtype = Dtype::kF16;
    } else if (s == "bf16" || s == "bfloat16") {
      dtype = Dtype::kBF16;
    } else {
      return Bad("embeddings.dtype", absl::StrCat("must be one of f32, f16, bf16; got ", d.dump()));
    }
  }
  int64_t rows = -1;
  if (value.contains("shape")) {
    const json& sh = value["shape"];
    if (!sh.is_array() || sh.size() != 2 || !sh[0].is_number_integer() ||
        !sh[1].is_number_integer() || sh[0].get<int64_t>() < 1) {
      return Bad("embeddings.shape", "must be [rows, hidden] with rows >= 1");
    }
    if (sh[1].get<int64_t>() != hidden) {
      return Bad("embeddings.shape", absl::StrFormat("rows of %s values; the model's hidden size "
                                                     "is %d",
                                                     sh[1].dump(), hidden));
    }
    rows = sh[0].get<int64_t>();
  }
  if (!value.contains("data")) return Bad("embeddings.data", "is required");
  const json& data = value["data"];
  if (data.is_string()) {
    if (rows < 0) return Bad("embeddings.shape", "is required with base64 data");
    std::string bytes;
    if (!absl::Base64Unescape(data.get<std::string>(), &bytes)) {
      return Bad("embeddings.data", "is not valid base64");
    }
    const int64_t width = dtype == Dtype::kF32 ? 4 : 2;
    const int64_t want = rows * hidden * width;
    if (static_cast<int64_t>(bytes.size()) != want) {
      return Bad("embeddings.data", absl::StrFormat("holds %d bytes; shape %d x %d of %d-byte "
                                                    "values needs %d",
                                                    bytes.size(), rows, hidden, width, want));
    }
    out.values.resize(rows * hidden);
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    for (int64_t i = 0; i < rows * hidden; ++i) out.values[i] = Decode(p + i * width, dtype);
  } else if (data.is_array() && !data.empty()) {
    if (value.contains("dtype") && dtype != Dtype::kF32) {
      return Bad("embeddings.dtype", "numbers in arrays are float32; leave dtype out or use f32");
    }
    if (rows >= 0 && static_cast<int64_t>(data.size()) != rows) {
      return Bad("embeddings.data", absl::StrFormat("has %d rows; shape says %d", data.size(),
                                                    rows));
    }
    rows = static_cast<int64_t>(data.size());
    out.values.reserve(rows * hidden);
    for (int64_t r = 0; r < rows; ++r) {
      const json& row = data[r];
      if (!row.is_array() || static_cast<int64_t>(row.size()) != hidden) {
        return Bad(absl::StrFormat("embeddings.data[%d]", r),
                   absl::StrFormat("must be an array of %d numbers (the model's hidden size)",
                                   hidden));
      }
      for (const json& x : row) {
        if (!x.is_number()) {
          return Bad(absl::StrFormat("embeddings.data[%d]", r), "holds a value that is not a "
                                                                "number");
        }
        out.values.push_back(x.get<float>());
      }
    }
  } else {
    return Bad("embeddings.data", "must be base64 (with dtype and shape) or a non-empty array of "
                                  "rows");
  }
  for (size_t i = 0; i < out.values.size(); ++i) {
    if (!std::isfinite(out.values[i])) {
      return Bad(absl::StrFormat("embeddings.data[%d]", i / hidden),
                 "holds a value that is not finite");
    }
  }
  out.rows = rows;
  if (value.contains("frames")) {
    RETURN_IF_ERROR(ParseFrames(value["frames"], out));
  } else {
    out.frames.push_back({.block_id = "", .timestamp = 0, .start = 0, .rows = rows});
  }
  return out;
}

}  // namespace longview
