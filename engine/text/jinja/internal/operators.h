// Python's operators on Jinja values: arithmetic, `+` / `*` on strings and lists, `%`
// formatting, comparisons and `in`, unary minus, slicing. Results keep provenance (value.h).
#pragma once

#include <cstddef>
#include <string_view>

#include "common/status.h"
#include "engine/text/jinja/value.h"

namespace longview::jinja::internal {

// Whether a scalar or string carries client input (containers: false; see IsAllTemplate).
bool IsClient(const Value& v);

// `op` is one of + - * / // % **. Strings and lists built by + and * stay under `max_bytes`.
absl::StatusOr<Value> BinaryOp(std::string_view op, const Value& a, const Value& b,
                               size_t max_bytes);
absl::StatusOr<Value> UnaryOp(bool negate, const Value& v);
// `op` is one of == != < <= > >= in notin.
absl::StatusOr<bool> CompareOp(std::string_view op, const Value& a, const Value& b);
// Python's `item in container`.
absl::StatusOr<bool> Contains(const Value& container, const Value& item);
// obj[start:stop:step] for strings, lists and tuples (undefined / none parts are absent).
absl::StatusOr<Value> SliceValue(const Value& obj, const Value& start, const Value& stop,
                                 const Value& step);

}  // namespace longview::jinja::internal
