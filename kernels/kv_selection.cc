#include "kernels/kv_selection.h"

#include <algorithm>

namespace longview {

std::span<const KvSpan> KvSelection::ForHead(int64_t kv_head) const {
  if (head_begin.empty()) return spans;
  return std::span<const KvSpan>(spans).subspan(
      head_begin[kv_head], head_begin[kv_head + 1] - head_begin[kv_head]);
}

int64_t KvSelection::NumKeys(int64_t kv_head) const {
  int64_t n = 0;
  for (const KvSpan& s : ForHead(kv_head)) n += s.count;
  return n;
}

void AppendTokenRange(std::span<const int32_t> block_table, int64_t page_size,
                      int64_t first_token, int64_t count, int64_t first_position,
                      KvSelection& selection) {
  int64_t t = first_token;
  const int64_t end = first_token + count;
  while (t < end) {
    const int64_t slot = t % page_size;
    const int64_t n = std::min(end - t, page_size - slot);
    selection.spans.push_back({.page_id = block_table[t / page_size],
                               .first_slot = static_cast<int32_t>(slot),
                               .count = static_cast<int32_t>(n),
                               .first_position = first_position + (t - first_token)});
    t += n;
  }
}

KvSelection DenseSelection(std::span<const int32_t> block_table, int64_t page_size,
                           int64_t num_tokens) {
  KvSelection sel;
  AppendTokenRange(block_table, page_size, 0, num_tokens, 0, sel);
  return sel;
}

KvSelection WindowSelection(std::span<const int32_t> block_table, int64_t page_size,
                            int64_t query_token, int64_t window) {
  const int64_t first = window > 0 ? std::max<int64_t>(0, query_token - window + 1) : 0;
  KvSelection sel;
  AppendTokenRange(block_table, page_size, first, query_token - first + 1, first, sel);
  return sel;
}

KvSelection SinkWindowSelection(std::span<const int32_t> block_table, int64_t page_size,
                                int64_t query_token, int64_t sinks, int64_t window,
                                int64_t* query_position) {
  KvSelection sel;
  const int64_t num_sinks = std::min(sinks, query_token + 1);
  AppendTokenRange(block_table, page_size, 0, num_sinks, 0, sel);
  const int64_t start = std::max(num_sinks, query_token - window + 1);
  AppendTokenRange(block_table, page_size, start, query_token + 1 - start, num_sinks, sel);
  *query_position = num_sinks + (query_token - start);
  return sel;
}

}  // namespace longview
