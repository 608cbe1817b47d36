// Hugging Face pre-tokenizers of the byte-level BPE families: Split (a regex, with its
// delimiter behaviour), ByteLevel (optional prefix space, optional GPT-2 regex), Digits, and a
// Sequence of them. The ByteLevel byte -> character mapping itself is left to the model, which
// works on raw bytes (see BpeModel).
//
//   PreTokenizer pre({PreTokenizerStep::Split(llama3_regex), PreTokenizerStep::ByteLevel(false,
//   false)}); std::deque<std::string> arena; std::vector<std::string_view> words; pre.Split(text,
//   &words, &arena);
// Thread-safety: const methods may run concurrently.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "engine/text/internal/regex.h"

namespace longview::internal {

// tokenizers' SplitDelimiterBehavior: what happens to the text a pattern matched.
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokenizerStep {
  enum class Kind { kSplit, kByteLevel, kDigits };
  Kind kind = Kind::kSplit;
  std::shared_ptr<const Regex> regex;  // kSplit; kByteLevel when it splits with GPT-2's regex
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;             // kSplit: the pattern matches the text to keep
  bool add_prefix_space = false;   // kByteLevel: a space before each piece not starting with one
  bool individual_digits = false;  // kDigits: each digit alone, else runs of digits

  static PreTokenizerStep Split(std::shared_ptr<const Regex> regex,
                                SplitBehavior behavior = SplitBehavior::kIsolated,
                                bool invert = false);
  // `use_regex` splits with GPT-2's pattern.
  static PreTokenizerStep ByteLevel(bool add_prefix_space, bool use_regex);
  static PreTokenizerStep Digits(bool individual_digits);
};

// GPT-2's pre-tokenizer pattern, which ByteLevel(use_regex) applies, compiled once.
std::shared_ptr<const Regex> Gpt2Regex();

class PreTokenizer {
 public:
  explicit PreTokenizer(std::vector<PreTokenizerStep> steps);

  // Appends the non-empty words of valid UTF-8 `text`, in order. A word views `text` or a
  // string in `*arena` (a piece given a prefix space).
  void Split(std::string_view text, std::vector<std::string_view>* words,
             std::deque<std::string>* arena) const;
  // Whether a ByteLevel step maps the text to bytes: then the model's alphabet is bytes.
  bool byte_level() const { return byte_level_; }

 private:
  void ApplyStep(const PreTokenizerStep& step, std::string_view piece,
                 std::vector<std::string_view>* out, std::deque<std::string>* arena) const;

  std::vector<PreTokenizerStep> steps_;
  bool byte_level_ = false;
};

}  // namespace longview::internal
