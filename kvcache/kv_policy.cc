#include "kvcache/kv_policy.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

#include "absl/strings/str_format.h"

namespace longview {
namespace {

constexpr std::array<std::string_view, 5> kNames = {"none", "streaming", "h2o", "snapkv", "lazy"};
constexpr int64_t kMaxBudget = int64_t{1} << 31;

// Defaults (docs/policies.md says where each comes from).
constexpr int64_t kStreamingSinks = 4;     // StreamingLLM start_size
constexpr int64_t kSnapWindow = 32;        // SnapKV's LongBench configs: window 32,
constexpr int64_t kSnapKernel = 7;         // kernel 7, max pooling
constexpr int64_t kLazyWindow = 128;       // LazyEviction's argparse default W
constexpr double kLazyAlpha = 1e-4;        // and alpha
constexpr double kLazyEps = 1e-5;

absl::Status FieldError(const std::string& prefix, std::string_view field, std::string_view what,
                        std::string* bad_field) {
  if (bad_field != nullptr) *bad_field = prefix + std::string(field);
  return absl::InvalidArgumentError(absl::StrFormat("%s%s %s", prefix, field, what));
}

}  // namespace

std::span<const std::string_view> KvPolicyNames() { return kNames; }

std::string_view KvPolicyName(KvPolicyKind kind) { return kNames[static_cast<size_t>(kind)]; }

bool NeedsKeyStats(const KvPolicySpec& spec) {
  return spec.kind == KvPolicyKind::kH2O || spec.kind == KvPolicyKind::kSnapKV ||
         spec.kind == KvPolicyKind::kLazy;
}

absl::StatusOr<KvPolicySpec> ParseKvPolicy(const KvPolicyRequest& r, const std::string& prefix,
                                           std::string* bad_field) {
  KvPolicySpec s;
  const std::string name = r.policy.empty() ? "none" : r.policy;
  auto it = std::find(kNames.begin(), kNames.end(), name);
  if (it == kNames.end()) {
    std::string list;
    for (std::string_view n : kNames) list += (list.empty() ? "" : ", ") + std::string(n);
    return FieldError(prefix, "policy", absl::StrFormat("'%s' is unknown (one of: %s)", name, list),
                      bad_field);
  }
  s.kind = static_cast<KvPolicyKind>(it - kNames.begin());
  auto not_taken = [&](std::string_view field) {
    return FieldError(prefix, field, absl::StrFormat("is not a parameter of policy %s", name),
                      bad_field);
  };
  if (s.kind == KvPolicyKind::kNone) {
    if (r.budget.has_value() && *r.budget != 0) return not_taken("budget");
    for (auto [field, set] : {std::pair{"sinks", r.sinks.has_value()},
                              {"window", r.window.has_value()},
                              {"interval", r.interval.has_value()},
                              {"kernel", r.kernel.has_value()},
                              {"alpha", r.alpha.has_value()}}) {
      if (set) return not_taken(field);
    }
    return s;
  }
  if (!r.budget.has_value()) {
    return FieldError(prefix, "budget", absl::StrFormat("is required for policy %s", name),
                      bad_field);
  }
  s.budget = *r.budget;
  if (s.budget < 1 || s.budget > kMaxBudget) {
    return FieldError(prefix, "budget",
                      absl::StrFormat("must be in [1, %d], got %d", kMaxBudget, s.budget),
                      bad_field);
  }
  const bool streaming = s.kind == KvPolicyKind::kStreaming;
  const bool snap = s.kind == KvPolicyKind::kSnapKV, lazy = s.kind == KvPolicyKind::kLazy;
  if (r.sinks.has_value() && !streaming) return not_taken("sinks");
  if (r.interval.has_value() && !snap && !lazy) return not_taken("interval");
  if (r.kernel.has_value() && !snap) return not_taken("kernel");
  if (r.alpha.has_value() && !lazy) return not_taken("alpha");
  if (streaming && r.window.has_value()) return not_taken("window");

  switch (s.kind) {
    case KvPolicyKind::kStreaming:
      s.sinks = r.sinks.value_or(std::min(kStreamingSinks, s.budget - 1));
      if (s.sinks < 0 || s.sinks >= s.budget) {
        return FieldError(prefix, "sinks",
                          absl::StrFormat("must be in [0, %sbudget) = [0, %d), got %d", prefix,
                                          s.budget, s.sinks),
                          bad_field);
      }
      s.window = s.budget - s.sinks;
      break;
    case KvPolicyKind::kH2O:
      s.window = r.window.value_or(s.budget / 2);
      break;
    case KvPolicyKind::kSnapKV:
      s.window = r.window.value_or(std::max<int64_t>(1, std::min(kSnapWindow, s.budget / 2)));
      s.interval = r.interval.value_or(0);
      s.kernel = r.kernel.value_or(kSnapKernel);
      if (s.kernel < 1 || s.kernel % 2 == 0 || s.kernel > 1023) {
        return FieldError(prefix, "kernel",
                          absl::StrFormat("must be odd, in [1, 1023], got %d", s.kernel),
                          bad_field);
      }
      break;
    case KvPolicyKind::kLazy:
      s.window = r.window.value_or(std::max<int64_t>(1, std::min(kLazyWindow, s.budget / 4)));
      s.interval = r.interval.value_or(s.window);
      s.alpha = r.alpha.value_or(kLazyAlpha);
      if (!(s.alpha > 0 && s.alpha <= 1)) {
        return FieldError(prefix, "alpha", absl::StrFormat("must be in (0, 1], got %g", s.alpha),
                          bad_field);
      }
      break;
    case KvPolicyKind::kNone:
      break;
  }
  // h2o may keep only recent tokens (window == budget, H2O's "local" baseline); snapkv and lazy
  // select something past their window.
  const int64_t max_window = s.kind == KvPolicyKind::kH2O ? s.budget : s.budget - 1;
  if (!streaming && (s.window < (s.kind == KvPolicyKind::kH2O ? 0 : 1) || s.window > max_window)) {
    return FieldError(prefix, "window",
                      absl::StrFormat("must be in [%d, %d] (%sbudget is %d), got %d",
                                      s.kind == KvPolicyKind::kH2O ? 0 : 1, max_window, prefix,
                                      s.budget, s.window),
                      bad_field);
  }
  if (s.interval < 0 || s.interval > kMaxBudget || (lazy && s.interval < 1)) {
    return FieldError(prefix, "interval",
                      absl::StrFormat("must be in [%d, %d], got %d", lazy ? 1 : 0, kMaxBudget,
                                      s.interval),
                      bad_field);
  }
  return s;
}

std::vector<std::pair<std::string, double>> KvPolicyParams(const KvPolicySpec& s) {
  std::vector<std::pair<std::string, double>> out;
  if (!s.enabled()) return out;
  out.emplace_back("budget", static_cast<double>(s.budget));
  switch (s.kind) {
    case KvPolicyKind::kStreaming:
      out.emplace_back("sinks", static_cast<double>(s.sinks));
      break;
    case KvPolicyKind::kH2O:
      out.emplace_back("window", static_cast<double>(s.window));
      break;
    case KvPolicyKind::kSnapKV:
      out.emplace_back("window", static_cast<double>(s.window));
      out.emplace_back("kernel", static_cast<double>(s.kernel));
      out.emplace_back("interval", static_cast<double>(s.interval));
      break;
    case KvPolicyKind::kLazy:
      out.emplace_back("window", static_cast<double>(s.window));
      out.emplace_back("interval", static_cast<double>(s.interval));
      out.emplace_back("alpha", s.alpha);
      break;
    case KvPolicyKind::kNone:
      break;
  }
  return out;
}

std::vector<int64_t> KvPolicyState::KeptPositions() const {
  std::vector<int64_t> out;
  out.reserve(keys_.size());
  for (const Key& k : keys_) out.push_back(k.position);
  return out;
}

std::vector<int64_t> KvPolicyState::KeptSlots() const {
  std::vector<int64_t> out;
  out.reserve(keys_.size());
  for (const Key& k : keys_) out.push_back(k.slot);
  return out;
}

KvSelection KvPolicyState::Selection(std::span<const int32_t> block_table, int64_t page_size,
                                     int64_t end) {
  for (int64_t t = seen_; t < end; ++t) {
    // lazy: a new token's last importance is the step before the one computing it (t - 1 for
    // the step t that will observe it, as LazyEviction's code sets it).
    keys_.push_back({.position = t, .slot = t, .last = step_});
  }
  seen_ = std::max(seen_, end);
  KvSelection sel;
  for (const Key& k : keys_) {
    const int32_t page = block_table[k.slot / page_size];
    const int32_t slot = static_cast<int32_t>(k.slot % page_size);
    if (!sel.spans.empty()) {
      KvSpan& last = sel.spans.back();
      if (last.page_id == page && last.first_slot + last.count == slot &&
          last.first_position + last.count == k.position) {
        ++last.count;
        continue;
      }
    }
    sel.spans.push_back(
        {.page_id = page, .first_slot = slot, .count = 1, .first_position = k.position});
  }
  return sel;
}

int64_t KvPolicyState::StatsRows(int64_t start, int64_t end, int64_t num_prompt) const {
  const int64_t rows = end - start;
  switch (spec_.kind) {
    case KvPolicyKind::kH2O:
    case KvPolicyKind::kLazy:
      return rows;
    case KvPolicyKind::kSnapKV:
      if (end < num_prompt) return 0;
      if (start < num_prompt) {
        // The step ending the prompt: the observation window's queries (those of this step).
        if (end > num_prompt) return 0;  // (a prompt is never scheduled past its end)
        return std::min(rows, spec_.window);
      }
      return spec_.interval > 0 ? rows : 0;  // decode votes for the next re-selection
    case KvPolicyKind::kStreaming:
    case KvPolicyKind::kNone:
      return 0;
  }
  return 0;
}

void KvPolicyState::Observe(std::span<const float> stats, int64_t num_kv_heads,
                            double per_row_norm, int64_t rows) {
  const int64_t n = num_kept();
  if (rows <= 0 || num_kv_heads <= 0 || per_row_norm <= 0 ||
      static_cast<int64_t>(stats.size()) != num_kv_heads * n) {
    return;
  }
  // Mean over layers and query heads, summed over the rows.
  const double norm = per_row_norm * static_cast<double>(num_kv_heads);
  auto attention = [&](int64_t j) {
    double sum = 0;
    for (int64_t h = 0; h < num_kv_heads; ++h) sum += stats[h * n + j];
    return sum / norm;
  };
  switch (spec_.kind) {
    case KvPolicyKind::kH2O:
      for (int64_t j = 0; j < n; ++j) keys_[j].score += attention(j);
      break;
    case KvPolicyKind::kSnapKV:
      // A token's vote is its largest among the KV heads (each head's mean over its query heads
      // and the layers): SnapKV selects per head, and one shared decision then keeps what some
      // head needs most rather than what all need on average (on longview-tiny at a 25% budget
      // the head mean scored 75%, this 86%: docs/eval/kv_policies.md).
      for (int64_t j = 0; j < n; ++j) {
        double best = 0;
        for (int64_t h = 0; h < num_kv_heads; ++h) best = std::max<double>(best, stats[h * n + j]);
        keys_[j].score += best / per_row_norm;
      }
      break;
    case KvPolicyKind::kLazy: {
      // The clock counts engine steps: a decode step is one token, a prefill step one
      // observation with the step's mean attention. (Counted in tokens, a token attended at
      // every prefill step of 128 tokens would get a recurrence interval of 128, not 1, and
      // lose the priority the score gives tokens needed at every step, the attention sinks.)
      const int64_t t = ++step_;
      const double threshold = spec_.alpha * static_cast<double>(rows);
      for (int64_t j = 0; j < n; ++j) {
        Key& k = keys_[j];
        if (attention(j) < threshold) continue;
        k.mri = std::max(k.mri, t - k.last);
        k.last = t;
      }
      break;
    }
    case KvPolicyKind::kStreaming:
    case KvPolicyKind::kNone:
      break;
  }
}

void KvPolicyState::KeepBest(const std::vector<double>& score, int64_t n,
                             std::vector<bool>& keep) const {
  std::vector<int64_t> cand;
  for (int64_t j = 0; j < num_kept(); ++j) {
    if (!keep[j]) cand.push_back(j);
  }
  n = std::min<int64_t>(n, static_cast<int64_t>(cand.size()));
  if (n <= 0) return;
  std::partial_sort(cand.begin(), cand.begin() + n, cand.end(), [&](int64_t a, int64_t b) {
    return score[a] != score[b] ? score[a] > score[b] : a > b;
  });
  for (int64_t i = 0; i < n; ++i) keep[cand[i]] = true;
}

KvCompaction KvPolicyState::Evict(int64_t end, int64_t num_prompt, int64_t page_size) {
  const int64_t n = num_kept();
  const int64_t budget = spec_.budget;
  // SnapKV selects once when the prompt has been computed (if it is over budget then), and
  // during decoding only every `interval` steps when that is set.
  const bool prompt_end = !prompt_selected_ && end >= num_prompt;
  if (prompt_end) prompt_selected_ = true;
  if (!spec_.enabled() || n <= budget) return {};
  std::vector<bool> keep(n, false);
  auto keep_last = [&](int64_t count) {
    for (int64_t j = std::max<int64_t>(0, n - count); j < n; ++j) keep[j] = true;
  };
  std::vector<double> score(n, 0.0);
  switch (spec_.kind) {
    case KvPolicyKind::kStreaming:
      for (int64_t j = 0; j < std::min(spec_.sinks, n); ++j) keep[j] = true;
      keep_last(budget - spec_.sinks);
      break;
    case KvPolicyKind::kH2O:
      keep_last(spec_.window);
      for (int64_t j = 0; j < n; ++j) score[j] = keys_[j].score;
      KeepBest(score, budget - spec_.window, keep);
      break;
    case KvPolicyKind::kSnapKV: {
      if (end < num_prompt) return {};  // the whole prompt first: its last queries vote
      if (!prompt_end && (spec_.interval == 0 || end - last_eviction_ < spec_.interval)) {
        return {};
      }
      keep_last(spec_.window);
      // Max pooling of the votes over neighbouring kept tokens (SnapKV keeps clusters).
      const int64_t half = spec_.kernel / 2;
      for (int64_t j = 0; j < n; ++j) {
        double m = 0;
        for (int64_t i = std::max<int64_t>(0, j - half); i <= std::min(n - 1, j + half); ++i) {
          m = std::max(m, keys_[i].score);
        }
        score[j] = m;
      }
      KeepBest(score, budget - spec_.window, keep);
      break;
    }
    case KvPolicyKind::kLazy: {
      // While the prompt is computed, after every step over budget (LazyEviction's code never
      // compresses the prompt; ours keeps a long prompt within the budget); then every
      // `interval` decode steps.
      const bool prefill = end <= num_prompt;
      if (!prefill && last_eviction_step_ > 0 && step_ - last_eviction_step_ < spec_.interval) {
        return {};
      }
      last_eviction_step_ = step_;
      keep_last(spec_.window);
      const double t = static_cast<double>(step_);
      for (int64_t j = 0; j < n; ++j) {
        const Key& k = keys_[j];
        const double mri = static_cast<double>(k.mri);
        const double s = k.mri > 0 ? 2.0 / (1.0 + std::exp(mri - 1.0)) : 0.0;
        score[j] =
            2.0 / (1.0 + std::exp(1.0 + (t - static_cast<double>(k.last)) / (mri + kLazyEps))) + s;
      }
      KeepBest(score, budget - spec_.window, keep);
      break;
    }
    case KvPolicyKind::kNone:
      return {};
  }
  last_eviction_ = end;
  KvCompaction c = Compact(keep, end, page_size);
  if (spec_.kind == KvPolicyKind::kSnapKV) {
    for (Key& k : keys_) k.score = 0;  // the next re-selection counts fresh votes
  }
  return c;
}

KvCompaction KvPolicyState::Compact(const std::vector<bool>& keep, int64_t end,
                                    int64_t page_size) {
  KvCompaction c;
  const int64_t num_blocks = (end + page_size - 1) / page_size;
  if (static_cast<int64_t>(released_.size()) < num_blocks) released_.resize(num_blocks, 0);
  std::vector<Key> kept;
  kept.reserve(keys_.size());
  for (size_t j = 0; j < keys_.size(); ++j) {
    if (keep[j]) {
      kept.push_back(keys_[j]);
    } else {
      ++c.evicted;
    }
  }
  // Lazily: blocks left without a kept token are released as they are; the survivors are packed
  // only once the holes in the blocks still held exceed a quarter of the budget (at least two
  // pages: the sinks' page and the window's oldest one may be part empty), so a sliding recent
  // window (streaming) never moves anything and scattered evictions
  // (h2o, snapkv, lazy) move at most ~4 tokens per evicted one, amortized.
  std::vector<uint8_t> used(num_blocks, 0);
  for (const Key& k : kept) used[k.slot / page_size] = 1;
  int64_t held_slots = 0;
  for (int64_t b = 0; b < num_blocks; ++b) {
    if (released_[b] == 0 && used[b] != 0) {
      held_slots += std::min(page_size, end - b * page_size);
    }
  }
  const int64_t waste = held_slots - static_cast<int64_t>(kept.size());
  if (waste > std::max(2 * page_size, spec_.budget / 4)) {
    // Destinations: the held slots below `end`, in order; the j-th kept key's slot is at or
    // after the j-th held slot (the keys sit in distinct held slots), so no move overwrites a
    // source still to be read.
    int64_t block = 0, offset = 0;
    auto next_slot = [&]() {
      while (released_[block] != 0) ++block;
      const int64_t slot = block * page_size + offset;
      if (++offset == page_size) {
        offset = 0;
        ++block;
      }
      return slot;
    };
    std::fill(used.begin(), used.end(), 0);
    for (Key& k : kept) {
      const int64_t dst = next_slot();
      if (dst != k.slot) c.moves.emplace_back(k.slot, dst);
      k.slot = dst;
      used[dst / page_size] = 1;
    }
  }
  // Release the blocks before the one holding `end` (written next) that hold nothing now.
  for (int64_t b = 0; b < end / page_size; ++b) {
    if (released_[b] == 0 && used[b] == 0) {
      released_[b] = 1;
      c.free_blocks.push_back(b);
    }
  }
  keys_ = std::move(kept);
  return c;
}

}  // namespace longview
