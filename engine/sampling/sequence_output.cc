#include "engine/sampling/sequence_output.h"

#include <algorithm>

namespace longview {

const char* FinishReasonName(FinishReason reason) {
  return reason == FinishReason::kLength ? "length" : "stop";
}

std::vector<int64_t> EosTokenIds(const std::vector<int64_t>& config_eos_ids,
                                 const Tokenizer& tokenizer) {
  std::vector<int64_t> ids = config_eos_ids;
  if (tokenizer.eos_id() >= 0) ids.push_back(tokenizer.eos_id());
  return ids;
}

SequenceOutput::SequenceOutput(const Tokenizer& tokenizer, std::vector<int64_t> eos_ids,
                               StopConditions conditions)
    : eos_ids_(std::move(eos_ids)),
      conditions_(std::move(conditions)),
      detok_(tokenizer, /*at_text_start=*/false),
      stops_(conditions_.stop) {}

std::string SequenceOutput::Append(int32_t token) {
  ++num_tokens_;
  if (!conditions_.ignore_eos &&
      std::find(eos_ids_.begin(), eos_ids_.end(), token) != eos_ids_.end()) {
    finished_ = true;
    reason_ = FinishReason::kEos;
  } else {
    std::string text = stops_.Push(detok_.Push(token));
    if (stops_.stopped()) {
      finished_ = true;
      reason_ = FinishReason::kStop;
      return text;
    }
    if (num_tokens_ >= conditions_.max_tokens) {
      finished_ = true;
      reason_ = FinishReason::kLength;
    }
    if (!finished_) return text;
    return text + stops_.Push(detok_.Flush()) + stops_.Flush();
  }
  // EOS: whatever the detokenizer or the stop matcher still held back.
  return stops_.Push(detok_.Flush()) + stops_.Flush();
}

}  // namespace longview
