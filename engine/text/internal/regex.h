// The pre-tokenizer regexes of Hugging Face tokenizer.json files (written for Oniguruma, with
// lookahead and Unicode classes) compiled with PCRE2, JIT where available.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Regex> re, Regex::Compile(R"(\p{L}+|\s+(?!\S)|\s+)"));
//   std::vector<std::pair<size_t, size_t>> spans;
//   re->FindAll(text, &spans);   // successive non-overlapping, non-empty matches
// Thread-safety: a compiled Regex is immutable; FindAll may run concurrently.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

struct pcre2_real_code_8;

namespace longview::internal {

class Regex {
 public:
  // InvalidArgument naming the pattern and PCRE2's message when it does not compile.
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern);
  // A regex matching `literal` itself.
  static absl::StatusOr<std::unique_ptr<Regex>> CompileLiteral(std::string_view literal);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the byte spans of the successive leftmost matches in `text` (valid UTF-8), as
  // Oniguruma's find_iter gives them; empty matches are left out. If PCRE2 fails part way (its
  // limits), the rest of the text is left unmatched and false is returned.
  bool FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* spans) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex(std::string pattern, pcre2_real_code_8* code) : pattern_(std::move(pattern)), code_(code) {}

  std::string pattern_;
  pcre2_real_code_8* code_;
};

// Rewrites the classes whose meaning differs between the Oniguruma of Hugging Face `tokenizers`
// and PCRE2 into explicit ones: `\s` / `\S` (Unicode White_Space; PCRE2's \s also takes
// U+180E), `\p{L}` and `\p{N}` (Unicode 16 there, 14 in Debian 12's PCRE2). Exposed for tests.
std::string TranslateOnigPattern(std::string_view pattern);

}  // namespace longview::internal
