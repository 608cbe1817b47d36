// A prompt rendered by a chat template, with the provenance of its bytes: special-token text
// (e.g. "<|im_start|>", "</s>") counts as a special token only inside `special_ranges`, the bytes
// the template itself wrote. Everywhere else (message content, other client-supplied values) it
// is ordinary text, so a user who types "</s>" cannot end the sequence or forge a turn.
//
//   RenderedPromptBuilder b;
//   b.AppendTemplate("<|im_start|>user\n");   // may hold special tokens
//   b.AppendContent(message.content);          // never does
//   b.AppendTemplate("<|im_end|>\n");
//   RenderedPrompt p = std::move(b).Take();
//   std::vector<int32_t> ids = tokenizer.EncodeRendered(p, /*add_special=*/false);
// Thread-safety: plain values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace longview {

// The byte range [begin, end) of a text.
struct TextRange {
  size_t begin = 0;
  size_t end = 0;
  bool operator==(const TextRange&) const = default;
};

struct RenderedPrompt {
  std::string text;
  // Sorted, disjoint, non-empty ranges of `text` in which special tokens are recognised.
  std::vector<TextRange> special_ranges;
};

class RenderedPromptBuilder {
 public:
  // Text written by the template: special tokens in it are recognised.
  void AppendTemplate(std::string_view s) {
    if (s.empty()) return;
    const size_t begin = prompt_.text.size();
    prompt_.text.append(s);
    auto& r = prompt_.special_ranges;
    if (!r.empty() && r.back().end == begin) {
      r.back().end = prompt_.text.size();
    } else {
      r.push_back({begin, prompt_.text.size()});
    }
  }
  // Text that came from the client: always ordinary text.
  void AppendContent(std::string_view s) { prompt_.text.append(s); }
  const std::string& text() const { return prompt_.text; }
  RenderedPrompt Take() && { return std::move(prompt_); }

 private:
  RenderedPrompt prompt_;
};

// One piece of a rendered prompt: ordinary text, or one special token.
struct PromptSegment {
  std::string_view text;    // the bytes of the piece (a special token's own text)
  int32_t special_id = -1;  // the token id, or -1 for ordinary text
};

// Cuts `prompt` at every occurrence of a special token's text that lies wholly inside one of its
// special ranges (leftmost first; the longest text where several start at one byte). `specials`
// maps texts to ids; empty texts are ignored. The segments' texts view `prompt.text`; ordinary
// segments are non-empty and never hold a recognised special token.
std::vector<PromptSegment> SplitAtSpecialTokens(
    const RenderedPrompt& prompt, const std::vector<std::pair<std::string, int32_t>>& specials);

}  // namespace longview
