// Continuous batching with a token budget (vLLM v1 style). Sequences carry `num_computed_tokens`
// and their known tokens; every step gives each scheduled sequence some tokens: running decodes
// first, then prefill chunks of running sequences, then of waiting ones (FCFS), within
// `max_num_batched_tokens` and `max_num_seqs`. Prefix-cache hits skip computing their tokens.
// When the cache is out of blocks, the most recently admitted running sequence is preempted
// (recompute: its blocks are freed, it goes to the front of the waiting queue keeping its
// generated tokens, and resumes where it stopped).
//
// Plan, then apply: Schedule() is const; Apply() is the one call that commits a plan to the
// cache and the queues, and returns the StepPlan for the runner (block ids only).
//
//   Scheduler sched(SchedulerOptions{}, &kv);
//   int64_t id = sched.AddSequence({.prompt = tokens});
//   SchedulePlan plan = sched.Schedule();
//   ASSIGN_OR_RETURN(StepPlan step, sched.Apply(plan));
//   ... run step, sample ... sched.AppendToken(id, tok);   or sched.Finish(id);
// Thread-safety: not thread-safe; owned by the engine loop.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "engine/runner/model_runner.h"
#include "kvcache/kv_cache_manager.h"
#include "kvcache/kv_policy.h"

namespace longview {

struct SchedulerOptions {
  int64_t max_num_batched_tokens = 2048;  // tokens per step
  int64_t max_num_seqs = 256;             // running sequences at most
  // Most prefill tokens one sequence gets per step, so that a long prompt leaves room for
  // others; 0 = up to the whole budget.
  int64_t long_prefill_token_threshold = 0;
  // > 0 when every layer of the model uses a sliding window (the widest): sequences without a
  // window of their own free the pages that leave it (engine/cpu_model.h ReleasableWindow).
  int64_t model_window = 0;
};

enum class SequenceStatus { kWaiting, kRunning };

struct Sequence {
  int64_t seq_id = 0;
  std::vector<int32_t> tokens;  // prompt + generated
  int64_t num_prompt_tokens = 0;
  int64_t num_computed_tokens = 0;
  int64_t num_cached_tokens = -1;  // prefix-cache hit at first admission; -1 until admitted
  int32_t num_pending_forks = 0;   // siblings to fork once the prompt's logits exist (n - 1)
  bool prompt_logits = false;      // NewSequence::prompt_logits
  Attention attention;
  // The KV budget policy and its state (made at admission, dropped when the sequence's blocks
  // are freed: a preempted sequence starts its policy afresh).
  KvPolicySpec kv_policy;
  std::shared_ptr<KvPolicyState> kv_state;
  // Logical blocks the last compaction emptied: released once the step that moves their tokens
  // out has run (StepDone, or the next Apply), since a page released in Apply could be reused
  // by the same step (a promotion, a copy) before the slot copies read it.
  std::vector<int64_t> kv_blocks_to_release;
  uint64_t cache_salt = 0;
  // Input embeddings at some prompt positions (engine/runner/input_embeddings.h), and per prompt
  // position the key each adds to its block's prefix-cache hash (empty without embeddings).
  std::shared_ptr<const EmbeddingRuns> embeddings;
  std::vector<uint64_t> token_keys;
  SequenceStatus status = SequenceStatus::kWaiting;
  int64_t admitted_at = 0;  // admission stamp: larger = more recently admitted
  int32_t num_preemptions = 0;

  int64_t num_tokens() const { return static_cast<int64_t>(tokens.size()); }
  // Sequences this one stands for in max_num_seqs (itself and its pending forks).
  int64_t weight() const { return 1 + num_pending_forks; }
};

struct NewSequence {
  std::vector<int32_t> prompt;
  Attention attention;
  // A policy sequence takes no prefix hits and registers no blocks (its pages are compacted in
  // place), and cannot be forked.
  KvPolicySpec kv_policy;
  int32_t num_forks = 0;  // n - 1
  // Score the prompt: every prompt chunk asks for the logits of all its tokens, and no prefix
  // cache hit skips any of them.
  bool prompt_logits = false;
  // Rows in place of the token embeddings where the prompt holds kEmbeddingToken; or null.
  std::shared_ptr<const EmbeddingRuns> embeddings;
};

// A planned step: who gets how many tokens, who is admitted, who is preempted.
struct SchedulePlan {
  struct Entry {
    Sequence* seq = nullptr;
    int64_t num_new_tokens = 0;
    bool admit = false;  // from the waiting queue (front), with this prefix hit
    ComputedBlocks computed;
  };
  std::vector<Entry> entries;
  std::vector<Sequence*> preempted;  // in preemption order
  int64_t num_tokens = 0;
  bool empty() const { return entries.empty() && preempted.empty(); }
};

class Scheduler {
 public:
  // `kv` must outlive the scheduler.
  Scheduler(const SchedulerOptions& options, KvCacheManager* kv);

