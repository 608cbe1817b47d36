#include "engine/model/model_config.h"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace longview {
namespace {

using json = nlohmann::json;

// Sizes beyond this are not a real model; capping them keeps every later product of two sizes
// inside int64.
constexpr int64_t kMaxSize = int64_t{1} << 31;
// Layers cost memory before the weights are checked against the config (a window each here, a
// slot each in LoadModelWeights), so their count has a cap of its own, far above any real model
// (the largest published ones have about 130 layers).
constexpr int64_t kMaxLayers = 4096;

// Reads typed fields from one JSON object; every error names the source file and the field
// (with its parent prefix, e.g. "rope_scaling.factor").
class FieldReader {
 public:
  FieldReader(const json& obj, const std::string& source, std::string prefix = "")
      : obj_(obj), source_(source), prefix_(std::move(prefix)) {}

  absl::Status Error(const std::string& field, const std::string& problem) const {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": field '", prefix_, field, "': ", problem));
  }

  // nullptr when the field is absent or null.
  const json* Get(const std::string& field) const {
    auto it = obj_.find(field);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  bool Has(const std::string& field) const { return Get(field) != nullptr; }

  absl::StatusOr<std::optional<int64_t>> OptInt(const std::string& field) const {
    const json* v = Get(field);
    if (v == nullptr) return std::optional<int64_t>();
    if (v->is_number_integer()) {
      if (v->is_number_unsigned() &&
          v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Error(field, "integer out of range");
      }
      return std::optional<int64_t>(v->get<int64_t>());
    }
    return Error(field, absl::StrCat("expected an integer, got ", v->dump()));
  }

  absl::StatusOr<int64_t> Int(const std::string& field) const {
    ASSIGN_OR_RETURN(std::optional<int64_t> v, OptInt(field));
    if (!v.has_value()) return Error(field, "missing required field");
    return *v;
  }

  absl::StatusOr<int64_t> Int(const std::string& field, int64_t default_value) const {
    ASSIGN_OR_RETURN(std::optional<int64_t> v, OptInt(field));
    return v.value_or(default_value);
  }

  // A positive size, at most kMaxSize.
  absl::StatusOr<int64_t> Size(const std::string& field,
                               std::optional<int64_t> default_value) const {
    ASSIGN_OR_RETURN(std::optional<int64_t> v, OptInt(field));
    if (!v.has_value()) {
      if (!default_value.has_value()) return Error(field, "missing required field");
      v = default_value;
    }
    if (*v <= 0) return Error(field, absl::StrCat("must be positive, got ", *v));
    if (*v > kMaxSize) return Error(field, absl::StrCat("unreasonably large: ", *v));
    return *v;
  }

  absl::StatusOr<std::optional<double>> OptDouble(const std::string& field) const {
    const json* v = Get(field);
    if (v == nullptr) return std::optional<double>();
    if (!v->is_number()) return Error(field, absl::StrCat("expected a number, got ", v->dump()));
    return std::optional<double>(v->get<double>());
  }

  // A finite number > 0.
  absl::StatusOr<double> PositiveDouble(const std::string& field,
                                        std::optional<double> default_value) const {
    ASSIGN_OR_RETURN(std::optional<double> v, OptDouble(field));
    if (!v.has_value()) {
      if (!default_value.has_value()) return Error(field, "missing required field");
      v = default_value;
    }
    if (!std::isfinite(*v) || *v <= 0) {
      return Error(field, absl::StrCat("must be a positive finite number, got ", *v));
    }
    return *v;
  }

  absl::StatusOr<bool> Bool(const std::string& field, bool default_value) const {
    const json* v = Get(field);
    if (v == nullptr) return default_value;
    if (!v->is_boolean()) return Error(field, absl::StrCat("expected a boolean, got ", v->dump()));
    return v->get<bool>();
  }

  absl::StatusOr<std::optional<std::string>> OptString(const std::string& field) const {
    const json* v = Get(field);
    if (v == nullptr) return std::optional<std::string>();
    if (!v->is_string()) return Error(field, absl::StrCat("expected a string, got ", v->dump()));
    return std::optional<std::string>(v->get<std::string>());
  }

  // One non-negative id, a list of them, or null/absent (empty).
  absl::StatusOr<std::vector<int64_t>> TokenIds(const std::string& field) const {
    const json* v = Get(field);
    std::vector<int64_t> ids;
    if (v == nullptr) return ids;
    auto add = [&](const json& id) -> absl::Status {
      if (!id.is_number_integer() || (id.is_number_unsigned() && id.get<uint64_t>() > kMaxSize) ||
          id.get<int64_t>() < 0) {
        return Error(field, absl::StrCat("expected a non-negative token id or a list of them, got ",
                                         v->dump()));
      }
      ids.push_back(id.get<int64_t>());
      return absl::OkStatus();
    };
    if (v->is_array()) {
      for (const json& id : *v) RETURN_IF_ERROR(add(id));
    } else {
      RETURN_IF_ERROR(add(*v));
    }
    return ids;
  }

  const json& obj() const { return obj_; }
  const std::string& source() const { return source_; }
  const std::string& prefix() const { return prefix_; }

 private:
  const json& obj_;
  const std::string& source_;
  std::string prefix_;
};

