// jinja2's filters (the subset chat templates use), with transformers' `tojson`.
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/text/jinja/internal/builtins.h"
#include "engine/text/jinja/internal/convert.h"
#include "engine/text/jinja/internal/operators.h"
#include "engine/text/jinja/internal/pystr.h"

namespace longview::jinja::internal {
namespace {

using FilterFn = absl::StatusOr<Value> (*)(Evaluator&, const Value&, CallArgs);

absl::StatusOr<Value> Trim(Evaluator&, const Value& in, CallArgs args) {
  ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind("trim", std::move(args), {"chars"}));
  ASSIGN_OR_RETURN(Text t, AsText(in));
  std::optional<std::string_view> chars;
  const Value* c = a.Get(0);
  if (c != nullptr && c->is_string()) chars = c->text().bytes();
  auto [b, e] = StripRange(t.bytes(), true, true, chars);
  return Value::Str(t.Slice(b, e));
}

absl::StatusOr<Value> ToJsonFilter(Evaluator& ev, const Value& in, CallArgs args) {
  // transformers: json.dumps(x, ensure_ascii=False, indent=None, separators=None,
  // sort_keys=False), positional arguments in that order.
  ASSIGN_OR_RETURN(BoundArgs a,
                   BoundArgs::Bind("tojson", std::move(args),
                                   {"ensure_ascii", "indent", "separators", "sort_keys"}));
  JsonOptions o;
  o.ensure_ascii = Truthy(a.Or(0, Value::Bool(false)));
  const Value indent = a.Or(1, Value::None());
  if (indent.is_string()) {
    o.indent = indent.text().bytes();
  } else if (indent.kind() == Value::Kind::kInt) {
    o.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(indent.integer(), 0, 64)), ' ');
  } else if (!indent.is_none()) {
    return absl::InvalidArgumentError("tojson indent must be an integer, a string or None");
  }
  if (o.indent) o.item_separator = ",";
  const Value seps = a.Or(2, Value::None());
  if (!seps.is_none()) {
    if (!seps.is_list() || seps.items().size() != 2 || !seps.items()[0].is_string() ||
        !seps.items()[1].is_string()) {
      return absl::InvalidArgumentError("tojson separators must be a pair of strings");
    }
    o.item_separator = seps.items()[0].text().bytes();
    o.key_separator = seps.items()[1].text().bytes();
  }
  o.sort_keys = Truthy(a.Or(3, Value::Bool(false)));
  ASSIGN_OR_RETURN(Text t, ToJson(in, o));
  RETURN_IF_ERROR(ev.CheckSize(t.size()));
  return Value::Str(std::move(t));
}

absl::StatusOr<Value> Length(Evaluator&, const Value& in, CallArgs args) {
  RETURN_IF_ERROR(BoundArgs::Bind("length", std::move(args), {}).status());
  switch (in.kind()) {
    case Value::Kind::kUndefined:
      return Value::Int(0);
    case Value::Kind::kString:
      return Value::Int(static_cast<int64_t>(CountChars(in.text().bytes())), IsClient(in));
    case Value::Kind::kList:
      return Value::Int(static_cast<int64_t>(in.items().size()));
    case Value::Kind::kDict:
      if (!in.dict().is_namespace)
        return Value::Int(static_cast<int64_t>(in.dict().entries.size()));
      break;
    default:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("object of type '", TypeName(in), "' has no len()"));
}

// select / reject / selectattr / rejectattr.
absl::StatusOr<Value> SelectImpl(Evaluator& ev, const Value& in, CallArgs args, bool with_attr,
                                 bool keep) {
  const char* fn = with_attr ? (keep ? "selectattr" : "rejectattr") : (keep ? "select" : "reject");
  if (!args.kwargs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(fn, "() takes no keyword arguments"));
  }
  std::vector<Value> rest = std::move(args.args);
  std::string attr;
  if (with_attr) {
    if (rest.empty() || !rest[0].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(fn, "() needs an attribute name"));
    }
    attr = rest[0].text().bytes();
    rest.erase(rest.begin());
  }
  std::optional<std::string> test;
  if (!rest.empty()) {
    if (!rest[0].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(fn, "() test name must be a string"));
    }
    test = rest[0].text().bytes();
    rest.erase(rest.begin());
  }
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
  std::vector<Value> out;
  for (Value& item : items) {
    RETURN_IF_ERROR(ev.Tick());
    const Value v = with_attr ? GetAttrPath(item, attr) : item;
    bool r;
    if (test) {
      ASSIGN_OR_RETURN(r, ev.Test(*test, v, CallArgs{rest, {}}));
    } else {
      r = Truthy(v);
    }
    if (r == keep) out.push_back(std::move(item));
  }
  return Value::List(std::move(out));
}

