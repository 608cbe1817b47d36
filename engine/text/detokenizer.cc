// IncrementalDetokenizer: token bytes in, whole UTF-8 sequences out.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/text/internal/utf8.h"
#include "engine/text/tokenizer.h"

namespace longview {
namespace {

// Moves the longest decidable prefix of `*pending` into the result: valid sequences as they
// are, invalid bytes as U+FFFD (each byte, or each maximal invalid subpart, as the tokenizer's
// Decode does). An incomplete tail stays in `*pending` unless `flush`, in which case it is
// invalid too.
std::string Drain(std::string* pending, bool flush, bool maximal_subparts) {
  std::string out;
  std::string_view s = *pending;
  size_t pos = 0;
  while (pos < s.size()) {
    const internal::Utf8Step step = internal::NextUtf8(s.substr(pos));
    if (step.kind == internal::Utf8Kind::kValid) {
      out.append(s.substr(pos, step.len));
      pos += step.len;
      continue;
    }
    if (step.kind == internal::Utf8Kind::kIncomplete && !flush) {
      pending->erase(0, pos);
      return out;
    }
    out.append(internal::kReplacementChar);
    pos += maximal_subparts ? step.len : 1;
  }
  pending->clear();
  return out;
}

}  // namespace

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer, bool at_text_start)
    : tokenizer_(tokenizer), rules_(tokenizer.decode_rules()), at_start_(at_text_start) {}

std::string IncrementalDetokenizer::Push(int32_t id) {
  if (id < 0 || id >= tokenizer_.vocab_size()) return {};  // Decode skips these too
  std::string bytes = tokenizer_.TokenBytes(id);
  if (bytes.empty()) {
    // A control token: sentencepiece ends a run of byte pieces at any non-byte piece, so a
    // sequence it interrupts can no longer complete. Hugging Face skips it.
    if (!rules_.control_token_breaks_bytes) return {};
    return Drain(&pending_, /*flush=*/true, rules_.replace_maximal_subparts);
  }
  if (at_start_) {
    // Until the text has its first character, sentencepiece drops the "▁" that starts a
    // piece (the dummy prefix), though not for every kind of piece (<unk> keeps its " ⁇ ",
    // byte pieces their byte) and, depending on the model's normalizer, once or until some
    // text appears. Decode knows which: ask it about this piece after those consumed so far.
    if (tokenizer_.strips_leading_space() && bytes.front() == ' ') {
      std::vector<int32_t> probe = start_ids_;
      probe.push_back(id);
      if (tokenizer_.Decode(probe) == std::string_view(bytes).substr(1)) bytes.erase(0, 1);
    }
    if (bytes.empty()) {
      start_ids_.push_back(id);
      return {};
    }
    at_start_ = false;
    start_ids_.clear();
    start_ids_.shrink_to_fit();
  }
  pending_ += bytes;
  return Drain(&pending_, /*flush=*/false, rules_.replace_maximal_subparts);
}

std::string IncrementalDetokenizer::Flush() {
  return Drain(&pending_, /*flush=*/true, rules_.replace_maximal_subparts);
}

}  // namespace longview
