#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>

#include "absl/strings/str_format.h"
#include "engine/cuda/internal/device_weights.h"
#include "kernels/cuda/status.h"

namespace longview::cuda_internal {

uint16_t DTypeBits(float f, cuda::DType t) {
  if (t == cuda::DType::kBF16) {
    const __nv_bfloat16_raw r = __float2bfloat16_rn(f);
    return r.x;
  }
  const __half_raw r = __float2half_rn(f);
  return r.x;
}

namespace {

struct Sizes {
  int64_t hidden, q_dim, kv_dim, inter, vocab;
};

Sizes SizesOf(const ModelConfig& c) {
  return {c.hidden_size, c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim,
          c.intermediate_size, c.vocab_size};
}

absl::StatusOr<void*> Alloc(DeviceWeights& w, int64_t elements) {
  void* p = nullptr;
  RETURN_IF_ERROR(cuda::CudaStatus(cudaMalloc(&p, elements * 2), "weights"));
  w.allocations.push_back(p);
  w.bytes += elements * 2;
  return p;
}

// Uploads the concatenation of `parts` (each must hold its expected element count).
absl::StatusOr<void*> Upload(DeviceWeights& w, std::initializer_list<const HostTensor*> parts,
                             std::initializer_list<int64_t> expected, cuda::DType t,
                             const char* what) {
  int64_t total = 0;
  for (int64_t e : expected) total += e;
  std::vector<uint16_t> bits;
  bits.reserve(total);
  auto e = expected.begin();
  for (const HostTensor* p : parts) {
    if (static_cast<int64_t>(p->data.size()) != *e) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: %d elements, expected %d", what, p->data.size(), *e));
    }
    for (float f : p->data) bits.push_back(DTypeBits(f, t));
    ++e;
  }
  ASSIGN_OR_RETURN(void* d, Alloc(w, total));
  RETURN_IF_ERROR(cuda::CudaStatus(
      cudaMemcpy(d, bits.data(), total * 2, cudaMemcpyHostToDevice), "weights upload"));
  return d;
}

}  // namespace

void DeviceWeights::Free() {
  for (void* p : allocations) (void)cudaFree(p);
  allocations.clear();
  layers.clear();
  bytes = 0;
}

absl::StatusOr<DeviceWeights> UploadWeights(const ModelConfig& cfg, const ModelWeights& mw,
                                            cuda::DType t) {
  const Sizes s = SizesOf(cfg);
  DeviceWeights w;
  auto fail = [&w](absl::Status st) {
    w.Free();
    return st;
  };
  auto up = [&](std::initializer_list<const HostTensor*> parts,
                std::initializer_list<int64_t> expected, const char* what) {
    return Upload(w, parts, expected, t, what);
  };
  absl::StatusOr<void*> p = up({&mw.embed_tokens}, {s.vocab * s.hidden}, "embed_tokens");
  if (!p.ok()) return fail(p.status());
  w.embed = *p;
  if (mw.lm_head.data.empty()) {
    w.lm_head = w.embed;
  } else {
    p = up({&mw.lm_head}, {s.vocab * s.hidden}, "lm_head");
    if (!p.ok()) return fail(p.status());
    w.lm_head = *p;
  }
  p = up({&mw.norm}, {s.hidden}, "norm");
  if (!p.ok()) return fail(p.status());
  w.final_norm = *p;
  for (const LayerWeights& lw : mw.layers) {
    DeviceLayer d;
    const std::pair<void**, absl::StatusOr<void*>> uploads[] = {
        {&d.input_norm, up({&lw.input_layernorm}, {s.hidden}, "input_layernorm")},
        {&d.qkv, up({&lw.q_proj, &lw.k_proj, &lw.v_proj},
                    {s.q_dim * s.hidden, s.kv_dim * s.hidden, s.kv_dim * s.hidden}, "qkv")},
        {&d.o, up({&lw.o_proj}, {s.hidden * s.q_dim}, "o_proj")},
        {&d.post_norm, up({&lw.post_attention_layernorm}, {s.hidden}, "post_attention_layernorm")},
        {&d.gate_up, up({&lw.gate_proj, &lw.up_proj}, {s.inter * s.hidden, s.inter * s.hidden},
                        "gate_up")},
        {&d.down, up({&lw.down_proj}, {s.hidden * s.inter}, "down_proj")},
    };
    for (const auto& [dst, r] : uploads) {
      if (!r.ok()) return fail(r.status());
      *dst = *r;
    }
    if (cfg.attention_bias) {
      p = up({&lw.q_bias, &lw.k_bias, &lw.v_bias}, {s.q_dim, s.kv_dim, s.kv_dim}, "qkv bias");
      if (!p.ok()) return fail(p.status());
      d.qkv_bias = *p;
    }
    w.layers.push_back(d);
  }
  return w;
}

absl::StatusOr<DeviceWeights> RandomWeights(const ModelConfig& cfg, cuda::DType t,
                                            uint64_t seed) {
  const Sizes s = SizesOf(cfg);
  DeviceWeights w;
  uint64_t stream = seed * 0x100000001B3ull;
  auto make = [&](int64_t n, float scale, bool constant) -> absl::StatusOr<void*> {
    ASSIGN_OR_RETURN(void* p, Alloc(w, n));
    RETURN_IF_ERROR(cuda::CudaStatus(FillDevice(p, n, t, scale, ++stream, constant), "fill"));
    return p;
  };
  auto fail = [&w](absl::Status st) {
    w.Free();
    return st;
  };
  const float inv_h = 1.f / std::sqrt(static_cast<float>(s.hidden));
  absl::StatusOr<void*> p = make(s.vocab * s.hidden, 1.f, false);
  if (!p.ok()) return fail(p.status());
  w.embed = *p;
  if (cfg.tie_word_embeddings) {
    w.lm_head = w.embed;
  } else {
    p = make(s.vocab * s.hidden, inv_h, false);
    if (!p.ok()) return fail(p.status());
    w.lm_head = *p;
  }
  p = make(s.hidden, 1.f, true);
  if (!p.ok()) return fail(p.status());
  w.final_norm = *p;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    DeviceLayer d;
    const std::tuple<void**, int64_t, float, bool> specs[] = {
        {&d.input_norm, s.hidden, 1.f, true},
        {&d.qkv, (s.q_dim + 2 * s.kv_dim) * s.hidden, inv_h, false},
        {&d.o, s.hidden * s.q_dim, 1.f / std::sqrt(static_cast<float>(s.q_dim)), false},
        {&d.post_norm, s.hidden, 1.f, true},
        {&d.gate_up, 2 * s.inter * s.hidden, inv_h, false},
        {&d.down, s.hidden * s.inter, 1.f / std::sqrt(static_cast<float>(s.inter)), false},
    };
    for (const auto& [dst, n, scale, constant] : specs) {
      p = make(n, scale, constant);
      if (!p.ok()) return fail(p.status());
      *dst = *p;
    }
    if (cfg.attention_bias) {
      p = make(s.q_dim + 2 * s.kv_dim, 0.f, true);
      if (!p.ok()) return fail(p.status());
      d.qkv_bias = *p;
    }
    w.layers.push_back(d);
  }
  if (absl::Status st = cuda::CudaStatus(cudaDeviceSynchronize(), "random weights"); !st.ok()) {
    return fail(st);
  }
  return w;
}

}  // namespace longview::cuda_internal
