#include "engine/text/internal/pre_tokenizer.h"

#include <algorithm>
#include <utility>

#include "engine/text/internal/unicode.h"
#include "engine/text/internal/utf8.h"

namespace longview::internal {
namespace {

constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Segment {
  size_t begin;
  size_t end;
  bool is_match;
};

// The pieces of `piece` as tokenizers' NormalizedString::split cuts them: `segments` cover the
// text in order; `behavior` decides what becomes of the matched ones.
void ApplyBehavior(std::string_view piece, const std::vector<Segment>& segments,
                   SplitBehavior behavior, std::vector<std::string_view>* out) {
  std::vector<std::pair<size_t, size_t>> kept;
  kept.reserve(segments.size());
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Segment& s : segments) kept.emplace_back(s.begin, s.end);
      break;
    case SplitBehavior::kRemoved:
      for (const Segment& s : segments) {
        if (!s.is_match) kept.emplace_back(s.begin, s.end);
      }
      break;
    case SplitBehavior::kContiguous:
      for (const Segment& s : segments) {
        if (s.is_match == previous_match && !kept.empty()) {
          kept.back().second = s.end;
        } else {
          kept.emplace_back(s.begin, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Segment& s : segments) {
        if (s.is_match && !previous_match && !kept.empty()) {
          kept.back().second = s.end;
        } else {
          kept.emplace_back(s.begin, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
        if (it->is_match && !previous_match && !kept.empty()) {
          kept.back().first = it->begin;
        } else {
          kept.emplace_back(it->begin, it->end);
        }
        previous_match = it->is_match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
  }
  for (const auto& [b, e] : kept) {
    if (e > b) out->push_back(piece.substr(b, e - b));
  }
}

void RegexSegments(const Regex& regex, std::string_view piece, bool invert,
                   std::vector<Segment>* segments) {
  std::vector<std::pair<size_t, size_t>> spans;
  regex.FindAll(piece, &spans);
  size_t prev = 0;
  for (const auto& [start, end] : spans) {
    if (prev != start) segments->push_back({prev, start, invert});
    segments->push_back({start, end, !invert});
    prev = end;
  }
  if (prev != piece.size()) segments->push_back({prev, piece.size(), invert});
}

// Isolated regex matches: the one behaviour the families use, without the segment list.
void SplitIsolated(const Regex& regex, std::string_view piece, std::vector<std::string_view>* out) {
  std::vector<std::pair<size_t, size_t>> spans;
  regex.FindAll(piece, &spans);
  size_t prev = 0;
  for (const auto& [start, end] : spans) {
    if (prev != start) out->push_back(piece.substr(prev, start - prev));
    out->push_back(piece.substr(start, end - start));
    prev = end;
  }
  if (prev != piece.size()) out->push_back(piece.substr(prev));
}

}  // namespace

PreTokenizerStep PreTokenizerStep::Split(std::shared_ptr<const Regex> regex, SplitBehavior behavior,
                                         bool invert) {
  PreTokenizerStep step;
  step.kind = Kind::kSplit;
  step.regex = std::move(regex);
  step.behavior = behavior;
  step.invert = invert;
  return step;
}

PreTokenizerStep PreTokenizerStep::ByteLevel(bool add_prefix_space, bool use_regex) {
  PreTokenizerStep step;
  step.kind = Kind::kByteLevel;
  step.add_prefix_space = add_prefix_space;
  if (use_regex) step.regex = Gpt2Regex();
  return step;
}

PreTokenizerStep PreTokenizerStep::Digits(bool individual_digits) {
  PreTokenizerStep step;
  step.kind = Kind::kDigits;
  step.individual_digits = individual_digits;
  return step;
}

std::shared_ptr<const Regex> Gpt2Regex() {
  static const std::shared_ptr<const Regex> regex = [] {
    absl::StatusOr<std::unique_ptr<Regex>> re = Regex::Compile(kGpt2Pattern);
    return std::shared_ptr<const Regex>(re.ok() ? std::move(re).value() : nullptr);
  }();
  return regex;
}

PreTokenizer::PreTokenizer(std::vector<PreTokenizerStep> steps) : steps_(std::move(steps)) {
  for (const PreTokenizerStep& s : steps_) {
    if (s.kind == PreTokenizerStep::Kind::kByteLevel) byte_level_ = true;
  }
}

void PreTokenizer::ApplyStep(const PreTokenizerStep& step, std::string_view piece,
                             std::vector<std::string_view>* out,
                             std::deque<std::string>* arena) const {
  switch (step.kind) {
    case PreTokenizerStep::Kind::kSplit:
      if (step.behavior == SplitBehavior::kIsolated) {
        SplitIsolated(*step.regex, piece, out);
      } else {
        std::vector<Segment> segments;
        RegexSegments(*step.regex, piece, step.invert, &segments);
        ApplyBehavior(piece, segments, step.behavior, out);
      }
      return;
    case PreTokenizerStep::Kind::kByteLevel:
      if (step.add_prefix_space && piece.front() != ' ') {
        arena->push_back(" ");
        arena->back().append(piece);
        piece = arena->back();
      }
      if (step.regex != nullptr) {
        SplitIsolated(*step.regex, piece, out);
      } else {
        out->push_back(piece);
      }
      return;
    case PreTokenizerStep::Kind::kDigits: {
      std::vector<Segment> segments;
      size_t last = 0, pos = 0;
      while (pos < piece.size()) {
        const size_t len = NextUtf8(piece.substr(pos)).len;
        if (IsNumeric(DecodeUtf8(piece.substr(pos), len))) {
          if (last < pos) segments.push_back({last, pos, false});
          segments.push_back({pos, pos + len, true});
          last = pos + len;
        }
        pos += len;
      }
      if (last < piece.size()) segments.push_back({last, piece.size(), false});
      ApplyBehavior(piece, segments,
                    step.individual_digits ? SplitBehavior::kIsolated : SplitBehavior::kContiguous,
                    out);
      return;
    }
  }
}

void PreTokenizer::Split(std::string_view text, std::vector<std::string_view>* words,
                         std::deque<std::string>* arena) const {
  if (text.empty()) return;
  std::vector<std::string_view> current{text};
  std::vector<std::string_view> next;
  for (const PreTokenizerStep& step : steps_) {
    next.clear();
    for (std::string_view piece : current) ApplyStep(step, piece, &next, arena);
    current.swap(next);
  }
  words->insert(words->end(), current.begin(), current.end());
}

}  // namespace longview::internal
