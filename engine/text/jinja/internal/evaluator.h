// The tree-walking evaluator: renders a Program with jinja2's semantics (scoping: a for loop's
// body and a macro get their own scope per iteration / call, `if` does not; undefined values
// as jinja2's default Undefined) within limits on steps, output size and call depth.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "engine/text/jinja/internal/ast.h"
#include "engine/text/jinja/internal/lexer.h"
#include "engine/text/jinja/value.h"

namespace longview::jinja {
struct RenderLimits;
}

namespace longview::jinja::internal {

struct Scope {
  explicit Scope(std::shared_ptr<Scope> p) : parent(std::move(p)) {}
  const Value* Find(const std::string& name) const;
  std::shared_ptr<Scope> parent;
  std::unordered_map<std::string, Value> vars;
};

class Evaluator {
 public:
  Evaluator(const Program& program, const LineIndex& lines, const RenderLimits& limits);
  ~Evaluator();

  // Renders the program with `vars` as the template's variables.
  absl::StatusOr<Text> Render(const std::vector<std::pair<std::string, Value>>& vars);

  // ---- for builtins ----
  // Counts one step; ResourceExhausted-like InvalidArgument past the limit.
  absl::Status Tick();
  // InvalidArgument when a string or list of `bytes` would pass the output limit.
  absl::Status CheckSize(size_t bytes) const;
  // The output limit, for builtins that must stop building a string early.
  size_t max_bytes() const;
  // Calls a callable value (builtin, bound method or macro).
  absl::StatusOr<Value> CallValue(const Value& fn, CallArgs args);
  // Applies a filter / test by name (map('trim'), select('odd'), ...).
  absl::StatusOr<Value> Filter(std::string_view name, Value input, CallArgs args);
  absl::StatusOr<bool> Test(std::string_view name, const Value& v, CallArgs args);
  // A new namespace() value; its entries are cleared after the render (breaking any cycle).
  Value NewNamespace();

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  using ScopePtr = std::shared_ptr<Scope>;

  absl::Status ExecBody(const Body& body, const ScopePtr& scope, Text& out);
  absl::Status Exec(const Stmt& s, const ScopePtr& scope, Text& out);
  absl::Status ExecFor(const Stmt& s, const ScopePtr& scope, Text& out);
  absl::Status ExecSet(const Stmt& s, const ScopePtr& scope, Text& out);
  absl::Status ExecCallBlock(const Stmt& s, const ScopePtr& scope, Text& out);
  absl::Status Append(Text& out, const Text& piece, size_t offset);
  absl::Status Assign(const std::vector<std::string>& targets, const Value& v,
                      const ScopePtr& scope, size_t offset);
  absl::StatusOr<Value> CallMacro(const Stmt& m, const std::weak_ptr<Scope>& closure,
                                  CallArgs args);
  Value MakeMacro(const Stmt& m, const ScopePtr& scope, const std::string& name);

  absl::StatusOr<Value> Eval(const Expr& e, const ScopePtr& scope);
  absl::StatusOr<Value> EvalInner(const Expr& e, const ScopePtr& scope);
  absl::StatusOr<CallArgs> EvalArgs(const Expr& e, size_t first, const ScopePtr& scope);
  // A filter chain; `block_input` feeds the innermost filter when its input is null.
  absl::StatusOr<Value> EvalFilter(const Expr& e, const ScopePtr& scope, const Value* block_input);
  absl::StatusOr<Value> EvalCompare(const Expr& e, const ScopePtr& scope);
  Value Lookup(const std::string& name, const ScopePtr& scope) const;

  // Prefixes "line L, column C: " to an error not yet located.
  absl::Status Locate(absl::Status status, size_t offset) const;
  template <typename T>
  absl::StatusOr<T> Locate(absl::StatusOr<T> v, size_t offset) const {
    if (v.ok()) return v;
    return Locate(v.status(), offset);
  }

  const Program& program_;
  const LineIndex& lines_;
  const RenderLimits& limits_;
  int64_t steps_ = 0;
  int call_depth_ = 0;
  Flow flow_ = Flow::kNormal;
  std::vector<std::shared_ptr<Dict>> namespaces_;
};

}  // namespace longview::jinja::internal