  // Queues a sequence at the back of the waiting queue; returns its id.
  int64_t AddSequence(NewSequence seq);

  // Plans the next step. No side effects.
  SchedulePlan Schedule() const;
  // Commits `plan`: frees preempted sequences (to the front of the waiting queue), admits,
  // allocates slots, advances num_computed_tokens, and returns what the runner must compute.
  // Internal if the cache refuses what the plan counted on (a broken invariant).
  // REQUIRES: `plan` comes from the last Schedule(), with no mutation in between.
  absl::StatusOr<StepPlan> Apply(const SchedulePlan& plan);

  // Appends a sampled token to a sequence.
  void AppendToken(int64_t seq_id, int32_t token);
  // After `step` ran: hands its per-key attention statistics to the sequences' KV policies (they
  // decide at the sequence's next Apply what to evict), and releases the blocks this step's
  // compactions emptied (their tokens were copied out before its forward).
  void StepDone(const StepPlan& step, const StepResult& result);
  // What KV policies did, per policy (indexed by KvPolicyKind): tokens evicted, and blocks
  // their compactions gave back to the pool.
  struct PolicyCounts {
    int64_t tokens_evicted = 0;
    int64_t blocks_freed = 0;
  };
  const std::vector<PolicyCounts>& policy_counts() const { return policy_counts_; }
  // Creates a running sibling sharing the sequence's blocks and tokens; returns its id.
  // Decrements the parent's num_pending_forks. FailedPrecondition when the sequence has no fork
  // pending; ResourceExhausted when no state slot is free (nothing changed).
  absl::StatusOr<int64_t> Fork(int64_t seq_id);
  // Removes a sequence (running or waiting) and frees its blocks; the next step plan names it
  // as finished. No-op for an unknown id. Internal when the cache found a broken reference count
  // (the sequence is removed all the same).
  absl::Status Finish(int64_t seq_id);

  const Sequence* Get(int64_t seq_id) const;
  // Staged lower-tier pages the last Apply's prefix hits took (kv_cache_manager.h): the engine
  // writes them into the runner's storage before the step's forward.
  std::vector<PagePromotion> TakePromotions() { return std::exchange(promotions_, {}); }
  // Takes the sequences of `step` that hold any of `bad_pages` (promoted pages whose deferred
  // checksum failed) out of the step before it runs: the pages leave the prefix cache, the
  // sequences free their blocks and go back to the front of the queue, to be admitted again
  // (their prefix hit then stops before the bad block) — as a preemption, but not counted as
  // one. Returns how many sequences were requeued.
  absl::StatusOr<int64_t> Requeue(StepPlan& step, std::span<const int32_t> bad_pages);
  // The cache manager's view of a sequence.
  KvSequence View(const Sequence& s) const;
  int64_t NumRunning() const { return static_cast<int64_t>(running_.size()); }
  int64_t NumWaiting() const { return static_cast<int64_t>(waiting_.size()); }
  bool HasWork() const { return !running_.empty() || !waiting_.empty(); }
  int64_t num_preemptions() const { return num_preemptions_; }
  const std::vector<Sequence*>& running() const { return running_; }
  const std::deque<Sequence*>& waiting() const { return waiting_; }
  const SchedulerOptions& options() const { return options_; }

 private:
  static void AddStateWork(const SlotAllocation& a, StepPlan& step);
  // Runs the sequence's KV policy before its next step: evictions become slot copies in `step`
  // and released blocks.
  void ApplyKvPolicy(Sequence& s, StepPlan& step);
  void ReleaseCompacted(Sequence& s);
  int64_t ChunkLimit(int64_t budget) const;

  SchedulerOptions options_;
  KvCacheManager* kv_;
  std::unordered_map<int64_t, std::unique_ptr<Sequence>> seqs_;
  std::vector<Sequence*> running_;  // in admission order
  std::deque<Sequence*> waiting_;
  std::vector<PagePromotion> promotions_;
  std::vector<PolicyCounts> policy_counts_ = std::vector<PolicyCounts>(KvPolicyNames().size());
  int64_t next_seq_id_ = 0;
  int64_t next_admission_ = 0;
  int64_t num_preemptions_ = 0;
  // Lifecycle events since the last Apply, handed to the runner with the next step.
  std::vector<int64_t> finished_since_step_;
  std::vector<std::pair<int64_t, int64_t>> forked_since_step_;
};

}  // namespace longview
