// Fuzz target: chat template rendering and encoding (engine/text/chat_template.h) with the golden
// Llama's sentencepiece tokenizer (tests/data/golden/llama, loaded once).
//
// Input: byte 0 picks the template (low 3 bits, modulo the five kinds) and, with bit 3 set,
// takes the first two records as the template's BOS and EOS text. The rest is records separated
// by 0xff bytes, each a message: its first byte picks the role (system, developer, user,
// assistant, tool), the remaining bytes are the content (any bytes, NUL included).
//
// Beyond not crashing: the rendered prompt's special ranges are sorted, disjoint, non-empty and
// inside the text; every id is in the vocabulary; and, with the default BOS/EOS text, message
// content never becomes a special token: the BOS/EOS ids EncodeChat produces are the same as for
// the same conversation with every non-empty content replaced by "x".
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/text/chat_template.h"
#include "engine/text/tokenizer.h"
#include "fuzz/fuzz_check.h"

namespace {

using longview::ChatMessage;
using longview::ChatTemplate;
using longview::ChatTemplateKind;
using longview::RenderedPrompt;

constexpr ChatTemplateKind kKinds[] = {ChatTemplateKind::kPlain, ChatTemplateKind::kLlama2,
                                       ChatTemplateKind::kLlama3, ChatTemplateKind::kMistral,
                                       ChatTemplateKind::kChatMl};
constexpr const char* kRoles[] = {"system", "developer", "user", "assistant", "tool"};

const longview::Tokenizer* tokenizer = nullptr;

// The BOS / EOS ids of an encoding, in order.
std::vector<int32_t> SpecialIds(const std::vector<int32_t>& ids) {
  std::vector<int32_t> out;
  for (int32_t id : ids) {
    if (id == tokenizer->bos_id() || id == tokenizer->eos_id()) out.push_back(id);
  }
  return out;
}

std::vector<int32_t> RenderAndEncode(const ChatTemplate& t,
                                     const std::vector<ChatMessage>& messages) {
  absl::StatusOr<RenderedPrompt> rendered = longview::RenderChat(t, messages);
  FUZZ_CHECK(rendered.ok());  // the built-in templates never fail
  const RenderedPrompt& p = *rendered;
  const std::vector<longview::TextRange>& ranges = p.special_ranges;
  for (size_t i = 0; i < ranges.size(); ++i) {
    FUZZ_CHECK(ranges[i].begin < ranges[i].end);
    FUZZ_CHECK(ranges[i].end <= p.text.size());
    if (i > 0) FUZZ_CHECK(ranges[i - 1].end <= ranges[i].begin);
  }
  std::vector<int32_t> ids = longview::EncodeChat(t, *tokenizer, p);
  for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < tokenizer->vocab_size());
  return ids;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  absl::StatusOr<std::unique_ptr<longview::Tokenizer>> tok =
      longview::Tokenizer::Load(LONGVIEW_GOLDEN_LLAMA_DIR);
  if (!tok.ok()) {
    std::fprintf(stderr, "cannot load the tokenizer of %s: %s\n", LONGVIEW_GOLDEN_LLAMA_DIR,
                 std::string(tok.status().message()).c_str());
    std::exit(1);
  }
  tokenizer = tok->release();  // lives for the whole process
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  ChatTemplate t;
  t.kind = kKinds[(data[0] & 7) % 5];
  const bool custom_tokens = (data[0] & 8) != 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::vector<std::string_view> records = longview::fuzz::SplitRecords(rest, '\xff');
  size_t first = 0;
  if (custom_tokens) {
    t.bos_token = std::string(records[0]);
    if (records.size() > 1) t.eos_token = std::string(records[1]);
    first = std::min<size_t>(2, records.size());
  }
  std::vector<ChatMessage> messages, neutral;
  for (size_t i = first; i < records.size(); ++i) {
    const std::string_view r = records[i];
    ChatMessage m;
    m.role = r.empty() ? "user" : kRoles[static_cast<uint8_t>(r[0]) % 5];
    if (!r.empty()) m.content = std::string(r.substr(1));
    neutral.push_back({m.role, m.content.empty() ? "" : "x"});
    messages.push_back(std::move(m));
  }
  const std::vector<int32_t> ids = RenderAndEncode(t, messages);
  (void)tokenizer->Decode(ids);
  if (!custom_tokens) FUZZ_CHECK(SpecialIds(ids) == SpecialIds(RenderAndEncode(t, neutral)));
  return 0;
}
