#include "scheduler/scheduler.h"

#include <algorithm>
#include <unordered_set>

#include "absl/strings/str_format.h"
#include "kvcache/block_table.h"

namespace longview {

Scheduler::Scheduler(const SchedulerOptions& options, KvCacheManager* kv)
    : options_(options), kv_(kv) {}

int64_t Scheduler::AddSequence(NewSequence seq) {
  auto s = std::make_unique<Sequence>();
  s->seq_id = next_seq_id_++;
  s->num_prompt_tokens = static_cast<int64_t>(seq.prompt.size());
  s->tokens = std::move(seq.prompt);
  s->num_pending_forks = seq.num_forks;
  s->prompt_logits = seq.prompt_logits;
  s->attention = seq.attention;
  s->kv_policy = seq.kv_policy;
  // Pages computed under another attention mode hold other K/V: keep their prefix caches apart.
  s->cache_salt = seq.attention->PrefixCacheSalt();
  if (seq.embeddings != nullptr && !seq.embeddings->empty()) {
    s->token_keys = EmbeddingTokenKeys(*seq.embeddings, s->num_prompt_tokens);
    s->embeddings = std::move(seq.embeddings);
  }
  waiting_.push_back(s.get());
  const int64_t id = s->seq_id;
  seqs_.emplace(id, std::move(s));
  return id;
}

KvSequence Scheduler::View(const Sequence& s) const {
  const int64_t window = s.attention->ReleasableWindow(options_.model_window);
  return KvSequence{.seq_id = s.seq_id,
                    .tokens = s.tokens,
                    .num_computed_tokens = s.num_computed_tokens,
                    .cache_salt = s.cache_salt,
                    .token_keys = s.token_keys,
                    .cacheable = !s.kv_policy.enabled(),
                    .window = window,
                    .window_sinks = window > 0 ? s.attention->Footprint().sinks : 0};
}

int64_t Scheduler::ChunkLimit(int64_t budget) const {
  const int64_t t = options_.long_prefill_token_threshold;
  return t > 0 ? std::min(budget, t) : budget;
}

SchedulePlan Scheduler::Schedule() const {
  SchedulePlan plan;
  int64_t budget = options_.max_num_batched_tokens;
  // Free blocks as the plan goes. Counting is conservative (shared blocks count as kept, cached
  // free blocks as revived per hit), so Apply never needs more than the plan counted.
  int64_t free = kv_->NumFreeBlocks();
  // State slots: a sequence holds one from its first step until it finishes or is preempted.
  int64_t free_slots = kv_->has_state() ? kv_->NumFreeStateSlots() : INT64_MAX;
  const int64_t num_running = static_cast<int64_t>(running_.size());
  int64_t end = num_running;  // running_[end, num_running) are preempted by this plan
  std::vector<int64_t> entry_of(num_running, -1);
  std::vector<int32_t> needs;
  std::vector<char> dead;

  // Running sequences: decodes first (pass 0), then prefill chunks (pass 1), in admission order.
  for (int pass = 0; pass < 2; ++pass) {
    for (int64_t i = 0; i < end && budget > 0; ++i) {
      Sequence* s = running_[i];
      const int64_t remaining = s->num_tokens() - s->num_computed_tokens;
      if (remaining <= 0 || (remaining == 1) != (pass == 0)) continue;
      const int64_t k = std::min(remaining, pass == 0 ? budget : ChunkLimit(budget));
      const KvSequence view = View(*s);
      while (true) {
        const int32_t need = kv_->NumBlocksToAllocate(view, k, nullptr);
        if (need <= free) {
          free -= need;
          budget -= k;
          entry_of[i] = static_cast<int64_t>(plan.entries.size());
          plan.entries.push_back({.seq = s, .num_new_tokens = k});
          needs.push_back(need);
          dead.push_back(0);
          break;
        }
        // Out of blocks: preempt the most recently admitted running sequence (maybe this one).
        const int64_t v = end - 1;
        if (entry_of[v] >= 0) {
          dead[entry_of[v]] = 1;
          budget += plan.entries[entry_of[v]].num_new_tokens;
          free += needs[entry_of[v]];
        }
        free += kv_->NumBlocksFreedBy(running_[v]->seq_id);
        if (kv_->StateSlot(running_[v]->seq_id) >= 0) ++free_slots;
        plan.preempted.push_back(running_[v]);
        --end;
        if (v == i) break;
      }
    }
  }

  // Waiting sequences, FCFS; none in a step that preempts (the blocks went to running ones).
  if (plan.preempted.empty()) {
    int64_t num_seqs = 0;
    for (const Sequence* s : running_) num_seqs += s->weight();
    for (Sequence* s : waiting_) {
      if (budget <= 0 || num_seqs + s->weight() > options_.max_num_seqs) break;
      const KvSequence view = View(*s);
      ComputedBlocks hit = s->prompt_logits ? ComputedBlocks{} : kv_->GetComputedBlocks(view);
      const int64_t k = std::min(s->num_tokens() - hit.num_tokens, ChunkLimit(budget));
      const int32_t need = kv_->NumBlocksToAllocate(view, k, &hit);
      if (need > free || free_slots < 1) break;
      free -= need;
      --free_slots;
      budget -= k;
      num_seqs += s->weight();
      plan.entries.push_back(
          {.seq = s, .num_new_tokens = k, .admit = true, .computed = std::move(hit)});
      dead.push_back(0);
    }
  }

  // Drop entries of sequences preempted after they were planned.
  size_t out = 0;
  for (size_t i = 0; i < plan.entries.size(); ++i) {
    if (dead[i]) continue;
    if (out != i) plan.entries[out] = std::move(plan.entries[i]);
    plan.num_tokens += plan.entries[out].num_new_tokens;
    ++out;
  }
  plan.entries.resize(out);
  return plan;
}

absl::StatusOr<StepPlan> Scheduler::Apply(const SchedulePlan& plan) {
  StepPlan step;
  // What happened since the last step, for the runner (it may hold state of these sequences).
  step.finished_seq_ids.swap(finished_since_step_);
  step.forked_seq_ids.swap(forked_since_step_);
  for (Sequence* s : plan.preempted) {
    RETURN_IF_ERROR(kv_->Free(s->seq_id));
    step.reset_seq_ids.push_back(s->seq_id);
    s->num_computed_tokens = 0;
    s->kv_state.reset();
    s->kv_blocks_to_release.clear();
    s->status = SequenceStatus::kWaiting;
    ++s->num_preemptions;
    ++num_preemptions_;
    running_.erase(std::find(running_.begin(), running_.end(), s));
  }
  // The oldest preempted sequence ends up first in line.
  for (Sequence* s : plan.preempted) waiting_.push_front(s);

  // Admissions take their prefix hits before anything is allocated, so that no allocation
  // evicts a cached block a hit counts on.
  for (const SchedulePlan::Entry& e : plan.entries) {
    if (!e.admit) continue;
    if (waiting_.empty() || waiting_.front() != e.seq) {
      return absl::InternalError("Scheduler::Apply: plan admits out of queue order");
    }
    waiting_.pop_front();
    ASSIGN_OR_RETURN(std::optional<SlotAllocation> hit,
                     kv_->AllocateSlots(View(*e.seq), 0, &e.computed));
    if (!hit) return absl::InternalError("Scheduler::Apply: prefix hit refused");
    AddStateWork(*hit, step);
    promotions_.insert(promotions_.end(), hit->promotions.begin(), hit->promotions.end());
    e.seq->num_computed_tokens = e.computed.num_tokens;
    if (e.seq->num_cached_tokens < 0) e.seq->num_cached_tokens = e.computed.num_tokens;
  }

  step.seqs.reserve(plan.entries.size());
  for (const SchedulePlan::Entry& e : plan.entries) {
    Sequence* s = e.seq;
    const int64_t window = s->attention->ReleasableWindow(options_.model_window);
    if (window > 0) {
      // Pages no query of this sequence reads again go back (DESIGN §4 sliding_window). The plan
      // did not count them: it stays conservative.
      const BlockRange out = BlocksOutsideWindow(kv_->page_size(), s->attention->Footprint().sinks, window,
                                                 s->num_computed_tokens);
      kv_->ReleaseBlocks(s->seq_id, out.begin, out.end);
    }
    if (s->kv_policy.enabled()) ApplyKvPolicy(*s, step);
    ASSIGN_OR_RETURN(std::optional<SlotAllocation> alloc,
                     kv_->AllocateSlots(View(*s), e.num_new_tokens, nullptr));
    if (!alloc) {
      return absl::InternalError(absl::StrFormat(
          "Scheduler::Apply: out of blocks for sequence %d though the plan counted them",
          s->seq_id));
    }
    step.copies.insert(step.copies.end(), alloc->copies.begin(), alloc->copies.end());
    AddStateWork(*alloc, step);
    ScheduledSequence out;
    out.seq_id = s->seq_id;
    out.start_pos = s->num_computed_tokens;
    out.token_ids.assign(s->tokens.begin() + s->num_computed_tokens,
                         s->tokens.begin() + s->num_computed_tokens + e.num_new_tokens);
    out.block_ids = kv_->BlockIds(s->seq_id);
    out.state_slot = kv_->StateSlot(s->seq_id);
    s->num_computed_tokens += e.num_new_tokens;
    // A prompt being scored wants every prompt token's logits; otherwise only the last token's,
    // once every known token is computed (a token gets sampled).
    out.all_logits = s->prompt_logits && out.start_pos < s->num_prompt_tokens;
    out.need_logits = out.all_logits || s->num_computed_tokens == s->num_tokens();
    out.attention = s->attention;
    if (s->embeddings != nullptr && out.start_pos < s->num_prompt_tokens) {
      out.embeddings = s->embeddings;
    }
    if (s->kv_state != nullptr) {
      out.kv_selection = std::make_shared<const KvSelection>(
          s->kv_state->Selection(out.block_ids, kv_->page_size(), s->num_computed_tokens));
      out.key_stats_rows =
          s->kv_state->StatsRows(out.start_pos, s->num_computed_tokens, s->num_prompt_tokens);
    }
    step.seqs.push_back(std::move(out));
    if (e.admit) {
      s->status = SequenceStatus::kRunning;
      s->admitted_at = next_admission_++;
      running_.push_back(s);
    }
  }
  return step;
}

void Scheduler::AppendToken(int64_t seq_id, int32_t token) {
  auto it = seqs_.find(seq_id);
  if (it != seqs_.end()) it->second->tokens.push_back(token);
}

void Scheduler::ApplyKvPolicy(Sequence& s, StepPlan& step) {
  if (s.kv_state == nullptr) s.kv_state = std::make_shared<KvPolicyState>(s.kv_policy);
  ReleaseCompacted(s);  // a step that did not run to StepDone
  if (s.num_computed_tokens == 0) return;
  const int64_t ps = kv_->page_size();
  const KvCompaction c = s.kv_state->Evict(s.num_computed_tokens, s.num_prompt_tokens, ps);
  if (c.empty()) return;
  const std::vector<int32_t> pages = kv_->BlockIds(s.seq_id);
  for (auto [src, dst] : c.moves) {
    step.slot_copies.push_back({.src_page = pages[src / ps],
                                .src_slot = static_cast<int32_t>(src % ps),
                                .dst_page = pages[dst / ps],
                                .dst_slot = static_cast<int32_t>(dst % ps)});
  }
  policy_counts_[static_cast<size_t>(s.kv_policy.kind)].tokens_evicted += c.evicted;
  s.kv_blocks_to_release = c.free_blocks;
}

void Scheduler::ReleaseCompacted(Sequence& s) {
  PolicyCounts& counts = policy_counts_[static_cast<size_t>(s.kv_policy.kind)];
  for (int64_t b : std::exchange(s.kv_blocks_to_release, {})) {
    counts.blocks_freed += kv_->ReleaseBlocks(s.seq_id, b, b + 1);
  }
}

void Scheduler::StepDone(const StepPlan& step, const StepResult& result) {
  for (size_t i = 0; i < step.seqs.size(); ++i) {
    const ScheduledSequence& ss = step.seqs[i];
    if (ss.kv_selection == nullptr) continue;
    auto it = seqs_.find(ss.seq_id);
    if (it == seqs_.end() || it->second->kv_state == nullptr) continue;
    Sequence& s = *it->second;
    ReleaseCompacted(s);
    if (i < result.key_stats.size() && !result.key_stats[i].empty() && ss.key_stats_rows > 0) {
      s.kv_state->Observe(result.key_stats[i], result.key_stats_heads, result.key_stats_row_norm,
                          ss.key_stats_rows);
    }
  }
}

void Scheduler::AddStateWork(const SlotAllocation& a, StepPlan& step) {
  step.state_copies.insert(step.state_copies.end(), a.state_copies.begin(), a.state_copies.end());
  if (a.new_state_slot >= 0) step.cleared_state_slots.push_back(a.new_state_slot);
}

absl::StatusOr<int64_t> Scheduler::Fork(int64_t seq_id) {
  auto it = seqs_.find(seq_id);
  if (it == seqs_.end() || it->second->num_pending_forks < 1) {
    return absl::FailedPreconditionError(
        absl::StrFormat("Scheduler::Fork: sequence %d has no fork pending", seq_id));
  }
  Sequence& parent = *it->second;
  if (parent.kv_policy.enabled()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "Scheduler::Fork: sequence %d runs a KV policy, which compacts its pages in place",
        seq_id));
  }
  auto child = std::make_unique<Sequence>(parent);
  child->seq_id = next_seq_id_;
  child->num_pending_forks = 0;
  child->num_preemptions = 0;
  RETURN_IF_ERROR(kv_->Fork(parent.seq_id, child->seq_id));
  ++next_seq_id_;
  --parent.num_pending_forks;
  forked_since_step_.emplace_back(parent.seq_id, child->seq_id);
  if (child->status == SequenceStatus::kRunning) {
    child->admitted_at = next_admission_++;
    running_.push_back(child.get());
  } else {
    waiting_.push_back(child.get());
  }
  const int64_t id = child->seq_id;
  seqs_.emplace(id, std::move(child));
  return id;
}

