#include "engine/text/jinja/internal/convert.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/text/jinja/internal/pystr.h"

namespace longview::jinja::internal {
namespace {

absl::Status TooDeep() {
  return absl::InvalidArgumentError(
      absl::StrCat("value nested more than ", kMaxNesting, " levels deep"));
}

std::string ScalarText(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kNone:
      return "None";
    case Value::Kind::kBool:
      return v.boolean() ? "True" : "False";
    case Value::Kind::kInt:
      return absl::StrCat(v.integer());
    case Value::Kind::kFloat:
      return FloatRepr(v.number());
    default:
      return "";
  }
}

}  // namespace

absl::Status UndefinedError(const Value& v) {
  return absl::InvalidArgumentError(v.undefined_hint().empty() ? "undefined value"
                                                               : v.undefined_hint());
}

bool IsAllTemplate(const Value& v, int depth) {
  if (depth > kMaxNesting) return false;
  switch (v.kind()) {
    case Value::Kind::kString:
      return v.text().IsAllTemplate();
    case Value::Kind::kList:
      for (const Value& x : v.items()) {
        if (!IsAllTemplate(x, depth + 1)) return false;
      }
      return true;
    case Value::Kind::kDict:
      for (const auto& [k, x] : v.dict().entries) {
        if (!IsAllTemplate(k, depth + 1) || !IsAllTemplate(x, depth + 1)) return false;
      }
      return true;
    default:
      return !v.client();
  }
}

absl::StatusOr<std::string> Repr(const Value& v, int depth) {
  if (depth > kMaxNesting) return TooDeep();
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return std::string("Undefined");
    case Value::Kind::kString:
      return StrRepr(v.text().bytes());
    case Value::Kind::kList: {
      std::string out = v.is_tuple() ? "(" : "[";
      for (size_t i = 0; i < v.items().size(); ++i) {
        if (i > 0) out += ", ";
        ASSIGN_OR_RETURN(std::string item, Repr(v.items()[i], depth + 1));
        out += item;
      }
      if (v.is_tuple() && v.items().size() == 1) out += ",";
      return out + (v.is_tuple() ? ")" : "]");
    }
    case Value::Kind::kDict: {
      std::string out = v.dict().is_namespace ? "<Namespace {" : "{";
      bool first = true;
      for (const auto& [k, x] : v.dict().entries) {
        if (!first) out += ", ";
        first = false;
        ASSIGN_OR_RETURN(std::string key, Repr(k, depth + 1));
        ASSIGN_OR_RETURN(std::string val, Repr(x, depth + 1));
        absl::StrAppend(&out, key, ": ", val);
      }
      return out + (v.dict().is_namespace ? "}>" : "}");
    }
    case Value::Kind::kCallable:
      return absl::StrCat("<function ", v.callable().name, ">");
    default:
      return ScalarText(v);
  }
}

absl::StatusOr<Text> ToText(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return Text();
    case Value::Kind::kString:
      return v.text();
    case Value::Kind::kList:
    case Value::Kind::kDict:
    case Value::Kind::kCallable: {
      ASSIGN_OR_RETURN(std::string s, Repr(v));
      Text t;
      t.Append(s, IsAllTemplate(v));
      return t;
    }
    default: {
      Text t;
      t.Append(ScalarText(v), !v.client());
      return t;
    }
  }
}

namespace {

struct JsonWriter {
  const JsonOptions& o;
  std::string out;

  absl::StatusOr<std::string> Key(const Value& k) {
    switch (k.kind()) {
      case Value::Kind::kString:
        return k.text().bytes();
      case Value::Kind::kBool:
        return std::string(k.boolean() ? "true" : "false");
      case Value::Kind::kNone:
        return std::string("null");
      case Value::Kind::kInt:
      case Value::Kind::kFloat:
        return ScalarText(k);
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("keys must be str, int, float, bool or None, not ", TypeName(k)));
    }
  }

  void Newline(int level) {
    out += '\n';
    for (int i = 0; i < level; ++i) out += *o.indent;
  }

