// Values of the Jinja engine (engine/text/jinja/template.h): a small Python-like type (undefined,
// none, bool, int, float, string, list/tuple, dict, callable) whose strings carry provenance.
//
// Provenance. Every string is a Text: bytes plus the ranges of those bytes that the template
// itself wrote (its literal text, string literals, and the special-token variables the caller
// passes as template values). Every other byte is client text. Scalars (none, bool, int,
// float) carry one flag. The rule, applied by every operation:
//   * bytes keep their origin when they are carried over: concatenation (`+`, `~`, join, `%`
//     and str.format with their values), slicing, indexing, iteration over characters, strip /
//     trim, split, case changes (upper, lower, title, capitalize only make length-preserving
//     changes, so every byte stays in place), and the parts of a string that `replace` leaves
//     alone; a replacement counts as template text only when the matched bytes were;
//   * a value computed from client values is client (arithmetic, length of a client string, int
//     of a client string), a value the template computes from its own values is template;
//   * text that re-encodes a structure (tojson, str/repr of a list or dict) is template text only
//     when every string and scalar inside it is, else all of it is client text.
// So client bytes can never turn into template bytes, whatever the template does with them.
// Client input can still choose among the template's own text, as the template lets it: control
// flow (an `if` on a message role, one BOS per message), a lookup into a template-defined dict, a
// slice or a replace pattern applied to template text; what comes out is the template's text.
//
//   Value v = Value::Str(Text::Client("hi"));     // a message's content
//   Value t = Value::Str(Text::Template("<s>"));  // bos_token
// Thread-safety: values are immutable once built (namespaces excepted, and those live inside
// one render), so they may be shared between threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "common/status.h"
#include "engine/text/rendered_prompt.h"

namespace longview::jinja {

// Bytes with the ranges the template wrote; all other bytes came from the client.
class Text {
 public:
  Text() = default;
  static Text Template(std::string_view s);
  static Text Client(std::string_view s);

  const std::string& bytes() const { return bytes_; }
  size_t size() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }
  // Sorted, disjoint, non-adjacent, non-empty byte ranges the template wrote.
  const std::vector<TextRange>& template_ranges() const { return ranges_; }
  // True when every byte came from the template (so also when empty).
  bool IsAllTemplate() const;

  void Append(const Text& other);
  void AppendTemplate(std::string_view s);
  void AppendClient(std::string_view s);
  void Append(std::string_view s, bool from_template) {
    from_template ? AppendTemplate(s) : AppendClient(s);
  }
  // The bytes [begin, end) with their origins. REQUIRES: begin <= end <= size().
  Text Slice(size_t begin, size_t end) const;
  // Whether every byte of [begin, end) came from the template.
  bool IsTemplate(size_t begin, size_t end) const;
  // The same origins over rewritten bytes of the same length (a case change).
  // REQUIRES: bytes.size() == size().
  Text WithBytes(std::string bytes) const {
    Text out = *this;
    out.bytes_ = std::move(bytes);
    return out;
  }
  // As a rendered prompt: the template's ranges are where special tokens may be recognised.
  RenderedPrompt ToRenderedPrompt() const { return RenderedPrompt{bytes_, ranges_}; }

 private:
  void AddRange(size_t begin, size_t end);

  std::string bytes_;
  std::vector<TextRange> ranges_;
};

class Value;
struct Dict;
struct Callable;

// Arguments of a call: positional, then keyword in source order.
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
};

namespace internal {
class Evaluator;
}

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,  // also tuples
    kDict,  // also namespaces
    kCallable,
  };

  Value() = default;  // undefined, with no name
  // An undefined value; `hint` is the error raised when it is used ("'x' is undefined").
  static Value Undefined(std::string hint);
  static Value None(bool client = false);
  static Value Bool(bool b, bool client = false);
  static Value Int(int64_t i, bool client = false);
  static Value Float(double f, bool client = false);
  static Value Str(Text t);
  static Value List(std::vector<Value> items);
  static Value Tuple(std::vector<Value> items);
  static Value MakeDict(std::shared_ptr<Dict> d);
  static Value MakeCallable(std::shared_ptr<const Callable> c);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_number() const {
    return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool;
  }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_tuple() const { return kind_ == Kind::kList && tuple_; }
  bool is_callable() const { return kind_ == Kind::kCallable; }
  // Scalars: whether the value came from (or was computed from) client input.
  bool client() const { return client_; }

  bool boolean() const { return std::get<bool>(payload_); }
  int64_t integer() const {
    return kind_ == Kind::kBool ? static_cast<int64_t>(boolean()) : std::get<int64_t>(payload_);
  }
  // Int, bool or float as a double.
  double number() const;
  const Text& text() const { return *std::get<std::shared_ptr<const Text>>(payload_); }
  const std::vector<Value>& items() const {
    return *std::get<std::shared_ptr<const std::vector<Value>>>(payload_);
  }
  Dict& dict() const { return *std::get<std::shared_ptr<Dict>>(payload_); }
  const std::shared_ptr<Dict>& dict_ptr() const {
    return std::get<std::shared_ptr<Dict>>(payload_);
  }
  const Callable& callable() const { return *std::get<std::shared_ptr<const Callable>>(payload_); }
  const std::string& undefined_hint() const;
  // Nesting depth: 0 for scalars and strings, 1 + the deepest item for containers.
  int depth() const { return depth_; }

 private:
  Kind kind_ = Kind::kUndefined;
  bool client_ = false;
  bool tuple_ = false;
  int depth_ = 0;
  std::variant<std::monostate, bool, int64_t, double, std::shared_ptr<const Text>,
               std::shared_ptr<const std::vector<Value>>, std::shared_ptr<Dict>,
               std::shared_ptr<const Callable>, std::shared_ptr<const std::string>>
      payload_;
};

// An insertion-ordered dict (Python's). Keys are hashable values: strings, numbers, none.
struct Dict {
  std::vector<std::pair<Value, Value>> entries;
  bool is_namespace = false;  // namespace(): the one mutable value, via {% set ns.x = ... %}

  // The value of `key`, or nullptr. Unhashable keys are never found.
  const Value* Find(const Value& key) const;
  const Value* Find(std::string_view key) const;
  // Inserts or replaces. InvalidArgument for an unhashable key (list, dict).
  absl::Status Set(Value key, Value value);

 private:
  std::unordered_map<std::string, size_t> index_;
};

// A builtin function, bound method or macro.
struct Callable {
  std::string name;
  std::function<absl::StatusOr<Value>(internal::Evaluator&, CallArgs)> fn;
};

// Python truthiness (undefined is false).
bool Truthy(const Value& v);
// Python's type name of a value, for error messages ("str", "int", "dict", ...).
const char* TypeName(const Value& v);

}  // namespace longview::jinja
