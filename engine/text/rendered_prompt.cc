#include "engine/text/rendered_prompt.h"

#include <algorithm>

namespace longview {

std::vector<PromptSegment> SplitAtSpecialTokens(
    const RenderedPrompt& prompt, const std::vector<std::pair<std::string, int32_t>>& specials) {
  const std::string_view text = prompt.text;
  std::vector<PromptSegment> out;
  size_t plain_start = 0;
  auto flush_plain = [&](size_t end) {
    if (end > plain_start) out.push_back({text.substr(plain_start, end - plain_start), -1});
  };
  for (const TextRange& range : prompt.special_ranges) {
    const size_t end = std::min(range.end, text.size());
    size_t pos = std::max(range.begin, plain_start);
    while (pos < end) {
      const std::pair<std::string, int32_t>* best = nullptr;
      for (const auto& special : specials) {
        const std::string& s = special.first;
        if (s.empty() || s.size() > end - pos || text.compare(pos, s.size(), s) != 0) continue;
        if (best == nullptr || s.size() > best->first.size()) best = &special;
      }
      if (best == nullptr) {
        ++pos;
        continue;
      }
      flush_plain(pos);
      out.push_back({text.substr(pos, best->first.size()), best->second});
      pos += best->first.size();
      plain_start = pos;
    }
  }
  flush_plain(text.size());
  return out;
}

}  // namespace longview
