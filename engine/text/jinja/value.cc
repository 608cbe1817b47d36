#include "engine/text/jinja/value.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "absl/strings/str_cat.h"

namespace longview::jinja {

Text Text::Template(std::string_view s) {
  Text t;
  t.AppendTemplate(s);
  return t;
}

Text Text::Client(std::string_view s) {
  Text t;
  t.AppendClient(s);
  return t;
}

bool Text::IsAllTemplate() const {
  return bytes_.empty() ||
         (ranges_.size() == 1 && ranges_[0].begin == 0 && ranges_[0].end == bytes_.size());
}

void Text::AddRange(size_t begin, size_t end) {
  if (begin >= end) return;
  if (!ranges_.empty() && ranges_.back().end == begin) {
    ranges_.back().end = end;
  } else {
    ranges_.push_back({begin, end});
  }
}

void Text::Append(const Text& other) {
  const size_t base = bytes_.size();
  bytes_ += other.bytes_;
  for (const TextRange& r : other.ranges_) AddRange(base + r.begin, base + r.end);
}

void Text::AppendTemplate(std::string_view s) {
  const size_t base = bytes_.size();
  bytes_.append(s);
  AddRange(base, bytes_.size());
}

void Text::AppendClient(std::string_view s) { bytes_.append(s); }

Text Text::Slice(size_t begin, size_t end) const {
  Text out;
  out.bytes_ = bytes_.substr(begin, end - begin);
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), begin,
                             [](size_t pos, const TextRange& r) { return pos < r.end; });
  for (; it != ranges_.end() && it->begin < end; ++it) {
    out.AddRange(std::max(it->begin, begin) - begin, std::min(it->end, end) - begin);
  }
  return out;
}

bool Text::IsTemplate(size_t begin, size_t end) const {
  if (begin >= end) return true;
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), begin,
                             [](size_t pos, const TextRange& r) { return pos < r.end; });
  return it != ranges_.end() && it->begin <= begin && it->end >= end;
}

Value Value::Undefined(std::string hint) {
  Value v;
  v.payload_ = std::make_shared<const std::string>(std::move(hint));
  return v;
}

Value Value::None(bool client) {
  Value v;
  v.kind_ = Kind::kNone;
  v.client_ = client;
  return v;
}

Value Value::Bool(bool b, bool client) {
  Value v;
  v.kind_ = Kind::kBool;
  v.client_ = client;
  v.payload_ = b;
  return v;
}

Value Value::Int(int64_t i, bool client) {
  Value v;
  v.kind_ = Kind::kInt;
  v.client_ = client;
  v.payload_ = i;
  return v;
}

Value Value::Float(double f, bool client) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.client_ = client;
  v.payload_ = f;
  return v;
}

Value Value::Str(Text t) {
  Value v;
  v.kind_ = Kind::kString;
  v.payload_ = std::make_shared<const Text>(std::move(t));
  return v;
}

namespace {
int MaxDepth(const std::vector<Value>& items) {
  int d = 0;
  for (const Value& v : items) d = std::max(d, v.depth());
  return d;
}
}  // namespace

Value Value::List(std::vector<Value> items) {
  Value v;
  v.kind_ = Kind::kList;
  v.depth_ = 1 + MaxDepth(items);
  v.payload_ = std::make_shared<const std::vector<Value>>(std::move(items));
  return v;
}

Value Value::Tuple(std::vector<Value> items) {
  Value v = List(std::move(items));
  v.tuple_ = true;
  return v;
}

Value Value::MakeDict(std::shared_ptr<Dict> d) {
  Value v;
  v.kind_ = Kind::kDict;
  int depth = 0;
  for (const auto& [k, x] : d->entries) depth = std::max(depth, x.depth());
  v.depth_ = 1 + depth;
  v.payload_ = std::move(d);
  return v;
}

Value Value::MakeCallable(std::shared_ptr<const Callable> c) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.payload_ = std::move(c);
  return v;
}

double Value::number() const {
  if (kind_ == Kind::kFloat) return std::get<double>(payload_);
  return static_cast<double>(integer());
}

const std::string& Value::undefined_hint() const {
  static const std::string kNone;
  const auto* p = std::get_if<std::shared_ptr<const std::string>>(&payload_);
  return p != nullptr ? **p : kNone;
}

namespace {

// Python hashes 1, 1.0 and True alike: one key for equal numbers.
std::optional<std::string> KeyOf(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kString:
      return absl::StrCat("s", v.text().bytes());
    case Value::Kind::kBool:
    case Value::Kind::kInt:
      return absl::StrCat("n", v.integer());
    case Value::Kind::kFloat: {
      const double f = v.number();
      if (std::isfinite(f) && f == std::floor(f) && std::fabs(f) < 9.2e18) {
        return absl::StrCat("n", static_cast<int64_t>(f));
      }
      return absl::StrCat("f", f);
    }
    case Value::Kind::kNone:
      return std::string("N");
    default:
      return std::nullopt;
  }
}

}  // namespace

const Value* Dict::Find(const Value& key) const {
  std::optional<std::string> k = KeyOf(key);
  if (!k) return nullptr;
  auto it = index_.find(*k);
  return it == index_.end() ? nullptr : &entries[it->second].second;
}

const Value* Dict::Find(std::string_view key) const {
  auto it = index_.find(absl::StrCat("s", std::string(key)));
  return it == index_.end() ? nullptr : &entries[it->second].second;
}

absl::Status Dict::Set(Value key, Value value) {
  std::optional<std::string> k = KeyOf(key);
  if (!k) {
    return absl::InvalidArgumentError(absl::StrCat("unhashable type: '", TypeName(key), "'"));
  }
  auto [it, inserted] = index_.emplace(*k, entries.size());
  if (inserted) {
    entries.emplace_back(std::move(key), std::move(value));
  } else {
    entries[it->second].second = std::move(value);
  }
  return absl::OkStatus();
}

bool Truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return false;
    case Value::Kind::kBool:
      return v.boolean();
    case Value::Kind::kInt:
      return v.integer() != 0;
    case Value::Kind::kFloat:
      return v.number() != 0.0;
    case Value::Kind::kString:
      return !v.text().empty();
    case Value::Kind::kList:
      return !v.items().empty();
    case Value::Kind::kDict:
      return v.dict().is_namespace || !v.dict().entries.empty();
    case Value::Kind::kCallable:
      return true;
  }
  return false;
}

const char* TypeName(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "Undefined";
    case Value::Kind::kNone:
      return "NoneType";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kFloat:
      return "float";
    case Value::Kind::kString:
      return "str";
    case Value::Kind::kList:
      return v.is_tuple() ? "tuple" : "list";
    case Value::Kind::kDict:
      return v.dict().is_namespace ? "Namespace" : "dict";
    case Value::Kind::kCallable:
      return "function";
  }
  return "object";
}

}  // namespace longview::jinja
