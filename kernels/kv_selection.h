// What one sequence's attention reads from the paged KV cache: a *selection* (DESIGN §3–4).
//
// A selection is a list of spans, each a run of consecutive slots inside one page together with
// the position of its first key (the next keys take the next positions). Keys are cached before
// RoPE, so the position is free: dense attention uses each key's token index, StreamingLLM
// re-assigns the window's keys contiguous positions after the sinks, ReKV will number retrieved
// blocks contiguously, HiP will extend positions. Spans may leave gaps (evicted or unselected
// keys) and need not be in page order; the kernel masks by position (a query at position p sees
// keys at positions <= p), so spans should be listed in increasing position.
//
// This is the interface every attention mode plugs into: the mode (sliding window, HiP's pruned
// blocks, ReKV's retrieved blocks) builds a selection on the host; one kernel family
// (kernels/cpu/selection_attention.h, and the CUDA decode and prefill attention kernels) consumes it. A selection is shared by all
// KV heads, or given per KV head (HiP and score-based policies choose blocks per head).
//
//   KvSelection sel = DenseSelection(table.blocks(), page_size, kv_len);
//   int64_t q_pos = 0;
//   KvSelection sw = SinkWindowSelection(table.blocks(), page_size, t, /*sinks=*/4, /*window=*/64,
//                                        &q_pos);
// Thread-safety: plain values; the builders are pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/kv_span.h"

namespace longview {

struct KvSelection {
  std::vector<KvSpan> spans;
  // Empty: every KV head reads all of `spans`. Otherwise num_kv_heads + 1 offsets: KV head h
  // reads spans[head_begin[h], head_begin[h + 1]).
  std::vector<int32_t> head_begin;

  // The spans KV head `kv_head` reads.
  std::span<const KvSpan> ForHead(int64_t kv_head) const;
  // Keys KV head `kv_head` reads.
  int64_t NumKeys(int64_t kv_head) const;
};

// Appends the tokens [first_token, first_token + count) of a sequence, split at page
// boundaries, with positions first_position, first_position + 1, ...
// REQUIRES: block_table covers the tokens.
void AppendTokenRange(std::span<const int32_t> block_table, int64_t page_size,
                      int64_t first_token, int64_t count, int64_t first_position,
                      KvSelection& selection);

// Tokens [0, num_tokens) at positions equal to their index: dense attention.
KvSelection DenseSelection(std::span<const int32_t> block_table, int64_t page_size,
                           int64_t num_tokens);

// The keys the query at token index `query_token` reads under a plain window of `window` tokens
// (the query included; 0 = every key), at positions equal to their index.
KvSelection WindowSelection(std::span<const int32_t> block_table, int64_t page_size,
                            int64_t query_token, int64_t window);

// StreamingLLM for the query at token index `query_token` (window counts the query itself):
// tokens [0, sinks) at positions 0..sinks-1, then the window's tokens
// [max(sinks, query_token - window + 1), query_token] at contiguous positions from sinks on.
// Sets *query_position to the query's re-assigned position (the last one). Before any token is
// evicted this is exactly DenseSelection(query_token + 1) with *query_position = query_token.
// REQUIRES: window >= 1, 0 <= sinks; block_table entries of the selected tokens are valid (the
// others may be released, e.g. -1).
KvSelection SinkWindowSelection(std::span<const int32_t> block_table, int64_t page_size,
                                int64_t query_token, int64_t sinks, int64_t window,
                                int64_t* query_position);

}  // namespace longview
