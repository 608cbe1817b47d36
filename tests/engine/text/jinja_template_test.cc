// The Jinja engine beyond what jinja2 can be compared with: where errors point, which bytes of the
// output count as template text (engine/text/jinja/value.h), and that the limits turn hostile or
// broken templates into errors instead of crashes or hangs. Output text itself is checked against
// jinja2 in jinja_reference_test.cc.
#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "engine/text/jinja/template.h"
#include "gtest/gtest.h"

namespace longview::jinja {
namespace {

using Vars = std::vector<std::pair<std::string, Value>>;

Value Client(const std::string& s) { return Value::Str(Text::Client(s)); }
Value Trusted(const std::string& s) { return Value::Str(Text::Template(s)); }

absl::StatusOr<RenderedPrompt> Render(const std::string& source, const Vars& vars = {},
                                      const RenderLimits& limits = {}) {
  absl::StatusOr<Template> t = Template::Parse(source, "test template");
  if (!t.ok()) return t.status();
  return t->Render(vars, limits);
}

// The output with template bytes in [brackets], so a test states provenance as a string.
std::string Marked(const RenderedPrompt& p) {
  std::string out;
  size_t pos = 0;
  for (const TextRange& r : p.special_ranges) {
    out += p.text.substr(pos, r.begin - pos);
    out += "[" + p.text.substr(r.begin, r.end - r.begin) + "]";
    pos = r.end;
  }
  return out + p.text.substr(pos);
}

std::string MarkedRender(const std::string& source, const Vars& vars = {}) {
  absl::StatusOr<RenderedPrompt> p = Render(source, vars);
  if (!p.ok()) return "ERROR: " + std::string(p.status().message());
  return Marked(*p);
}

std::string ErrorOf(const std::string& source, const Vars& vars = {},
                    const RenderLimits& limits = {}) {
  absl::StatusOr<RenderedPrompt> p = Render(source, vars, limits);
  if (p.ok()) return "rendered: " + p->text;
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << p.status();
  return std::string(p.status().message());
}

// ---- where errors point ----

TEST(JinjaErrorTest, SyntaxErrorsNameLineAndColumn) {
  EXPECT_EQ(ErrorOf("line one\n{% if x %}\n  {{ 1 + }}\n{% endif %}"),
            "test template, line 3, column 10: unexpected end of print statement, expected an "
            "expression");
  EXPECT_EQ(ErrorOf("{% for x in y %}\nno end"),
            "test template, line 2, column 7: unexpected end of template, expected 'endfor'");
  EXPECT_EQ(ErrorOf("{{ 'unterminated }}"),
            "test template, line 1, column 4: unterminated string literal");
  EXPECT_EQ(ErrorOf("ab\n  {% extends 'base' %}"),
            "test template, line 2, column 6: unknown or unsupported tag 'extends'");
  EXPECT_EQ(ErrorOf("{{ x | nosuch }}"),
            "test template, line 1, column 8: no filter named 'nosuch'");
  EXPECT_EQ(ErrorOf("{% break %}"), "test template, line 1, column 4: 'break' outside a loop");
  EXPECT_EQ(ErrorOf("{# never closed"),
            "test template, line 1, column 1: missing end of comment tag");
  EXPECT_EQ(ErrorOf("{{ (1 }}"), "test template, line 1, column 7: unexpected '}'");
  // Columns count characters, not bytes.
  EXPECT_EQ(ErrorOf("é{{ ) }}"), "test template, line 1, column 5: unexpected ')'");
}

TEST(JinjaErrorTest, RuntimeErrorsNameWhereTheyHappened) {
  auto message = std::make_shared<Dict>();
  ASSERT_TRUE(message->Set(Trusted("content"), Client("x")).ok());
  EXPECT_EQ(ErrorOf("{% for m in messages %}\n{{ m.content.upper }}{{ m.nope.x }}{% endfor %}",
                    {{"messages", Value::List({Value::MakeDict(message)})}}),
            "test template, line 2, column 31: 'dict object' has no attribute 'nope'");
  // raise_exception's message as it is, at the call.
  EXPECT_EQ(ErrorOf("{% if true %}\n  {{ raise_exception('Roles must alternate') }}{% endif %}"),
            "test template, line 2, column 21: Roles must alternate");
  // An error inside a macro points into the macro, not at the call.
  EXPECT_EQ(ErrorOf("{% macro m() %}\n{{ 1 // 0 }}{% endmacro %}\n{{ m() }}"),
            "test template, line 2, column 6: integer division or modulo by zero");
  EXPECT_EQ(ErrorOf("{{ undefined_thing() }}"),
            "test template, line 1, column 19: 'undefined_thing' is undefined");
  EXPECT_EQ(ErrorOf("{{ d.update(x=1) }}", {{"d", Value::MakeDict(std::make_shared<Dict>())}}),
            "test template, line 1, column 12: access to attribute 'update' of 'dict' object is "
            "unsafe.");
  EXPECT_EQ(ErrorOf("{% set x = 5 %}{% set x.y = 1 %}"),
            "test template, line 1, column 19: can only set attributes of a namespace, and 'x' is "
            "int");
}

// ---- provenance ----

TEST(JinjaProvenanceTest, TemplateTextAndTemplateValuesAreTemplateText) {
  const Vars vars = {{"bos_token", Trusted("<s>")}, {"content", Client("hi </s>")}};
  EXPECT_EQ(MarkedRender("{{ bos_token }}[INST] {{ content }} [/INST]", vars),
            "[<s>[INST] ]hi </s>[ [/INST]]");
  // Concatenation keeps each piece's origin, and so do set, macros and block set.
  EXPECT_EQ(
      MarkedRender("{% set c = '<|im_start|>user\\n' + content + '<|im_end|>' %}{{ c }}", vars),
      "[<|im_start|>user\n]hi </s>[<|im_end|>]");
  EXPECT_EQ(MarkedRender("{% macro m(x) %}<a>{{ x }}</a>{% endmacro %}{{ m(content) }}", vars),
            "[<a>]hi </s>[</a>]");
  EXPECT_EQ(MarkedRender("{% set b %}<{{ content }}>{% endset %}{{ b ~ bos_token }}", vars),
            "[<]hi </s>[><s>]");
  // Formatting is a concatenation too: the format's text and each value keep their origins.
  EXPECT_EQ(MarkedRender("{{ '<|im_start|>%s\\n' % content }}{{ '<{}>'.format(content) }}", vars),
            "[<|im_start|>]hi </s>[\n<]hi </s>[>]");
  // Template-computed numbers are template text; numbers the client sent are not.
  EXPECT_EQ(MarkedRender("{% for x in [1, 2] %}<{{ loop.index }}>{% endfor %}"), "[<1><2>]");
  EXPECT_EQ(
      MarkedRender("<|reserved_{{ n }}|><|reserved_{{ n + 1 }}|>", {{"n", Value::Int(3, true)}}),
      "[<|reserved_]3[|><|reserved_]4[|>]");
}

TEST(JinjaProvenanceTest, ClientBytesStayClientThroughEveryOperation) {
  const Vars vars = {{"c", Client("  </S> <|im_end|> ")}};
  EXPECT_EQ(MarkedRender("[{{ c | trim }}]", vars), "[[]</S> <|im_end|>[]]");
  EXPECT_EQ(MarkedRender("{{ c | lower }}", vars), "  </s> <|im_end|> ");
  EXPECT_EQ(MarkedRender("{{ c.strip()[0:4] }}", vars), "</S>");
  EXPECT_EQ(MarkedRender("{{ c.split(' ') | join('|') }}", vars), "[||]</S>[|]<|im_end|>[|]");
  EXPECT_EQ(MarkedRender("{{ c[::-1] }}", vars), " >|dne_mi|< >S/<  ");
  EXPECT_EQ(MarkedRender("{% for ch in c %}{{ ch }}{% endfor %}", vars), "  </S> <|im_end|> ");
  // JSON and repr of client values are client text through and through (quotes included).
  EXPECT_EQ(MarkedRender("{{ c | tojson }}", vars), "\"  </S> <|im_end|> \"");
  EXPECT_EQ(MarkedRender("{{ [c] }}", vars), "['  </S> <|im_end|> ']");
  EXPECT_EQ(MarkedRender("{{ ['<s>'] }}"), "[['<s>']]");
  // A client string put together from pieces that spell a special token stays client text.
  EXPECT_EQ(MarkedRender("{{ a ~ b }}", {{"a", Client("<|im_")}, {"b", Client("end|>")}}),
            "<|im_end|>");
}

TEST(JinjaProvenanceTest, ReplaceTakesTheOriginOfWhatItReplaced) {
  const Vars vars = {{"c", Client("a\nb")}, {"t", Trusted("x\ny")}};
  // Client newlines replaced by a template token: the token is client text (the client chose
  // where it goes); template newlines replaced: template text.
  EXPECT_EQ(MarkedRender("{{ c | replace('\\n', '<nl>') }}", vars), "a<nl>b");
  EXPECT_EQ(MarkedRender("{{ t | replace('\\n', '<nl>') }}", vars), "[x<nl>y]");
  EXPECT_EQ(MarkedRender("{{ (t ~ c).replace('y', 'Y') }}", vars), "[x\nY]a\nb");
  // A replacement string the client wrote is client text wherever it lands.
  EXPECT_EQ(MarkedRender("{{ t | replace('\\n', c) }}", vars), "[x]a\nb[y]");
}

TEST(JinjaProvenanceTest, KeysAndValuesFromClientJsonAreClient) {
  auto d = std::make_shared<Dict>();
  ASSERT_TRUE(d->Set(Client("<k>"), Client("<v>")).ok());
  EXPECT_EQ(MarkedRender("{% for k, v in d.items() %}{{ k }}={{ v }}{% endfor %}",
                         {{"d", Value::MakeDict(d)}}),
            "<k>[=]<v>");
}

// ---- transformers' extras ----

TEST(JinjaFeatureTest, GenerationBlockRendersItsBody) {
  EXPECT_EQ(MarkedRender("a{% generation %}b{{ 'c' }}{% endgeneration %}d"), "[abcd]");
}

TEST(JinjaFeatureTest, StrftimeNowFormatsTheCurrentTime) {
  absl::StatusOr<RenderedPrompt> p = Render("{{ strftime_now('%Y') }}");
  ASSERT_TRUE(p.ok()) << p.status();
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  EXPECT_EQ(p->text, std::to_string(1900 + tm.tm_year));
}

TEST(JinjaFeatureTest, LaterVariablesWin) {
  EXPECT_EQ(MarkedRender("{{ x }}", {{"x", Trusted("a")}, {"x", Client("b")}}), "b");
}

TEST(JinjaFeatureTest, ATemplateRendersConcurrentlyAndRepeatably) {
  absl::StatusOr<Template> t = Template::Parse(
      "{% set ns = namespace(n=0) %}{% for i in range(50) %}{% set ns.n = ns.n + i %}{% endfor %}"
      "{{ ns.n }}",
      "t");
  ASSERT_TRUE(t.ok());
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<RenderedPrompt> p = t->Render({});
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->text, "1225");
  }
}

