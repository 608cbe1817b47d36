#include "engine/model/gguf_model.h"

#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace longview {
namespace {

std::string Shape(const std::vector<int64_t>& dims) {
  return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
}

// Positive integer hyper-parameter `arch.key`.
absl::StatusOr<int64_t> PositiveInt(const GgufFile& g, const std::string& key) {
  ASSIGN_OR_RETURN(int64_t v, g.GetInt(key));
  if (v < 1 || v > (int64_t{1} << 40)) {
    return absl::InvalidArgumentError(
        absl::StrCat(g.path(), ": metadata '", key, "' must be positive, got ", v));
  }
  return v;
}

// llama.cpp's converter stores each head's q/k rows with the two RoPE halves interleaved: row
// h*hd + 2*i + j holds Hugging Face's row h*hd + j*hd/2 + i. Undone in place.
void UnpermuteRows(HostTensor& t, int64_t num_heads) {
  const int64_t rows = t.shape[0], cols = t.shape[1], hd = rows / num_heads;
  std::vector<float> out(t.data.size());
  for (int64_t h = 0; h < num_heads; ++h) {
    for (int64_t i = 0; i < hd / 2; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t src = h * hd + 2 * i + j, dst = h * hd + j * (hd / 2) + i;
        std::memcpy(&out[dst * cols], &t.data[src * cols], cols * sizeof(float));
      }
    }
  }
  t.data.swap(out);
}

}  // namespace

std::string GgufTensorName(const std::string& hf) {
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return "output.weight";
  static const std::pair<const char*, const char*> kLayer[] = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
  };
  const std::string prefix = "model.layers.";
  if (hf.rfind(prefix, 0) != 0) return "";
  const size_t dot = hf.find('.', prefix.size());
  if (dot == std::string::npos) return "";
  const std::string layer = hf.substr(prefix.size(), dot - prefix.size());
  const std::string rest = hf.substr(dot + 1);
  for (const auto& [from, to] : kLayer) {
    if (rest == from) return absl::StrCat("blk.", layer, ".", to);
  }
  return "";
}

