// Attribute and item lookup, and the Python methods of str, dict and list that templates call.
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/text/jinja/internal/builtins.h"
#include "engine/text/jinja/internal/convert.h"
#include "engine/text/jinja/internal/pystr.h"

namespace longview::jinja::internal {

absl::StatusOr<BoundArgs> BoundArgs::Bind(std::string_view fn, CallArgs args,
                                          std::initializer_list<std::string_view> names,
                                          bool rest_ok) {
  BoundArgs b;
  b.values_.resize(names.size());
  b.given_.assign(names.size(), false);
  for (size_t i = 0; i < args.args.size(); ++i) {
    if (i < names.size()) {
      b.values_[i] = std::move(args.args[i]);
      b.given_[i] = true;
    } else if (rest_ok) {
      b.rest_.push_back(std::move(args.args[i]));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(std::string(fn), "() takes at most ",
                                                     names.size(), " argument(s), got ",
                                                     args.args.size()));
    }
  }
  for (auto& [key, value] : args.kwargs) {
    auto it = std::find(names.begin(), names.end(), key);
    if (it == names.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(fn), "() got an unexpected keyword argument '", key, "'"));
    }
    const size_t i = static_cast<size_t>(it - names.begin());
    if (b.given_[i]) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(fn), "() got multiple values for argument '", key, "'"));
    }
    b.values_[i] = std::move(value);
    b.given_[i] = true;
  }
  return b;
}

absl::StatusOr<Text> AsText(const Value& v) { return ToText(v); }

Text UpperText(const Text& t) { return t.WithBytes(ChangeCase(t.bytes(), CaseMode::kUpper)); }
Text LowerText(const Text& t) { return t.WithBytes(ChangeCase(t.bytes(), CaseMode::kLower)); }
Text CapitalizeText(const Text& t) {
  return t.WithBytes(ChangeCase(t.bytes(), CaseMode::kCapitalize));
}
Text JinjaTitleText(const Text& t) {
  return t.WithBytes(ChangeCase(t.bytes(), CaseMode::kJinjaTitle));
}

absl::StatusOr<Text> ReplaceText(const Text& s, const Text& old, const Text& repl, int64_t count,
                                 size_t max_bytes) {
  const std::string& b = s.bytes();
  const std::string& o = old.bytes();
  Text out;
  auto add_repl = [&](size_t at, size_t len) {
    const bool keep = o.empty() ? s.IsAllTemplate() : s.IsTemplate(at, at + len);
    if (keep) {
      out.Append(repl);
    } else {
      out.AppendClient(repl.bytes());
    }
  };
  int64_t done = 0;
  if (o.empty()) {
    std::vector<size_t> offsets = CharOffsets(b);
    for (size_t i = 0; i < offsets.size(); ++i) {
      if (count < 0 || done < count) {
        add_repl(offsets[i], 0);
        ++done;
      }
      if (i + 1 < offsets.size()) out.Append(s.Slice(offsets[i], offsets[i + 1]));
      if (out.size() > max_bytes) break;
    }
  } else {
    size_t pos = 0;
    while (count < 0 || done < count) {
      const size_t hit = b.find(o, pos);
      if (hit == std::string::npos) break;
      out.Append(s.Slice(pos, hit));
      add_repl(hit, o.size());
      pos = hit + o.size();
      ++done;
      if (out.size() > max_bytes) break;
    }
    out.Append(s.Slice(pos, b.size()));
  }
  if (out.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("replace() would exceed ", max_bytes, " bytes"));
  }
  return out;
}

namespace {

absl::StatusOr<std::optional<std::string>> OptionalString(const BoundArgs& a, size_t i,
                                                          std::string_view what) {
  const Value* v = a.Get(i);
  if (v == nullptr || v->is_none()) return std::nullopt;
  if (!v->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(what), " must be a string or None"));
  }
  return v->text().bytes();
}

Value RangesToList(const Text& t, const std::vector<ByteRange>& ranges) {
  std::vector<Value> items;
  items.reserve(ranges.size());
  for (const auto& [b, e] : ranges) items.push_back(Value::Str(t.Slice(b, e)));
  return Value::List(std::move(items));
}