absl::StatusOr<Value> Select(Evaluator& ev, const Value& in, CallArgs a) {
  return SelectImpl(ev, in, std::move(a), false, true);
}
absl::StatusOr<Value> Reject(Evaluator& ev, const Value& in, CallArgs a) {
  return SelectImpl(ev, in, std::move(a), false, false);
}
absl::StatusOr<Value> SelectAttr(Evaluator& ev, const Value& in, CallArgs a) {
  return SelectImpl(ev, in, std::move(a), true, true);
}
absl::StatusOr<Value> RejectAttr(Evaluator& ev, const Value& in, CallArgs a) {
  return SelectImpl(ev, in, std::move(a), true, false);
}

absl::StatusOr<Value> Map(Evaluator& ev, const Value& in, CallArgs args) {
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
  std::vector<Value> out;
  const Value* attribute = nullptr;
  const Value* dflt = nullptr;
  for (const auto& [k, v] : args.kwargs) {
    if (k == "attribute") attribute = &v;
    if (k == "default") dflt = &v;
  }
  if (attribute != nullptr) {
    if (!args.args.empty()) {
      return absl::InvalidArgumentError("map() with attribute= takes no positional arguments");
    }
    ASSIGN_OR_RETURN(Text path, AsText(*attribute));
    for (const Value& item : items) {
      Value v = GetAttrPath(item, path.bytes());
      out.push_back(v.is_undefined() && dflt != nullptr ? *dflt : v);
    }
    return Value::List(std::move(out));
  }
  if (args.args.empty() || !args.args[0].is_string()) {
    return absl::InvalidArgumentError("map() needs a filter name or attribute=");
  }
  const std::string name = args.args[0].text().bytes();
  CallArgs rest{{args.args.begin() + 1, args.args.end()}, args.kwargs};
  for (const Value& item : items) {
    RETURN_IF_ERROR(ev.Tick());
    ASSIGN_OR_RETURN(Value v, ev.Filter(name, item, rest));
    out.push_back(std::move(v));
  }
  return Value::List(std::move(out));
}

absl::StatusOr<Value> Join(Evaluator& ev, const Value& in, CallArgs args) {
  ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind("join", std::move(args), {"d", "attribute"}));
  ASSIGN_OR_RETURN(Text sep, AsText(a.Or(0, Value::Str(Text()))));
  const Value* attr = a.Get(1);
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
  Text out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out.Append(sep);
    Value v = items[i];
    if (attr != nullptr) {
      ASSIGN_OR_RETURN(Text path, AsText(*attr));
      v = GetAttrPath(v, path.bytes());
    }
    ASSIGN_OR_RETURN(Text t, AsText(v));
    out.Append(t);
    RETURN_IF_ERROR(ev.CheckSize(out.size()));
  }
  return Value::Str(std::move(out));
}

absl::StatusOr<Value> FirstLast(const Value& in, CallArgs args, bool first) {
  RETURN_IF_ERROR(BoundArgs::Bind(first ? "first" : "last", std::move(args), {}).status());
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
  if (items.empty()) {
    return Value::Undefined(first ? "No first item, sequence was empty."
                                  : "No last item, sequence was empty.");
  }
  return first ? items.front() : items.back();
}
absl::StatusOr<Value> First(Evaluator&, const Value& in, CallArgs a) {
  return FirstLast(in, std::move(a), true);
}
absl::StatusOr<Value> Last(Evaluator&, const Value& in, CallArgs a) {
  return FirstLast(in, std::move(a), false);
}

absl::StatusOr<Value> Default(Evaluator&, const Value& in, CallArgs args) {
  ASSIGN_OR_RETURN(BoundArgs a,
                   BoundArgs::Bind("default", std::move(args), {"default_value", "boolean"}));
  const bool boolean = Truthy(a.Or(1, Value::Bool(false)));
  if (in.is_undefined() || (boolean && !Truthy(in))) return a.Or(0, Value::Str(Text()));
  return in;
}