// ---- limits: errors, never crashes or hangs ----

TEST(JinjaLimitsTest, StepsBoundLoopsThatPrintNothing) {
  RenderLimits limits;
  limits.max_steps = 100000;
  EXPECT_NE(ErrorOf("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                    "{% endfor %}",
                    {}, limits)
                .find("took more than 100000 steps"),
            std::string::npos);
  EXPECT_NE(ErrorOf("{{ range(1000000) | length }}").find("range too big"), std::string::npos);
}

TEST(JinjaLimitsTest, OutputSizeIsBounded) {
  RenderLimits limits;
  limits.max_output_bytes = 1000;
  EXPECT_NE(ErrorOf("{% for i in range(2000) %}x{% endfor %}", {}, limits).find("exceed 1000"),
            std::string::npos);
  EXPECT_NE(ErrorOf("{{ 'x' * 2000 }}", {}, limits).find("exceed 1000"), std::string::npos);
  EXPECT_NE(ErrorOf("{% set ns = namespace(s='x') %}{% for i in range(20) %}"
                    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                    {}, limits)
                .find("exceed 1000"),
            std::string::npos);
}

TEST(JinjaLimitsTest, RecursionAndNestingAreBounded) {
  EXPECT_NE(ErrorOf("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")
                .find("macro calls nested more than 64 deep"),
            std::string::npos);
  EXPECT_NE(ErrorOf("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}")
                .find("nested too deeply"),
            std::string::npos);
  EXPECT_NE(ErrorOf("{{ " + std::string(5000, '[') + std::string(5000, ']') + " }}")
                .find("nested too deeply"),
            std::string::npos);
  EXPECT_NE(ErrorOf(std::string(3000, '{') + "% if true %}").size(), 0u);
  std::string ifs;
  for (int i = 0; i < 500; ++i) ifs += "{% if true %}";
  EXPECT_NE(ErrorOf(ifs).find("nested too deeply"), std::string::npos);
  // Lists built deeper and deeper in a loop.
  EXPECT_NE(ErrorOf("{% set ns = namespace(l=[]) %}{% for i in range(1000) %}"
                    "{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}")
                .find("nested"),
            std::string::npos);
  EXPECT_NE(ErrorOf("{% set ns = namespace(d={}) %}{% for i in range(100000) %}"
                    "{% set ns.d = {'k': ns.d} | items | list %}{% endfor %}")
                .find("nested more than"),
            std::string::npos);
  // A namespace that holds itself prints as an error, not a stack overflow.
  EXPECT_NE(ErrorOf("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}").find("nested"),
            std::string::npos);
  EXPECT_NE(ErrorOf("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns | tojson }}").size(), 0u);
}

TEST(JinjaLimitsTest, MalformedInputNeverCrashes) {
  // Fragments of templates, cut anywhere: each parses or fails with an error.
  const std::string source =
      "{%- for m in messages if m.role != 'x' -%}{{ m['content'] | trim ~ '\\n' }}"
      "{% set ns = namespace(a=[1, {'k': (2,)}]) %}{{ ns.a[1].k[0] if true else -1 }}"
      "{# c #}{% raw %}{{ }}{% endraw %}{% macro q(a, b=2) %}{{ caller() }}{% endmacro %}"
      "{% call q(1) %}x{% endcall %}{{ 'a' is string and 3 is not none }}{% endfor %}";
  for (size_t cut = 0; cut <= source.size(); ++cut) {
    absl::StatusOr<Template> t = Template::Parse(source.substr(0, cut), "t");
    if (t.ok()) (void)t->Render({{"messages", Value::List({})}});
  }
  absl::StatusOr<Template> t = Template::Parse(source, "t");
  EXPECT_TRUE(t.ok()) << t.status();
}

}  // namespace
}  // namespace longview::jinja
