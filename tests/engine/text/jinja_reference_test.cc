// The Jinja engine against jinja2, byte for byte: the references were rendered by
// render_chat_references.py (jinja2 set up as transformers sets it up) and are committed under
// tests/data/chat_templates/.
//   * jinja_cases.json: small templates over the engine's features, and error cases;
//   * references.json: the Llama 2, Llama 3, Mistral, Qwen2, ChatML and Gemma style templates over
//     conversations (system or not, multi-turn, tool calls, unicode, special-token text in
//     content, chat_template_kwargs), with add_generation_prompt true and false, rendered through
//     the same path the server uses (LoadChatTemplate's ChatTemplateFromJinja, then RenderChat).
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "engine/text/chat_template.h"
#include "engine/text/jinja/json_value.h"
#include "engine/text/jinja/template.h"
#include "gtest/gtest.h"

namespace longview {
namespace {

using ordered_json = nlohmann::ordered_json;

const std::string kDir = std::string(LONGVIEW_TEST_DATA_DIR) + "/chat_templates/";

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

ordered_json ReadJson(const std::string& path) {
  return ordered_json::parse(ReadFile(path), nullptr, /*allow_exceptions=*/false);
}

// A readable, stable test name from a case's parts.
std::string TestName(std::string s) {
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

// ---- engine features ----

std::vector<ordered_json> FeatureCases() {
  ordered_json all = ReadJson(kDir + "jinja_cases.json");
  return all.is_array() ? std::vector<ordered_json>(all.begin(), all.end())
                        : std::vector<ordered_json>{};
}

class JinjaFeatureTest : public ::testing::TestWithParam<ordered_json> {};

TEST_P(JinjaFeatureTest, MatchesJinja2) {
  const ordered_json& c = GetParam();
  const std::string tmpl = c["template"].get<std::string>();
  SCOPED_TRACE(tmpl);
  absl::StatusOr<jinja::Template> t = jinja::Template::Parse(tmpl, "case");
  absl::StatusOr<RenderedPrompt> out = absl::InternalError("not rendered");
  if (t.ok()) {
    std::vector<std::pair<std::string, jinja::Value>> vars;
    for (const auto& [k, v] : c["vars"].items()) {
      absl::StatusOr<jinja::Value> value = jinja::ValueFromJson(v, /*client=*/true);
      ASSERT_TRUE(value.ok()) << value.status();
      vars.emplace_back(k, *value);
    }
    out = t->Render(vars);
  } else {
    out = t.status();
  }
  if (c.contains("error")) {
    EXPECT_FALSE(out.ok()) << "jinja2 failed with: " << c["error"].get<std::string>()
                           << "\nwe rendered: " << out->text;
    if (!out.ok()) {
      EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
      // Every error names where in the template it happened.
      EXPECT_NE(std::string(out.status().message()).find("line 1, column "), std::string::npos)
          << out.status();
    }
    return;
  }
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->text, c["text"].get<std::string>());
}

INSTANTIATE_TEST_SUITE_P(Cases, JinjaFeatureTest, ::testing::ValuesIn(FeatureCases()),
                         [](const ::testing::TestParamInfo<ordered_json>& info) {
                           return TestName(info.param["name"].get<std::string>());
                         });

TEST(JinjaFeatureTest, ReferencesArePresent) { EXPECT_GE(FeatureCases().size(), 50u); }

// ---- family templates through the chat-template path ----

struct FamilyCase {
  std::string template_name;
  std::string conversation;
  bool add_generation_prompt = true;
  ordered_json expected;  // {"text": ...} or {"error": ...}
};

const ordered_json& References() {
  static const ordered_json* refs = new ordered_json(ReadJson(kDir + "references.json"));
  return *refs;
}

std::vector<FamilyCase> FamilyCases() {
  std::vector<FamilyCase> out;
  const ordered_json& refs = References();
  if (!refs.is_object()) return out;
  for (const auto& c : refs["cases"]) {
    out.push_back({c["template"].get<std::string>(), c["conversation"].get<std::string>(),
                   c["add_generation_prompt"].get<bool>(), c});
  }
  return out;
}

// A conversation as the server's request parser produces it (OpenAI form).
std::vector<ChatMessage> Messages(const ordered_json& list) {
  std::vector<ChatMessage> out;
  for (const auto& m : list) {
    ChatMessage msg;
    msg.role = m["role"].get<std::string>();
    if (m.contains("content") && m["content"].is_string()) msg.content = m["content"];
    if (m.contains("name")) msg.name = m["name"].get<std::string>();
    if (m.contains("tool_calls")) msg.tool_calls = m["tool_calls"].dump();
    if (m.contains("tool_call_id")) msg.tool_call_id = m["tool_call_id"].get<std::string>();
    out.push_back(std::move(msg));
  }
  return out;
}

class ChatTemplateFamilyTest : public ::testing::TestWithParam<FamilyCase> {};

TEST_P(ChatTemplateFamilyTest, MatchesJinja2) {
  const FamilyCase& c = GetParam();
  const ordered_json& t = References()["templates"][c.template_name];
  std::vector<std::pair<std::string, std::string>> tokens;
  for (const auto& [k, v] : t["special_tokens"].items()) tokens.emplace_back(k, v);
  absl::StatusOr<ChatTemplate> tmpl =
      ChatTemplateFromJinja(ReadFile(kDir + t["file"].get<std::string>()), c.template_name, tokens);
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  const ordered_json& conv = References()["conversations"][c.conversation];
  ChatRenderOptions options;
  options.add_generation_prompt = c.add_generation_prompt;
  if (conv.contains("chat_template_kwargs")) {
    options.chat_template_kwargs = conv["chat_template_kwargs"].dump();
  }
  absl::StatusOr<RenderedPrompt> out = RenderChat(*tmpl, Messages(conv["messages"]), options);
  if (c.expected.contains("error")) {
    ASSERT_FALSE(out.ok()) << out->text;
    // raise_exception's message reaches the client as it is.
    EXPECT_NE(std::string(out.status().message()).find(c.expected["error"].get<std::string>()),
              std::string::npos)
        << out.status();
    return;
  }
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->text, c.expected["text"].get<std::string>());
  // Every byte of message content is client text: no special range overlaps a content string
  // (trimmed: templates trim content and write their own spaces around it).
  for (const auto& m : conv["messages"]) {
    if (!m.contains("content") || !m["content"].is_string()) continue;
    std::string content = m["content"];
    content.erase(0, content.find_first_not_of(" \t\n"));
    content.erase(content.find_last_not_of(" \t\n") + 1);
    if (content.size() < 4) continue;
    for (size_t at = out->text.find(content); at != std::string::npos;
         at = out->text.find(content, at + 1)) {
      for (const TextRange& r : out->special_ranges) {
        EXPECT_FALSE(r.begin < at + content.size() && at < r.end)
            << "content '" << content << "' at " << at << " overlaps template range [" << r.begin
            << ", " << r.end << ")";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(References, ChatTemplateFamilyTest, ::testing::ValuesIn(FamilyCases()),
                         [](const ::testing::TestParamInfo<FamilyCase>& info) {
                           return TestName(info.param.template_name + "_" +
                                           info.param.conversation +
                                           (info.param.add_generation_prompt ? "_gen" : ""));
                         });

TEST(ChatTemplateFamilyTest, ReferencesCoverEveryFamily) {
  std::vector<FamilyCase> cases = FamilyCases();
  EXPECT_EQ(cases.size(), 6u * 11u * 2u);
  for (const char* family : {"llama2", "llama3", "mistral", "qwen2", "chatml", "gemma"}) {
    int rendered = 0;
    for (const FamilyCase& c : cases) {
      rendered += c.template_name == family && c.expected.contains("text");
    }
    EXPECT_GE(rendered, 14) << family;
  }
}

}  // namespace
}  // namespace longview
