// The parser's class, shared by parser.cc (statements) and expr_parser.cc (expressions): a
// recursive-descent parser over the token list, following jinja2's parser.py.
#pragma once

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "engine/text/jinja/internal/ast.h"
#include "engine/text/jinja/internal/lexer.h"

namespace longview::jinja::internal {

// Deepest nesting of expressions and statements the parser follows.
inline constexpr int kMaxParseDepth = 200;

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, const LineIndex& lines)
      : tokens_(tokens), lines_(lines) {}

  absl::StatusOr<Program> Run();

 private:
  // Counts the recursion depth while alive.
  struct DepthGuard {
    int& depth;
    explicit DepthGuard(int& d) : depth(d) { ++depth; }
    ~DepthGuard() { --depth; }
  };

  const Token& Cur() const { return tokens_[pos_]; }
  const Token& Peek(size_t k = 1) const { return tokens_[std::min(pos_ + k, tokens_.size() - 1)]; }
  void Next() {
    if (pos_ + 1 < tokens_.size()) ++pos_;
  }
  bool IsOp(std::string_view op) const {
    return Cur().type == TokenType::kOperator && Cur().text == op;
  }
  bool IsName(std::string_view name) const {
    return Cur().type == TokenType::kName && Cur().text == name;
  }
  bool SkipOp(std::string_view op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(std::string_view name) {
    if (!IsName(name)) return false;
    Next();
    return true;
  }

  absl::Status Error(size_t offset, std::string_view msg) const;

  static std::string Describe(const Token& t);

  absl::Status Unexpected(std::string_view expected) const;
  absl::Status ExpectOp(std::string_view op);
  absl::Status ExpectType(TokenType type, std::string_view what);
  absl::StatusOr<std::string> ExpectName();
  absl::Status ExpectBlockEnd() { return ExpectType(TokenType::kBlockEnd, "'%}'"); }

  static ExprPtr Node(ExprKind kind, size_t offset) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->offset = offset;
    return e;
  }

  // ---- statements ----

  // Parses statements until a block whose first name is in `ends` (left unconsumed after its
  // name, which is stored in *end). With no ends, parses to the end of the template.
  absl::Status ParseBody(std::initializer_list<std::string_view> ends, Body* body,
                         std::string* end);

  // The header's '%}' then the body up to one of `ends`.
  absl::Status ParseBlock(std::initializer_list<std::string_view> ends, Body* body,
                          std::string* end);

  absl::StatusOr<std::unique_ptr<Stmt>> ParseStatement();

  // Assignment targets: one name or a tuple of names (optionally in parentheses).
  absl::StatusOr<std::vector<std::string>> ParseTargets(std::string_view end_name);

  absl::Status ParseSet(Stmt* s);

  absl::Status ParseSignature(Stmt* s);

  // ---- expressions ----

  bool IsTupleEnd(std::initializer_list<std::string_view> extra_end_names) const;

  // jinja2's parse_tuple: expressions separated by commas; a tuple when there is a comma.
  absl::StatusOr<ExprPtr> ParseTuple(bool with_condexpr,
                                     std::initializer_list<std::string_view> extra_end_names,
                                     bool explicit_parentheses = false);
  absl::StatusOr<ExprPtr> ParseExpression(bool with_condexpr);
  absl::StatusOr<ExprPtr> ParseOr();
  absl::StatusOr<ExprPtr> ParseAnd();
  absl::StatusOr<ExprPtr> ParseNot();
  absl::StatusOr<ExprPtr> ParseCompare();
  absl::StatusOr<ExprPtr> Binary(ExprPtr left, std::string op, ExprPtr right, size_t at);
  absl::StatusOr<ExprPtr> ParseMath1();
  absl::StatusOr<ExprPtr> ParseConcat();
  absl::StatusOr<ExprPtr> ParseMath2();
  absl::StatusOr<ExprPtr> ParsePow();
  absl::StatusOr<ExprPtr> ParseUnary(bool with_filter);
  absl::StatusOr<ExprPtr> ParsePrimary();
  absl::StatusOr<ExprPtr> ParseList();
  absl::StatusOr<ExprPtr> ParseDict();
  absl::StatusOr<ExprPtr> ParsePostfix(ExprPtr node);
  absl::StatusOr<ExprPtr> ParseFilterExpr(ExprPtr node);
  absl::StatusOr<ExprPtr> ParseSubscript(ExprPtr node);

  // An index or a slice; a slice comes back as kSlice with a null args[0] for the object.
  absl::StatusOr<ExprPtr> ParseSubscribed();

  absl::Status ParseCallArgs(Expr* n);
  absl::StatusOr<ExprPtr> ParseCall(ExprPtr callee);
  absl::StatusOr<ExprPtr> ParseFilter(ExprPtr node, bool start_inline);
  absl::StatusOr<ExprPtr> ParseTest(ExprPtr node);

  const std::vector<Token>& tokens_;
  const LineIndex& lines_;
  size_t pos_ = 0;
  int depth_ = 0;
  int soft_ = 0;  // inside an if / conditional expression
  int loop_depth_ = 0;
};

}  // namespace longview::jinja::internal
