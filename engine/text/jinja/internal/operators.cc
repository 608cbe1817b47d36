#include "engine/text/jinja/internal/operators.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/text/jinja/internal/convert.h"
#include "engine/text/jinja/internal/pystr.h"

namespace longview::jinja::internal {
namespace {

absl::Status Unsupported(std::string_view op, const Value& a, const Value& b) {
  return absl::InvalidArgumentError(absl::StrCat("unsupported operand type(s) for ",
                                                 std::string(op), ": '", TypeName(a), "' and '",
                                                 TypeName(b), "'"));
}

absl::Status Overflow() { return absl::InvalidArgumentError("integer overflow"); }

bool IsIntLike(const Value& v) {
  return v.kind() == Value::Kind::kInt || v.kind() == Value::Kind::kBool;
}

absl::StatusOr<Value> IntOp(std::string_view op, int64_t x, int64_t y, bool client) {
  int64_t r = 0;
  if (op == "+") {
    if (__builtin_add_overflow(x, y, &r)) return Overflow();
  } else if (op == "-") {
    if (__builtin_sub_overflow(x, y, &r)) return Overflow();
  } else if (op == "*") {
    if (__builtin_mul_overflow(x, y, &r)) return Overflow();
  } else if (op == "/") {
    if (y == 0) return absl::InvalidArgumentError("division by zero");
    return Value::Float(static_cast<double>(x) / static_cast<double>(y), client);
  } else if (op == "//" || op == "%") {
    if (y == 0) return absl::InvalidArgumentError("integer division or modulo by zero");
    if (x == std::numeric_limits<int64_t>::min() && y == -1) return Overflow();
    int64_t q = x / y, m = x % y;
    if (m != 0 && ((m < 0) != (y < 0))) {
      --q;
      m += y;
    }
    r = op == "//" ? q : m;
  } else if (op == "**") {
    if (y < 0)
      return Value::Float(std::pow(static_cast<double>(x), static_cast<double>(y)), client);
    r = 1;
    for (int64_t i = 0; i < y; ++i) {
      if (__builtin_mul_overflow(r, x, &r)) return Overflow();
      if (r == 0 || r == 1) break;
    }
  }
  return Value::Int(r, client);
}

absl::StatusOr<Value> FloatOp(std::string_view op, double x, double y, bool client) {
  if (op == "+") return Value::Float(x + y, client);
  if (op == "-") return Value::Float(x - y, client);
  if (op == "*") return Value::Float(x * y, client);
  if (op == "**") return Value::Float(std::pow(x, y), client);
  if (y == 0) return absl::InvalidArgumentError("float division by zero");
  if (op == "/") return Value::Float(x / y, client);
  if (op == "//") return Value::Float(std::floor(x / y), client);
  double m = std::fmod(x, y);
  if (m != 0 && ((y < 0) != (m < 0))) m += y;
  return Value::Float(m == 0 ? std::copysign(0.0, y) : m, client);  // "%"
}

absl::StatusOr<Value> Repeat(const Value& seq, int64_t n, size_t max_bytes) {
  if (n < 0) n = 0;
  if (seq.is_string()) {
    const Text& t = seq.text();
    if (!t.empty() && static_cast<uint64_t>(n) > max_bytes / t.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("string repetition would exceed ", max_bytes, " bytes"));
    }
    Text out;
    for (int64_t i = 0; i < n; ++i) out.Append(t);
    return Value::Str(std::move(out));
  }
  const auto& items = seq.items();
  if (!items.empty() && static_cast<uint64_t>(n) > max_bytes / 16 / items.size()) {
    return absl::InvalidArgumentError("list repetition too large");
  }
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return seq.is_tuple() ? Value::Tuple(std::move(out)) : Value::List(std::move(out));
}

// Python's `fmt % args` for %s %r %d %i %x %f %e %g %% (with flags, width and precision). The
// format's own text and each %s value keep their origins, as in a concatenation; numbers and
// %r text are the value's origin.
absl::StatusOr<Value> Format(const Value& fmt, const Value& args, size_t max_bytes) {
  const std::vector<Value> values = args.is_tuple() ? args.items() : std::vector<Value>{args};
  const Text& ft = fmt.text();
  const std::string& f = ft.bytes();
  Text out;
  size_t next = 0;
  size_t literal = 0;  // start of the format text not yet copied
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '%') continue;
    out.Append(ft.Slice(literal, i));
    size_t j = i + 1;
    std::string spec = "%";
    while (j < f.size() && std::string_view("-+ 0#.0123456789").find(f[j]) != std::string::npos) {
      spec += f[j++];
    }
    if (j >= f.size()) return absl::InvalidArgumentError("incomplete format");
    const char conv = f[j];
    i = j;
    literal = j + 1;
    if (conv == '%') {
      out.Append(ft.Slice(j, j + 1));
      continue;
    }
    if (next >= values.size()) {
      return absl::InvalidArgumentError("not enough arguments for format string");
    }
    const Value& v = values[next++];
    Text piece;
    char buf[128];
    if (conv == 's') {
      ASSIGN_OR_RETURN(piece, ToText(v));
    } else if (conv == 'r') {
      ASSIGN_OR_RETURN(std::string r, Repr(v));
      piece.Append(r, IsAllTemplate(v));
    } else if (conv == 'd' || conv == 'i' || conv == 'x') {
      if (!v.is_number()) return absl::InvalidArgumentError("%d format: a number is required");
      const long long n = v.kind() == Value::Kind::kFloat ? static_cast<long long>(v.number())
                                                          : static_cast<long long>(v.integer());
      std::snprintf(buf, sizeof(buf), (spec + (conv == 'x' ? "llx" : "lld")).c_str(), n);
      piece.Append(buf, !IsClient(v));
    } else if (conv == 'f' || conv == 'e' || conv == 'g') {
      if (!v.is_number()) return absl::InvalidArgumentError("%f format: a number is required");
      std::snprintf(buf, sizeof(buf), (spec + conv).c_str(), v.number());
      piece.Append(buf, !IsClient(v));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unsupported format character '", std::string(1, conv), "'"));
    }
    if (conv == 's' || conv == 'r') {  // width pads with spaces, '-' on the right
      const size_t digits = spec.find_first_of("123456789");
      const size_t width =
          digits == std::string::npos ? 0 : std::strtoul(spec.c_str() + digits, nullptr, 10);
      const size_t len = CountChars(piece.bytes());
      if (width > len) {
        if (width > max_bytes) {
          return absl::InvalidArgumentError(absl::StrCat("format width ", width, " too large"));
        }
        const std::string pad(width - len, ' ');
        Text padded;
        if (spec.find('-') == std::string::npos) padded.AppendTemplate(pad);
        padded.Append(piece);
        if (spec.find('-') != std::string::npos) padded.AppendTemplate(pad);
        piece = std::move(padded);
      }
    }
    out.Append(piece);
    if (out.size() > max_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("string would exceed ", max_bytes, " bytes"));
    }
  }
  if (next < values.size()) {
    return absl::InvalidArgumentError("not all arguments converted during string formatting");
  }
  out.Append(ft.Slice(literal, f.size()));
  return Value::Str(std::move(out));
}

}  // namespace

