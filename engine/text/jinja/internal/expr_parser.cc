// Expressions, with jinja2's precedence: conditional expression, or, and, not, comparisons and
// `in`, + -, ~, * / // %, **, unary - +, then primaries with their postfixes (.attr, [index],
// [slice], calls) and filters / tests.
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/text/jinja/internal/builtins.h"
#include "engine/text/jinja/internal/parser_impl.h"

namespace longview::jinja::internal {

bool Parser::IsTupleEnd(std::initializer_list<std::string_view> extra_end_names) const {
  const Token& t = Cur();
  if (t.type == TokenType::kVarEnd || t.type == TokenType::kBlockEnd || IsOp(")")) return true;
  if (t.type == TokenType::kName) {
    for (std::string_view n : extra_end_names) {
      if (t.text == n) return true;
    }
  }
  return false;
}

absl::StatusOr<ExprPtr> Parser::ParseTuple(bool with_condexpr,
                                           std::initializer_list<std::string_view> extra_end_names,
                                           bool explicit_parentheses) {
  const size_t at = Cur().offset;
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  while (true) {
    if (!items.empty()) RETURN_IF_ERROR(ExpectOp(","));
    if (IsTupleEnd(extra_end_names)) break;
    ASSIGN_OR_RETURN(ExprPtr e, with_condexpr ? ParseExpression(true) : ParseOr());
    items.push_back(std::move(e));
    if (IsOp(",")) {
      is_tuple = true;
    } else {
      break;
    }
  }
  if (!is_tuple) {
    if (!items.empty()) return std::move(items[0]);
    if (!explicit_parentheses) return Unexpected("an expression");
  }
  ExprPtr t = Node(ExprKind::kTuple, at);
  t->args = std::move(items);
  return t;
}

absl::StatusOr<ExprPtr> Parser::ParseExpression(bool with_condexpr) {
  DepthGuard guard(depth_);
  if (depth_ > kMaxParseDepth) return Error(Cur().offset, "expression nested too deeply");
  if (!with_condexpr) return ParseOr();
  ASSIGN_OR_RETURN(ExprPtr expr, ParseOr());
  while (IsName("if")) {
    const size_t at = Cur().offset;
    Next();
    ++soft_;
    ASSIGN_OR_RETURN(ExprPtr cond, ParseOr());
    ExprPtr otherwise;
    if (SkipName("else")) {
      ASSIGN_OR_RETURN(otherwise, ParseExpression(true));
    }
    --soft_;
    ExprPtr c = Node(ExprKind::kCondExpr, at);
    c->args.push_back(std::move(cond));
    c->args.push_back(std::move(expr));
    c->args.push_back(std::move(otherwise));
    expr = std::move(c);
  }
  return expr;
}

absl::StatusOr<ExprPtr> Parser::ParseOr() {
  ASSIGN_OR_RETURN(ExprPtr left, ParseAnd());
  while (IsName("or")) {
    ExprPtr n = Node(ExprKind::kOr, Cur().offset);
    Next();
    ASSIGN_OR_RETURN(ExprPtr right, ParseAnd());
    n->args.push_back(std::move(left));
    n->args.push_back(std::move(right));
    left = std::move(n);
  }
  return left;
}

absl::StatusOr<ExprPtr> Parser::ParseAnd() {
  ASSIGN_OR_RETURN(ExprPtr left, ParseNot());
  while (IsName("and")) {
    ExprPtr n = Node(ExprKind::kAnd, Cur().offset);
    Next();
    ASSIGN_OR_RETURN(ExprPtr right, ParseNot());
    n->args.push_back(std::move(left));
    n->args.push_back(std::move(right));
    left = std::move(n);
  }
  return left;
}

absl::StatusOr<ExprPtr> Parser::ParseNot() {
  if (IsName("not")) {
    DepthGuard guard(depth_);
    if (depth_ > kMaxParseDepth) return Error(Cur().offset, "expression nested too deeply");
    ExprPtr n = Node(ExprKind::kNot, Cur().offset);
    Next();
    ASSIGN_OR_RETURN(ExprPtr operand, ParseNot());
    n->args.push_back(std::move(operand));
    return n;
  }
  return ParseCompare();
}

absl::StatusOr<ExprPtr> Parser::ParseCompare() {
  const size_t at = Cur().offset;
  ASSIGN_OR_RETURN(ExprPtr first, ParseMath1());
  ExprPtr cmp;
  while (true) {
    std::string op;
    if (Cur().type == TokenType::kOperator &&
        (Cur().text == "==" || Cur().text == "!=" || Cur().text == "<" || Cur().text == "<=" ||
         Cur().text == ">" || Cur().text == ">=")) {
      op = Cur().text;
      Next();
    } else if (IsName("in")) {
      op = "in";
      Next();
    } else if (IsName("not") && Peek().type == TokenType::kName && Peek().text == "in") {
      op = "notin";
      Next();
      Next();
    } else {
      break;
    }
    if (!cmp) {
      cmp = Node(ExprKind::kCompare, at);
      cmp->args.push_back(std::move(first));
    }
    ASSIGN_OR_RETURN(ExprPtr operand, ParseMath1());
    cmp->ops.push_back(std::move(op));
    cmp->args.push_back(std::move(operand));
  }
  return cmp ? std::move(cmp) : std::move(first);
}

absl::StatusOr<ExprPtr> Parser::Binary(ExprPtr left, std::string op, ExprPtr right, size_t at) {
  ExprPtr n = Node(ExprKind::kBinary, at);
  n->name = std::move(op);
  n->args.push_back(std::move(left));
  n->args.push_back(std::move(right));
  return n;
}

absl::StatusOr<ExprPtr> Parser::ParseMath1() {
  ASSIGN_OR_RETURN(ExprPtr left, ParseConcat());
  while (IsOp("+") || IsOp("-")) {
    const std::string op = Cur().text;
    const size_t at = Cur().offset;
    Next();
    ASSIGN_OR_RETURN(ExprPtr right, ParseConcat());
    ASSIGN_OR_RETURN(left, Binary(std::move(left), op, std::move(right), at));
  }
  return left;
}

absl::StatusOr<ExprPtr> Parser::ParseConcat() {
  const size_t at = Cur().offset;
  ASSIGN_OR_RETURN(ExprPtr first, ParseMath2());
  if (!IsOp("~")) return first;
  ExprPtr n = Node(ExprKind::kConcat, at);
  n->args.push_back(std::move(first));
  while (SkipOp("~")) {
    ASSIGN_OR_RETURN(ExprPtr next, ParseMath2());
    n->args.push_back(std::move(next));
  }
  return n;
}

absl::StatusOr<ExprPtr> Parser::ParseMath2() {
  ASSIGN_OR_RETURN(ExprPtr left, ParsePow());
  while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
    const std::string op = Cur().text;
    const size_t at = Cur().offset;
    Next();
    ASSIGN_OR_RETURN(ExprPtr right, ParsePow());
    ASSIGN_OR_RETURN(left, Binary(std::move(left), op, std::move(right), at));
  }
  return left;
}

