// KV budget policies (DESIGN §4, the policy table): which of a sequence's cached tokens keep their
// KV when the sequence holds more than `budget` tokens. The kvpress pattern: every policy gives
// each kept token a score, then keeps the best within the budget (plus the tokens its rule always
// keeps); the decision is taken between steps, and the survivors are compacted into the first
// pages the sequence holds, so the pages behind them go back to the pool.
//
//   ASSIGN_OR_RETURN(KvPolicySpec spec, ParseKvPolicy({.policy = "h2o", .budget = 1024},
//                                                     "longview.kv."));
//   KvPolicyState state(spec);
//   // each step computing tokens [start, end) of the sequence:
//   KvSelection sel = state.Selection(block_ids, page_size, end);   // what every row reads
//   int64_t rows = state.StatsRows(start, end, num_prompt);         // rows whose stats it wants
//   ... forward; per-key attention sums come back in the selection's key order ...
//   state.Observe(stats, num_kv_heads, per_row_norm, rows);
//   KvCompaction c = state.Evict(end, num_prompt, page_size);     // before the next forward
//   // c.moves: slot copies to do (in order); c.free_blocks: logical blocks to release
//
// Positions: a kept token keeps its own RoPE position (its token index), wherever its KV sits
// after compaction, as kvpress does; queries keep theirs. Keys are cached before RoPE, so nothing
// is rewritten but the slot a token's K and V occupy.
//
// Statistics: one keep decision covers every layer and KV head (a page holds all layers, so
// only a token dropped everywhere frees memory). H2O and LazyEviction therefore score a token by
// its attention probability averaged over the layers and query heads, SnapKV by the largest of
// the KV heads' averages (the original code scores and keeps per head); `docs/policies.md` lists
// this and every other choice with the papers' defaults.
//
// Slots: the sequence's tokens occupy "slots" of its block table (slot s: logical block
// s / page_size, offset s % page_size). Before any eviction a token's slot is its index. After
// an eviction, the blocks before the one being written that no longer hold a kept token are
// released; once the holes left in the blocks still held exceed a quarter of the budget (at
// least two pages), a compaction first moves the kept tokens, in order, to the first slots of the
// blocks the sequence holds (a move never overwrites a slot that is still to be read:
// destinations are never behind sources). Tokens computed afterwards take the slot equal to
// their index again.
// Thread-safety: plain values; a state is owned by its sequence's scheduler.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "kernels/kv_selection.h"

namespace longview {

enum class KvPolicyKind { kNone, kStreaming, kH2O, kSnapKV, kLazy };

// A validated policy with every default filled in (ParseKvPolicy).
struct KvPolicySpec {
  KvPolicyKind kind = KvPolicyKind::kNone;
  int64_t budget = 0;     // tokens kept per sequence (0: none)
  int64_t sinks = 0;      // streaming: first tokens always kept
  int64_t window = 0;     // recent tokens always kept (h2o: the recent budget; snapkv: the
                          // observation window; lazy: W, the recent tokens kept at an eviction)
  int64_t interval = 0;   // lazy: decode steps between evictions (W); snapkv: decode steps
                          // between re-selections (0: at the end of prefill only)
  int64_t kernel = 0;     // snapkv: width of the max-pooling over the votes (odd)
  double alpha = 0;       // lazy: attention at or above which a token counts as important
  bool operator==(const KvPolicySpec&) const = default;
  bool enabled() const { return kind != KvPolicyKind::kNone; }
};

// The fields as the APIs carry them (OpenAI `longview.kv`, gRPC KvPolicyConfig, --kv-* flags).
struct KvPolicyRequest {
  std::string policy;  // empty or "none": keep everything
  std::optional<int64_t> budget, sinks, window, interval, kernel;
  std::optional<double> alpha;
};

// The policies the APIs can name, in the order they are listed to users.
std::span<const std::string_view> KvPolicyNames();
std::string_view KvPolicyName(KvPolicyKind kind);

// Parses and validates: an unknown policy, a field the policy does not take, or a value against
// its rules is InvalidArgument whose message starts with the field (`prefix` + name), also
// stored in *bad_field when given.
absl::StatusOr<KvPolicySpec> ParseKvPolicy(const KvPolicyRequest& request,
                                           const std::string& prefix,
                                           std::string* bad_field = nullptr);
// The parameters as tools report them: name -> value.
std::vector<std::pair<std::string, double>> KvPolicyParams(const KvPolicySpec& spec);

// Whether the policy reads per-key attention statistics (every policy but streaming).
bool NeedsKeyStats(const KvPolicySpec& spec);

// What a compaction asks of the storage before the next forward.
struct KvCompaction {
  // (source slot, destination slot) copies of one token's K and V in every layer, in order;
  // destination < source.
  std::vector<std::pair<int64_t, int64_t>> moves;
  std::vector<int64_t> free_blocks;  // logical blocks that hold no kept token any more
  int64_t evicted = 0;               // tokens dropped
  bool empty() const { return moves.empty() && free_blocks.empty() && evicted == 0; }
};

class KvPolicyState {
 public:
  explicit KvPolicyState(const KvPolicySpec& spec) : spec_(spec) {}