bool IsClient(const Value& v) {
  if (v.is_string()) return !v.text().IsAllTemplate();
  if (v.is_list() || v.is_dict() || v.is_callable()) return false;
  return v.client();
}

absl::StatusOr<Value> BinaryOp(std::string_view op, const Value& a, const Value& b,
                               size_t max_bytes) {
  if (a.is_undefined()) return UndefinedError(a);
  if (b.is_undefined()) return UndefinedError(b);
  const bool client = IsClient(a) || IsClient(b);
  if (a.is_number() && b.is_number()) {
    if (IsIntLike(a) && IsIntLike(b)) return IntOp(op, a.integer(), b.integer(), client);
    return FloatOp(op, a.number(), b.number(), client);
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      if (a.text().size() + b.text().size() > max_bytes) {
        return absl::InvalidArgumentError(
            absl::StrCat("string would exceed ", max_bytes, " bytes"));
      }
      Text t = a.text();
      t.Append(b.text());
      return Value::Str(std::move(t));
    }
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
      std::vector<Value> items = a.items();
      items.insert(items.end(), b.items().begin(), b.items().end());
      return a.is_tuple() ? Value::Tuple(std::move(items)) : Value::List(std::move(items));
    }
  }
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && IsIntLike(b)) return Repeat(a, b.integer(), max_bytes);
    if ((b.is_string() || b.is_list()) && IsIntLike(a)) return Repeat(b, a.integer(), max_bytes);
  }
  if (op == "%" && a.is_string()) return Format(a, b, max_bytes);
  return Unsupported(op, a, b);
}

