// Python's view of Jinja values: str() and repr() text, json.dumps (transformers' `tojson`),
// ==, <, and iteration. Each keeps provenance as value.h states: str() of a string is that
// string; str(), repr() and JSON of a container are template text only when all of it is.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/text/jinja/value.h"

namespace longview::jinja::internal {

// Deepest nesting the recursive conversions follow (a template can build cycles through
// namespaces); deeper is an error, never a stack overflow.
inline constexpr int kMaxNesting = 200;

// Whether every byte and scalar in `v` came from the template.
bool IsAllTemplate(const Value& v, int depth = 0);
// Python's str(v) ("" for undefined, "None", "True", "1.0", "['a']", ...).
absl::StatusOr<Text> ToText(const Value& v);
// Python's repr(v).
absl::StatusOr<std::string> Repr(const Value& v, int depth = 0);

struct JsonOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // absent: one line
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};
// Python's json.dumps(v, ...). InvalidArgument for values JSON cannot hold (undefined, ...).
absl::StatusOr<Text> ToJson(const Value& v, const JsonOptions& options);

// Python's ==.
bool Equals(const Value& a, const Value& b, int depth = 0);
// Python's ordering: negative, 0 or positive. InvalidArgument where Python raises TypeError.
absl::StatusOr<int> Compare(const Value& a, const Value& b, int depth = 0);
// Python's iteration: a list's items, a dict's keys, a string's characters, nothing for
// undefined. InvalidArgument for other values.
absl::StatusOr<std::vector<Value>> Iterate(const Value& v);
// The error a use of an undefined value raises.
absl::Status UndefinedError(const Value& v);

}  // namespace longview::jinja::internal