absl::StatusOr<ExprPtr> Parser::ParsePow() {
  ASSIGN_OR_RETURN(ExprPtr left, ParseUnary(true));
  while (IsOp("**")) {
    const size_t at = Cur().offset;
    Next();
    ASSIGN_OR_RETURN(ExprPtr right, ParseUnary(true));
    ASSIGN_OR_RETURN(left, Binary(std::move(left), "**", std::move(right), at));
  }
  return left;
}

absl::StatusOr<ExprPtr> Parser::ParseUnary(bool with_filter) {
  DepthGuard guard(depth_);
  if (depth_ > kMaxParseDepth) return Error(Cur().offset, "expression nested too deeply");
  ExprPtr node;
  if (IsOp("-") || IsOp("+")) {
    node = Node(IsOp("-") ? ExprKind::kNeg : ExprKind::kPos, Cur().offset);
    Next();
    ASSIGN_OR_RETURN(ExprPtr operand, ParseUnary(false));
    node->args.push_back(std::move(operand));
  } else {
    ASSIGN_OR_RETURN(node, ParsePrimary());
  }
  ASSIGN_OR_RETURN(node, ParsePostfix(std::move(node)));
  if (with_filter) {
    ASSIGN_OR_RETURN(node, ParseFilterExpr(std::move(node)));
  }
  return node;
}

absl::StatusOr<ExprPtr> Parser::ParsePrimary() {
  const Token& t = Cur();
  ExprPtr node;
  switch (t.type) {
    case TokenType::kName:
      node = Node(ExprKind::kLiteral, t.offset);
      if (t.text == "true" || t.text == "True") {
        node->literal = Value::Bool(true);
      } else if (t.text == "false" || t.text == "False") {
        node->literal = Value::Bool(false);
      } else if (t.text == "none" || t.text == "None") {
        node->literal = Value::None();
      } else {
        node->kind = ExprKind::kName;
        node->name = t.text;
      }
      Next();
      return node;
    case TokenType::kString: {
      node = Node(ExprKind::kLiteral, t.offset);
      std::string s;
      while (Cur().type == TokenType::kString) {  // adjacent literals concatenate
        s += Cur().text;
        Next();
      }
      node->literal = Value::Str(Text::Template(s));
      return node;
    }
    case TokenType::kInt:
      node = Node(ExprKind::kLiteral, t.offset);
      node->literal = Value::Int(t.int_value);
      Next();
      return node;
    case TokenType::kFloat:
      node = Node(ExprKind::kLiteral, t.offset);
      node->literal = Value::Float(t.float_value);
      Next();
      return node;
    case TokenType::kOperator:
      if (t.text == "(") {
        Next();
        ASSIGN_OR_RETURN(node, ParseTuple(true, {}, /*explicit_parentheses=*/true));
        RETURN_IF_ERROR(ExpectOp(")"));
        return node;
      }
      if (t.text == "[") return ParseList();
      if (t.text == "{") return ParseDict();
      break;
    default:
      break;
  }
  return Unexpected("an expression");
}