absl::StatusOr<Value> Split(const Text& t, CallArgs args, bool from_right) {
  ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind("split", std::move(args), {"sep", "maxsplit"}));
  ASSIGN_OR_RETURN(std::optional<std::string> sep, OptionalString(a, 0, "split() separator"));
  if (sep && sep->empty()) return absl::InvalidArgumentError("empty separator");
  int64_t maxsplit = -1;
  if (const Value* m = a.Get(1)) {
    if (!m->is_number()) return absl::InvalidArgumentError("maxsplit must be an integer");
    maxsplit = m->integer();
  }
  std::optional<std::string_view> sv;
  if (sep) sv = *sep;
  return RangesToList(
      t, from_right ? RSplitRanges(t.bytes(), sv, maxsplit) : SplitRanges(t.bytes(), sv, maxsplit));
}

// startswith / endswith with a string or a tuple of strings.
absl::StatusOr<Value> Affix(const Text& t, CallArgs args, bool prefix) {
  ASSIGN_OR_RETURN(BoundArgs a,
                   BoundArgs::Bind(prefix ? "startswith" : "endswith", std::move(args), {"affix"}));
  const Value* v = a.Get(0);
  if (v == nullptr) return absl::InvalidArgumentError("startswith() / endswith() need an argument");
  std::vector<Value> options = v->is_list() ? v->items() : std::vector<Value>{*v};
  const std::string& s = t.bytes();
  for (const Value& o : options) {
    if (!o.is_string()) {
      return absl::InvalidArgumentError("startswith() / endswith() take strings");
    }
    const std::string& x = o.text().bytes();
    if (x.size() > s.size()) continue;
    if (prefix ? s.compare(0, x.size(), x) == 0
               : s.compare(s.size() - x.size(), x.size(), x) == 0) {
      return Value::Bool(true, !t.IsAllTemplate());
    }
  }
  return Value::Bool(false, !t.IsAllTemplate());
}

template <typename Pred>
Value AllChars(const Text& t, Pred pred) {
  const std::string& s = t.bytes();
  bool ok = !s.empty();
  char32_t c;
  for (size_t i = 0; ok && i < s.size();) {
    i += DecodeUtf8(s, i, &c);
    ok = pred(c);
  }
  return Value::Bool(ok, !t.IsAllTemplate());
}

// Python's str.format for plain fields: "{}", "{0}", "{name}", with !s / !r, and "{{" / "}}".
// The format's own text and each value keep their origins, as in a concatenation.
absl::StatusOr<Value> PyFormat(Evaluator& ev, const Text& t, CallArgs args) {
  const std::string& f = t.bytes();
  Text out;
  size_t next_auto = 0;
  for (size_t i = 0; i < f.size();) {
    const char c = f[i];
    if ((c == '{' || c == '}') && i + 1 < f.size() && f[i + 1] == c) {
      out.Append(t.Slice(i, i + 1));
      i += 2;
      continue;
    }
    if (c == '}') return absl::InvalidArgumentError("Single '}' encountered in format string");
    if (c != '{') {
      size_t j = i;
      while (j < f.size() && f[j] != '{' && f[j] != '}') ++j;
      out.Append(t.Slice(i, j));
      i = j;
      continue;
    }
    const size_t close = f.find('}', i);
    if (close == std::string::npos) {
      return absl::InvalidArgumentError("Single '{' encountered in format string");
    }
    std::string field = f.substr(i + 1, close - i - 1);
    i = close + 1;
    char conversion = 's';
    if (const size_t bang = field.find('!'); bang != std::string::npos) {
      if (bang + 2 != field.size() || (field[bang + 1] != 's' && field[bang + 1] != 'r')) {
        return absl::InvalidArgumentError("str.format: only !s and !r conversions are supported");
      }
      conversion = field[bang + 1];
      field.resize(bang);
    }
    if (field.find_first_of(":.[") != std::string::npos) {
      return absl::InvalidArgumentError(
          "str.format: format specs, attributes and indexes in fields are not supported");
    }
    const Value* v = nullptr;
    size_t index;
    if (field.empty()) {
      index = next_auto++;
      v = index < args.args.size() ? &args.args[index] : nullptr;
    } else if (absl::SimpleAtoi(field, &index)) {
      v = index < args.args.size() ? &args.args[index] : nullptr;
    } else {
      for (const auto& [k, x] : args.kwargs) {
        if (k == field) v = &x;
      }
    }
    if (v == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("str.format: no argument for field '{", field, "}'"));
    }
    if (conversion == 'r') {
      ASSIGN_OR_RETURN(std::string r, Repr(*v));
      out.Append(r, IsAllTemplate(*v));
    } else {
      ASSIGN_OR_RETURN(Text piece, ToText(*v));
      out.Append(piece);
    }
    RETURN_IF_ERROR(ev.CheckSize(out.size()));
  }
  return Value::Str(std::move(out));
}

