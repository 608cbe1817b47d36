// One place that knows what an attention mode means (DESIGN §4): its KV footprint, its token
// limit and the host side of a step (which keys each query row reads, at which RoPE positions).
// The engine loop, the scheduler, the evaluator and both backends ask the mode; none of them
// tests a mode's parameters.
//
//   ASSIGN_OR_RETURN(Attention a, Attention::Of(SlidingWindowAttention{.window = 64, .sinks = 4}));
//   a->Footprint();                        // {.sinks = 4, .window = 64, .exit = kFreed}
//   a->MaxSequenceLength(context);         // unbounded: StreamingLLM re-assigns positions
//   int64_t q_pos;
//   KvSelection sel = a->SelectKv(block_table, page_size, token, model_window, &q_pos);
//
// A mode is immutable and shared by every sequence that uses it. `Attention` (a handle, dense by
// default) is what requests, sequences and step plans carry. The registry (AttentionModes())
// lists the modes by name for the APIs; ParseAttention turns what a request names into one.
// Thread-safety: modes are immutable; everything here is safe from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "engine/attention/attention_spec.h"
#include "engine/model/model_config.h"
#include "kernels/kv_selection.h"

namespace longview {

// What becomes of a sequence's pages that its attention will never read again.
enum class PageExit {
  kKept,     // nothing leaves (dense attention without windows)
  kFreed,    // freed as they leave (sliding windows)
  kDemoted,  // moved to a slower tier, still addressable (retrieval modes, later)
};

// The KV a sequence keeps while it runs.
struct KvFootprint {
  int64_t sinks = 0;        // first tokens every query reads
  int64_t window = -1;      // last tokens every query reads: -1 each layer's own (the model's),
                            // 0 every key, > 0 that many (the query included)
  int64_t state_bytes = 0;  // per-sequence state (KvCacheManager state slots)
  PageExit exit = PageExit::kKept;
};

class AttentionMode {
 public:
  virtual ~AttentionMode() = default;

  // The registry name ("dense", "sliding_window").
  virtual std::string_view name() const = 0;
  virtual const AttentionSpec& spec() const = 0;
  // The parameters as reported by tools (eval results): name -> value.
  virtual std::vector<std::pair<std::string, int64_t>> Params() const = 0;
  virtual KvFootprint Footprint() const = 0;

  // Token limit: the longest sequence (prompt + generated) this mode runs under a model whose
  // context is `context` positions. Above `context` only when positions are re-assigned.
  virtual int64_t MaxSequenceLength(int64_t context) const = 0;
  // InvalidArgument naming the fields when prompt + max_tokens exceeds MaxSequenceLength.
  absl::Status CheckLength(int64_t num_prompt, int64_t max_tokens, int64_t context) const;

  // True when each query row reads its own selection (SelectKv) rather than keys by token
  // position under a window: the backends then run the selection kernels.
  virtual bool PerRowSelection() const = 0;
  // The RoPE position of the query at token index `token`.
  virtual int64_t QueryPosition(int64_t token) const = 0;
  // The keys the query at token index `token` reads in a layer whose own window is
  // `model_window` (0 = none), and its RoPE position (*query_position).
  // REQUIRES: block_table covers the selected tokens.
  virtual KvSelection SelectKv(std::span<const int32_t> block_table, int64_t page_size,
                               int64_t token, int64_t model_window,
                               int64_t* query_position) const = 0;

  // The window a layer reads (0 = every key) when the model's own window for it is `model_window`.
  int64_t LayerWindow(int64_t model_window) const;
  // The window under which a sequence's pages that left it may be released (0: none are):
  // Footprint().window when set, else `model_window`, the model's own (ModelReleasableWindow).
  int64_t ReleasableWindow(int64_t model_window) const;
  int64_t ReleasableWindow(const ModelConfig& cfg) const;
  // KV pages a sequence of `num_tokens` tokens holds at most, computed `chunk` tokens per step:
  // all of its pages, or under a releasable window the sinks', the window's and one chunk's
  // (pages leave as the window moves). No overflow for any num_tokens >= 0.
  int64_t PagesHeld(int64_t num_tokens, int64_t page_size, int64_t chunk,
                    int64_t model_window) const;
  // Keeps the prefix caches of modes that write different K/V apart (0: the model's own).
  virtual uint64_t PrefixCacheSalt() const;
  // HiP's parameters when the keys a row reads depend on its queries (mode hip: the backend
  // prunes per query block, engine/attention/hip.h), else null.
  virtual const HipAttention* hip() const { return nullptr; }

 protected:
  // The error CheckLength returns; by default names prompt_tokens and max_tokens.
  virtual absl::Status LengthError(int64_t num_prompt, int64_t max_tokens, int64_t context) const;
};

// The window under which a model's own attention lets pages go: every layer windowed (Mistral) →
// the widest layer window; some layer reads everything (Gemma-style interleaving, or no windows)
// → 0.
int64_t ModelReleasableWindow(const ModelConfig& cfg);

// A handle on a validated mode: dense by default, cheap to copy.
class Attention {
 public:
  Attention();  // dense
  // InvalidArgument when `spec` breaks its mode's rules; the message starts with the field,
  // `prefix` + parameter name (e.g. "attention.sinks").
  static absl::StatusOr<Attention> Of(const AttentionSpec& spec,
                                      const std::string& prefix = "attention.");

  const AttentionMode& mode() const { return *mode_; }
  const AttentionMode* operator->() const { return mode_.get(); }
  const AttentionMode& operator*() const { return *mode_; }
  bool operator==(const Attention& other) const { return mode_->spec() == other->spec(); }

 private:
  explicit Attention(std::shared_ptr<const AttentionMode> mode) : mode_(std::move(mode)) {}
  std::shared_ptr<const AttentionMode> mode_;
};

// The registry: one entry per mode the APIs can name, in the order they are listed to users.
struct AttentionModeEntry {
  std::string_view name;
  // The request's parameters into this mode's spec. Errors start with the field (`prefix` +
  // parameter); a parameter the mode does not take is an error.
  absl::StatusOr<AttentionSpec> (*parse)(const AttentionRequest& request, const std::string& prefix);
};
std::span<const AttentionModeEntry> AttentionModes();

// Parses and validates what a request names: an unknown mode, a parameter the mode does not take
// or a value against its rules is InvalidArgument whose message starts with the field
// (`prefix` + "mode" / parameter), also stored in *bad_field when given.
absl::StatusOr<Attention> ParseAttention(const AttentionRequest& request, const std::string& prefix,
                                         std::string* bad_field = nullptr);

}  // namespace longview