absl::StatusOr<Value> TextFilter(const Value& in, CallArgs args, const char* name,
                                 Text (*f)(const Text&)) {
  RETURN_IF_ERROR(BoundArgs::Bind(name, std::move(args), {}).status());
  ASSIGN_OR_RETURN(Text t, AsText(in));
  return Value::Str(f(t));
}
absl::StatusOr<Value> Upper(Evaluator&, const Value& in, CallArgs a) {
  return TextFilter(in, std::move(a), "upper", UpperText);
}
absl::StatusOr<Value> Lower(Evaluator&, const Value& in, CallArgs a) {
  return TextFilter(in, std::move(a), "lower", LowerText);
}
absl::StatusOr<Value> Capitalize(Evaluator&, const Value& in, CallArgs a) {
  return TextFilter(in, std::move(a), "capitalize", CapitalizeText);
}

absl::StatusOr<Value> Title(Evaluator&, const Value& in, CallArgs a) {
  return TextFilter(in, std::move(a), "title", JinjaTitleText);
}

absl::StatusOr<Value> String(Evaluator&, const Value& in, CallArgs args) {
  RETURN_IF_ERROR(BoundArgs::Bind("string", std::move(args), {}).status());
  ASSIGN_OR_RETURN(Text t, AsText(in));
  return Value::Str(std::move(t));
}

absl::StatusOr<Value> Safe(Evaluator&, const Value& in, CallArgs args) {
  RETURN_IF_ERROR(BoundArgs::Bind("safe", std::move(args), {}).status());
  return in;
}

// Python's float(str): optional sign, digits with single underscores, inf / nan.
std::optional<double> ParseFloat(std::string_view s) {
  auto [b, e] = StripRange(s, true, true, std::nullopt);
  std::string t;
  for (size_t i = b; i < e; ++i) {
    if (s[i] != '_') t += s[i];
  }
  double d;
  if (t.empty() || !absl::SimpleAtod(t, &d)) return std::nullopt;
  return d;
}

absl::StatusOr<Value> Int(Evaluator&, const Value& in, CallArgs args) {
  ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind("int", std::move(args), {"default", "base"}));
  const Value dflt = a.Or(0, Value::Int(0));
  const bool client = IsClient(in);
  if (in.kind() == Value::Kind::kInt || in.kind() == Value::Kind::kBool) {
    return Value::Int(in.integer(), client);
  }
  if (in.kind() == Value::Kind::kFloat) {
    const double d = in.number();
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return dflt;
    return Value::Int(static_cast<int64_t>(d), client);
  }
  if (in.is_string()) {
    const int64_t base = a.Or(1, Value::Int(10)).integer();
    auto [b, e] = StripRange(in.text().bytes(), true, true, std::nullopt);
    std::string t;
    for (size_t i = b; i < e; ++i) {
      if (in.text().bytes()[i] != '_') t += in.text().bytes()[i];
    }
    int64_t v;
    if (base == 10 && absl::SimpleAtoi(t, &v)) return Value::Int(v, client);
    if (base == 16 && absl::SimpleHexAtoi(t, &v)) return Value::Int(v, client);
    if (std::optional<double> d = ParseFloat(in.text().bytes());
        d && std::isfinite(*d) && std::fabs(*d) < 9.2e18) {
      return Value::Int(static_cast<int64_t>(*d), client);
    }
  }
  return dflt;
}

absl::StatusOr<Value> Float(Evaluator&, const Value& in, CallArgs args) {
  ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind("float", std::move(args), {"default"}));
  if (in.is_number()) return Value::Float(in.number(), IsClient(in));
  if (in.is_string()) {
    if (std::optional<double> d = ParseFloat(in.text().bytes())) {
      return Value::Float(*d, IsClient(in));
    }
  }
  return a.Or(0, Value::Float(0.0));
}

absl::StatusOr<Value> ListFilter(Evaluator&, const Value& in, CallArgs args) {
  RETURN_IF_ERROR(BoundArgs::Bind("list", std::move(args), {}).status());
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
  return Value::List(std::move(items));
}