absl::StatusOr<ExprPtr> Parser::ParseList() {
  ExprPtr n = Node(ExprKind::kList, Cur().offset);
  RETURN_IF_ERROR(ExpectOp("["));
  while (!IsOp("]")) {
    if (!n->args.empty()) RETURN_IF_ERROR(ExpectOp(","));
    if (IsOp("]")) break;
    ASSIGN_OR_RETURN(ExprPtr item, ParseExpression(true));
    n->args.push_back(std::move(item));
  }
  RETURN_IF_ERROR(ExpectOp("]"));
  return n;
}

absl::StatusOr<ExprPtr> Parser::ParseDict() {
  ExprPtr n = Node(ExprKind::kDict, Cur().offset);
  RETURN_IF_ERROR(ExpectOp("{"));
  while (!IsOp("}")) {
    if (!n->args.empty()) RETURN_IF_ERROR(ExpectOp(","));
    if (IsOp("}")) break;
    ASSIGN_OR_RETURN(ExprPtr key, ParseExpression(true));
    RETURN_IF_ERROR(ExpectOp(":"));
    ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
    n->args.push_back(std::move(key));
    n->args.push_back(std::move(value));
  }
  RETURN_IF_ERROR(ExpectOp("}"));
  return n;
}

absl::StatusOr<ExprPtr> Parser::ParsePostfix(ExprPtr node) {
  while (true) {
    if (IsOp(".") || IsOp("[")) {
      ASSIGN_OR_RETURN(node, ParseSubscript(std::move(node)));
    } else if (IsOp("(")) {
      ASSIGN_OR_RETURN(node, ParseCall(std::move(node)));
    } else {
      return node;
    }
  }
}

absl::StatusOr<ExprPtr> Parser::ParseFilterExpr(ExprPtr node) {
  while (true) {
    if (IsOp("|")) {
      ASSIGN_OR_RETURN(node, ParseFilter(std::move(node), false));
    } else if (IsName("is")) {
      ASSIGN_OR_RETURN(node, ParseTest(std::move(node)));
    } else if (IsOp("(")) {
      ASSIGN_OR_RETURN(node, ParseCall(std::move(node)));
    } else {
      return node;
    }
  }
}

absl::StatusOr<ExprPtr> Parser::ParseSubscript(ExprPtr node) {
  const size_t at = Cur().offset;
  if (SkipOp(".")) {
    const Token& t = Cur();
    if (t.type == TokenType::kName) {
      ExprPtr n = Node(ExprKind::kGetAttr, at);
      n->name = t.text;
      n->args.push_back(std::move(node));
      Next();
      return n;
    }
    if (t.type != TokenType::kInt) return Unexpected("a name or number");
    ExprPtr n = Node(ExprKind::kGetItem, at);
    ExprPtr index = Node(ExprKind::kLiteral, t.offset);
    index->literal = Value::Int(t.int_value);
    n->args.push_back(std::move(node));
    n->args.push_back(std::move(index));
    Next();
    return n;
  }
  RETURN_IF_ERROR(ExpectOp("["));
  std::vector<ExprPtr> subs;
  while (!IsOp("]")) {
    if (!subs.empty()) RETURN_IF_ERROR(ExpectOp(","));
    ASSIGN_OR_RETURN(ExprPtr sub, ParseSubscribed());
    subs.push_back(std::move(sub));
  }
  RETURN_IF_ERROR(ExpectOp("]"));
  if (subs.empty()) return Error(at, "empty subscript");
  for (const ExprPtr& sub : subs) {
    if (sub->kind == ExprKind::kSlice && subs.size() > 1) {
      return Error(at, "slices inside a tuple subscript are not supported");
    }
  }
  if (subs.size() == 1 && subs[0]->kind == ExprKind::kSlice) {
    subs[0]->args[0] = std::move(node);
    return std::move(subs[0]);
  }
  ExprPtr n = Node(ExprKind::kGetItem, at);
  n->args.push_back(std::move(node));
  if (subs.size() == 1) {
    n->args.push_back(std::move(subs[0]));
  } else {
    ExprPtr t = Node(ExprKind::kTuple, at);
    t->args = std::move(subs);
    n->args.push_back(std::move(t));
  }
  return n;
}

