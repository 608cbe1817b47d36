// UTF-8 scanning shared by the byte-level BPE tokenizer and the incremental detokenizer.
//
//   Utf8Step step = NextUtf8(text.substr(pos));   // kValid: step.len bytes form one character
//   std::string clean = ToValidUtf8(raw);         // invalid bytes become U+FFFD
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace longview::internal {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

enum class Utf8Kind { kValid, kInvalid, kIncomplete };

struct Utf8Step {
  Utf8Kind kind;
  // kValid: the character's length. kInvalid: the length of the maximal subpart (the bytes that
  // start a well-formed sequence before it breaks; at least 1), which is what Unicode, Rust's
  // from_utf8_lossy and Python's errors="replace" turn into one U+FFFD. kIncomplete: every byte
  // present fits a sequence that runs past the end; `len` is their number.
  size_t len;
};

// Classifies the sequence at the start of `s` (non-empty) by RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF.
Utf8Step NextUtf8(std::string_view s);

// Decodes the valid character of `len` bytes at the start of `s`.
char32_t DecodeUtf8(std::string_view s, size_t len);
void AppendUtf8(char32_t cp, std::string* out);

bool IsValidUtf8(std::string_view s);
// `s` with each maximal invalid subpart (and an incomplete tail) replaced by U+FFFD.
std::string ToValidUtf8(std::string_view s);

}  // namespace longview::internal
