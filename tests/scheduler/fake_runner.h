// A fake model for scheduler tests. Its "KV cache" (a real HostKvStorage of one float per token)
// stores the token ids themselves in pages addressed by the plan's block ids, and its next token
// is a function of every token read back through the block table, so a wrong block id, a missing
// copy-on-write copy or a stale page changes the output. Logits are one-hot at that token.
//
// With state slots, each sequence's slot counts the tokens computed through it, and a step whose
// start position disagrees with that count fails: a state not cleared for a new or preempted
// sequence, or not copied to a forked one, is caught. The lifecycle ids of every plan are kept.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/runner/model_runner.h"
#include "gtest/gtest.h"
#include "kvcache/host_kv_storage.h"

namespace longview::test {

// The next token after `tokens` (prompt + generated so far).
inline int32_t FakeNextToken(const std::vector<int32_t>& tokens, int32_t vocab) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < tokens.size(); ++i) {
    h = (h ^ static_cast<uint64_t>(tokens[i] + 1) * (i + 7)) * 1099511628211ull;
  }
  return static_cast<int32_t>(h % static_cast<uint64_t>(vocab));
}

class FakeRunner : public ModelRunner {
 public:
  FakeRunner(int32_t num_pages, int64_t page_size, int32_t vocab, int32_t num_state_slots = 0)
      : page_size_(page_size),
        vocab_(vocab),
        kv_(KvLayout{.num_layers = 1, .num_kv_heads = 1, .head_dim = 1, .page_size = page_size},
            num_pages, num_state_slots, num_state_slots > 0 ? sizeof(int64_t) : 0) {}

  int64_t vocab_size() const override { return vocab_; }
  KvStorage& kv_storage() override { return kv_; }

  absl::Status Execute(const StepPlan& plan, StepResult& result) override {
    ++num_steps_;
    RETURN_IF_ERROR(kv_.CopyPages(plan.copies));
    RETURN_IF_ERROR(kv_.CopyStates(plan.state_copies));
    RETURN_IF_ERROR(kv_.ClearStates(plan.cleared_state_slots));
    finished_.insert(finished_.end(), plan.finished_seq_ids.begin(), plan.finished_seq_ids.end());
    reset_.insert(reset_.end(), plan.reset_seq_ids.begin(), plan.reset_seq_ids.end());
    forked_.insert(forked_.end(), plan.forked_seq_ids.begin(), plan.forked_seq_ids.end());
    result.vocab_size = vocab_;
    result.logits.clear();
    result.logits_row.assign(plan.seqs.size(), -1);
    result.logits_count.assign(plan.seqs.size(), 0);
    int32_t row = 0;
    for (size_t i = 0; i < plan.seqs.size(); ++i) {
      const ScheduledSequence& s = plan.seqs[i];
      for (size_t j = 0; j < s.token_ids.size(); ++j) {
        const int64_t pos = s.start_pos + static_cast<int64_t>(j);
        if (pos / page_size_ >= static_cast<int64_t>(s.block_ids.size())) {
          return absl::InvalidArgumentError("block table too small");
        }
        Token(s.block_ids[pos / page_size_], pos % page_size_) = static_cast<float>(s.token_ids[j]);
      }
      if (kv_.num_state_slots() > 0) {
        if (s.state_slot < 0) return absl::InvalidArgumentError("sequence without a state slot");
        int64_t& computed = *reinterpret_cast<int64_t*>(kv_.State(s.state_slot));
        if (computed != s.start_pos) {
          return absl::InternalError(
              absl::StrFormat("stale state: sequence %d starts at %d, its state has seen %d tokens",
                              s.seq_id, s.start_pos, computed));
        }
        computed += static_cast<int64_t>(s.token_ids.size());
      }
      if (!s.need_logits) continue;
      const int64_t end = s.start_pos + static_cast<int64_t>(s.token_ids.size());
      std::vector<int32_t> seen(end);
      for (int64_t p = 0; p < end; ++p) {
        seen[p] = static_cast<int32_t>(Token(s.block_ids[p / page_size_], p % page_size_));
      }
      result.logits.resize((row + 1) * vocab_, 0.0f);
      result.logits[row * vocab_ + FakeNextToken(seen, vocab_)] = 1.0f;
      result.logits_count[i] = 1;
      result.logits_row[i] = row++;
    }
    return absl::OkStatus();
  }

  int64_t num_steps() const { return num_steps_; }
  // Lifecycle ids of every plan so far.
  const std::vector<int64_t>& finished() const { return finished_; }
  const std::vector<int64_t>& reset() const { return reset_; }
  const std::vector<std::pair<int64_t, int64_t>>& forked() const { return forked_; }

 private:
  float& Token(int32_t page, int64_t slot) { return *kv_.At(page, 0, KvLayout::kKey, slot, 0); }

  int64_t page_size_;
  int32_t vocab_;
  HostKvStorage kv_;
  int64_t num_steps_ = 0;
  std::vector<int64_t> finished_, reset_;
  std::vector<std::pair<int64_t, int64_t>> forked_;
};

// A fake runner whose steps wait at a gate: the engine loop stays inside a step until Open().
class GatedRunner : public FakeRunner {
 public:
  using FakeRunner::FakeRunner;
  absl::Status Execute(const StepPlan& plan, StepResult& result) override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      entered_ = true;
      entered_cv_.notify_all();
      cv_.wait(lock, [&] { return open_; });
    }
    return FakeRunner::Execute(plan, result);
  }
  void WaitEntered() {
    std::unique_lock<std::mutex> lock(mu_);
    entered_cv_.wait(lock, [&] { return entered_; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_, entered_cv_;
  bool open_ = false, entered_ = false;
};

}  // namespace longview::test
