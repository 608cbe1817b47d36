// A Jinja template engine for the chat templates of Hugging Face models: the subset of jinja2
// those templates use, configured as transformers configures it (trim_blocks, lstrip_blocks,
// loop controls, a `tojson` that keeps non-ASCII text and key order, `raise_exception`,
// `strftime_now`, the immutable sandbox), with the provenance of every output byte.
//
//   ASSIGN_OR_RETURN(jinja::Template t, jinja::Template::Parse(source, "chat template"));
//   ASSIGN_OR_RETURN(RenderedPrompt p, t.Render({
//       {"bos_token", jinja::Value::Str(jinja::Text::Template("<s>"))},
//       {"messages", messages_from_the_client},   // strings built with Text::Client
//   }));
//   // p.special_ranges: the bytes the template wrote (value.h states the rule).
//
// Supported: {{ }}, {% %}, {# #} with `-` / `+` whitespace control; for (tuple targets, `if`
// filter, else, loop.index/index0/revindex/revindex0/first/last/length/previtem/nextitem/cycle,
// break, continue), if / elif / else, set (names, tuples, namespace attributes, blocks with a
// filter), macro (defaults, varargs, kwargs, caller), call, filter, with, raw, generation;
// Python expressions with jinja2's precedence (conditional expressions, and / or / not,
// comparisons and `in`, + - * / // % **, `~`, slicing, calls with keyword arguments, list / tuple
// / dict literals); the filters of internal/filters.cc (trim, tojson, length, select/reject(attr),
// map, join, first, last, default, case, string, int, float, list, safe, indent, replace, unique,
// reverse, sort, dictsort, items, min, max, sum, abs, round, attr, format) and the tests of
// internal/tests_globals.cc; str, dict and list methods (internal/methods.cc).
// Undefined values behave as jinja2's default Undefined: they print as "", iterate as empty,
// are false, and raise an error when used otherwise (attribute, call, arithmetic).
// Not supported: extends / block / include / import, recursive loops, *args / **kwargs in
// calls, autoescaping, str.format specs; case mapping covers ASCII, Latin-1, Latin Extended-A,
// Greek and Cyrillic (internal/pystr.h). select / map / items / range give lists where jinja2
// gives generators and views, so they print as lists and `select(...) | length` works.
//
// Errors are InvalidArgument naming the template and the line and column: syntax errors from
// Parse, and from Render runtime errors, raise_exception(message), and the limits below.
// Thread-safety: a Template is immutable; Render may run concurrently from several threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "engine/text/jinja/value.h"
#include "engine/text/rendered_prompt.h"

namespace longview::jinja {

namespace internal {
struct Program;
class LineIndex;
}  // namespace internal

struct RenderLimits {
  // Output (and any one string or list the template builds) at most this many bytes.
  size_t max_output_bytes = size_t{64} << 20;
  // Expression evaluations and statements at most; bounds loops that print nothing.
  int64_t max_steps = 50'000'000;
  // Macro calls nested at most this deep (recursion).
  int max_call_depth = 64;
};

class Template {
 public:
  // `name` prefixes error messages ("chat template, line 3, column 7: ...").
  static absl::StatusOr<Template> Parse(std::string_view source, std::string name);

  // Renders with `vars` as the template's variables (later entries win over earlier ones).
  absl::StatusOr<RenderedPrompt> Render(const std::vector<std::pair<std::string, Value>>& vars,
                                        const RenderLimits& limits = {}) const;

 private:
  struct Compiled;
  explicit Template(std::shared_ptr<const Compiled> c) : compiled_(std::move(c)) {}
  std::shared_ptr<const Compiled> compiled_;
};

}  // namespace longview::jinja