  absl::Status Write(const Value& v, int level) {
    if (level > kMaxNesting) return TooDeep();
    switch (v.kind()) {
      case Value::Kind::kNone:
        out += "null";
        return absl::OkStatus();
      case Value::Kind::kBool:
        out += v.boolean() ? "true" : "false";
        return absl::OkStatus();
      case Value::Kind::kInt:
        absl::StrAppend(&out, v.integer());
        return absl::OkStatus();
      case Value::Kind::kFloat: {
        const double d = v.number();
        out += std::isnan(d)   ? "NaN"
               : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity")
                               : FloatRepr(d);
        return absl::OkStatus();
      }
      case Value::Kind::kString:
        out += JsonQuote(v.text().bytes(), o.ensure_ascii);
        return absl::OkStatus();
      case Value::Kind::kList: {
        if (v.items().empty()) {
          out += "[]";
          return absl::OkStatus();
        }
        out += '[';
        for (size_t i = 0; i < v.items().size(); ++i) {
          if (i > 0) out += o.item_separator;
          if (o.indent) Newline(level + 1);
          RETURN_IF_ERROR(Write(v.items()[i], level + 1));
        }
        if (o.indent) Newline(level);
        out += ']';
        return absl::OkStatus();
      }
      case Value::Kind::kDict: {
        if (v.dict().is_namespace) break;
        if (v.dict().entries.empty()) {
          out += "{}";
          return absl::OkStatus();
        }
        std::vector<std::pair<std::string, const Value*>> entries;
        for (const auto& [k, x] : v.dict().entries) {
          if (o.sort_keys && !k.is_string()) {
            return absl::InvalidArgumentError(
                "tojson(sort_keys=true) needs string keys ('<' between mixed key types)");
          }
          ASSIGN_OR_RETURN(std::string key, Key(k));
          entries.emplace_back(std::move(key), &x);
        }
        if (o.sort_keys) {
          std::stable_sort(entries.begin(), entries.end(),
                           [](const auto& a, const auto& b) { return a.first < b.first; });
        }
        out += '{';
        for (size_t i = 0; i < entries.size(); ++i) {
          if (i > 0) out += o.item_separator;
          if (o.indent) Newline(level + 1);
          out += JsonQuote(entries[i].first, o.ensure_ascii);
          out += o.key_separator;
          RETURN_IF_ERROR(Write(*entries[i].second, level + 1));
        }
        if (o.indent) Newline(level);
        out += '}';
        return absl::OkStatus();
      }
      default:
        break;
    }
    return absl::InvalidArgumentError(
        absl::StrCat("Object of type ", TypeName(v), " is not JSON serializable"));
  }
};

}  // namespace

absl::StatusOr<Text> ToJson(const Value& v, const JsonOptions& options) {
  JsonWriter w{options, {}};
  RETURN_IF_ERROR(w.Write(v, 0));
  Text t;
  t.Append(w.out, IsAllTemplate(v));
  return t;
}

bool Equals(const Value& a, const Value& b, int depth) {
  if (depth > kMaxNesting) return false;
  using K = Value::Kind;
  if (a.is_number() && b.is_number()) {
    if (a.kind() != K::kFloat && b.kind() != K::kFloat) return a.integer() == b.integer();
    return a.number() == b.number();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case K::kUndefined:
    case K::kNone:
      return true;
    case K::kString:
      return a.text().bytes() == b.text().bytes();
    case K::kList:
      if (a.is_tuple() != b.is_tuple() || a.items().size() != b.items().size()) return false;
      for (size_t i = 0; i < a.items().size(); ++i) {
        if (!Equals(a.items()[i], b.items()[i], depth + 1)) return false;
      }
      return true;
    case K::kDict: {
      if (a.dict().is_namespace || b.dict().is_namespace) return &a.dict() == &b.dict();
      if (a.dict().entries.size() != b.dict().entries.size()) return false;
      for (const auto& [k, x] : a.dict().entries) {
        const Value* y = b.dict().Find(k);
        if (y == nullptr || !Equals(x, *y, depth + 1)) return false;
      }
      return true;
    }
    case K::kCallable:
      return &a.callable() == &b.callable();
    default:
      return false;
  }
}

absl::StatusOr<int> Compare(const Value& a, const Value& b, int depth) {
  if (depth > kMaxNesting) return TooDeep();
  if (a.is_undefined()) return UndefinedError(a);
  if (b.is_undefined()) return UndefinedError(b);
  if (a.is_number() && b.is_number()) {
    if (a.kind() != Value::Kind::kFloat && b.kind() != Value::Kind::kFloat) {
      return a.integer() < b.integer() ? -1 : (a.integer() > b.integer() ? 1 : 0);
    }
    return a.number() < b.number() ? -1 : (a.number() > b.number() ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.text().bytes().compare(b.text().bytes());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const auto& x = a.items();
    const auto& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (Equals(x[i], y[i], depth + 1)) continue;
      return Compare(x[i], y[i], depth + 1);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  return absl::InvalidArgumentError(absl::StrCat("'<' not supported between instances of '",
                                                 TypeName(a), "' and '", TypeName(b), "'"));
}

absl::StatusOr<std::vector<Value>> Iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return std::vector<Value>();
    case Value::Kind::kList:
      return v.items();
    case Value::Kind::kDict: {
      if (v.dict().is_namespace) break;
      std::vector<Value> keys;
      keys.reserve(v.dict().entries.size());
      for (const auto& [k, x] : v.dict().entries) keys.push_back(k);
      return keys;
    }
    case Value::Kind::kString: {
      const Text& t = v.text();
      std::vector<size_t> offsets = CharOffsets(t.bytes());
      std::vector<Value> chars;
      chars.reserve(offsets.size() - 1);
      for (size_t i = 0; i + 1 < offsets.size(); ++i) {
        chars.push_back(Value::Str(t.Slice(offsets[i], offsets[i + 1])));
      }
      return chars;
    }
    default:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat("'", TypeName(v), "' object is not iterable"));
}

}  // namespace longview::jinja::internal
