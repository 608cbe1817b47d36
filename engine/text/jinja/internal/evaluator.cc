#include "engine/text/jinja/internal/evaluator.h"

#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "engine/text/jinja/internal/builtins.h"
#include "engine/text/jinja/internal/convert.h"
#include "engine/text/jinja/internal/operators.h"
#include "engine/text/jinja/template.h"

namespace longview::jinja::internal {
namespace {

// Marks an error that already names its line and column (errors pass up through macro calls).
constexpr char kLocatedPayload[] = "longview.jinja/located";

absl::StatusOr<Value> CheckedList(std::vector<Value> items, bool tuple) {
  Value v = tuple ? Value::Tuple(std::move(items)) : Value::List(std::move(items));
  if (v.depth() > kMaxNesting) {
    return absl::InvalidArgumentError(
        absl::StrCat("value nested more than ", kMaxNesting, " levels deep"));
  }
  return v;
}

}  // namespace

const Value* Scope::Find(const std::string& name) const {
  for (const Scope* s = this; s != nullptr; s = s->parent.get()) {
    auto it = s->vars.find(name);
    if (it != s->vars.end()) return &it->second;
  }
  return nullptr;
}

Evaluator::Evaluator(const Program& program, const LineIndex& lines, const RenderLimits& limits)
    : program_(program), lines_(lines), limits_(limits) {}

Evaluator::~Evaluator() {
  // Namespaces are the only mutable values, so the only way to a reference cycle.
  for (const auto& ns : namespaces_) ns->entries.clear();
}

absl::StatusOr<Text> Evaluator::Render(const std::vector<std::pair<std::string, Value>>& vars) {
  auto root = std::make_shared<Scope>(nullptr);
  for (const auto& [name, value] : vars) root->vars[name] = value;
  Text out;
  absl::Status st = ExecBody(program_.body, root, out);
  root->vars.clear();
  if (!st.ok()) return st;
  return out;
}

absl::Status Evaluator::Locate(absl::Status status, size_t offset) const {
  if (status.ok() || status.GetPayload(kLocatedPayload).has_value()) return status;
  absl::Status located(status.code(),
                       absl::StrCat(lines_.Describe(offset), ": ", status.message()));
  located.SetPayload(kLocatedPayload, absl::Cord("1"));
  return located;
}

absl::Status Evaluator::Tick() {
  if (++steps_ > limits_.max_steps) {
    return absl::InvalidArgumentError(
        absl::StrCat("the template took more than ", limits_.max_steps, " steps"));
  }
  return absl::OkStatus();
}

absl::Status Evaluator::CheckSize(size_t bytes) const {
  if (bytes > limits_.max_output_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the template's output would exceed ", limits_.max_output_bytes, " bytes"));
  }
  return absl::OkStatus();
}

size_t Evaluator::max_bytes() const { return limits_.max_output_bytes; }

Value Evaluator::NewNamespace() {
  auto d = std::make_shared<Dict>();
  d->is_namespace = true;
  namespaces_.push_back(d);
  return Value::MakeDict(std::move(d));
}

absl::Status Evaluator::Append(Text& out, const Text& piece, size_t offset) {
  RETURN_IF_ERROR(Locate(CheckSize(out.size() + piece.size()), offset));
  out.Append(piece);
  return absl::OkStatus();
}

absl::Status Evaluator::ExecBody(const Body& body, const ScopePtr& scope, Text& out) {
  for (const auto& s : body) {
    RETURN_IF_ERROR(Locate(Tick(), s->offset));
    RETURN_IF_ERROR(Exec(*s, scope, out));
    if (flow_ != Flow::kNormal) return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status Evaluator::Exec(const Stmt& s, const ScopePtr& scope, Text& out) {
  switch (s.kind) {
    case StmtKind::kData:
      return Append(out, Text::Template(s.text), s.offset);
    case StmtKind::kPrint: {
      ASSIGN_OR_RETURN(Value v, Eval(*s.expr, scope));
      ASSIGN_OR_RETURN(Text t, Locate(ToText(v), s.expr->offset));
      return Append(out, t, s.offset);
    }
    case StmtKind::kIf:
      for (const auto& [cond, body] : s.branches) {
        ASSIGN_OR_RETURN(Value c, Eval(*cond, scope));
        if (Truthy(c)) return ExecBody(body, scope, out);
      }
      return ExecBody(s.else_body, scope, out);
    case StmtKind::kFor:
      return ExecFor(s, scope, out);
    case StmtKind::kSet:
    case StmtKind::kSetBlock:
      return ExecSet(s, scope, out);
    case StmtKind::kMacro:
      scope->vars[s.name] = MakeMacro(s, scope, s.name);
      return absl::OkStatus();
    case StmtKind::kCallBlock:
      return ExecCallBlock(s, scope, out);
    case StmtKind::kFilterBlock: {
      Text body;
      RETURN_IF_ERROR(ExecBody(s.body, scope, body));
      const Value input = Value::Str(std::move(body));
      ASSIGN_OR_RETURN(Value v, EvalFilter(*s.filter, scope, &input));
      ASSIGN_OR_RETURN(Text t, Locate(ToText(v), s.offset));
      return Append(out, t, s.offset);
    }
    case StmtKind::kWith: {
      auto inner = std::make_shared<Scope>(scope);
      for (const auto& [name, expr] : s.params) {
        ASSIGN_OR_RETURN(inner->vars[name], Eval(*expr, scope));
      }
      return ExecBody(s.body, inner, out);
    }
    case StmtKind::kBreak:
      flow_ = Flow::kBreak;
      return absl::OkStatus();
    case StmtKind::kContinue:
      flow_ = Flow::kContinue;
      return absl::OkStatus();
    case StmtKind::kGeneration:
      return ExecBody(s.body, scope, out);
  }
  return absl::OkStatus();
}

absl::Status Evaluator::Assign(const std::vector<std::string>& targets, const Value& v,
                               const ScopePtr& scope, size_t offset) {
  if (targets.size() == 1) {
    scope->vars[targets[0]] = v;
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(std::vector<Value> items, Locate(Iterate(v), offset));
  if (items.size() != targets.size()) {
    return Locate(absl::InvalidArgumentError(absl::StrCat(
                      items.size() > targets.size() ? "too many" : "not enough",
                      " values to unpack (expected ", targets.size(), ", got ", items.size(), ")")),
                  offset);
  }
  for (size_t i = 0; i < items.size(); ++i) scope->vars[targets[i]] = items[i];
  return absl::OkStatus();
}

absl::Status Evaluator::ExecFor(const Stmt& s, const ScopePtr& scope, Text& out) {
  ASSIGN_OR_RETURN(Value seq, Eval(*s.expr, scope));
  ASSIGN_OR_RETURN(std::vector<Value> items, Locate(Iterate(seq), s.expr->offset));
  if (s.cond) {
    std::vector<Value> kept;
    for (Value& item : items) {
      RETURN_IF_ERROR(Locate(Tick(), s.offset));
      auto probe = std::make_shared<Scope>(scope);
      RETURN_IF_ERROR(Assign(s.targets, item, probe, s.offset));
      ASSIGN_OR_RETURN(Value keep, Eval(*s.cond, probe));
      if (Truthy(keep)) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) return ExecBody(s.else_body, std::make_shared<Scope>(scope), out);
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    RETURN_IF_ERROR(Locate(Tick(), s.offset));
    auto iter = std::make_shared<Scope>(scope);
    RETURN_IF_ERROR(Assign(s.targets, items[i], iter, s.offset));
    auto loop = std::make_shared<Dict>();
    auto set = [&loop](const char* k, Value v) {
      (void)loop->Set(Value::Str(Text::Template(k)), std::move(v));
    };
    set("index", Value::Int(i + 1));
    set("index0", Value::Int(i));
    set("revindex", Value::Int(n - i));
    set("revindex0", Value::Int(n - i - 1));
    set("first", Value::Bool(i == 0));
    set("last", Value::Bool(i == n - 1));
    set("length", Value::Int(n));
    set("depth", Value::Int(1));
    set("depth0", Value::Int(0));
    set("previtem", i > 0 ? items[i - 1] : Value::Undefined("there is no previous item"));
    set("nextitem", i + 1 < n ? items[i + 1] : Value::Undefined("there is no next item"));
    auto c = std::make_shared<Callable>();
    c->name = "loop.cycle";
    c->fn = [i](Evaluator&, CallArgs a) -> absl::StatusOr<Value> {
      if (a.args.empty()) return absl::InvalidArgumentError("loop.cycle() needs an argument");
      return a.args[static_cast<size_t>(i) % a.args.size()];
    };
    set("cycle", Value::MakeCallable(std::move(c)));
    iter->vars["loop"] = Value::MakeDict(std::move(loop));
    RETURN_IF_ERROR(ExecBody(s.body, iter, out));
    if (flow_ == Flow::kBreak) {
      flow_ = Flow::kNormal;
      break;
    }
    flow_ = Flow::kNormal;
  }
  return absl::OkStatus();
}

absl::Status Evaluator::ExecSet(const Stmt& s, const ScopePtr& scope, Text& out) {
  (void)out;
  Value v;
  if (s.kind == StmtKind::kSetBlock) {
    Text body;
    RETURN_IF_ERROR(ExecBody(s.body, scope, body));
    v = Value::Str(std::move(body));
    if (s.filter) {
      ASSIGN_OR_RETURN(v, EvalFilter(*s.filter, scope, &v));
    }
  } else {
    ASSIGN_OR_RETURN(v, Eval(*s.expr, scope));
  }
  if (!s.ns_attr) return Assign(s.targets, v, scope, s.offset);
  const Value ns = Lookup(s.targets[0], scope);
  if (!ns.is_dict() || !ns.dict().is_namespace) {
    return Locate(absl::InvalidArgumentError(
                      absl::StrCat("can only set attributes of a namespace, and '", s.targets[0],
                                   "' is ", ns.is_undefined() ? "undefined" : TypeName(ns))),
                  s.offset);
  }
  return Locate(ns.dict().Set(Value::Str(Text::Template(s.targets[1])), std::move(v)), s.offset);
}

Value Evaluator::MakeMacro(const Stmt& m, const ScopePtr& scope, const std::string& name) {
  auto c = std::make_shared<Callable>();
  c->name = name;
  std::weak_ptr<Scope> closure = scope;
  const Stmt* macro = &m;
  c->fn = [macro, closure](Evaluator& ev, CallArgs a) {
    return ev.CallMacro(*macro, closure, std::move(a));
  };
  return Value::MakeCallable(std::move(c));
}

absl::StatusOr<Value> Evaluator::CallMacro(const Stmt& m, const std::weak_ptr<Scope>& closure,
                                           CallArgs args) {
  ScopePtr parent = closure.lock();
  if (!parent) return absl::InvalidArgumentError("macro called after its scope ended");
  if (call_depth_ >= limits_.max_call_depth) {
    return absl::InvalidArgumentError(
        absl::StrCat("macro calls nested more than ", limits_.max_call_depth, " deep"));
  }
  auto scope = std::make_shared<Scope>(parent);
  std::vector<bool> bound(m.params.size(), false);
  std::vector<Value> varargs;
  for (size_t i = 0; i < args.args.size(); ++i) {
    if (i < m.params.size()) {
      scope->vars[m.params[i].first] = std::move(args.args[i]);
      bound[i] = true;
    } else {
      varargs.push_back(std::move(args.args[i]));
    }
  }
  auto kwargs = std::make_shared<Dict>();
  for (auto& [key, value] : args.kwargs) {
    size_t i = 0;
    while (i < m.params.size() && m.params[i].first != key) ++i;
    if (i < m.params.size()) {
      if (bound[i]) {
        return absl::InvalidArgumentError(
            absl::StrCat("macro '", m.name, "' got multiple values for argument '", key, "'"));
      }
      scope->vars[key] = std::move(value);
      bound[i] = true;
    } else if (key == "caller") {
      scope->vars["caller"] = std::move(value);
    } else {
      RETURN_IF_ERROR(kwargs->Set(Value::Str(Text::Template(key)), std::move(value)));
    }
  }
  for (size_t i = 0; i < m.params.size(); ++i) {
    if (bound[i]) continue;
    const auto& [name, def] = m.params[i];
    if (def) {
      ASSIGN_OR_RETURN(scope->vars[name], Eval(*def, scope));
    } else {
      scope->vars[name] = Value::Undefined(absl::StrCat("parameter '", name, "' was not provided"));
    }
  }
  scope->vars["varargs"] = Value::Tuple(std::move(varargs));
  scope->vars["kwargs"] = Value::MakeDict(std::move(kwargs));
  ++call_depth_;
  Text out;
  absl::Status st = ExecBody(m.body, scope, out);
  --call_depth_;
  flow_ = Flow::kNormal;
  if (!st.ok()) return st;
  return Value::Str(std::move(out));
}

absl::Status Evaluator::ExecCallBlock(const Stmt& s, const ScopePtr& scope, Text& out) {
  const Expr& call = *s.expr;
  ASSIGN_OR_RETURN(Value callee, Eval(*call.args[0], scope));
  ASSIGN_OR_RETURN(CallArgs args, EvalArgs(call, 1, scope));
  args.kwargs.emplace_back("caller", MakeMacro(s, scope, "caller"));
  ASSIGN_OR_RETURN(Value result, Locate(CallValue(callee, std::move(args)), call.offset));
  ASSIGN_OR_RETURN(Text t, Locate(ToText(result), s.offset));
  return Append(out, t, s.offset);
}

absl::StatusOr<Value> Evaluator::CallValue(const Value& fn, CallArgs args) {
  if (fn.is_undefined()) return UndefinedError(fn);
  if (!fn.is_callable()) {
    return absl::InvalidArgumentError(absl::StrCat("'", TypeName(fn), "' object is not callable"));
  }
  if (!fn.callable().fn) {
    return absl::InvalidArgumentError(absl::StrCat(fn.callable().name, " is not supported"));
  }
  return fn.callable().fn(*this, std::move(args));
}

absl::StatusOr<Value> Evaluator::Filter(std::string_view name, Value input, CallArgs args) {
  return ApplyFilter(*this, name, std::move(input), std::move(args));
}

absl::StatusOr<bool> Evaluator::Test(std::string_view name, const Value& v, CallArgs args) {
  return ApplyTest(*this, name, v, std::move(args));
}

Value Evaluator::Lookup(const std::string& name, const ScopePtr& scope) const {
  if (const Value* v = scope->Find(name)) return *v;
  if (const Value* g = FindGlobal(name)) return *g;
  return Value::Undefined(absl::StrCat("'", name, "' is undefined"));
}

absl::StatusOr<CallArgs> Evaluator::EvalArgs(const Expr& e, size_t first, const ScopePtr& scope) {
  CallArgs a;
  for (size_t i = first; i < e.args.size(); ++i) {
    ASSIGN_OR_RETURN(Value v, Eval(*e.args[i], scope));
    a.args.push_back(std::move(v));
  }
  for (const auto& [key, expr] : e.kwargs) {
    ASSIGN_OR_RETURN(Value v, Eval(*expr, scope));
    a.kwargs.emplace_back(key, std::move(v));
  }
  return a;
}

absl::StatusOr<Value> Evaluator::EvalFilter(const Expr& e, const ScopePtr& scope,
                                            const Value* block_input) {
  Value input;
  if (e.args[0] == nullptr) {
    input = *block_input;
  } else if (e.args[0]->kind == ExprKind::kFilter && block_input != nullptr) {
    ASSIGN_OR_RETURN(input, EvalFilter(*e.args[0], scope, block_input));
  } else {
    ASSIGN_OR_RETURN(input, Eval(*e.args[0], scope));
  }
  ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1, scope));
  return Locate(ApplyFilter(*this, e.name, std::move(input), std::move(args)), e.offset);
}

absl::StatusOr<Value> Evaluator::EvalCompare(const Expr& e, const ScopePtr& scope) {
  ASSIGN_OR_RETURN(Value left, Eval(*e.args[0], scope));
  bool client = IsClient(left);
  for (size_t i = 0; i < e.ops.size(); ++i) {
    ASSIGN_OR_RETURN(Value right, Eval(*e.args[i + 1], scope));
    client = client || IsClient(right);
    ASSIGN_OR_RETURN(bool ok, Locate(CompareOp(e.ops[i], left, right), e.offset));
    if (!ok) return Value::Bool(false, client);
    left = std::move(right);
  }
  return Value::Bool(true, client);
}

absl::StatusOr<Value> Evaluator::Eval(const Expr& e, const ScopePtr& scope) {
  RETURN_IF_ERROR(Locate(Tick(), e.offset));
  absl::StatusOr<Value> v = EvalInner(e, scope);
  // Every value a template can keep passes here, so no list or dict nests deeper than the
  // recursive conversions (and destructors) can follow, whichever filter or method built it.
  if (v.ok() && v->depth() > kMaxNesting) {
    return Locate(absl::InvalidArgumentError(
                      absl::StrCat("value nested more than ", kMaxNesting, " levels deep")),
                  e.offset);
  }
  return Locate(std::move(v), e.offset);
}

absl::StatusOr<Value> Evaluator::EvalInner(const Expr& e, const ScopePtr& scope) {
  switch (e.kind) {
    case ExprKind::kLiteral:
      return e.literal;
    case ExprKind::kName:
      return Lookup(e.name, scope);
    case ExprKind::kList:
    case ExprKind::kTuple: {
      std::vector<Value> items;
      for (const auto& a : e.args) {
        ASSIGN_OR_RETURN(Value v, Eval(*a, scope));
        items.push_back(std::move(v));
      }
      return CheckedList(std::move(items), e.kind == ExprKind::kTuple);
    }
    case ExprKind::kDict: {
      auto d = std::make_shared<Dict>();
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        ASSIGN_OR_RETURN(Value k, Eval(*e.args[i], scope));
        ASSIGN_OR_RETURN(Value v, Eval(*e.args[i + 1], scope));
        RETURN_IF_ERROR(d->Set(std::move(k), std::move(v)));
      }
      Value v = Value::MakeDict(std::move(d));
      if (v.depth() > kMaxNesting) return absl::InvalidArgumentError("value nested too deeply");
      return v;
    }
    case ExprKind::kGetAttr: {
      ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0], scope));
      if (obj.is_undefined()) return UndefinedError(obj);
      return GetAttr(obj, e.name);
    }
    case ExprKind::kGetItem: {
      ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0], scope));
      ASSIGN_OR_RETURN(Value key, Eval(*e.args[1], scope));
      if (obj.is_undefined()) return UndefinedError(obj);
      return GetItem(obj, key);
    }
    case ExprKind::kSlice: {
      ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0], scope));
      if (obj.is_undefined()) return UndefinedError(obj);
      Value parts[3];
      for (int i = 0; i < 3; ++i) {
        if (e.args[i + 1]) {
          ASSIGN_OR_RETURN(parts[i], Eval(*e.args[i + 1], scope));
        }
      }
      return SliceValue(obj, parts[0], parts[1], parts[2]);
    }
    case ExprKind::kCall: {
      ASSIGN_OR_RETURN(Value callee, Eval(*e.args[0], scope));
      ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1, scope));
      return CallValue(callee, std::move(args));
    }
    case ExprKind::kFilter:
      return EvalFilter(e, scope, nullptr);
    case ExprKind::kTest: {
      ASSIGN_OR_RETURN(Value v, Eval(*e.args[0], scope));
      ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1, scope));
      ASSIGN_OR_RETURN(bool r, ApplyTest(*this, e.name, v, std::move(args)));
      return Value::Bool(r != e.negated);
    }
    case ExprKind::kNot: {
      ASSIGN_OR_RETURN(Value v, Eval(*e.args[0], scope));
      return Value::Bool(!Truthy(v), IsClient(v));
    }
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      ASSIGN_OR_RETURN(Value v, Eval(*e.args[0], scope));
      return UnaryOp(e.kind == ExprKind::kNeg, v);
    }
    case ExprKind::kBinary: {
      ASSIGN_OR_RETURN(Value a, Eval(*e.args[0], scope));
      ASSIGN_OR_RETURN(Value b, Eval(*e.args[1], scope));
      return BinaryOp(e.name, a, b, limits_.max_output_bytes);
    }
    case ExprKind::kAnd:
    case ExprKind::kOr: {
      ASSIGN_OR_RETURN(Value a, Eval(*e.args[0], scope));
      if (Truthy(a) == (e.kind == ExprKind::kOr)) return a;
      return Eval(*e.args[1], scope);
    }
    case ExprKind::kConcat: {
      Text t;
      for (const auto& a : e.args) {
        ASSIGN_OR_RETURN(Value v, Eval(*a, scope));
        ASSIGN_OR_RETURN(Text piece, ToText(v));
        RETURN_IF_ERROR(CheckSize(t.size() + piece.size()));
        t.Append(piece);
      }
      return Value::Str(std::move(t));
    }
    case ExprKind::kCompare:
      return EvalCompare(e, scope);
    case ExprKind::kCondExpr: {
      ASSIGN_OR_RETURN(Value c, Eval(*e.args[0], scope));
      if (Truthy(c)) return Eval(*e.args[1], scope);
      if (e.args[2]) return Eval(*e.args[2], scope);
      return Value::Undefined(absl::StrCat("the inline if-expression at ",
                                           lines_.Describe(e.offset),
                                           " evaluated to false and no else section was defined"));
    }
  }
  return absl::InternalError("unknown expression kind");
}

}  // namespace longview::jinja::internal