absl::StatusOr<Value> StrMethod(Evaluator& ev, const Text& t, std::string_view name,
                                CallArgs args) {
  if (name == "format") return PyFormat(ev, t, std::move(args));
  const std::string& s = t.bytes();
  const bool client = !t.IsAllTemplate();
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind(name, std::move(args), {"chars"}));
    ASSIGN_OR_RETURN(std::optional<std::string> chars, OptionalString(a, 0, "chars"));
    std::optional<std::string_view> cv;
    if (chars) cv = *chars;
    auto [b, e] = StripRange(s, name != "rstrip", name != "lstrip", cv);
    return Value::Str(t.Slice(b, e));
  }
  if (name == "split") return Split(t, std::move(args), false);
  if (name == "rsplit") return Split(t, std::move(args), true);
  if (name == "splitlines") {
    ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind(name, std::move(args), {"keepends"}));
    return RangesToList(t, SplitLinesRanges(s, Truthy(a.Or(0, Value::Bool(false)))));
  }
  if (name == "startswith") return Affix(t, std::move(args), true);
  if (name == "endswith") return Affix(t, std::move(args), false);
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    RETURN_IF_ERROR(BoundArgs::Bind(name, std::move(args), {}).status());
    if (name == "upper") return Value::Str(UpperText(t));
    if (name == "lower") return Value::Str(LowerText(t));
    if (name == "title") return Value::Str(t.WithBytes(ChangeCase(s, CaseMode::kPyTitle)));
    return Value::Str(CapitalizeText(t));
  }
  if (name == "replace") {
    ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind(name, std::move(args), {"old", "new", "count"}));
    const Value* o = a.Get(0);
    const Value* n = a.Get(1);
    if (o == nullptr || n == nullptr || !o->is_string() || !n->is_string()) {
      return absl::InvalidArgumentError("replace() takes two strings");
    }
    const int64_t count = a.Get(2) && a.Get(2)->is_number() ? a.Get(2)->integer() : -1;
    ASSIGN_OR_RETURN(Text r, ReplaceText(t, o->text(), n->text(), count, ev.max_bytes()));
    RETURN_IF_ERROR(ev.CheckSize(r.size()));
    return Value::Str(std::move(r));
  }
  if (name == "find" || name == "rfind" || name == "count" || name == "index") {
    ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind(name, std::move(args), {"sub"}));
    const Value* sub = a.Get(0);
    if (sub == nullptr || !sub->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(std::string(name), "() takes a string"));
    }
    const std::string& x = sub->text().bytes();
    if (name == "count") {
      if (x.empty()) return Value::Int(static_cast<int64_t>(CountChars(s)) + 1, client);
      int64_t n = 0;
      for (size_t p = s.find(x); p != std::string::npos; p = s.find(x, p + x.size())) ++n;
      return Value::Int(n, client);
    }
    const size_t p = name == "rfind" ? s.rfind(x) : s.find(x);
    if (p == std::string::npos) {
      if (name == "index") return absl::InvalidArgumentError("substring not found");
      return Value::Int(-1, client);
    }
    return Value::Int(static_cast<int64_t>(CountChars(std::string_view(s).substr(0, p))), client);
  }
  if (name == "join") {
    ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind(name, std::move(args), {"iterable"}));
    ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(a.Or(0, Value())));
    Text out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sequence item ", i, ": expected str instance, ", TypeName(items[i]), " found"));
      }
      if (i > 0) out.Append(t);
      out.Append(items[i].text());
      RETURN_IF_ERROR(ev.CheckSize(out.size()));
    }
    return Value::Str(std::move(out));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind(name, std::move(args), {"affix"}));
    const Value* x = a.Get(0);
    if (x == nullptr || !x->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(std::string(name), "() takes a string"));
    }
    const std::string& f = x->text().bytes();
    if (name == "removeprefix" && s.compare(0, f.size(), f) == 0 && f.size() <= s.size()) {
      return Value::Str(t.Slice(f.size(), s.size()));
    }
    if (name == "removesuffix" && f.size() <= s.size() && !f.empty() &&
        s.compare(s.size() - f.size(), f.size(), f) == 0) {
      return Value::Str(t.Slice(0, s.size() - f.size()));
    }
    return Value::Str(t);
  }
  RETURN_IF_ERROR(BoundArgs::Bind(name, std::move(args), {}).status());
  auto digit = [](char32_t c) { return c >= '0' && c <= '9'; };
  // Letters: cased ones, and the CJK ideographs (Python counts every Unicode letter).
  auto alpha = [](char32_t c) { return IsCased(c) || (c >= 0x4E00 && c <= 0x9FFF); };
  if (name == "isdigit") return AllChars(t, digit);
  if (name == "isalpha") return AllChars(t, alpha);
  if (name == "isalnum") return AllChars(t, [&](char32_t c) { return digit(c) || alpha(c); });
  if (name == "isspace") return AllChars(t, IsPySpace);
  if (name == "islower") return Value::Bool(IsLowerText(s), client);
  if (name == "isupper") return Value::Bool(IsUpperText(s), client);
  return absl::InvalidArgumentError(absl::StrCat("str.", std::string(name), "() is not supported"));
}

