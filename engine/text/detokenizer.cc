// IncrementalDetokenizer: token bytes in, whole UTF-8 sequences out.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/text/tokenizer.h"

namespace longview {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

enum class SeqKind { kValid, kInvalid, kIncomplete };

// Classifies the UTF-8 sequence that starts at `s[0]` (strict RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF). On kValid `*len` is its length; on kInvalid the lead
// byte alone is bad (`*len` = 1), matching sentencepiece, which replaces invalid bytes one by
// one; kIncomplete means every byte present is valid so far but the sequence runs past the end.
SeqKind Classify(std::string_view s, size_t* len) {
  const auto b0 = static_cast<uint8_t>(s[0]);
  *len = 1;
  if (b0 < 0x80) return SeqKind::kValid;
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return SeqKind::kInvalid;
  }
  for (size_t i = 1; i < need; ++i) {
    if (i >= s.size()) return SeqKind::kIncomplete;
    const auto b = static_cast<uint8_t>(s[i]);
    const uint8_t min = i == 1 ? lo : 0x80;
    const uint8_t max = i == 1 ? hi : 0xBF;
    if (b < min || b > max) return SeqKind::kInvalid;
  }
  *len = need;
  return SeqKind::kValid;
}

// Moves the longest decidable prefix of `*pending` into the result: valid sequences as they
// are, invalid bytes as U+FFFD. An incomplete tail stays in `*pending` unless `flush`, in which
// case each of its bytes becomes U+FFFD.
std::string Drain(std::string* pending, bool flush) {
  std::string out;
  std::string_view s = *pending;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t len;
    switch (Classify(s.substr(pos), &len)) {
      case SeqKind::kValid:
        out.append(s.substr(pos, len));
        pos += len;
        break;
      case SeqKind::kInvalid:
        out.append(kReplacement);
        pos += 1;
        break;
      case SeqKind::kIncomplete:
        if (!flush) {
          pending->erase(0, pos);
          return out;
        }
        out.append(kReplacement);
        pos += 1;
        break;
    }
  }
  pending->clear();
  return out;
}

}  // namespace

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer, bool at_text_start)
    : tokenizer_(tokenizer), at_start_(at_text_start) {}

std::string IncrementalDetokenizer::Push(int32_t id) {
  if (id < 0 || id >= tokenizer_.vocab_size()) return {};  // Decode skips these too
  std::string bytes = tokenizer_.TokenBytes(id);
  if (bytes.empty()) {
    // A control token: sentencepiece ends a run of byte pieces at any non-byte piece, so a
    // sequence it interrupts can no longer complete.
    return Drain(&pending_, /*flush=*/true);
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
  return Drain(&pending_, /*flush=*/false);
}

std::string IncrementalDetokenizer::Flush() { return Drain(&pending_, /*flush=*/true); }

}  // namespace longview
