// Added tokens (special and not) found in text as Hugging Face `tokenizers` finds them
// (AddedVocabulary::find_matches): leftmost-longest, non-overlapping; `single_word` tokens only
// between non-word characters; `lstrip` / `rstrip` tokens take the whitespace beside them.
//
//   AddedTokenMatcher matcher({{"<|im_end|>", &tokens[0]}});
//   std::vector<TextPiece> pieces;
//   matcher.Split(text, /*allow=*/nullptr, &pieces);   // pieces cover `text` in order
// Thread-safety: const methods may run concurrently.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace longview::internal {

struct AddedTokenSpec {
  std::string content;
  int32_t id = -1;
  bool special = false;  // dropped by Decode; in EncodeRendered only from template text
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;  // matched in normalized text (against its normalized content)
};

// A piece of text: an added token (`id` >= 0) or ordinary text (`id` == -1).
struct TextPiece {
  size_t begin = 0;
  size_t end = 0;
  int32_t id = -1;
};

class AddedTokenMatcher {
 public:
  struct Entry {
    std::string pattern;          // the text that matches
    const AddedTokenSpec* token;  // must outlive the matcher
  };
  explicit AddedTokenMatcher(std::vector<Entry> entries);

  // May refuse a token at a place ([begin, end) of the text, before any stripping): then it is
  // not a token there, and shorter ones starting at the same byte are tried.
  using Allow = std::function<bool(const AddedTokenSpec&, size_t begin, size_t end)>;

  // Appends pieces covering valid UTF-8 `text` in order; ordinary pieces are non-empty.
  void Split(std::string_view text, const Allow* allow, std::vector<TextPiece>* out) const;
  bool empty() const { return entries_.empty(); }

 private:
  std::vector<Entry> entries_;
  std::array<std::vector<int>, 256> by_first_byte_;  // entry indices, longest pattern first
};

}  // namespace longview::internal
