// One generated sequence's stop conditions and text, shared by `Generate` (generator.h) and the
// engine loop (scheduler/engine_loop.h) so both stop the same way: EOS (the tokenizer's plus
// every id config.json lists, unless ignore_eos), stop strings (never emitted), max_tokens;
// text comes out in whole UTF-8 sequences.
//
//   SequenceOutput out(lm, {.stop = {"\n\n"}, .max_tokens = 64});
//   std::string text = out.Append(token);     // new text, possibly empty
//   if (out.finished()) { ... out.reason() ... }
// Thread-safety: one per sequence.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/sampling/stop_strings.h"
#include "engine/text/tokenizer.h"

namespace longview {

enum class FinishReason { kLength, kStop, kEos };
const char* FinishReasonName(FinishReason reason);  // "length" / "stop" (EOS reports "stop")

struct StopConditions {
  std::vector<std::string> stop;  // stop strings
  int64_t max_tokens = 16;
  bool ignore_eos = false;
};

// The EOS ids of a model: config.json's (Llama 3 lists several) and the tokenizer's.
std::vector<int64_t> EosTokenIds(const std::vector<int64_t>& config_eos_ids,
                                 const Tokenizer& tokenizer);

class SequenceOutput {
 public:
  SequenceOutput(const Tokenizer& tokenizer, std::vector<int64_t> eos_ids,
                 StopConditions conditions);

  // Records a generated token and returns the text it completes (held-back text included once
  // the sequence finishes). REQUIRES: !finished().
  std::string Append(int32_t token);
  bool finished() const { return finished_; }
  FinishReason reason() const { return reason_; }
  int64_t num_tokens() const { return num_tokens_; }

 private:
  std::vector<int64_t> eos_ids_;
  StopConditions conditions_;
  IncrementalDetokenizer detok_;
  StopStringMatcher stops_;
  int64_t num_tokens_ = 0;
  bool finished_ = false;
  FinishReason reason_ = FinishReason::kLength;
};

}  // namespace longview
