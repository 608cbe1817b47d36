#include "engine/model/weights.h"

#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/model/safetensors.h"

namespace longview {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

std::vector<WeightSlot> WeightSlots(const ModelConfig& cfg, ModelWeights& w) {
  const int64_t hidden = cfg.hidden_size;
  const int64_t q_dim = cfg.num_attention_heads * cfg.head_dim;
  const int64_t kv_dim = cfg.num_key_value_heads * cfg.head_dim;
  const int64_t inter = cfg.intermediate_size;
  std::vector<WeightSlot> e;
  e.push_back({"model.embed_tokens.weight", {cfg.vocab_size, hidden}, &w.embed_tokens});
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    LayerWeights& l = w.layers[i];
    const std::string p = absl::StrCat("model.layers.", i, ".");
    e.push_back({p + "input_layernorm.weight", {hidden}, &l.input_layernorm});
    e.push_back({p + "self_attn.q_proj.weight", {q_dim, hidden}, &l.q_proj});
    e.push_back({p + "self_attn.k_proj.weight", {kv_dim, hidden}, &l.k_proj});
    e.push_back({p + "self_attn.v_proj.weight", {kv_dim, hidden}, &l.v_proj});
    if (cfg.attention_bias) {
      e.push_back({p + "self_attn.q_proj.bias", {q_dim}, &l.q_bias});
      e.push_back({p + "self_attn.k_proj.bias", {kv_dim}, &l.k_bias});
      e.push_back({p + "self_attn.v_proj.bias", {kv_dim}, &l.v_bias});
    }
    e.push_back({p + "self_attn.o_proj.weight", {hidden, q_dim}, &l.o_proj});
    e.push_back({p + "post_attention_layernorm.weight", {hidden}, &l.post_attention_layernorm});
    e.push_back({p + "mlp.gate_proj.weight", {inter, hidden}, &l.gate_proj});
    e.push_back({p + "mlp.up_proj.weight", {inter, hidden}, &l.up_proj});
    e.push_back({p + "mlp.down_proj.weight", {hidden, inter}, &l.down_proj});
  }
  e.push_back({"model.norm.weight", {hidden}, &w.norm});
  if (!cfg.tie_word_embeddings) {
    e.push_back({"lm_head.weight", {cfg.vocab_size, hidden}, &w.lm_head});
  }
  return e;
}

namespace {

bool IsIgnored(std::string_view name, const ModelConfig& cfg) {
  // Older checkpoints saved the rotary inverse frequencies as buffers; tied checkpoints
  // sometimes still carry a copy of the embedding as lm_head.
  return name.ends_with(".rotary_emb.inv_freq") ||
         (cfg.tie_word_embeddings && name == "lm_head.weight");
}

}  // namespace

absl::StatusOr<ModelWeights> LoadModelWeights(const std::string& model_dir,
                                              const ModelConfig& cfg) {
  if (cfg.num_hidden_layers < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_dir, ": invalid config: num_hidden_layers ", cfg.num_hidden_layers));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsArchive> archive,
                   SafetensorsArchive::OpenModelDir(model_dir));
  ModelWeights w;
  w.layers.resize(cfg.num_hidden_layers);
  const std::vector<WeightSlot> expected = WeightSlots(cfg, w);

  // Check names, dtypes and shapes of everything before converting anything.
  std::vector<const TensorView*> views;
  views.reserve(expected.size());
  std::set<std::string_view> expected_names;
  for (const WeightSlot& e : expected) {
    expected_names.insert(e.name);
    const TensorView* t = archive->Find(e.name);
    if (t == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(archive->source(), ": missing tensor '",
                                                     e.name, "' (expected shape ",
                                                     ShapeString(e.shape), ")"));
    }
    if (t->dtype != DType::kF32 && t->dtype != DType::kF16 && t->dtype != DType::kBF16) {
      return absl::InvalidArgumentError(
          absl::StrCat(t->file, ": tensor '", e.name, "' has unsupported dtype ",
                       DTypeName(t->dtype), " (expected F32, F16 or BF16)"));
    }
    if (t->shape != e.shape) {
      return absl::InvalidArgumentError(
          absl::StrCat(t->file, ": tensor '", e.name, "' has wrong shape: expected ",
                       ShapeString(e.shape), ", found ", ShapeString(t->shape)));
    }
    views.push_back(t);
  }
  for (const std::string& name : archive->Names()) {
    if (expected_names.count(name) != 0 || IsIgnored(name, cfg)) continue;
    const TensorView* t = archive->Find(name);
    return absl::InvalidArgumentError(
        absl::StrCat(t->file, ": unexpected tensor '", name, "' (not part of a ",
                     ArchitectureName(cfg.architecture), " with this config)"));
  }

  for (size_t i = 0; i < expected.size(); ++i) {
    HostTensor& dest = *expected[i].dest;
    dest.shape = expected[i].shape;
    dest.data.resize(static_cast<size_t>(views[i]->NumElements()));
    RETURN_IF_ERROR(views[i]->ToFloat32(dest.data.data()));
  }
  return w;
}

}  // namespace longview