absl::StatusOr<int64_t> Scheduler::Requeue(StepPlan& step, std::span<const int32_t> bad_pages) {
  if (bad_pages.empty()) return 0;
  const std::unordered_set<int32_t> bad(bad_pages.begin(), bad_pages.end());
  for (int32_t page : bad_pages) kv_->Uncache(page);
  std::vector<Sequence*> requeued;
  std::erase_if(step.seqs, [&](const ScheduledSequence& ss) {
    const bool hit = std::any_of(ss.block_ids.begin(), ss.block_ids.end(),
                                 [&](int32_t b) { return bad.contains(b); });
    if (!hit) return false;
    auto it = std::find_if(running_.begin(), running_.end(),
                           [&](const Sequence* s) { return s->seq_id == ss.seq_id; });
    if (it != running_.end()) requeued.push_back(*it);
    return true;
  });
  for (Sequence* s : requeued) {
    RETURN_IF_ERROR(kv_->Free(s->seq_id));
    step.reset_seq_ids.push_back(s->seq_id);
    s->num_computed_tokens = 0;
    s->kv_state.reset();
    s->kv_blocks_to_release.clear();
    s->status = SequenceStatus::kWaiting;
    running_.erase(std::find(running_.begin(), running_.end(), s));
  }
  for (auto s = requeued.rbegin(); s != requeued.rend(); ++s) waiting_.push_front(*s);
  return static_cast<int64_t>(requeued.size());
}

absl::Status Scheduler::Finish(int64_t seq_id) {
  auto it = seqs_.find(seq_id);
  if (it == seqs_.end()) return absl::OkStatus();
  Sequence* s = it->second.get();
  const absl::Status freed = kv_->Free(seq_id);
  finished_since_step_.push_back(seq_id);
  if (auto r = std::find(running_.begin(), running_.end(), s); r != running_.end()) {
    running_.erase(r);
  } else if (auto w = std::find(waiting_.begin(), waiting_.end(), s); w != waiting_.end()) {
    waiting_.erase(w);
  }
  seqs_.erase(it);
  return freed;
}

const Sequence* Scheduler::Get(int64_t seq_id) const {
  auto it = seqs_.find(seq_id);
  return it == seqs_.end() ? nullptr : it->second.get();
}

}  // namespace longview
