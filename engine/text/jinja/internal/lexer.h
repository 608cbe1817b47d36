// The Jinja lexer, configured as transformers configures jinja2 for chat templates:
// trim_blocks (the first newline after a block or comment tag is dropped), lstrip_blocks (spaces
// and tabs from the start of a line up to a block or comment tag are dropped), `-` / `+`
// whitespace control on every tag, newlines normalised to "\n" and one trailing newline of the
// source dropped (keep_trailing_newline off). `{% raw %}` bodies come out as data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace longview::jinja::internal {

enum class TokenType {
  kData,        // template text, after whitespace control
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,  // text: the decoded value
  kInt,
  kFloat,
  kOperator,  // text: the operator ("+", "//", "(", ...)
  kEof,
};

struct Token {
  TokenType type = TokenType::kEof;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  size_t offset = 0;  // in the normalised source
};

// Line and column (1-based, columns in code points) of offsets in a source.
class LineIndex {
 public:
  explicit LineIndex(std::string_view source);
  // "line L, column C".
  std::string Describe(size_t offset) const;

 private:
  std::string source_;
  std::vector<size_t> line_starts_;
};

// The source as jinja2 sees it: "\r\n" and "\r" become "\n", one trailing newline dropped.
std::string NormalizeSource(std::string_view source);

// Tokenises a normalised source. InvalidArgument naming the line and column on a lexical error.
absl::StatusOr<std::vector<Token>> Lex(std::string_view source, const LineIndex& lines);

}  // namespace longview::jinja::internal
