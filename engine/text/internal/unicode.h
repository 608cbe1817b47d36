// Unicode properties and normalization for the BPE tokenizer, from utf8proc (Debian's
// libutf8proc): the few character classes Hugging Face `tokenizers` tests outside its
// pre-tokenizer regexes, and NFC.
//
//   if (IsWhiteSpace(cp)) ...;
//   std::string nfc = NormalizeNfc(text);   // text must be valid UTF-8
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace longview::internal {

// Unicode White_Space (Rust's char::is_whitespace and regex \s; Oniguruma's \s).
bool IsWhiteSpace(char32_t cp);
// Rust regex's Unicode \w: letters, marks, decimal and letter numbers, connector punctuation,
// and the two joiners.
bool IsWordChar(char32_t cp);
// Rust's char::is_numeric: general category Nd, Nl or No.
bool IsNumeric(char32_t cp);

// Canonical composition (NFC) of valid UTF-8 `text`.
std::string NormalizeNfc(std::string_view text);

}  // namespace longview::internal
