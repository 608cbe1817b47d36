#include "engine/text/jinja/template.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/text/jinja/internal/ast.h"
#include "engine/text/jinja/internal/evaluator.h"
#include "engine/text/jinja/internal/lexer.h"
#include "engine/text/jinja/internal/parser.h"

namespace longview::jinja {

struct Template::Compiled {
  std::string name;
  std::string source;
  internal::LineIndex lines;
  internal::Program program;

  Compiled(std::string n, std::string s)
      : name(std::move(n)), source(std::move(s)), lines(source) {}
};

namespace {

absl::Status Named(const absl::Status& s, const std::string& name) {
  return absl::Status(s.code(), absl::StrCat(name, ", ", s.message()));
}

}  // namespace

absl::StatusOr<Template> Template::Parse(std::string_view source, std::string name) {
  auto c = std::make_shared<Compiled>(std::move(name), internal::NormalizeSource(source));
  absl::StatusOr<std::vector<internal::Token>> tokens = internal::Lex(c->source, c->lines);
  if (!tokens.ok()) return Named(tokens.status(), c->name);
  absl::StatusOr<internal::Program> program = internal::Parse(*tokens, c->lines);
  if (!program.ok()) return Named(program.status(), c->name);
  c->program = std::move(*program);
  return Template(std::move(c));
}

absl::StatusOr<RenderedPrompt> Template::Render(
    const std::vector<std::pair<std::string, Value>>& vars, const RenderLimits& limits) const {
  internal::Evaluator ev(compiled_->program, compiled_->lines, limits);
  absl::StatusOr<Text> out = ev.Render(vars);
  if (!out.ok()) return Named(out.status(), compiled_->name);
  return out->ToRenderedPrompt();
}

}  // namespace longview::jinja
