// The syntax tree the parser builds and the evaluator walks. Nodes are plain tagged structs:
// `kind` says which fields are used (documented per kind below).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/text/jinja/value.h"

namespace longview::jinja::internal {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  kLiteral,   // literal
  kName,      // name
  kList,      // args: items
  kTuple,     // args: items
  kDict,      // args: key, value, key, value, ...
  kGetAttr,   // args[0].name
  kGetItem,   // args[0][args[1]]
  kSlice,     // args[0][args[1]:args[2]:args[3]]; absent parts are null
  kCall,      // args[0](args[1..], kwargs)
  kFilter,    // args[0] | name(args[1..], kwargs); args[0] null in {% filter %} / {% set %}
  kTest,      // args[0] is [not] name(args[1..], kwargs); negated
  kNot,       // not args[0]
  kNeg,       // -args[0]
  kPos,       // +args[0]
  kBinary,    // args[0] name args[1] for + - * / // % **
  kAnd,       // args[0] and args[1]
  kOr,        // args[0] or args[1]
  kConcat,    // args[0] ~ args[1] ~ ...
  kCompare,   // args[0] ops[0] args[1] ops[1] args[2] ... (==, !=, <, <=, >, >=, in, notin)
  kCondExpr,  // args[1] if args[0] else args[2] (args[2] may be null)
};

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  size_t offset = 0;
  std::string name;
  Value literal;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  bool negated = false;
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

enum class StmtKind {
  kData,         // text
  kPrint,        // {{ expr }}
  kIf,           // branches (condition, body); else_body
  kFor,          // targets in expr [if cond]: body; else_body
  kSet,          // targets = expr; or namespace attribute: targets {ns, attr}, ns_attr
  kSetBlock,     // {% set targets[0] | filter %} body {% endset %}; filter (kFilter chain) or null
  kMacro,        // name(params) body
  kCallBlock,    // {% call(params) expr %} body
  kFilterBlock,  // {% filter chain %} body; filter is the kFilter chain with a null input
  kWith,         // params (name = value) body
  kBreak,
  kContinue,
  kGeneration,  // transformers' {% generation %} body: rendered as it is
};

struct Stmt {
  StmtKind kind = StmtKind::kData;
  size_t offset = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr cond;
  ExprPtr filter;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::vector<std::string> targets;
  bool ns_attr = false;
  std::string name;
  // Macro / caller parameters (default may be null) and {% with %} assignments.
  std::vector<std::pair<std::string, ExprPtr>> params;
};

// A parsed template.
struct Program {
  Body body;
};

}  // namespace longview::jinja::internal
