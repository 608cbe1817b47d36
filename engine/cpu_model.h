// The transformer forward pass on the CPU backend, float32: embedding, RMSNorm, RoPE (with
// scaling), grouped-query attention over paged KV (keys stored before RoPE), SwiGLU MLP, tied
// embeddings, Qwen2 biases, per-layer sliding windows.
//
// The KV cache lives in `kvcache/` pages: the caller owns the BlockPool / BlockTable, makes sure
// the table covers every position written, and passes the pages in.
//
//   ASSIGN_OR_RETURN(auto model, CpuModel::Create(cfg, std::move(weights)));
//   HostKvStorage kv(model->kv_layout(/*page_size=*/16), num_pages);
//   std::vector<float> logits;
//   RETURN_IF_ERROR(model->Forward({tokens, /*start_pos=*/0, &table}, kv, /*all_logits=*/false, logits));
// Thread-safety: Forward may run concurrently only on distinct sequences and pages.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/status.h"
#include "engine/model_config.h"
#include "engine/weights.h"
#include "kernels/cpu/rope.h"
#include "kvcache/block_table.h"
#include "kvcache/host_kv_storage.h"

namespace longview {

struct SequenceChunk {
  std::span<const int32_t> tokens;  // new tokens, at positions start_pos, start_pos + 1, ...
  int64_t start_pos = 0;            // tokens before it are already in the KV pages
  const BlockTable* table = nullptr;
};

struct ForwardOptions {
  // Overrides every layer's window when >= 0 (0 = full attention); -1 keeps the model's.
  int64_t window_override = -1;
  // StreamingLLM attention sinks (DESIGN §4 sliding_window): when > 0, every layer attends to the
  // first `sinks` tokens plus the last `window_override` tokens (the query included), with
  // positions re-assigned inside the cache: sinks at 0..sinks-1, the window's keys contiguous
  // from `sinks` on, the query last. Keys outside that selection are never read, so their pages
  // may be released (block table entry -1). 0 = plain windows by token position.
  // REQUIRES (checked, InvalidArgument): sinks >= 0; sinks > 0 needs 1 <= sinks <= window_override.
  int64_t sinks = 0;
};

// InvalidArgument naming the field when `options` break the rules above.
absl::Status ValidateForwardOptions(const ForwardOptions& options);

// The RoPE position of the query at token index `token`: the index itself, or under StreamingLLM
// (sinks > 0) its re-assigned position after the sinks and the rest of the window.
int64_t QueryPosition(const ForwardOptions& options, int64_t token);

// The window under which a sequence's pages that left it may be released (DESIGN §4
// sliding_window): the request's window when it overrides the model's (> 0), else the model's own
// when every layer is windowed (Mistral; the largest layer window), else 0 (some layer reads
// everything: Gemma-style interleaving, or no windows at all). Pages released under it never get
// read again: every layer's keys lie inside this window.
int64_t ReleasableWindow(const ModelConfig& cfg, const ForwardOptions& options);

// The model's RoPE (theta, scaling) as the kernels take it; every backend rotates with it.
cpu::RopeParams RopeParamsOf(const ModelConfig& cfg);

// One sequence of a batched forward: its new tokens, where they start, and its pages.
struct BatchSequence {
  std::span<const int32_t> tokens;  // at positions start_pos, start_pos + 1, ...
  int64_t start_pos = 0;
  std::span<const int32_t> block_ids;  // logical block -> page id; covers every position written
  bool need_logits = false;            // logits of the last token
  ForwardOptions options;
};

class CpuModel {
 public:
  // InvalidArgument if the weights do not match the config.
  static absl::StatusOr<std::unique_ptr<CpuModel>> Create(const ModelConfig& cfg,
                                                           ModelWeights weights);

  const ModelConfig& config() const { return cfg_; }
  // The float32 weights (the CUDA backend converts and uploads them).
  const ModelWeights& weights() const { return w_; }
  KvLayout kv_layout(int64_t page_size) const;

  // Runs `chunk.tokens` through the model, writing their K/V into the pages, and fills `logits`
  // with [n, vocab] (all_logits) or [vocab] for the last token.
  // InvalidArgument for an out-of-range token id or a table too small for the positions.
  absl::Status Forward(const SequenceChunk& chunk, HostKvStorage& kv, bool all_logits,
                       std::vector<float>& logits, const ForwardOptions& options = {});

  // Runs several sequences at once: their tokens go through the dense layers as one matrix,
  // attention runs per sequence. `logits` gets one [vocab] row per sequence with need_logits, in
  // order. Each output equals what Forward computes for that sequence alone, bit for bit: every
  // element is the same dot product in the same order whatever the batch.
  // InvalidArgument as Forward, naming the sequence.
  absl::Status ForwardBatch(std::span<const BatchSequence> seqs, HostKvStorage& kv,
                            std::vector<float>& logits);

 private:
  CpuModel(const ModelConfig& cfg, ModelWeights weights);
  ModelConfig cfg_;
  ModelWeights w_;
  cpu::RopeTable rope_;
};

}  // namespace longview