absl::StatusOr<Value> DictMethod(const Value& self, std::string_view name, CallArgs args) {
  const Dict& d = self.dict();
  if (name == "get") {
    ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind("get", std::move(args), {"key", "default"}));
    const Value* k = a.Get(0);
    if (k == nullptr) return absl::InvalidArgumentError("get() needs a key");
    const Value* v = d.Find(*k);
    return v != nullptr ? *v : a.Or(1, Value::None());
  }
  RETURN_IF_ERROR(BoundArgs::Bind(name, std::move(args), {}).status());
  std::vector<Value> out;
  if (name == "copy") {
    auto c = std::make_shared<Dict>();
    for (const auto& [k, v] : d.entries) RETURN_IF_ERROR(c->Set(k, v));
    return Value::MakeDict(std::move(c));
  }
  for (const auto& [k, v] : d.entries) {
    if (name == "items") {
      out.push_back(Value::Tuple({k, v}));
    } else {
      out.push_back(name == "keys" ? k : v);
    }
  }
  return Value::List(std::move(out));
}

absl::StatusOr<Value> ListMethod(const Value& self, std::string_view name, CallArgs args) {
  ASSIGN_OR_RETURN(BoundArgs a, BoundArgs::Bind(name, std::move(args), {"value"}));
  const Value x = a.Or(0, Value());
  const auto& items = self.items();
  if (name == "count") {
    int64_t n = 0;
    for (const Value& v : items) n += Equals(v, x);
    return Value::Int(n);
  }
  for (size_t i = 0; i < items.size(); ++i) {
    if (Equals(items[i], x)) return Value::Int(static_cast<int64_t>(i));
  }
  return absl::InvalidArgumentError("value is not in list");
}

constexpr std::string_view kStrMethods[] = {
    "strip",    "lstrip",  "rstrip",  "split",   "rsplit",       "splitlines",   "startswith",
    "endswith", "upper",   "lower",   "title",   "capitalize",   "replace",      "find",
    "rfind",    "count",   "index",   "join",    "removeprefix", "removesuffix", "isdigit",
    "isalpha",  "isalnum", "isspace", "islower", "isupper",      "format"};
// Python str methods this engine does not implement: calling one is an error naming it.
constexpr std::string_view kStrUnsupported[] = {
    "casefold", "center",     "encode",       "expandtabs", "format_map",
    "isascii",  "isdecimal",  "isidentifier", "isnumeric",  "isprintable",
    "istitle",  "ljust",      "maketrans",    "partition",  "rindex",
    "rjust",    "rpartition", "swapcase",     "translate",  "zfill"};
constexpr std::string_view kDictMethods[] = {"items", "keys", "values", "get", "copy"};
constexpr std::string_view kDictUnsafe[] = {"clear", "pop", "popitem", "setdefault", "update"};
constexpr std::string_view kListMethods[] = {"count", "index"};
constexpr std::string_view kListUnsafe[] = {"append", "clear", "pop",    "reverse",
                                            "insert", "sort",  "extend", "remove"};

template <size_t N>
bool In(const std::string_view (&list)[N], std::string_view name) {
  return std::find(std::begin(list), std::end(list), name) != std::end(list);
}

