#include "engine/text/jinja/internal/parser.h"

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/text/jinja/internal/builtins.h"

namespace longview::jinja::internal {
namespace {

// Deepest nesting of expressions and statements the parser follows.
constexpr int kMaxParseDepth = 200;

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, const LineIndex& lines)
      : tokens_(tokens), lines_(lines) {}

  absl::StatusOr<Program> Run() {
    Program p;
    std::string end;
    RETURN_IF_ERROR(ParseBody({}, &p.body, &end));
    return p;
  }

 private:
  // Keeps the recursion depth; Enter() fails past the limit.
  struct DepthGuard {
    int& depth;
    explicit DepthGuard(int& d) : depth(d) { ++depth; }
    ~DepthGuard() { --depth; }
  };

  const Token& Cur() const { return tokens_[pos_]; }
  const Token& Peek(size_t k = 1) const {
    return tokens_[std::min(pos_ + k, tokens_.size() - 1)];
  }
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

  absl::Status Error(size_t offset, std::string_view msg) const {
    return absl::InvalidArgumentError(absl::StrCat(lines_.Describe(offset), ": ", std::string(msg)));
  }

  static std::string Describe(const Token& t) {
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

  absl::Status Unexpected(std::string_view expected) const {
    return Error(Cur().offset, absl::StrCat("unexpected ", Describe(Cur()), ", expected ",
                                            std::string(expected)));
  }
  absl::Status ExpectOp(std::string_view op) {
    if (!SkipOp(op)) return Unexpected(absl::StrCat("'", std::string(op), "'"));
    return absl::OkStatus();
  }
  absl::Status ExpectType(TokenType type, std::string_view what) {
    if (Cur().type != type) return Unexpected(what);
    Next();
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> ExpectName() {
    if (Cur().type != TokenType::kName) return Unexpected("a name");
    std::string n = Cur().text;
    Next();
    return n;
  }
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

  // The header's '%}' then the body up to one of `ends`.
  absl::Status ParseBlock(std::initializer_list<std::string_view> ends, Body* body,
                          std::string* end) {
    SkipOp(":");
    RETURN_IF_ERROR(ExpectBlockEnd());
    return ParseBody(ends, body, end);
  }

  absl::StatusOr<std::unique_ptr<Stmt>> ParseStatement() {
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

  // Assignment targets: one name or a tuple of names (optionally in parentheses).
  absl::StatusOr<std::vector<std::string>> ParseTargets(std::string_view end_name) {
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
      if (n == "true" || n == "false" || n == "none" || n == "True" || n == "False" ||
          n == "None" || n == "loop") {
        return Error(Cur().offset, absl::StrCat("cannot assign to '", n, "'"));
      }
    }
    return names;
  }

  absl::Status ParseSet(Stmt* s) {
    s->kind = StmtKind::kSet;
    if (Cur().type == TokenType::kName && Peek().type == TokenType::kOperator &&
        Peek().text == ".") {
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

  absl::Status ParseSignature(Stmt* s) {
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

  // ---- expressions ----

  bool IsTupleEnd(std::initializer_list<std::string_view> extra_end_names) const {
    const Token& t = Cur();
    if (t.type == TokenType::kVarEnd || t.type == TokenType::kBlockEnd || IsOp(")")) return true;
    if (t.type == TokenType::kName) {
      for (std::string_view n : extra_end_names) {
        if (t.text == n) return true;
      }
    }
    return false;
  }

  // jinja2's parse_tuple: expressions separated by commas; a tuple when there is a comma.
  absl::StatusOr<ExprPtr> ParseTuple(bool with_condexpr,
                                     std::initializer_list<std::string_view> extra_end_names,
                                     bool explicit_parentheses = false) {
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

  absl::StatusOr<ExprPtr> ParseExpression(bool with_condexpr) {
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

  absl::StatusOr<ExprPtr> ParseOr() {
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

  absl::StatusOr<ExprPtr> ParseAnd() {
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

  absl::StatusOr<ExprPtr> ParseNot() {
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

  absl::StatusOr<ExprPtr> ParseCompare() {
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

  absl::StatusOr<ExprPtr> Binary(ExprPtr left, std::string op, ExprPtr right, size_t at) {
    ExprPtr n = Node(ExprKind::kBinary, at);
    n->name = std::move(op);
    n->args.push_back(std::move(left));
    n->args.push_back(std::move(right));
    return n;
  }

  absl::StatusOr<ExprPtr> ParseMath1() {
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

  absl::StatusOr<ExprPtr> ParseConcat() {
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

  absl::StatusOr<ExprPtr> ParseMath2() {
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

  absl::StatusOr<ExprPtr> ParsePow() {
    ASSIGN_OR_RETURN(ExprPtr left, ParseUnary(true));
    while (IsOp("**")) {
      const size_t at = Cur().offset;
      Next();
      ASSIGN_OR_RETURN(ExprPtr right, ParseUnary(true));
      ASSIGN_OR_RETURN(left, Binary(std::move(left), "**", std::move(right), at));
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseUnary(bool with_filter) {
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

  absl::StatusOr<ExprPtr> ParsePrimary() {
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

  absl::StatusOr<ExprPtr> ParseList() {
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

  absl::StatusOr<ExprPtr> ParseDict() {
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

  absl::StatusOr<ExprPtr> ParsePostfix(ExprPtr node) {
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

  absl::StatusOr<ExprPtr> ParseFilterExpr(ExprPtr node) {
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

  absl::StatusOr<ExprPtr> ParseSubscript(ExprPtr node) {
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

  // An index or a slice; a slice comes back as kSlice with a null args[0] for the object.
  absl::StatusOr<ExprPtr> ParseSubscribed() {
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

  absl::Status ParseCallArgs(Expr* n) {
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

  absl::StatusOr<ExprPtr> ParseCall(ExprPtr callee) {
    ExprPtr n = Node(ExprKind::kCall, Cur().offset);
    n->args.push_back(std::move(callee));
    RETURN_IF_ERROR(ParseCallArgs(n.get()));
    return n;
  }

  absl::StatusOr<ExprPtr> ParseFilter(ExprPtr node, bool start_inline) {
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

  absl::StatusOr<ExprPtr> ParseTest(ExprPtr node) {
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
                c.type == TokenType::kInt || c.type == TokenType::kFloat || IsOp("[") ||
                IsOp("{")) &&
               !IsName("else") && !IsName("or") && !IsName("and")) {
      if (IsName("is")) return Error(c.offset, "tests cannot be chained with 'is'");
      ASSIGN_OR_RETURN(ExprPtr arg, ParsePrimary());
      ASSIGN_OR_RETURN(arg, ParsePostfix(std::move(arg)));
      t->args.push_back(std::move(arg));
    }
    return t;
  }

  const std::vector<Token>& tokens_;
  const LineIndex& lines_;
  size_t pos_ = 0;
  int depth_ = 0;
  int soft_ = 0;  // inside an if / conditional expression
  int loop_depth_ = 0;
};

}  // namespace

absl::StatusOr<Program> Parse(const std::vector<Token>& tokens, const LineIndex& lines) {
  return Parser(tokens, lines).Run();
}

}  // namespace longview::jinja::internal