absl::StatusOr<Architecture> ParseArchitecture(const FieldReader& r) {
  const json* archs = r.Get("architectures");
  if (archs != nullptr) {
    if (!archs->is_array()) {
      return r.Error("architectures", absl::StrCat("expected a list, got ", archs->dump()));
    }
    if (!archs->empty()) {
      const json& a = (*archs)[0];
      if (!a.is_string()) {
        return r.Error("architectures", absl::StrCat("expected strings, got ", a.dump()));
      }
      const std::string name = a.get<std::string>();
      if (name == "LlamaForCausalLM") return Architecture::kLlama;
      if (name == "MistralForCausalLM") return Architecture::kMistral;
      if (name == "Qwen2ForCausalLM") return Architecture::kQwen2;
      return r.Error("architectures",
                     absl::StrCat("unknown architecture '", name,
                                  "' (supported: LlamaForCausalLM, MistralForCausalLM, "
                                  "Qwen2ForCausalLM)"));
    }
  }
  ASSIGN_OR_RETURN(std::optional<std::string> model_type, r.OptString("model_type"));
  if (!model_type.has_value()) {
    return r.Error("architectures", "missing (and no model_type to fall back on)");
  }
  if (*model_type == "llama") return Architecture::kLlama;
  if (*model_type == "mistral") return Architecture::kMistral;
  if (*model_type == "qwen2") return Architecture::kQwen2;
  return r.Error("model_type", absl::StrCat("unknown architecture '", *model_type,
                                            "' (supported: llama, mistral, qwen2)"));
}

// Fills `rope` (all but theta) from a rope_scaling / rope_parameters object.
absl::Status ParseRopeScaling(const FieldReader& r, RopeConfig& rope) {
  // Older configs spell the key `type`.
  const std::string type_key = r.Has("rope_type") || !r.Has("type") ? "rope_type" : "type";
  ASSIGN_OR_RETURN(std::optional<std::string> type, r.OptString(type_key));
  if (!type.has_value()) return r.Error("rope_type", "missing required field");
  if (*type == "default") {
    rope.type = RopeType::kDefault;
    return absl::OkStatus();
  }
  if (*type == "linear") {
    rope.type = RopeType::kLinear;
    ASSIGN_OR_RETURN(rope.factor, r.PositiveDouble("factor", std::nullopt));
    return absl::OkStatus();
  }
  if (*type == "llama3") {
    rope.type = RopeType::kLlama3;
    ASSIGN_OR_RETURN(rope.factor, r.PositiveDouble("factor", std::nullopt));
    ASSIGN_OR_RETURN(rope.low_freq_factor, r.PositiveDouble("low_freq_factor", std::nullopt));
    ASSIGN_OR_RETURN(rope.high_freq_factor, r.PositiveDouble("high_freq_factor", std::nullopt));
    ASSIGN_OR_RETURN(rope.original_max_position_embeddings,
                     r.Size("original_max_position_embeddings", std::nullopt));
    if (rope.high_freq_factor <= rope.low_freq_factor) {
      return r.Error("high_freq_factor",
                     absl::StrCat("must be greater than low_freq_factor (", rope.high_freq_factor,
                                  " <= ", rope.low_freq_factor, ")"));
    }
    return absl::OkStatus();
  }
  return r.Error(type_key, absl::StrCat("unsupported rope type '", *type,
                                        "' (supported: default, linear, llama3)"));
}