absl::StatusOr<Value> Abs(Evaluator&, const Value& in, CallArgs args) {
  RETURN_IF_ERROR(BoundArgs::Bind("abs", std::move(args), {}).status());
  if (in.kind() == Value::Kind::kFloat) return Value::Float(std::fabs(in.number()), in.client());
  if (in.is_number()) {
    if (in.integer() == INT64_MIN) return absl::InvalidArgumentError("integer overflow");
    return Value::Int(in.integer() < 0 ? -in.integer() : in.integer(), in.client());
  }
  return absl::InvalidArgumentError(
      absl::StrCat("bad operand type for abs(): '", TypeName(in), "'"));
}

absl::StatusOr<Value> Round(Evaluator&, const Value& in, CallArgs args) {
  ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind("round", std::move(args), {"precision", "method"}));
  if (!in.is_number()) {
    return absl::InvalidArgumentError(absl::StrCat("round() of '", TypeName(in), "'"));
  }
  const int64_t precision = a.Or(0, Value::Int(0)).integer();
  ASSIGN_OR_RETURN(Text method, AsText(a.Or(1, Value::Str(Text::Template("common")))));
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = in.number() * scale;
  double r;
  if (method.bytes() == "common") {
    r = std::nearbyint(x);
  } else if (method.bytes() == "ceil") {
    r = std::ceil(x);
  } else if (method.bytes() == "floor") {
    r = std::floor(x);
  } else {
    return absl::InvalidArgumentError("round method must be 'common', 'ceil' or 'floor'");
  }
  return Value::Float(r / scale, in.client());
}

absl::StatusOr<Value> Indent(Evaluator& ev, const Value& in, CallArgs args) {
  ASSIGN_OR_RETURN(BoundArgs a,
                   BoundArgs::Bind("indent", std::move(args), {"width", "first", "blank"}));
  const Value width = a.Or(0, Value::Int(4));
  Text indention;
  if (width.is_string()) {
    indention = width.text();
  } else if (width.is_number()) {
    indention = Text::Template(
        std::string(static_cast<size_t>(std::clamp<int64_t>(width.integer(), 0, 1024)), ' '));
  } else {
    return absl::InvalidArgumentError("indent width must be an integer or a string");
  }
  const bool first = Truthy(a.Or(1, Value::Bool(false)));
  const bool blank = Truthy(a.Or(2, Value::Bool(false)));
  ASSIGN_OR_RETURN(Text s, AsText(in));
  s.AppendTemplate("\n");  // jinja2 appends a newline so that splitlines keeps a last empty line
  std::vector<ByteRange> lines = SplitLinesRanges(s.bytes(), false);
  Text nl_indent = Text::Template("\n");
  nl_indent.Append(indention);
  Text rv;
  for (size_t i = 0; i < lines.size(); ++i) {
    const Text line = s.Slice(lines[i].first, lines[i].second);
    if (i > 0) {
      if (blank) {
        rv.Append(nl_indent);
      } else {
        rv.AppendTemplate("\n");
        if (!line.empty()) rv.Append(indention);
      }
    }
    rv.Append(line);
    RETURN_IF_ERROR(ev.CheckSize(rv.size()));
  }
  if (first) {
    Text out = indention;
    out.Append(rv);
    return Value::Str(std::move(out));
  }
  return Value::Str(std::move(rv));
}

absl::StatusOr<Value> Replace(Evaluator& ev, const Value& in, CallArgs args) {
  ASSIGN_OR_RETURN(BoundArgs a,
                   BoundArgs::Bind("replace", std::move(args), {"old", "new", "count"}));
  ASSIGN_OR_RETURN(Text s, AsText(in));
  ASSIGN_OR_RETURN(Text old, AsText(a.Or(0, Value())));
  ASSIGN_OR_RETURN(Text repl, AsText(a.Or(1, Value())));
  const Value count = a.Or(2, Value::None());
  ASSIGN_OR_RETURN(
      Text r, ReplaceText(s, old, repl, count.is_number() ? count.integer() : -1, ev.max_bytes()));
  RETURN_IF_ERROR(ev.CheckSize(r.size()));
  return Value::Str(std::move(r));
}

