#include "engine/text/internal/added_tokens.h"

#include <algorithm>
#include <utility>

#include "engine/text/internal/unicode.h"
#include "engine/text/internal/utf8.h"

namespace longview::internal {
namespace {

// The character that ends `s` (valid UTF-8, non-empty).
char32_t LastChar(std::string_view s) {
  size_t start = s.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return DecodeUtf8(s.substr(start), s.size() - start);
}

char32_t FirstChar(std::string_view s) { return DecodeUtf8(s, NextUtf8(s).len); }

// Where the run of whitespace that ends `s` starts.
size_t TrailingSpaceStart(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    if (!IsWhiteSpace(DecodeUtf8(s.substr(start), end - start))) break;
    end = start;
  }
  return end;
}

// The length of the run of whitespace that starts `s`.
size_t LeadingSpaceLength(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t len = NextUtf8(s.substr(pos)).len;
    if (!IsWhiteSpace(DecodeUtf8(s.substr(pos), len))) break;
    pos += len;
  }
  return pos;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<Entry> entries) : entries_(std::move(entries)) {
  for (size_t i = 0; i < entries_.size(); ++i) {
    const std::string& p = entries_[i].pattern;
    if (p.empty()) continue;
    by_first_byte_[static_cast<unsigned char>(p[0])].push_back(static_cast<int>(i));
  }
  for (auto& bucket : by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(), [&](int a, int b) {
      return entries_[a].pattern.size() > entries_[b].pattern.size();
    });
  }
}

void AddedTokenMatcher::Split(std::string_view text, const Allow* allow,
                              std::vector<TextPiece>* out) const {
  size_t start_offset = 0;  // end of the last piece emitted
  size_t pos = 0;           // where the search for the next match resumes
  while (pos < text.size()) {
    const std::vector<int>& bucket = by_first_byte_[static_cast<unsigned char>(text[pos])];
    const Entry* found = nullptr;
    for (int i : bucket) {
      const Entry& e = entries_[i];
      if (text.compare(pos, e.pattern.size(), e.pattern) != 0) continue;
      if (allow != nullptr && !(*allow)(*e.token, pos, pos + e.pattern.size())) continue;
      found = &e;
      break;
    }
    if (found == nullptr) {
      ++pos;
      continue;
    }
    size_t start = pos;
    size_t stop = pos + found->pattern.size();
    pos = stop;
    const AddedTokenSpec& token = *found->token;
    if (token.single_word) {
      const bool start_ok = start == 0 || !IsWordChar(LastChar(text.substr(0, start)));
      const bool stop_ok = stop == text.size() || !IsWordChar(FirstChar(text.substr(stop)));
      if (!start_ok || !stop_ok) continue;
    }
    if (token.lstrip) start = std::max(TrailingSpaceStart(text.substr(0, start)), start_offset);
    if (token.rstrip) stop += LeadingSpaceLength(text.substr(stop));
    if (start_offset < start) out->push_back({start_offset, start, -1});
    out->push_back({start, stop, token.id});
    start_offset = stop;
  }
  if (start_offset < text.size()) out->push_back({start_offset, text.size(), -1});
}

}  // namespace longview::internal
