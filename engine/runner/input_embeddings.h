// Input embeddings: rows given in place of the token embeddings of some prompt positions (a
// session's appended frames, the output of a vision encoder). The prompt holds
// kEmbeddingToken at those positions; each row has a content key that joins the prefix cache's
// block hash, so blocks with different rows never share a cache entry.
//
//   auto run = MakeEmbeddingRun(/*start=*/7, hidden, std::move(rows));  // rows: [n][hidden]
//   request.embeddings.push_back(run);          // prompt_tokens[7 .. 7 + n) == kEmbeddingToken
//   const float* row = FindEmbeddingRow(request.embeddings, 9);   // run->rows + 2 * hidden
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/status.h"

namespace longview {

// The prompt token at a position whose input is an embedding row.
inline constexpr int32_t kEmbeddingToken = -1;

// Consecutive rows at prompt positions [start, start + size()).
struct EmbeddingRun {
  int64_t start = 0;
  int64_t hidden = 0;
  std::vector<float> rows;     // [size()][hidden]
  std::vector<uint64_t> keys;  // per row: a hash of its values, never 0
  int64_t size() const { return hidden > 0 ? static_cast<int64_t>(rows.size()) / hidden : 0; }
};

// Sorted by start, disjoint; shared (immutable) between a session and its requests.
using EmbeddingRuns = std::vector<std::shared_ptr<const EmbeddingRun>>;

// A run over `rows` ([n][hidden]) with its keys computed.
std::shared_ptr<const EmbeddingRun> MakeEmbeddingRun(int64_t start, int64_t hidden,
                                                     std::vector<float> rows);

// The row at prompt position `pos`, or nullptr.
const float* FindEmbeddingRow(const EmbeddingRuns& runs, int64_t pos);

// The row a step's `token` at `pos` reads: its run's row when token is kEmbeddingToken and
// `runs` has one there, else nullptr (a token id to look up, or an invalid one).
inline const float* EmbeddingRowFor(const EmbeddingRuns* runs, int32_t token, int64_t pos) {
  return token == kEmbeddingToken && runs != nullptr ? FindEmbeddingRow(*runs, pos) : nullptr;
}

// Per prompt position: the row's key, 0 where the input is a token (empty without runs).
std::vector<uint64_t> EmbeddingTokenKeys(const EmbeddingRuns& runs, int64_t num_prompt_tokens);

// Checks runs against a prompt: sorted, disjoint, inside it, rows of `hidden` values, finite,
// and kEmbeddingToken exactly at their positions. InvalidArgument naming what is wrong.
absl::Status ValidateEmbeddingRuns(const EmbeddingRuns& runs, std::span<const int32_t> prompt,
                                   int64_t hidden);

}  // namespace longview
