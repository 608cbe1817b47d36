// The CUDA forward as a sequence of per-layer ops (engine/cuda internal): embedding, then per
// layer the attention block (norm, QKV projection, attention op, output projection) and the MLP
// block, then the final norm and the LM head. Each op only enqueues on the runner's stream, so a
// step of pure dense decodes stays capturable in a CUDA graph.
//
// The attention op is the seam for modes: Impl::attention_ops holds one per layer (by default the
// same PagedAttentionOp everywhere: K/V to the pages, then the decode, selection-decode and
// prefill kernels); a mode that needs its own kernel family (HiP's pruned blocks, Lizard's
// gated-linear layers) replaces the op of the layers it runs on.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "engine/cuda/internal/kernels_facade.h"
#include "engine/cuda/internal/runner_impl.h"

namespace longview::cuda_internal {

// Reads the layer's qkv rows (m.qkv) and writes its attention output rows (m.attn).
class AttentionOp {
 public:
  virtual ~AttentionOp() = default;
  virtual absl::Status Run(CudaModelRunner::Impl& m, const StepLayout& L, int64_t layer,
                           const PagesView& view) const = 0;
};

// Paged attention over the step's three row groups (step_layout.cc): K and V appended to the
// pages (decode queries rotated in the same kernel), dense decode, selection decode (modes that
// choose keys per row on the host), and prefill.
class PagedAttentionOp final : public AttentionOp {
 public:
  absl::Status Run(CudaModelRunner::Impl& m, const StepLayout& L, int64_t layer,
                   const PagesView& view) const override;
};

// The ops of one forward, in order. Each REQUIRES the step laid out and its metadata on the
// device (PrepareStep).
absl::Status EmbedTokens(CudaModelRunner::Impl& m, const StepLayout& L);
absl::Status AttentionBlock(CudaModelRunner::Impl& m, const StepLayout& L, int64_t layer);
absl::Status MlpBlock(CudaModelRunner::Impl& m, const StepLayout& L, int64_t layer);
// Final norm, the LM head on the rows that need logits, and device sampling when asked.
absl::Status LogitsHead(CudaModelRunner::Impl& m, const StepLayout& L);

}  // namespace longview::cuda_internal