Value BoundMethod(const Value& self, std::string_view name, bool supported) {
  auto c = std::make_shared<Callable>();
  c->name = absl::StrCat(TypeName(self), ".", std::string(name));
  if (supported) {
    c->fn = [self, method = std::string(name)](Evaluator& ev, CallArgs a) -> absl::StatusOr<Value> {
      if (self.is_string()) return StrMethod(ev, self.text(), method, std::move(a));
      if (self.is_dict()) return DictMethod(self, method, std::move(a));
      return ListMethod(self, method, std::move(a));
    };
  }
  return Value::MakeCallable(std::move(c));
}

Value Unsafe(const Value& obj, std::string_view name) {
  return Value::Undefined(absl::StrCat("access to attribute '", std::string(name), "' of '",
                                       TypeName(obj), "' object is unsafe."));
}

std::string ObjectName(const Value& obj) {
  if (obj.is_none()) return "None";
  return absl::StrCat(TypeName(obj), " object");
}

Value NoAttribute(const Value& obj, std::string_view name) {
  return Value::Undefined(
      absl::StrCat("'", ObjectName(obj), "' has no attribute '", std::string(name), "'"));
}

// Python's getattr only (no item fallback); nullopt when the object has no such attribute.
std::optional<Value> PyAttr(const Value& obj, std::string_view name) {
  if (obj.is_string()) {
    if (In(kStrMethods, name)) return BoundMethod(obj, name, true);
    if (In(kStrUnsupported, name)) return BoundMethod(obj, name, false);
  } else if (obj.is_dict() && !obj.dict().is_namespace) {
    if (In(kDictMethods, name)) return BoundMethod(obj, name, true);
    if (In(kDictUnsafe, name)) return Unsafe(obj, name);
  } else if (obj.is_list()) {
    if (In(kListMethods, name)) return BoundMethod(obj, name, true);
    if (In(kListUnsafe, name) && !obj.is_tuple()) return Unsafe(obj, name);
  } else if (obj.is_dict()) {
    if (const Value* v = obj.dict().Find(name)) return *v;
  }
  return std::nullopt;
}

}  // namespace

Value GetAttr(const Value& obj, std::string_view name) {
  if (std::optional<Value> v = PyAttr(obj, name)) return *v;
  if (obj.is_dict() && !obj.dict().is_namespace) {
    if (const Value* v = obj.dict().Find(name)) return *v;
  }
  return NoAttribute(obj, name);
}

Value GetItem(const Value& obj, const Value& key) {
  const bool int_key = key.kind() == Value::Kind::kInt || key.kind() == Value::Kind::kBool;
  if (obj.is_dict() && !obj.dict().is_namespace) {
    if (const Value* v = obj.dict().Find(key)) return *v;
  } else if (obj.is_list() && int_key) {
    int64_t i = key.integer();
    const int64_t n = static_cast<int64_t>(obj.items().size());
    if (i < 0) i += n;
    if (i >= 0 && i < n) return obj.items()[static_cast<size_t>(i)];
  } else if (obj.is_string() && int_key) {
    std::vector<size_t> offsets = CharOffsets(obj.text().bytes());
    int64_t i = key.integer();
    const int64_t n = static_cast<int64_t>(offsets.size()) - 1;
    if (i < 0) i += n;
    if (i >= 0 && i < n) {
      return Value::Str(
          obj.text().Slice(offsets[static_cast<size_t>(i)], offsets[static_cast<size_t>(i) + 1]));
    }
  }
  if (key.is_string()) {
    if (std::optional<Value> v = PyAttr(obj, key.text().bytes())) return *v;
    return NoAttribute(obj, key.text().bytes());
  }
  absl::StatusOr<std::string> r = Repr(key);
  return Value::Undefined(
      absl::StrCat(ObjectName(obj), " has no element ", r.ok() ? *r : std::string("?")));
}

Value GetAttrPath(const Value& obj, std::string_view path) {
  Value v = obj;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string_view part =
        path.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    int64_t index;
    if (absl::SimpleAtoi(std::string(part), &index)) {
      v = GetItem(v, Value::Int(index));
    } else {
      v = GetItem(v, Value::Str(Text::Template(part)));
    }
    if (dot == std::string_view::npos || v.is_undefined()) return v;
    start = dot + 1;
  }
}

}  // namespace longview::jinja::internal