absl::StatusOr<ModelConfig> ModelConfigFromGguf(const GgufFile& g) {
  ASSIGN_OR_RETURN(std::string arch, g.GetString("general.architecture"));
  ModelConfig cfg;
  if (arch == "llama") {
    cfg.architecture = Architecture::kLlama;
  } else if (arch == "qwen2") {
    cfg.architecture = Architecture::kQwen2;
    cfg.attention_bias = true;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        g.path(), ": metadata 'general.architecture' is '", arch, "' (supported: llama, qwen2)"));
  }
  const std::string p = arch + ".";
  ASSIGN_OR_RETURN(cfg.hidden_size, PositiveInt(g, p + "embedding_length"));
  ASSIGN_OR_RETURN(cfg.num_hidden_layers, PositiveInt(g, p + "block_count"));
  ASSIGN_OR_RETURN(cfg.intermediate_size, PositiveInt(g, p + "feed_forward_length"));
  ASSIGN_OR_RETURN(cfg.num_attention_heads, PositiveInt(g, p + "attention.head_count"));
  ASSIGN_OR_RETURN(cfg.max_position_embeddings, PositiveInt(g, p + "context_length"));
  cfg.num_key_value_heads = cfg.num_attention_heads;
  if (g.Find(p + "attention.head_count_kv") != nullptr) {
    ASSIGN_OR_RETURN(cfg.num_key_value_heads, PositiveInt(g, p + "attention.head_count_kv"));
  }
  if (cfg.num_attention_heads % cfg.num_key_value_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        g.path(), ": metadata '", p, "attention.head_count' (", cfg.num_attention_heads,
        ") is not a multiple of '", p, "attention.head_count_kv' (", cfg.num_key_value_heads, ")"));
  }
  if (g.Find(p + "attention.key_length") != nullptr) {
    ASSIGN_OR_RETURN(cfg.head_dim, PositiveInt(g, p + "attention.key_length"));
  } else {
    if (cfg.hidden_size % cfg.num_attention_heads != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          g.path(), ": '", p, "embedding_length' is not a multiple of the head count and '", p,
          "attention.key_length' is not given"));
    }
    cfg.head_dim = cfg.hidden_size / cfg.num_attention_heads;
  }
  if (cfg.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(g.path(), ": the head dimension ", cfg.head_dim, " must be even"));
  }
  if (g.Find(p + "rope.dimension_count") != nullptr) {
    ASSIGN_OR_RETURN(int64_t rot, PositiveInt(g, p + "rope.dimension_count"));
    if (rot != cfg.head_dim) {
      return absl::InvalidArgumentError(absl::StrCat(
          g.path(), ": metadata '", p, "rope.dimension_count' is ", rot,
          "; partial rotary embeddings are not supported (head dimension ", cfg.head_dim, ")"));
    }
  }
  if (g.Find(p + "rope.freq_base") != nullptr) {
    ASSIGN_OR_RETURN(cfg.rope.theta, g.GetFloat(p + "rope.freq_base"));
  }
  if (g.Find(p + "attention.layer_norm_rms_epsilon") != nullptr) {
    ASSIGN_OR_RETURN(cfg.rms_norm_eps, g.GetFloat(p + "attention.layer_norm_rms_epsilon"));
  }
  if (const GgufValue* s = g.Find(p + "rope.scaling.type"); s != nullptr) {
    ASSIGN_OR_RETURN(std::string type, g.GetString(p + "rope.scaling.type"));
    if (type == "linear") {
      cfg.rope.type = RopeType::kLinear;
      ASSIGN_OR_RETURN(cfg.rope.factor, g.GetFloat(p + "rope.scaling.factor"));
    } else if (type != "none") {
      return absl::InvalidArgumentError(absl::StrCat(g.path(), ": metadata '", p,
                                                     "rope.scaling.type' is '", type,
                                                     "' (supported: none, linear)"));
    }
  }
  if (g.FindTensor("rope_freqs.weight") != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        g.path(), ": tensor 'rope_freqs.weight' (Llama 3 rope scaling) is not supported yet"));
  }
  const GgufTensor* embd = g.FindTensor("token_embd.weight");
  if (embd == nullptr || embd->dims.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(g.path(), ": tensor 'token_embd.weight' is missing or not 2-D"));
  }
  cfg.vocab_size = embd->dims[1];
  if (g.Find(p + "vocab_size") != nullptr) {
    ASSIGN_OR_RETURN(int64_t v, PositiveInt(g, p + "vocab_size"));
    if (v != cfg.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(g.path(), ": metadata '", p, "vocab_size' (",
                                                     v, ") disagrees with 'token_embd.weight' (",
                                                     cfg.vocab_size, " rows)"));
    }
  }
  cfg.tie_word_embeddings = g.FindTensor("output.weight") == nullptr;
  cfg.layer_window.assign(cfg.num_hidden_layers, 0);
  if (g.Find("tokenizer.ggml.bos_token_id") != nullptr) {
    ASSIGN_OR_RETURN(int64_t bos, g.GetInt("tokenizer.ggml.bos_token_id"));
    cfg.bos_token_ids = {bos};
  }
  if (g.Find("tokenizer.ggml.eos_token_id") != nullptr) {
    ASSIGN_OR_RETURN(int64_t eos, g.GetInt("tokenizer.ggml.eos_token_id"));
    cfg.eos_token_ids = {eos};
  }
  return cfg;
}

absl::StatusOr<ModelWeights> ModelWeightsFromGguf(const GgufFile& g, const ModelConfig& cfg) {
  ModelWeights w;
  w.layers.resize(cfg.num_hidden_layers);
  const std::vector<WeightSlot> slots = WeightSlots(cfg, w);
  std::set<std::string> expected;
  // Check every name and shape before converting anything.
  std::vector<const GgufTensor*> found;
  for (const WeightSlot& s : slots) {
    const std::string name = GgufTensorName(s.name);
    const GgufTensor* t = g.FindTensor(name);
    if (t == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(g.path(), ": missing tensor '", name,
                                                     "' (expected shape ", Shape(s.shape), ")"));
    }
    // GGUF lists dimensions fastest first: the reverse of Hugging Face's shape.
    const std::vector<int64_t> hf_shape(t->dims.rbegin(), t->dims.rend());
    if (hf_shape != s.shape) {
      return absl::InvalidArgumentError(absl::StrCat(g.path(), ": tensor '", name,
                                                     "' has shape ", Shape(hf_shape),
                                                     ", expected ", Shape(s.shape)));
    }
    expected.insert(name);
    found.push_back(t);
  }
  for (const GgufTensor& t : g.tensors()) {
    if (expected.count(t.name) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(g.path(), ": unexpected tensor '", t.name, "'"));
    }
  }
  for (size_t i = 0; i < slots.size(); ++i) {
    HostTensor& dest = *slots[i].dest;
    dest.shape = slots[i].shape;
    dest.data.resize(found[i]->NumElements());
    RETURN_IF_ERROR(g.Dequantize(*found[i], dest.data.data()));
  }
  if (cfg.architecture == Architecture::kLlama) {
    for (LayerWeights& l : w.layers) {
      UnpermuteRows(l.q_proj, cfg.num_attention_heads);
      UnpermuteRows(l.k_proj, cfg.num_key_value_heads);
    }
  }
  return w;
}

}  // namespace longview