absl::Status ParseRope(const FieldReader& r, ModelConfig& cfg) {
  cfg.rope = RopeConfig();
  const json* params = r.Get("rope_parameters");
  if (params != nullptr) {
    // transformers 5: theta lives inside rope_parameters.
    if (!params->is_object()) {
      return r.Error("rope_parameters", absl::StrCat("expected an object, got ", params->dump()));
    }
    FieldReader pr(*params, r.source(), "rope_parameters.");
    if (!pr.Has("rope_type") && !pr.Has("type") && !pr.Has("rope_theta")) {
      return r.Error("rope_parameters",
                     "expected rope_type and rope_theta (per-layer-type rope parameters are not "
                     "supported for this architecture)");
    }
    // rope_theta may still sit at the top level in hand-written configs.
    ASSIGN_OR_RETURN(double top_theta, r.PositiveDouble("rope_theta", 10000.0));
    ASSIGN_OR_RETURN(cfg.rope.theta, pr.PositiveDouble("rope_theta", top_theta));
    if (pr.Has("rope_type") || pr.Has("type")) RETURN_IF_ERROR(ParseRopeScaling(pr, cfg.rope));
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(cfg.rope.theta, r.PositiveDouble("rope_theta", 10000.0));
  const json* scaling = r.Get("rope_scaling");
  if (scaling == nullptr) return absl::OkStatus();
  if (!scaling->is_object()) {
    return r.Error("rope_scaling",
                   absl::StrCat("expected an object or null, got ", scaling->dump()));
  }
  return ParseRopeScaling(FieldReader(*scaling, r.source(), "rope_scaling."), cfg.rope);
}

absl::Status ParseLayerWindows(const FieldReader& r, ModelConfig& cfg) {
  const int64_t n = cfg.num_hidden_layers;
  cfg.layer_window.assign(n, 0);
  const json* layer_types = r.Get("layer_types");
  if (layer_types != nullptr) {
    if (!layer_types->is_array() || static_cast<int64_t>(layer_types->size()) != n) {
      return r.Error("layer_types",
                     absl::StrCat("expected a list of num_hidden_layers (", n, ") strings"));
    }
    std::optional<int64_t> window;
    for (int64_t i = 0; i < n; ++i) {
      const json& t = (*layer_types)[i];
      const std::string type = t.is_string() ? t.get<std::string>() : t.dump();
      if (type == "full_attention") continue;
      if (type != "sliding_attention") {
        return r.Error("layer_types",
                       absl::StrCat("layer ", i, ": unsupported layer type '", type,
                                    "' (supported: full_attention, sliding_attention)"));
      }
      if (!window.has_value()) {
        ASSIGN_OR_RETURN(window, r.OptInt("sliding_window"));
        if (!window.has_value() || *window <= 0) {
          return r.Error("sliding_window",
                         "must be a positive integer when layer_types has "
                         "sliding_attention layers");
        }
      }
      cfg.layer_window[i] = *window;
    }
    return absl::OkStatus();
  }
  switch (cfg.architecture) {
    case Architecture::kLlama:
      return absl::OkStatus();
    case Architecture::kMistral: {
      // MistralConfig defaults sliding_window to 4096 when the key is absent; null disables it.
      int64_t window = 0;
      if (r.obj().find("sliding_window") == r.obj().end()) {
        window = 4096;
      } else {
        ASSIGN_OR_RETURN(window, r.Int("sliding_window", 0));
      }
      if (window < 0) return r.Error("sliding_window", absl::StrCat("negative: ", window));
      cfg.layer_window.assign(n, window);
      return absl::OkStatus();
    }
    case Architecture::kQwen2: {
      ASSIGN_OR_RETURN(bool use, r.Bool("use_sliding_window", false));
      if (!use) return absl::OkStatus();
      ASSIGN_OR_RETURN(int64_t window, r.Int("sliding_window", 4096));
      if (window <= 0) {
        return r.Error(
            "sliding_window",
            absl::StrCat("must be positive when use_sliding_window is true, got ", window));
      }
      ASSIGN_OR_RETURN(int64_t max_window_layers, r.Int("max_window_layers", 28));
      if (max_window_layers < 0) {
        return r.Error("max_window_layers", absl::StrCat("negative: ", max_window_layers));
      }
      for (int64_t i = max_window_layers; i < n; ++i) cfg.layer_window[i] = window;
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

}  // namespace

const char* ArchitectureName(Architecture arch) {
  switch (arch) {
    case Architecture::kLlama:
      return "LlamaForCausalLM";
    case Architecture::kMistral:
      return "MistralForCausalLM";
    case Architecture::kQwen2:
      return "Qwen2ForCausalLM";
  }
  return "unknown";
}

absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text,
                                             const std::string& source) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e400
    return absl::InvalidArgumentError(absl::StrCat(source, ": invalid JSON: ", e.what()));
  }
  if (!root.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": invalid config: expected a JSON object at the top level"));
  }
  const FieldReader r(root, source);
  ModelConfig cfg;
  ASSIGN_OR_RETURN(cfg.architecture, ParseArchitecture(r));

  ASSIGN_OR_RETURN(cfg.vocab_size, r.Size("vocab_size", std::nullopt));
  ASSIGN_OR_RETURN(cfg.hidden_size, r.Size("hidden_size", std::nullopt));
  ASSIGN_OR_RETURN(cfg.intermediate_size, r.Size("intermediate_size", std::nullopt));
  ASSIGN_OR_RETURN(cfg.num_hidden_layers, r.Size("num_hidden_layers", std::nullopt));
  if (cfg.num_hidden_layers > kMaxLayers) {
    return r.Error("num_hidden_layers", absl::StrCat("unreasonably large: ", cfg.num_hidden_layers,
                                                     " (at most ", kMaxLayers, ")"));
  }
  ASSIGN_OR_RETURN(cfg.num_attention_heads, r.Size("num_attention_heads", std::nullopt));
  ASSIGN_OR_RETURN(cfg.num_key_value_heads, r.Size("num_key_value_heads", cfg.num_attention_heads));
  if (cfg.num_attention_heads % cfg.num_key_value_heads != 0) {
    return r.Error("num_key_value_heads",
                   absl::StrCat(cfg.num_key_value_heads, " does not divide num_attention_heads (",
                                cfg.num_attention_heads, ")"));
  }
  if (r.Has("head_dim")) {
    ASSIGN_OR_RETURN(cfg.head_dim, r.Size("head_dim", std::nullopt));
  } else {
    if (cfg.hidden_size % cfg.num_attention_heads != 0) {
      return r.Error("num_attention_heads",
                     absl::StrCat(cfg.num_attention_heads, " does not divide hidden_size (",
                                  cfg.hidden_size, ") and head_dim is not given"));
    }
    cfg.head_dim = cfg.hidden_size / cfg.num_attention_heads;
  }
  if (cfg.head_dim % 2 != 0) {
    return r.Error("head_dim",
                   absl::StrCat("must be even for rotary embeddings, got ", cfg.head_dim));
  }

  ASSIGN_OR_RETURN(cfg.rms_norm_eps, r.PositiveDouble("rms_norm_eps", 1e-6));
  int64_t default_max_pos = 2048;
  if (cfg.architecture == Architecture::kMistral) default_max_pos = 4096 * 32;
  if (cfg.architecture == Architecture::kQwen2) default_max_pos = 32768;
  ASSIGN_OR_RETURN(cfg.max_position_embeddings, r.Size("max_position_embeddings", default_max_pos));
  ASSIGN_OR_RETURN(cfg.tie_word_embeddings, r.Bool("tie_word_embeddings", false));
  if (cfg.architecture == Architecture::kQwen2) {
    cfg.attention_bias = true;
  } else {
    ASSIGN_OR_RETURN(cfg.attention_bias, r.Bool("attention_bias", false));
  }
  ASSIGN_OR_RETURN(bool mlp_bias, r.Bool("mlp_bias", false));
  if (mlp_bias) return r.Error("mlp_bias", "MLP biases are not supported");
  ASSIGN_OR_RETURN(std::optional<std::string> act, r.OptString("hidden_act"));
  if (act.has_value() && *act != "silu") {
    return r.Error("hidden_act",
                   absl::StrCat("unsupported activation '", *act, "' (supported: silu)"));
  }

  RETURN_IF_ERROR(ParseRope(r, cfg));
  RETURN_IF_ERROR(ParseLayerWindows(r, cfg));
  ASSIGN_OR_RETURN(cfg.bos_token_ids, r.TokenIds("bos_token_id"));
  ASSIGN_OR_RETURN(cfg.eos_token_ids, r.TokenIds("eos_token_id"));

  const char* dtype_field = r.Has("dtype") ? "dtype" : "torch_dtype";
  ASSIGN_OR_RETURN(std::optional<std::string> dtype, r.OptString(dtype_field));
  if (dtype.has_value()) {
    if (*dtype != "bfloat16" && *dtype != "float16" && *dtype != "float32") {
      return r.Error(dtype_field, absl::StrCat("unsupported dtype '", *dtype,
                                               "' (supported: bfloat16, float16, float32)"));
    }
    cfg.torch_dtype = *dtype;
  }
  return cfg;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) {
    return absl::NotFoundError(absl::StrCat(path, ": model config file not found"));
  }
  if (!std::filesystem::is_regular_file(status)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": model config is not a regular file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::PermissionDeniedError(absl::StrCat(path, ": cannot open model config file"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(path, ": error reading file"));
  return ParseModelConfig(text.str(), path);
}

int64_t ParameterCount(const ModelConfig& c) {
  const int64_t q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  const int64_t layer = 2 * c.hidden_size                          // the two norms
                        + c.hidden_size * (q + 2 * kv) + q * c.hidden_size  // q, k, v, o
                        + (c.attention_bias ? q + 2 * kv : 0)
                        + 3 * c.hidden_size * c.intermediate_size;  // gate, up, down
  return c.vocab_size * c.hidden_size * (c.tie_word_embeddings ? 1 : 2) + c.hidden_size +
         c.num_hidden_layers * layer;
}

}  // namespace longview
