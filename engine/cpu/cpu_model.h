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
#include "engine/attention/attention_mode.h"
#include "engine/model/model_config.h"
#include "engine/model/weights.h"
#include "engine/runner/input_embeddings.h"
#include "kernels/cpu/rope.h"
#include "kvcache/block_table.h"
#include "kvcache/host_kv_storage.h"

namespace longview {
struct HipSequenceMasks;  // engine/attention/hip.h
}  // namespace longview

namespace longview {

struct SequenceChunk {
  std::span<const int32_t> tokens;  // new tokens, at positions start_pos, start_pos + 1, ...
  int64_t start_pos = 0;            // tokens before it are already in the KV pages
  const BlockTable* table = nullptr;
};

// One sequence of a batched forward: its new tokens, where they start, and its pages.
struct BatchSequence {
  std::span<const int32_t> tokens;  // at positions start_pos, start_pos + 1, ...
  int64_t start_pos = 0;
  std::span<const int32_t> block_ids;  // logical block -> page id; covers every position written
  bool need_logits = false;            // logits of the last token
  bool all_logits = false;             // with need_logits: of every token, in order
  Attention attention;
  // A KV policy's selection (model_runner.h ScheduledSequence::kv_selection): every row reads
  // it at the keys' positions under the layers' own windows. Not owned.
  const KvSelection* selection = nullptr;
  // With selection: the last key_stats_rows rows add each key's attention probability, summed
  // over layers and query heads, to key_stats ([num_kv_heads][keys]; zeroed by the caller).
  int64_t key_stats_rows = 0;
  float* key_stats = nullptr;
  // Mode hip: the sequence's decode masks (engine/attention/hip.h), reused by steps of one row
  // between refreshes and cleared by a step of several; null prunes every step afresh. Not owned.
  HipSequenceMasks* hip_masks = nullptr;
  // Rows for the positions whose token is kEmbeddingToken (input_embeddings.h). Not owned.
  const EmbeddingRuns* embeddings = nullptr;
};

class CpuModel {
 public:
  // InvalidArgument if the weights do not match the config.
  static absl::StatusOr<std::unique_ptr<CpuModel>> Create(
      const ModelConfig& cfg, std::shared_ptr<const ModelWeights> weights);

  const ModelConfig& config() const { return cfg_; }
  // The float32 weights (the CUDA backend converts and uploads them).
  const ModelWeights& weights() const { return w_; }
  KvLayout kv_layout(int64_t page_size) const;

  // Runs `chunk.tokens` through the model, writing their K/V into the pages, and fills `logits`
  // with [n, vocab] (all_logits) or [vocab] for the last token: ForwardBatch of one sequence.
  // InvalidArgument for an out-of-range token id or a table too small for the positions.
  absl::Status Forward(const SequenceChunk& chunk, HostKvStorage& kv, bool all_logits,
                       std::vector<float>& logits, const Attention& attention = {});

  // Runs several sequences at once: their tokens go through the dense layers as one matrix,
  // attention runs per sequence. `logits` gets, per sequence with need_logits and in order, one
  // [vocab] row for its last token, or one per token with all_logits. Each output equals what the
  // sequence alone computes, bit for bit: every element is the same dot product in the same order
  // whatever the batch.
  // InvalidArgument as Forward, naming the sequence.
  absl::Status ForwardBatch(std::span<const BatchSequence> seqs, HostKvStorage& kv,
                            std::vector<float>& logits);

 private:
  CpuModel(const ModelConfig& cfg, std::shared_ptr<const ModelWeights> weights);
  ModelConfig cfg_;
  std::shared_ptr<const ModelWeights> weights_;
  const ModelWeights& w_;
  cpu::RopeTable rope_;
};

}  // namespace longview