absl::StatusOr<Value> UnaryOp(bool negate, const Value& v) {
  if (v.is_undefined()) return UndefinedError(v);
  if (v.kind() == Value::Kind::kFloat)
    return Value::Float(negate ? -v.number() : v.number(), v.client());
  if (IsIntLike(v)) {
    if (!negate) return Value::Int(v.integer(), v.client());
    if (v.integer() == std::numeric_limits<int64_t>::min()) return Overflow();
    return Value::Int(-v.integer(), v.client());
  }
  return absl::InvalidArgumentError(
      absl::StrCat("bad operand type for unary ", negate ? "-" : "+", ": '", TypeName(v), "'"));
}

absl::StatusOr<bool> Contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kString:
      if (!item.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat("'in <string>' requires string as left operand, not ", TypeName(item)));
      }
      return container.text().bytes().find(item.text().bytes()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& x : container.items()) {
        if (Equals(x, item)) return true;
      }
      return false;
    case Value::Kind::kDict:
      if (item.is_list() || item.is_dict()) {
        return absl::InvalidArgumentError(absl::StrCat("unhashable type: '", TypeName(item), "'"));
      }
      return container.dict().Find(item) != nullptr;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("argument of type '", TypeName(container), "' is not iterable"));
  }
}

absl::StatusOr<bool> CompareOp(std::string_view op, const Value& a, const Value& b) {
  if (op == "==") return Equals(a, b);
  if (op == "!=") return !Equals(a, b);
  if (op == "in") return Contains(b, a);
  if (op == "notin") {
    ASSIGN_OR_RETURN(bool in, Contains(b, a));
    return !in;
  }
  ASSIGN_OR_RETURN(int c, Compare(a, b));
  if (op == "<") return c < 0;
  if (op == "<=") return c <= 0;
  if (op == ">") return c > 0;
  return c >= 0;  // ">="
}

absl::StatusOr<Value> SliceValue(const Value& obj, const Value& start_v, const Value& stop_v,
                                 const Value& step_v) {
  for (const Value* p : {&start_v, &stop_v, &step_v}) {
    if (!p->is_undefined() && !p->is_none() && !IsIntLike(*p)) {
      return absl::InvalidArgumentError("slice indices must be integers or None");
    }
  }
  if (!obj.is_string() && !obj.is_list()) {
    return Value::Undefined(absl::StrCat("'", TypeName(obj), "' object is not subscriptable"));
  }
  std::vector<size_t> offsets;
  int64_t length;
  if (obj.is_string()) {
    offsets = CharOffsets(obj.text().bytes());
    length = static_cast<int64_t>(offsets.size()) - 1;
  } else {
    length = static_cast<int64_t>(obj.items().size());
  }
  const bool has_step = IsIntLike(step_v);
  const int64_t step = has_step ? step_v.integer() : 1;
  if (step == 0) return absl::InvalidArgumentError("slice step cannot be zero");
  auto adjust = [&](const Value& v, int64_t dflt) {
    if (!IsIntLike(v)) return dflt;
    int64_t i = v.integer();
    if (i < 0) {
      i += length;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= length) {
      i = step < 0 ? length - 1 : length;
    }
    return i;
  };
  const int64_t start = adjust(start_v, step < 0 ? length - 1 : 0);
  const int64_t stop = adjust(stop_v, step < 0 ? -1 : length);
  std::vector<int64_t> picks;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) picks.push_back(i);
  if (obj.is_string()) {
    const Text& t = obj.text();
    if (step == 1) {
      if (picks.empty()) return Value::Str(Text());
      return Value::Str(t.Slice(offsets[static_cast<size_t>(picks.front())],
                                offsets[static_cast<size_t>(picks.back()) + 1]));
    }
    Text out;
    for (int64_t i : picks) {
      out.Append(t.Slice(offsets[static_cast<size_t>(i)], offsets[static_cast<size_t>(i) + 1]));
    }
    return Value::Str(std::move(out));
  }
  std::vector<Value> items;
  for (int64_t i : picks) items.push_back(obj.items()[static_cast<size_t>(i)]);
  return obj.is_tuple() ? Value::Tuple(std::move(items)) : Value::List(std::move(items));
}

}  // namespace longview::jinja::internal
