#include "engine/text/internal/bpe_tokenizer_impl.h"

#include <algorithm>
#include <deque>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "engine/text/internal/byte_level.h"
#include "engine/text/internal/unicode.h"
#include "engine/text/internal/utf8.h"

namespace longview::internal {
namespace {

// The byte of a "<0xAB>" byte-fallback token, or -1.
int FallbackByte(std::string_view token) {
  if (token.size() != 6 || !token.starts_with("<0x") || token.back() != '>') return -1;
  int value = 0;
  for (char c : token.substr(3, 2)) {
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return -1;
    }
    value = value * 16 + digit;
  }
  return value;
}

// `ranges` with `text` turned into valid UTF-8 piece by piece, so that offsets still line up.
void MakeValid(std::string_view text, const std::vector<TextRange>& ranges, std::string* out,
               std::vector<TextRange>* out_ranges) {
  size_t done = 0;
  for (const TextRange& r : ranges) {
    const size_t begin = std::clamp(r.begin, done, text.size());
    const size_t end = std::clamp(r.end, begin, text.size());
    out->append(ToValidUtf8(text.substr(done, begin - done)));
    const size_t new_begin = out->size();
    out->append(ToValidUtf8(text.substr(begin, end - begin)));
    out_ranges->push_back({new_begin, out->size()});
    done = end;
  }
  out->append(ToValidUtf8(text.substr(done)));
}

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(BpeTokenizerSpec spec, BpeModel model)
      : spec_(std::move(spec)),
        model_(std::move(model)),
        pre_tokenizer_(spec_.pre_tokenizer),
        raw_matcher_(MatcherEntries(/*normalized=*/false)),
        normalized_matcher_(MatcherEntries(/*normalized=*/true)) {
    int32_t size = 0;
    for (const auto& [text, id] : spec_.vocab) size = std::max(size, id + 1);
    for (const AddedTokenSpec& t : spec_.added_tokens) size = std::max(size, t.id + 1);
    token_bytes_.resize(size);
    for (const auto& [text, id] : spec_.vocab) token_bytes_[id] = DecodeToken(text);
    for (const AddedTokenSpec& t : spec_.added_tokens) {
      // tokenizers decodes a normalized added token through its normalized content.
      token_bytes_[t.id] = t.special ? std::string() : DecodeToken(Pattern(t));
    }
  }

  std::vector<int32_t> Encode(std::string_view text, bool add_special) const override {
    return EncodeImpl(text, nullptr, add_special);
  }

  std::vector<int32_t> EncodeRendered(const RenderedPrompt& prompt,
                                      bool add_special) const override {
    return EncodeImpl(prompt.text, &prompt.special_ranges, add_special);
  }

  std::string Decode(const std::vector<int32_t>& ids) const override {
    std::string bytes;
    for (int32_t id : ids) {
      if (id >= 0 && id < vocab_size()) bytes += token_bytes_[id];
    }
    return IsValidUtf8(bytes) ? bytes : ToValidUtf8(bytes);
  }

  std::string TokenBytes(int32_t id) const override {
    return id >= 0 && id < vocab_size() ? token_bytes_[id] : std::string();
  }
  int32_t vocab_size() const override { return static_cast<int32_t>(token_bytes_.size()); }
  int32_t bos_id() const override { return spec_.bos_id; }
  int32_t eos_id() const override { return spec_.eos_id; }
  bool add_bos() const override {
    return spec_.bos_id >= 0 && !spec_.prefix_ids.empty() && spec_.prefix_ids[0] == spec_.bos_id;
  }
  bool add_eos() const override {
    return spec_.eos_id >= 0 && !spec_.suffix_ids.empty() &&
           spec_.suffix_ids.back() == spec_.eos_id;
  }
  bool strips_leading_space() const override { return false; }
  DecodeRules decode_rules() const override {
    return {.control_token_breaks_bytes = false, .replace_maximal_subparts = true};
  }

 private:
  std::string Pattern(const AddedTokenSpec& t) const {
    return t.normalized && spec_.nfc ? NormalizeNfc(t.content) : t.content;
  }

  std::vector<AddedTokenMatcher::Entry> MatcherEntries(bool normalized) const {
    std::vector<AddedTokenMatcher::Entry> entries;
    for (const AddedTokenSpec& t : spec_.added_tokens) {
      if (t.normalized == normalized) entries.push_back({Pattern(t), &t});
    }
    return entries;
  }

  std::string DecodeToken(std::string_view token) const {
    if (spec_.decode_byte_fallback) {
      const int b = FallbackByte(token);
      if (b >= 0) return std::string(1, static_cast<char>(b));
    }
    return spec_.decode_byte_level ? ByteLevelDecode(token) : std::string(token);
  }

