#include "engine/runner/input_embeddings.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_format.h"
#include "common/mix64.h"

namespace longview {
namespace {

uint64_t RowKey(std::span<const float> row) {
  uint64_t h = Mix64(0x452821E638D01377ull ^ row.size());
  for (float f : row) {
    uint32_t bits = 0;
    std::memcpy(&bits, &f, sizeof(bits));
    h = Mix64(h ^ (bits + 0x9E3779B97F4A7C15ull));
  }
  return h == 0 ? 1 : h;
}

}  // namespace

std::shared_ptr<const EmbeddingRun> MakeEmbeddingRun(int64_t start, int64_t hidden,
                                                     std::vector<float> rows) {
  auto run = std::make_shared<EmbeddingRun>();
  run->start = start;
  run->hidden = hidden;
  run->rows = std::move(rows);
  const int64_t n = run->size();
  run->keys.resize(n);
  for (int64_t r = 0; r < n; ++r) {
    run->keys[r] = RowKey({run->rows.data() + r * hidden, static_cast<size_t>(hidden)});
  }
  return run;
}

const float* FindEmbeddingRow(const EmbeddingRuns& runs, int64_t pos) {
  auto it = std::upper_bound(runs.begin(), runs.end(), pos,
                             [](int64_t p, const auto& run) { return p < run->start; });
  if (it == runs.begin()) return nullptr;
  const EmbeddingRun& run = **(it - 1);
  if (pos >= run.start + run.size()) return nullptr;
  return run.rows.data() + (pos - run.start) * run.hidden;
}

std::vector<uint64_t> EmbeddingTokenKeys(const EmbeddingRuns& runs, int64_t num_prompt_tokens) {
  if (runs.empty()) return {};
  std::vector<uint64_t> keys(num_prompt_tokens, 0);
  for (const auto& run : runs) {
    const int64_t end = std::min(run->start + run->size(), num_prompt_tokens);
    for (int64_t p = std::max<int64_t>(run->start, 0); p < end; ++p) {
      keys[p] = run->keys[p - run->start];
    }
  }
  return keys;
}

absl::Status ValidateEmbeddingRuns(const EmbeddingRuns& runs, std::span<const int32_t> prompt,
                                   int64_t hidden) {
  const int64_t n = static_cast<int64_t>(prompt.size());
  int64_t covered = 0, end = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (runs[i] == nullptr) return absl::InvalidArgumentError("embeddings: a run is null");
    const EmbeddingRun& run = *runs[i];
    if (run.hidden != hidden) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "embeddings: rows of %d values, the model's hidden size is %d", run.hidden, hidden));
    }
    if (run.size() == 0 || static_cast<int64_t>(run.rows.size()) != run.size() * hidden ||
        static_cast<int64_t>(run.keys.size()) != run.size()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("embeddings: run %d is empty or malformed", i));
    }
    if (run.start < end || run.start + run.size() > n) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "embeddings: run %d (positions %d to %d) overlaps another or lies outside the %d "
          "prompt tokens",
          i, run.start, run.start + run.size(), n));
    }
    for (float f : run.rows) {
      if (!std::isfinite(f)) {
        return absl::InvalidArgumentError(
            absl::StrFormat("embeddings: run %d has a value that is not finite", i));
      }
    }
    for (int64_t p = run.start; p < run.start + run.size(); ++p) {
      if (prompt[p] != kEmbeddingToken) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "embeddings: prompt position %d holds token %d, not the embedding placeholder %d", p,
            prompt[p], kEmbeddingToken));
      }
    }
    covered += run.size();
    end = run.start + run.size();
  }
  const int64_t placeholders = std::count(prompt.begin(), prompt.end(), kEmbeddingToken);
  if (placeholders != covered) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "prompt_tokens: %d embedding placeholders (%d) but %d embedding rows", placeholders,
        kEmbeddingToken, covered));
  }
  return absl::OkStatus();
}

}  // namespace longview
