// A fake model for scheduler tests. Its "KV cache" stores the token ids themselves in pages
// addressed by the plan's block ids, and its next token is a function of every token read back
// through the block table, so a wrong block id, a missing copy-on-write copy or a stale page
// changes the output. Logits are one-hot at that token.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/runner/model_runner.h"
#include "gtest/gtest.h"

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
  FakeRunner(int32_t num_pages, int64_t page_size, int32_t vocab)
      : page_size_(page_size), vocab_(vocab), pages_(num_pages * page_size, -1) {}

  int64_t vocab_size() const override { return vocab_; }

  absl::Status Execute(const StepPlan& plan, StepResult& result) override {
    ++num_steps_;
    for (const PageCopy& c : plan.copies) {
      std::copy_n(&pages_[c.src_page * page_size_], page_size_, &pages_[c.dst_page * page_size_]);
    }
    result.vocab_size = vocab_;
    result.logits.clear();
    result.logits_row.assign(plan.seqs.size(), -1);
    int32_t row = 0;
    for (size_t i = 0; i < plan.seqs.size(); ++i) {
      const ScheduledSequence& s = plan.seqs[i];
      for (size_t j = 0; j < s.token_ids.size(); ++j) {
        const int64_t pos = s.start_pos + static_cast<int64_t>(j);
        if (pos / page_size_ >= static_cast<int64_t>(s.block_ids.size())) {
          return absl::InvalidArgumentError("block table too small");
        }
        pages_[s.block_ids[pos / page_size_] * page_size_ + pos % page_size_] = s.token_ids[j];
      }
      if (!s.need_logits) continue;
      const int64_t end = s.start_pos + static_cast<int64_t>(s.token_ids.size());
      std::vector<int32_t> seen(end);
      for (int64_t p = 0; p < end; ++p) {
        seen[p] = pages_[s.block_ids[p / page_size_] * page_size_ + p % page_size_];
      }
      result.logits.resize((row + 1) * vocab_, 0.0f);
      result.logits[row * vocab_ + FakeNextToken(seen, vocab_)] = 1.0f;
      result.logits_row[i] = row++;
    }
    return absl::OkStatus();
  }

  int64_t num_steps() const { return num_steps_; }

 private:
  int64_t page_size_;
  int32_t vocab_;
  std::vector<int32_t> pages_;
  int64_t num_steps_ = 0;
};

}  // namespace longview::test
