// What one engine step computes, and who computes it. The scheduler fills a StepPlan with block
// ids only (never tensors); a ModelRunner does the page copies, then the forward, and returns one
// logit row per sequence that asked for one.
//
//   StepPlan plan = ...;                    // from Scheduler::Apply
//   StepResult result;
//   RETURN_IF_ERROR(runner.Execute(plan, result));
//   std::span<const float> row = result.Row(i);   // plan.seqs[i].need_logits
// Thread-safety: a runner is driven by one thread (the engine loop).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "common/status.h"
#include "engine/attention/attention_mode.h"
#include "engine/runner/input_embeddings.h"
#include "kvcache/kv_cache_manager.h"
#include "kvcache/kv_storage.h"

namespace longview {

// Sampling the runner may do on its device instead of returning logits (the CUDA backend):
// temperature (0 = greedy), top-k, top-p, and a counter-based RNG keyed by (seed, counter).
struct DeviceSampling {
  float temperature = 1.f;
  int32_t top_k = 0;  // <= 0: off
  float top_p = 1.f;
  uint64_t seed = 0;
  uint64_t counter = 0;  // e.g. tokens generated so far: each step draws afresh
};

// One sequence's share of a step.
struct ScheduledSequence {
  int64_t seq_id = 0;
  std::vector<int32_t> token_ids;  // tokens computed this step
  int64_t start_pos = 0;           // position of token_ids[0]
  std::vector<int32_t> block_ids;  // the sequence's whole block table (pages)
  bool need_logits = false;        // logits of the last token (a token gets sampled)
  // With need_logits: logits of every token of this step, in order (a prompt being scored); such
  // a row is never sampled on the device.
  bool all_logits = false;
  Attention attention;             // the request's attention mode
  // The sequence's input embeddings, when any of this step's positions holds kEmbeddingToken:
  // those rows are taken from here (FindEmbeddingRow by position) instead of the token table.
  std::shared_ptr<const EmbeddingRuns> embeddings;
  int32_t state_slot = -1;         // the sequence's mode-state slot in the KvStorage, or -1
  // Set when this row's token may be sampled on the device (no penalties, no top logprobs).
  std::optional<DeviceSampling> device_sampling;
  // A KV policy's selection (kvcache/kv_policy.h): when set, every row of this sequence reads
  // these keys at their positions (the kept tokens and this step's), masked causally by position
  // and by the model's own layer windows, instead of its block table by token index. The block
  // table then has -1 for blocks the policy released.
  std::shared_ptr<const KvSelection> kv_selection;
  // With kv_selection: the last this-many rows report per-key attention (StepResult::key_stats).
  int64_t key_stats_rows = 0;
};

// A step: what to copy, what to compute, and what happened to sequences since the last step, so
// that no backend keeps state of a sequence that finished, restarted or was forked.
// Order of work: page copies, slot copies, state copies, clearing new state slots, then the
// forward.
struct StepPlan {
  std::vector<PageCopy> copies;              // copy-on-write, done before the forward, in order
  std::vector<StateCopy> state_copies;       // a forked sequence's first step: its parent's state
  std::vector<SlotCopy> slot_copies;         // KV policies' compactions, after the page copies
  std::vector<int32_t> cleared_state_slots;  // slots a sequence takes afresh: zero them
  std::vector<ScheduledSequence> seqs;
  // Since the previous step: sequences that finished (or were cancelled), sequences preempted
  // and to be recomputed from their first token (their state is gone), and forks (parent,
  // child; the child shares the parent's blocks and gets a copy of its state).
  std::vector<int64_t> finished_seq_ids;
  std::vector<int64_t> reset_seq_ids;
  std::vector<std::pair<int64_t, int64_t>> forked_seq_ids;
  int64_t NumTokens() const;
  bool empty() const { return seqs.empty(); }
};

struct StepResult {
  int64_t vocab_size = 0;
  std::vector<float> logits;        // [rows, vocab]
  std::vector<int32_t> logits_row;  // per plan sequence: its first row, or -1
  // Per plan sequence: its rows (one per token with all_logits, else 1; 0 without logits).
  std::vector<int32_t> logits_count;
  // Filled instead of `logits` when the runner sampled on its device (every sequence that needed
  // logits had device_sampling): per plan sequence its token (or -1) and the token's logprob
  // (log-softmax of the raw logits).
  std::vector<int32_t> tokens;
  std::vector<float> token_logprobs;
  // Per plan sequence with key_stats_rows > 0 (else empty): [num_kv_heads][keys of its
  // kv_selection, in order], each the attention probability of that key summed over the layers,
  // the KV head's query heads and the asked rows.
  std::vector<std::vector<float>> key_stats;
  int64_t key_stats_heads = 0;     // KV heads in key_stats
  double key_stats_row_norm = 0;   // per row: layers x query heads per KV head
  bool sampled() const { return !tokens.empty(); }
  // The logits of the sequence's last token.
  std::span<const float> Row(size_t seq_index) const {
    const int64_t row = logits_row[seq_index] + logits_count[seq_index] - 1;
    return {logits.data() + row * vocab_size, static_cast<size_t>(vocab_size)};
  }
  // All of the sequence's rows, [logits_count, vocab].
  std::span<const float> Rows(size_t seq_index) const {
    return {logits.data() + logits_row[seq_index] * vocab_size,
            static_cast<size_t>(logits_count[seq_index] * vocab_size)};
  }
};

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;
  // The runner's KV pages and state slots (the device tier of the cache).
  virtual KvStorage& kv_storage() = 0;
  virtual int64_t vocab_size() const = 0;
  // Whether Execute honours ScheduledSequence::device_sampling.
  virtual bool samples_on_device() const { return false; }
  // Whether Execute honours ScheduledSequence::kv_selection and key_stats_rows (KV policies).
  virtual bool supports_kv_policies() const { return false; }
  // True when the backend runs attention mode hip (its pruning per query block).
  virtual bool supports_hip() const { return false; }
  // Copies pages, runs the forward. InvalidArgument for a malformed plan.
  virtual absl::Status Execute(const StepPlan& plan, StepResult& result) = 0;
};

}  // namespace longview