  // Whether a special token may be read at [begin, end) of the text: anywhere for Encode, only
  // inside the template's ranges for EncodeRendered.
  static bool InRanges(const std::vector<TextRange>& ranges, size_t begin, size_t end) {
    auto it = std::upper_bound(ranges.begin(), ranges.end(), begin,
                               [](size_t pos, const TextRange& r) { return pos < r.end; });
    return it != ranges.end() && it->begin <= begin && end <= it->end;
  }

  void EncodeOrdinary(std::string_view text, std::vector<int32_t>* ids) const {
    std::deque<std::string> arena;
    std::vector<std::string_view> words;
    pre_tokenizer_.Split(text, &words, &arena);
    for (std::string_view w : words) model_.Encode(w, ids);
  }

  std::vector<int32_t> EncodeImpl(std::string_view raw, const std::vector<TextRange>* raw_ranges,
                                  bool add_special) const {
    std::string valid_text;
    std::vector<TextRange> valid_ranges;
    std::string_view text = raw;
    const std::vector<TextRange>* ranges = raw_ranges;
    if (!IsValidUtf8(raw)) {
      MakeValid(raw, raw_ranges != nullptr ? *raw_ranges : std::vector<TextRange>{}, &valid_text,
                &valid_ranges);
      text = valid_text;
      if (raw_ranges != nullptr) ranges = &valid_ranges;
    }
    std::vector<int32_t> ids;
    if (add_special) ids = spec_.prefix_ids;

    // 1. Added tokens matched on the text as written.
    AddedTokenMatcher::Allow allow_raw = [&](const AddedTokenSpec& t, size_t b, size_t e) {
      return !t.special || InRanges(*ranges, b, e);
    };
    std::vector<TextPiece> pieces;
    raw_matcher_.Split(text, ranges != nullptr ? &allow_raw : nullptr, &pieces);
    std::vector<TextPiece> sub;
    for (const TextPiece& piece : pieces) {
      if (piece.id >= 0) {
        ids.push_back(piece.id);
        continue;
      }
      // 2. Each stretch between them normalized, and normalized added tokens matched there.
      const std::string_view original = text.substr(piece.begin, piece.end - piece.begin);
      std::string normalized_storage;
      std::string_view normalized = original;
      if (spec_.nfc) {
        normalized_storage = NormalizeNfc(original);
        normalized = normalized_storage;
      }
      if (normalized_matcher_.empty()) {
        EncodeOrdinary(normalized, &ids);
        continue;
      }
      // Template ranges are known in the original text only: where normalization changed the
      // stretch, a special token there is not read.
      const bool same = normalized == original;
      AddedTokenMatcher::Allow allow_normalized = [&](const AddedTokenSpec& t, size_t b, size_t e) {
        return !t.special || (same && InRanges(*ranges, piece.begin + b, piece.begin + e));
      };
      sub.clear();
      normalized_matcher_.Split(normalized, ranges != nullptr ? &allow_normalized : nullptr, &sub);
      for (const TextPiece& s : sub) {
        if (s.id >= 0) {
          ids.push_back(s.id);
        } else {
          EncodeOrdinary(normalized.substr(s.begin, s.end - s.begin), &ids);
        }
      }
    }
    if (add_special) ids.insert(ids.end(), spec_.suffix_ids.begin(), spec_.suffix_ids.end());
    return ids;
  }

  BpeTokenizerSpec spec_;
  BpeModel model_;
  PreTokenizer pre_tokenizer_;
  AddedTokenMatcher raw_matcher_;
  AddedTokenMatcher normalized_matcher_;
  std::vector<std::string> token_bytes_;  // by id: what Decode contributes
};

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> MakeBpeTokenizerFromSpec(BpeTokenizerSpec spec) {
  for (const PreTokenizerStep& step : spec.pre_tokenizer) {
    const bool needs_regex = step.kind == PreTokenizerStep::Kind::kSplit;
    if (needs_regex && step.regex == nullptr) {
      return absl::InvalidArgumentError("a Split pre-tokenizer has no regex");
    }
    if (step.kind == PreTokenizerStep::Kind::kByteLevel) spec.model.byte_level = true;
  }
  for (const AddedTokenSpec& t : spec.added_tokens) {
    if (t.id < 0)
      return absl::InvalidArgumentError(
          absl::StrCat("added token \"", t.content, "\" has a negative id"));
  }
  ASSIGN_OR_RETURN(BpeModel model, BpeModel::Build(spec.vocab, spec.merges, spec.model));
  return std::unique_ptr<Tokenizer>(
      std::make_unique<BpeTokenizer>(std::move(spec), std::move(model)));
}

}  // namespace longview::internal
