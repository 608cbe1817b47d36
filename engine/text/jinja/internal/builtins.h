// What a template can call: jinja2's filters and tests (the ones chat templates use), the
// globals transformers provides (range, namespace, dict, raise_exception, strftime_now), and
// Python's str / dict / list methods reached through attribute lookup with jinja2's
// ImmutableSandboxedEnvironment rules (dict.update, list.append, ... are unsafe).
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "engine/text/jinja/internal/evaluator.h"
#include "engine/text/jinja/value.h"

namespace longview::jinja::internal {

bool IsFilterName(std::string_view name);
bool IsTestName(std::string_view name);

absl::StatusOr<Value> ApplyFilter(Evaluator& ev, std::string_view name, Value input, CallArgs args);
absl::StatusOr<bool> ApplyTest(Evaluator& ev, std::string_view name, const Value& v, CallArgs args);
// The global `name` (range, namespace, ...), or nullptr.
const Value* FindGlobal(std::string_view name);

// jinja2's sandboxed getattr (obj.name: attribute, then item) and getitem (obj[key]: item,
// then attribute). Missing things are undefined values whose hint names them.
Value GetAttr(const Value& obj, std::string_view name);
Value GetItem(const Value& obj, const Value& key);
// Dotted attribute path as filters take it ("function.name", "0").
Value GetAttrPath(const Value& obj, std::string_view path);

// Call arguments bound to parameter names, Python style.
class BoundArgs {
 public:
  // Fails on an unknown keyword, a parameter given twice, or extra positional arguments
  // (unless `rest_ok`, when they go to rest()).
  static absl::StatusOr<BoundArgs> Bind(std::string_view fn, CallArgs args,
                                        std::initializer_list<std::string_view> names,
                                        bool rest_ok = false);
  // The argument, or nullptr when not given.
  const Value* Get(size_t i) const { return given_[i] ? &values_[i] : nullptr; }
  Value Or(size_t i, Value dflt) const { return given_[i] ? values_[i] : std::move(dflt); }
  std::vector<Value>& rest() { return rest_; }

 private:
  std::vector<Value> values_;
  std::vector<bool> given_;
  std::vector<Value> rest_;
};

// The text of a value as str() gives it (filters take any value as a string).
absl::StatusOr<Text> AsText(const Value& v);
// Case changes (pystr.h): the length stays, so each byte keeps its origin.
Text UpperText(const Text& t);
Text LowerText(const Text& t);
Text CapitalizeText(const Text& t);
Text JinjaTitleText(const Text& t);
// Python's str.replace, each replacement taking the origin of what it replaced (value.h).
absl::StatusOr<Text> ReplaceText(const Text& s, const Text& old, const Text& repl, int64_t count,
                                 size_t max_bytes);

}  // namespace longview::jinja::internal