// The key a filter compares by: the attribute, and lower case unless case-sensitive.
Value SortKey(const Value& item, const Value* attribute, bool case_sensitive) {
  Value k = item;
  if (attribute != nullptr && attribute->is_string()) {
    k = GetAttrPath(item, attribute->text().bytes());
  }
  if (!case_sensitive && k.is_string()) k = Value::Str(LowerText(k.text()));
  return k;
}

absl::StatusOr<Value> Unique(Evaluator&, const Value& in, CallArgs args) {
  ASSIGN_OR_RETURN(BoundArgs a,
                   BoundArgs::Bind("unique", std::move(args), {"case_sensitive", "attribute"}));
  const bool cs = Truthy(a.Or(0, Value::Bool(false)));
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
  Dict seen;
  std::vector<Value> out;
  for (Value& item : items) {
    Value key = SortKey(item, a.Get(1), cs);
    if (seen.Find(key) != nullptr) continue;
    RETURN_IF_ERROR(seen.Set(std::move(key), Value()));
    out.push_back(std::move(item));
  }
  return Value::List(std::move(out));
}

absl::StatusOr<Value> Reverse(Evaluator&, const Value& in, CallArgs args) {
  RETURN_IF_ERROR(BoundArgs::Bind("reverse", std::move(args), {}).status());
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
  std::reverse(items.begin(), items.end());
  if (in.is_string()) {
    Text out;
    for (const Value& c : items) out.Append(c.text());
    return Value::Str(std::move(out));
  }
  return Value::List(std::move(items));
}

// Stable sort of `items` by `keys`; the first comparison error wins.
absl::Status SortBy(std::vector<Value>& items, std::vector<Value> keys, bool reverse) {
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  absl::Status error;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    if (!error.ok()) return false;
    absl::StatusOr<int> c = reverse ? Compare(keys[y], keys[x]) : Compare(keys[x], keys[y]);
    if (!c.ok()) {
      error = c.status();
      return false;
    }
    return *c < 0;
  });
  RETURN_IF_ERROR(error);
  std::vector<Value> sorted;
  sorted.reserve(items.size());
  for (size_t i : order) sorted.push_back(std::move(items[i]));
  items = std::move(sorted);
  return absl::OkStatus();
}

absl::StatusOr<Value> Sort(Evaluator&, const Value& in, CallArgs args) {
  ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind("sort", std::move(args),
                                                {"reverse", "case_sensitive", "attribute"}));
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
  std::vector<Value> keys;
  for (const Value& item : items) {
    keys.push_back(SortKey(item, a.Get(2), Truthy(a.Or(1, Value::Bool(false)))));
  }
  RETURN_IF_ERROR(SortBy(items, std::move(keys), Truthy(a.Or(0, Value::Bool(false)))));
  return Value::List(std::move(items));
}

absl::StatusOr<Value> DictSort(Evaluator&, const Value& in, CallArgs args) {
  ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind("dictsort", std::move(args),
                                                {"case_sensitive", "by", "reverse"}));
  if (!in.is_dict() || in.dict().is_namespace) {
    return absl::InvalidArgumentError("dictsort needs a dict");
  }
  ASSIGN_OR_RETURN(Text by, AsText(a.Or(1, Value::Str(Text::Template("key")))));
  if (by.bytes() != "key" && by.bytes() != "value") {
    return absl::InvalidArgumentError("You can only sort by either 'key' or 'value'");
  }
  const bool cs = Truthy(a.Or(0, Value::Bool(false)));
  std::vector<Value> items, keys;
  for (const auto& [k, v] : in.dict().entries) {
    items.push_back(Value::Tuple({k, v}));
    keys.push_back(SortKey(by.bytes() == "key" ? k : v, nullptr, cs));
  }
  RETURN_IF_ERROR(SortBy(items, std::move(keys), Truthy(a.Or(2, Value::Bool(false)))));
  return Value::List(std::move(items));
}

absl::StatusOr<Value> Items(Evaluator&, const Value& in, CallArgs args) {
  RETURN_IF_ERROR(BoundArgs::Bind("items", std::move(args), {}).status());
  if (in.is_undefined()) return Value::List({});
  if (!in.is_dict() || in.dict().is_namespace) {
    return absl::InvalidArgumentError("Can only get item pairs from a mapping.");
  }
  std::vector<Value> out;
  for (const auto& [k, v] : in.dict().entries) out.push_back(Value::Tuple({k, v}));
  return Value::List(std::move(out));
}