absl::StatusOr<ExprPtr> Parser::ParseSubscribed() {
  const size_t at = Cur().offset;
  ExprPtr first;
  if (!IsOp(":")) {
    ASSIGN_OR_RETURN(first, ParseExpression(true));
    if (!IsOp(":")) return first;
  }
  ExprPtr s = Node(ExprKind::kSlice, at);
  s->args.resize(4);
  s->args[1] = std::move(first);
  Next();  // ':'
  if (!IsOp("]") && !IsOp(",") && !IsOp(":")) {
    ASSIGN_OR_RETURN(s->args[2], ParseExpression(true));
  }
  if (SkipOp(":") && !IsOp("]") && !IsOp(",")) {
    ASSIGN_OR_RETURN(s->args[3], ParseExpression(true));
  }
  return s;
}

absl::Status Parser::ParseCallArgs(Expr* n) {
  RETURN_IF_ERROR(ExpectOp("("));
  bool need_comma = false;
  while (!IsOp(")")) {
    if (need_comma) {
      RETURN_IF_ERROR(ExpectOp(","));
      if (IsOp(")")) break;
    }
    if (IsOp("*") || IsOp("**")) {
      return Error(Cur().offset, "*args and **kwargs in calls are not supported");
    }
    if (Cur().type == TokenType::kName && Peek().type == TokenType::kOperator &&
        Peek().text == "=") {
      std::string key = Cur().text;
      Next();
      Next();
      ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
      n->kwargs.emplace_back(std::move(key), std::move(value));
    } else {
      if (!n->kwargs.empty()) {
        return Error(Cur().offset, "positional argument follows keyword argument");
      }
      ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
      n->args.push_back(std::move(value));
    }
    need_comma = true;
  }
  return ExpectOp(")");
}

absl::StatusOr<ExprPtr> Parser::ParseCall(ExprPtr callee) {
  ExprPtr n = Node(ExprKind::kCall, Cur().offset);
  n->args.push_back(std::move(callee));
  RETURN_IF_ERROR(ParseCallArgs(n.get()));
  return n;
}

absl::StatusOr<ExprPtr> Parser::ParseFilter(ExprPtr node, bool start_inline) {
  while (IsOp("|") || start_inline) {
    if (!start_inline) Next();
    start_inline = false;
    const size_t at = Cur().offset;
    ASSIGN_OR_RETURN(std::string name, ExpectName());
    while (SkipOp(".")) {
      ASSIGN_OR_RETURN(std::string part, ExpectName());
      name += "." + part;
    }
    if (soft_ == 0 && !IsFilterName(name)) {
      return Error(at, absl::StrCat("no filter named '", name, "'"));
    }
    ExprPtr f = Node(ExprKind::kFilter, at);
    f->name = std::move(name);
    f->args.push_back(std::move(node));
    if (IsOp("(")) RETURN_IF_ERROR(ParseCallArgs(f.get()));
    node = std::move(f);
  }
  return node;
}

absl::StatusOr<ExprPtr> Parser::ParseTest(ExprPtr node) {
  const size_t at = Cur().offset;
  Next();  // 'is'
  const bool negated = SkipName("not");
  ASSIGN_OR_RETURN(std::string name, ExpectName());
  while (SkipOp(".")) {
    ASSIGN_OR_RETURN(std::string part, ExpectName());
    name += "." + part;
  }
  if (soft_ == 0 && !IsTestName(name)) {
    return Error(at, absl::StrCat("no test named '", name, "'"));
  }
  ExprPtr t = Node(ExprKind::kTest, at);
  t->name = std::move(name);
  t->negated = negated;
  t->args.push_back(std::move(node));
  const Token& c = Cur();
  if (IsOp("(")) {
    RETURN_IF_ERROR(ParseCallArgs(t.get()));
  } else if ((c.type == TokenType::kName || c.type == TokenType::kString ||
              c.type == TokenType::kInt || c.type == TokenType::kFloat || IsOp("[") || IsOp("{")) &&
             !IsName("else") && !IsName("or") && !IsName("and")) {
    if (IsName("is")) return Error(c.offset, "tests cannot be chained with 'is'");
    ASSIGN_OR_RETURN(ExprPtr arg, ParsePrimary());
    ASSIGN_OR_RETURN(arg, ParsePostfix(std::move(arg)));
    t->args.push_back(std::move(arg));
  }
  return t;
}

}  // namespace longview::jinja::internal
