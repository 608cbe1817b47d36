// jinja2's tests, and the globals a chat template sees (jinja2's range / namespace / dict and
// transformers' raise_exception / strftime_now).
#include <ctime>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/text/jinja/internal/builtins.h"
#include "engine/text/jinja/internal/convert.h"
#include "engine/text/jinja/internal/operators.h"
#include "engine/text/jinja/internal/pystr.h"

namespace longview::jinja::internal {
namespace {

constexpr std::string_view kTests[] = {
    "defined",     "undefined", "none",   "boolean", "true",     "false",    "integer",
    "float",       "number",    "string", "mapping", "iterable", "sequence", "callable",
    "sameas",      "escaped",   "lower",  "upper",   "odd",      "even",     "divisibleby",
    "eq",          "equalto",   "ne",     "lt",      "lessthan", "le",       "gt",
    "greaterthan", "ge",        "in",     "filter",  "test"};

}  // namespace

bool IsTestName(std::string_view name) {
  for (std::string_view t : kTests) {
    if (t == name) return true;
  }
  return false;
}

absl::StatusOr<bool> ApplyTest(Evaluator&, std::string_view name, const Value& v, CallArgs args) {
  using K = Value::Kind;
  ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind(name, std::move(args), {"other"}));
  const Value other = a.Or(0, Value());
  const bool has_other = a.Get(0) != nullptr;
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.kind() == K::kBool;
  if (name == "true") return v.kind() == K::kBool && v.boolean();
  if (name == "false") return v.kind() == K::kBool && !v.boolean();
  if (name == "integer") return v.kind() == K::kInt;
  if (name == "float") return v.kind() == K::kFloat;
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict() && !v.dict().is_namespace;
  if (name == "iterable" || name == "sequence") {
    return v.is_undefined() || v.is_string() || v.is_list() ||
           (v.is_dict() && !v.dict().is_namespace);
  }
  if (name == "callable") return v.is_callable();
  if (name == "escaped") return false;
  if (name == "sameas") {
    if (v.kind() != other.kind()) return false;
    if (v.is_none() || v.is_undefined()) return true;
    if (v.kind() == K::kBool) return v.boolean() == other.boolean();
    if (v.kind() == K::kInt) return v.integer() == other.integer();
    if (v.is_dict()) return &v.dict() == &other.dict();
    if (v.is_callable()) return &v.callable() == &other.callable();
    if (v.is_list()) return &v.items() == &other.items();
    return false;
  }
  if (name == "lower" || name == "upper") {
    ASSIGN_OR_RETURN(Text t, ToText(v));
    return name == "lower" ? IsLowerText(t.bytes()) : IsUpperText(t.bytes());
  }
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (!v.is_number() || v.kind() == K::kFloat) {
      return absl::InvalidArgumentError(
          absl::StrCat("test '", std::string(name), "' needs an integer"));
    }
    int64_t d = 2;
    if (name == "divisibleby") {
      if (!has_other || !other.is_number() || other.kind() == K::kFloat || other.integer() == 0) {
        return absl::InvalidArgumentError("divisibleby needs a non-zero integer");
      }
      d = other.integer();
      return v.integer() % d == 0;
    }
    return (v.integer() % 2 != 0) == (name == "odd");
  }
  if (name == "filter") return v.is_string() && IsFilterName(v.text().bytes());
  if (name == "test") return v.is_string() && IsTestName(v.text().bytes());
  if (!has_other)
    return absl::InvalidArgumentError(
        absl::StrCat("test '", std::string(name), "' needs an argument"));
  if (name == "eq" || name == "equalto") return CompareOp("==", v, other);
  if (name == "ne") return CompareOp("!=", v, other);
  if (name == "lt" || name == "lessthan") return CompareOp("<", v, other);
  if (name == "le") return CompareOp("<=", v, other);
  if (name == "gt" || name == "greaterthan") return CompareOp(">", v, other);
  if (name == "ge") return CompareOp(">=", v, other);
  if (name == "in") return CompareOp("in", v, other);
  return absl::InvalidArgumentError(absl::StrCat("no test named '", std::string(name), "'"));
}

