// The Jinja parser: tokens (lexer.h) to a Program (ast.h), following jinja2's grammar and
// operator precedence. Statements: for (with `if` filter and else), if / elif / else, set
// (expression, tuple unpacking, namespace attribute, block), macro, call, filter, with, break,
// continue, and transformers' generation. Unknown filters and tests are errors at parse time
// unless they sit inside an `if` (jinja2 then defers the error to the call).
#pragma once

#include <vector>

#include "common/status.h"
#include "engine/text/jinja/internal/ast.h"
#include "engine/text/jinja/internal/lexer.h"

namespace longview::jinja::internal {

// InvalidArgument naming the line and column on a syntax error.
absl::StatusOr<Program> Parse(const std::vector<Token>& tokens, const LineIndex& lines);

}  // namespace longview::jinja::internal