absl::StatusOr<Value> MinMax(const Value& in, CallArgs args, bool max) {
  ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind(max ? "max" : "min", std::move(args),
                                                {"case_sensitive", "attribute"}));
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
  if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
  const bool cs = Truthy(a.Or(0, Value::Bool(false)));
  size_t best = 0;
  Value best_key = SortKey(items[0], a.Get(1), cs);
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = SortKey(items[i], a.Get(1), cs);
    ASSIGN_OR_RETURN(int c, Compare(k, best_key));
    if (max ? c > 0 : c < 0) {
      best = i;
      best_key = std::move(k);
    }
  }
  return items[best];
}
absl::StatusOr<Value> Max(Evaluator&, const Value& in, CallArgs a) {
  return MinMax(in, std::move(a), true);
}
absl::StatusOr<Value> Min(Evaluator&, const Value& in, CallArgs a) {
  return MinMax(in, std::move(a), false);
}

absl::StatusOr<Value> Sum(Evaluator& ev, const Value& in, CallArgs args) {
  ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind("sum", std::move(args), {"attribute", "start"}));
  ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(in));
  Value total = a.Or(1, Value::Int(0));
  for (const Value& item : items) {
    RETURN_IF_ERROR(ev.Tick());
    const Value v =
        a.Get(0) && a.Get(0)->is_string() ? GetAttrPath(item, a.Get(0)->text().bytes()) : item;
    ASSIGN_OR_RETURN(total, BinaryOp("+", total, v, ev.max_bytes()));
  }
  return total;
}

absl::StatusOr<Value> Attr(Evaluator&, const Value& in, CallArgs args) {
  ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind("attr", std::move(args), {"name"}));
  ASSIGN_OR_RETURN(Text name, AsText(a.Or(0, Value())));
  return GetAttr(in, name.bytes());
}

absl::StatusOr<Value> Format(Evaluator& ev, const Value& in, CallArgs args) {
  if (!args.kwargs.empty())
    return absl::InvalidArgumentError("format() with keywords is not supported");
  ASSIGN_OR_RETURN(Text fmt, AsText(in));
  ASSIGN_OR_RETURN(
      Value v, BinaryOp("%", Value::Str(fmt), Value::Tuple(std::move(args.args)), ev.max_bytes()));
  RETURN_IF_ERROR(ev.CheckSize(v.text().size()));
  return v;
}

const std::unordered_map<std::string_view, FilterFn>& Filters() {
  static const auto* filters = new std::unordered_map<std::string_view, FilterFn>{
      {"trim", Trim},
      {"tojson", ToJsonFilter},
      {"length", Length},
      {"count", Length},
      {"select", Select},
      {"reject", Reject},
      {"selectattr", SelectAttr},
      {"rejectattr", RejectAttr},
      {"map", Map},
      {"join", Join},
      {"first", First},
      {"last", Last},
      {"default", Default},
      {"d", Default},
      {"upper", Upper},
      {"lower", Lower},
      {"capitalize", Capitalize},
      {"title", Title},
      {"string", String},
      {"safe", Safe},
      {"int", Int},
      {"float", Float},
      {"list", ListFilter},
      {"abs", Abs},
      {"round", Round},
      {"indent", Indent},
      {"replace", Replace},
      {"unique", Unique},
      {"reverse", Reverse},
      {"sort", Sort},
      {"dictsort", DictSort},
      {"items", Items},
      {"max", Max},
      {"min", Min},
      {"sum", Sum},
      {"attr", Attr},
      {"format", Format},
  };
  return *filters;
}

}  // namespace

bool IsFilterName(std::string_view name) { return Filters().count(name) > 0; }

absl::StatusOr<Value> ApplyFilter(Evaluator& ev, std::string_view name, Value input,
                                  CallArgs args) {
  auto it = Filters().find(name);
  if (it == Filters().end()) {
    return absl::InvalidArgumentError(absl::StrCat("no filter named '", std::string(name), "'"));
  }
  return it->second(ev, input, std::move(args));
}

}  // namespace longview::jinja::internal