namespace {

// jinja2's sandbox caps range() at this many items.
constexpr int64_t kMaxRange = 100000;

absl::StatusOr<Value> Range(Evaluator& ev, CallArgs args) {
  if (!args.kwargs.empty() || args.args.empty() || args.args.size() > 3) {
    return absl::InvalidArgumentError("range() takes 1 to 3 integer arguments");
  }
  int64_t p[3] = {0, 0, 1};
  for (size_t i = 0; i < args.args.size(); ++i) {
    const Value& x = args.args[i];
    if (!x.is_number() || x.kind() == Value::Kind::kFloat) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", TypeName(x), "' object cannot be interpreted as an integer"));
    }
  }
  if (args.args.size() == 1) {
    p[1] = args.args[0].integer();
  } else {
    p[0] = args.args[0].integer();
    p[1] = args.args[1].integer();
    if (args.args.size() == 3) p[2] = args.args[2].integer();
  }
  if (p[2] == 0) return absl::InvalidArgumentError("range() arg 3 must not be zero");
  std::vector<Value> out;
  for (int64_t i = p[0]; p[2] > 0 ? i < p[1] : i > p[1]; i += p[2]) {
    RETURN_IF_ERROR(ev.Tick());
    if (static_cast<int64_t>(out.size()) >= kMaxRange) {
      return absl::InvalidArgumentError(
          absl::StrCat("range too big: the sandbox allows at most ", kMaxRange, " items"));
    }
    out.push_back(Value::Int(i));
  }
  return Value::List(std::move(out));
}

// Keyword arguments (and positional dicts first) into a dict: namespace() and dict().
absl::Status FillDict(Dict& d, CallArgs args, std::string_view fn) {
  for (const Value& a : args.args) {
    if (!a.is_dict()) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(fn), "() takes dicts and keyword arguments"));
    }
    for (const auto& [k, v] : a.dict().entries) RETURN_IF_ERROR(d.Set(k, v));
  }
  for (auto& [k, v] : args.kwargs) RETURN_IF_ERROR(d.Set(Value::Str(Text::Template(k)), v));
  return absl::OkStatus();
}

absl::StatusOr<Value> Namespace(Evaluator& ev, CallArgs args) {
  Value ns = ev.NewNamespace();
  RETURN_IF_ERROR(FillDict(ns.dict(), std::move(args), "namespace"));
  return ns;
}

absl::StatusOr<Value> MakeDict(Evaluator&, CallArgs args) {
  auto d = std::make_shared<Dict>();
  RETURN_IF_ERROR(FillDict(*d, std::move(args), "dict"));
  return Value::MakeDict(std::move(d));
}

absl::StatusOr<Value> RaiseException(Evaluator&, CallArgs args) {
  std::string message = "raise_exception() called";
  if (!args.args.empty()) {
    ASSIGN_OR_RETURN(Text t, ToText(args.args[0]));
    message = t.bytes();
  }
  return absl::InvalidArgumentError(message);
}

absl::StatusOr<Value> StrftimeNow(Evaluator&, CallArgs args) {
  ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind("strftime_now", std::move(args), {"format"}));
  const Value* f = a.Get(0);
  if (f == nullptr || !f->is_string()) {
    return absl::InvalidArgumentError("strftime_now() needs a format string");
  }
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[256];
  const size_t n = std::strftime(buf, sizeof(buf), f->text().bytes().c_str(), &tm);
  Text t;
  t.Append(std::string_view(buf, n), f->text().IsAllTemplate());
  return Value::Str(std::move(t));
}

Value Builtin(const char* name, absl::StatusOr<Value> (*fn)(Evaluator&, CallArgs)) {
  auto c = std::make_shared<Callable>();
  c->name = name;
  c->fn = fn;
  return Value::MakeCallable(std::move(c));
}

}  // namespace

const Value* FindGlobal(std::string_view name) {
  static const auto* globals = new std::unordered_map<std::string_view, Value>{
      {"range", Builtin("range", Range)},
      {"namespace", Builtin("namespace", Namespace)},
      {"dict", Builtin("dict", MakeDict)},
      {"raise_exception", Builtin("raise_exception", RaiseException)},
      {"strftime_now", Builtin("strftime_now", StrftimeNow)},
  };
  auto it = globals->find(name);
  return it == globals->end() ? nullptr : &it->second;
}

}  // namespace longview::jinja::internal