  const KvPolicySpec& spec() const { return spec_; }
  int64_t num_kept() const { return static_cast<int64_t>(keys_.size()); }
  // Kept tokens (by index) in order, and the slot each occupies.
  std::vector<int64_t> KeptPositions() const;
  std::vector<int64_t> KeptSlots() const;

  // The keys a step computing tokens up to `end` (exclusive) reads: every kept token, then the
  // tokens not yet seen (which join the kept ones at their own slots), at their own positions,
  // listed by position. Every row of the step reads it; the kernels' causal mask by position
  // hides the step's later tokens from its earlier rows.
  // REQUIRES: end >= every token seen so far; block_table covers the kept slots and [.., end).
  KvSelection Selection(std::span<const int32_t> block_table, int64_t page_size, int64_t end);
  // The last rows of a step computing tokens [start, end) whose per-key statistics the policy
  // wants (0: none), for a sequence whose prompt has `num_prompt` tokens.
  int64_t StatsRows(int64_t start, int64_t end, int64_t num_prompt) const;
  // Per-key attention of the last step's last `rows` rows: `stats` is [num_kv_heads][keys] in the
  // order of the last Selection, each the sum over layers, the KV head's query heads and the
  // rows of the attention probability; `per_row_norm` is layers x query heads per KV head.
  // Call once per step that asked for statistics. Wrong sizes are ignored (no update).
  void Observe(std::span<const float> stats, int64_t num_kv_heads, double per_row_norm,
               int64_t rows);
  // After a step computed tokens up to `end`: evicts when the policy's rule says so, and returns
  // the compaction to do before the next forward (empty otherwise).
  KvCompaction Evict(int64_t end, int64_t num_prompt, int64_t page_size);

 private:
  struct Key {
    int64_t position = 0;
    int64_t slot = 0;
    double score = 0;  // h2o: accumulated attention; snapkv: the window's votes
    int64_t last = 0;  // lazy: the step it was last important (its arrival before that)
    int64_t mri = 0;   // lazy: its maximum recurrence interval
  };
  // Keeps keys_[i] for keep[i]; packs them into the first held slots below `end` when the holes
  // are too many; releases blocks left empty.
  KvCompaction Compact(const std::vector<bool>& keep, int64_t end, int64_t page_size);
  // Marks the `n` highest-scoring keys among those not yet kept (ties: the later token).
  void KeepBest(const std::vector<double>& score, int64_t n, std::vector<bool>& keep) const;

  KvPolicySpec spec_;
  std::vector<Key> keys_;         // kept tokens by position (= by slot)
  int64_t seen_ = 0;              // tokens [0, seen_) have joined keys_ (or were evicted)
  std::vector<uint8_t> released_;  // per logical block: released by a compaction
  int64_t last_eviction_ = 0;     // `end` at the last eviction
  int64_t step_ = 0;              // lazy: steps observed (its clock)
  int64_t last_eviction_step_ = 0;  // lazy: step_ at the last eviction
  bool prompt_selected_ = false;  // snapkv: the prompt's end has been passed
};

}  // namespace longview
