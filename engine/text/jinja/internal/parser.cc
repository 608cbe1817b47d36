// Statements: the body of a template, tags and their blocks (for, if, set, macro, call, filter,
// with, break, continue, generation); expressions are in expr_parser.cc.
#include "engine/text/jinja/internal/parser.h"

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/text/jinja/internal/parser_impl.h"

namespace longview::jinja::internal {

absl::StatusOr<Program> Parser::Run() {
  Program p;
  std::string end;
  RETURN_IF_ERROR(ParseBody({}, &p.body, &end));
  return p;
}

absl::Status Parser::Error(size_t offset, std::string_view msg) const {
  return absl::InvalidArgumentError(absl::StrCat(lines_.Describe(offset), ": ", std::string(msg)));
}

std::string Parser::Describe(const Token& t) {
  switch (t.type) {
    case TokenType::kData:
      return "template data";
    case TokenType::kVarBegin:
      return "'{{'";
    case TokenType::kVarEnd:
      return "end of print statement";
    case TokenType::kBlockBegin:
      return "'{%'";
    case TokenType::kBlockEnd:
      return "end of statement block";
    case TokenType::kName:
    case TokenType::kOperator:
      return absl::StrCat("'", t.text, "'");
    case TokenType::kString:
      return "string";
    case TokenType::kInt:
    case TokenType::kFloat:
      return "number";
    case TokenType::kEof:
      return "end of template";
  }
  return "token";
}

absl::Status Parser::Unexpected(std::string_view expected) const {
  return Error(Cur().offset,
               absl::StrCat("unexpected ", Describe(Cur()), ", expected ", std::string(expected)));
}

absl::Status Parser::ExpectOp(std::string_view op) {
  if (!SkipOp(op)) return Unexpected(absl::StrCat("'", std::string(op), "'"));
  return absl::OkStatus();
}

absl::Status Parser::ExpectType(TokenType type, std::string_view what) {
  if (Cur().type != type) return Unexpected(what);
  Next();
  return absl::OkStatus();
}

absl::StatusOr<std::string> Parser::ExpectName() {
  if (Cur().type != TokenType::kName) return Unexpected("a name");
  std::string n = Cur().text;
  Next();
  return n;
}

absl::Status Parser::ParseBody(std::initializer_list<std::string_view> ends, Body* body,
                               std::string* end) {
  DepthGuard guard(depth_);
  if (depth_ > kMaxParseDepth) return Error(Cur().offset, "statements nested too deeply");
  while (true) {
    const Token& t = Cur();
    switch (t.type) {
      case TokenType::kEof:
        if (ends.size() == 0) return absl::OkStatus();
        return Error(t.offset, absl::StrCat("unexpected end of template, expected '",
                                            std::string(*ends.begin()), "'"));
        break;
      case TokenType::kData: {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kData;
        s->offset = t.offset;
        s->text = t.text;
        body->push_back(std::move(s));
        Next();
        break;
      }
      case TokenType::kVarBegin: {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kPrint;
        s->offset = t.offset;
        Next();
        ASSIGN_OR_RETURN(s->expr, ParseTuple(true, {}));
        RETURN_IF_ERROR(ExpectType(TokenType::kVarEnd, "'}}'"));
        body->push_back(std::move(s));
        break;
      }
      case TokenType::kBlockBegin: {
        Next();
        if (Cur().type == TokenType::kName) {
          for (std::string_view e : ends) {
            if (Cur().text == e) {
              *end = Cur().text;
              Next();
              return absl::OkStatus();
            }
          }
        }
        ASSIGN_OR_RETURN(std::unique_ptr<Stmt> s, ParseStatement());
        RETURN_IF_ERROR(ExpectBlockEnd());
        body->push_back(std::move(s));
        break;
      }
      default:
        return Unexpected("template data or a tag");
    }
  }
}

absl::Status Parser::ParseBlock(std::initializer_list<std::string_view> ends, Body* body,
                                std::string* end) {
  SkipOp(":");
  RETURN_IF_ERROR(ExpectBlockEnd());
  return ParseBody(ends, body, end);
}

absl::StatusOr<std::unique_ptr<Stmt>> Parser::ParseStatement() {
  if (Cur().type != TokenType::kName) return Unexpected("a statement name");
  auto s = std::make_unique<Stmt>();
  s->offset = Cur().offset;
  const std::string tag = Cur().text;
  Next();
  std::string end;
  if (tag == "for") {
    s->kind = StmtKind::kFor;
    ASSIGN_OR_RETURN(s->targets, ParseTargets("in"));
    if (!SkipName("in")) return Unexpected("'in'");
    ASSIGN_OR_RETURN(s->expr, ParseTuple(false, {"recursive"}));
    if (SkipName("if")) {
      ASSIGN_OR_RETURN(s->cond, ParseExpression(true));
    }
    if (IsName("recursive")) return Error(Cur().offset, "recursive loops are not supported");
    ++loop_depth_;
    RETURN_IF_ERROR(ParseBlock({"endfor", "else"}, &s->body, &end));
    if (end == "else") RETURN_IF_ERROR(ParseBlock({"endfor"}, &s->else_body, &end));
    --loop_depth_;
  } else if (tag == "if") {
    s->kind = StmtKind::kIf;
    ++soft_;
    while (true) {
      ASSIGN_OR_RETURN(ExprPtr cond, ParseTuple(false, {}));
      Body body;
      RETURN_IF_ERROR(ParseBlock({"elif", "else", "endif"}, &body, &end));
      s->branches.emplace_back(std::move(cond), std::move(body));
      if (end != "elif") break;
    }
    if (end == "else") RETURN_IF_ERROR(ParseBlock({"endif"}, &s->else_body, &end));
    --soft_;
  } else if (tag == "set") {
    RETURN_IF_ERROR(ParseSet(s.get()));
  } else if (tag == "macro") {
    s->kind = StmtKind::kMacro;
    ASSIGN_OR_RETURN(s->name, ExpectName());
    RETURN_IF_ERROR(ParseSignature(s.get()));
    const int loops = std::exchange(loop_depth_, 0);
    RETURN_IF_ERROR(ParseBlock({"endmacro"}, &s->body, &end));
    loop_depth_ = loops;
  } else if (tag == "call") {
    s->kind = StmtKind::kCallBlock;
    if (IsOp("(")) RETURN_IF_ERROR(ParseSignature(s.get()));
    const size_t at = Cur().offset;
    ASSIGN_OR_RETURN(s->expr, ParseExpression(true));
    if (s->expr->kind != ExprKind::kCall) return Error(at, "expected a call");
    const int loops = std::exchange(loop_depth_, 0);
    RETURN_IF_ERROR(ParseBlock({"endcall"}, &s->body, &end));
    loop_depth_ = loops;
  } else if (tag == "filter") {
    s->kind = StmtKind::kFilterBlock;
    ASSIGN_OR_RETURN(s->filter, ParseFilter(nullptr, /*start_inline=*/true));
    RETURN_IF_ERROR(ParseBlock({"endfilter"}, &s->body, &end));
  } else if (tag == "with") {
    s->kind = StmtKind::kWith;
    while (Cur().type != TokenType::kBlockEnd) {
      if (!s->params.empty()) RETURN_IF_ERROR(ExpectOp(","));
      ASSIGN_OR_RETURN(std::string name, ExpectName());
      RETURN_IF_ERROR(ExpectOp("="));
      ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
      s->params.emplace_back(std::move(name), std::move(value));
    }
    RETURN_IF_ERROR(ParseBlock({"endwith"}, &s->body, &end));
  } else if (tag == "break" || tag == "continue") {
    if (loop_depth_ == 0) return Error(s->offset, absl::StrCat("'", tag, "' outside a loop"));
    s->kind = tag == "break" ? StmtKind::kBreak : StmtKind::kContinue;
  } else if (tag == "generation") {
    s->kind = StmtKind::kGeneration;
    RETURN_IF_ERROR(ParseBlock({"endgeneration"}, &s->body, &end));
  } else {
    return Error(s->offset, absl::StrCat("unknown or unsupported tag '", tag, "'"));
  }
  return s;
}

absl::StatusOr<std::vector<std::string>> Parser::ParseTargets(std::string_view end_name) {
  std::vector<std::string> names;
  const bool paren = SkipOp("(");
  while (true) {
    ASSIGN_OR_RETURN(std::string n, ExpectName());
    names.push_back(std::move(n));
    if (!SkipOp(",")) break;
    if ((paren && IsOp(")")) || IsName(end_name) || IsOp("=")) break;
  }
  if (paren) RETURN_IF_ERROR(ExpectOp(")"));
  for (const std::string& n : names) {
    if (n == "true" || n == "false" || n == "none" || n == "True" || n == "False" || n == "None" ||
        n == "loop") {
      return Error(Cur().offset, absl::StrCat("cannot assign to '", n, "'"));
    }
  }
  return names;
}

absl::Status Parser::ParseSet(Stmt* s) {
  s->kind = StmtKind::kSet;
  if (Cur().type == TokenType::kName && Peek().type == TokenType::kOperator && Peek().text == ".") {
    s->ns_attr = true;
    s->targets.push_back(Cur().text);
    Next();
    Next();
    ASSIGN_OR_RETURN(std::string attr, ExpectName());
    s->targets.push_back(std::move(attr));
  } else {
    ASSIGN_OR_RETURN(s->targets, ParseTargets(""));
  }
  if (SkipOp("=")) {
    ASSIGN_OR_RETURN(s->expr, ParseTuple(true, {}));
    return absl::OkStatus();
  }
  if (s->ns_attr || s->targets.size() != 1) return Unexpected("'='");
  s->kind = StmtKind::kSetBlock;
  if (IsOp("|")) {
    ASSIGN_OR_RETURN(s->filter, ParseFilter(nullptr, false));
  }
  std::string end;
  return ParseBlock({"endset"}, &s->body, &end);
}

absl::Status Parser::ParseSignature(Stmt* s) {
  RETURN_IF_ERROR(ExpectOp("("));
  while (!IsOp(")")) {
    if (!s->params.empty()) RETURN_IF_ERROR(ExpectOp(","));
    if (IsOp(")")) break;
    ASSIGN_OR_RETURN(std::string name, ExpectName());
    ExprPtr def;
    if (SkipOp("=")) {
      ASSIGN_OR_RETURN(def, ParseExpression(true));
    }
    s->params.emplace_back(std::move(name), std::move(def));
  }
  return ExpectOp(")");
}

absl::StatusOr<Program> Parse(const std::vector<Token>& tokens, const LineIndex& lines) {
  return Parser(tokens, lines).Run();
}

}  // namespace longview::jinja::internal
