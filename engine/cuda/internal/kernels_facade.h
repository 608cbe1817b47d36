// The CUDA runner's view of kernels/cuda (engine/cuda internal): one call per kernel family with
// the model's fixed parameters bound, plans cached and workspaces owned, cudaError_t turned into
// absl::Status. Every call only enqueues on `stream`, so a decode step can be captured.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "common/status.h"
#include "kernels/cuda/decode_attention/decode_attention.h"
#include "kernels/cuda/dtype.h"

namespace longview::cuda_internal {

// The smallest power of two >= x (batch and context buckets of decode plans and graphs).
inline int64_t NextPow2(int64_t x) {
  int64_t p = 1;
  while (p < x) p <<= 1;
  return p;
}

// Where one layer's K and V live in the page pool.
struct PagesView {
  void* pages = nullptr;
  int64_t page_stride = 0;  // elements
  int64_t k_offset = 0;
  int64_t v_offset = 0;
};

class KernelsFacade {
 public:
  struct Config {
    cuda::DType dtype = cuda::DType::kBF16;
    int head_dim = 0, num_q_heads = 0, num_kv_heads = 0, page_size = 0;
    int64_t vocab = 0;
    int64_t max_rows = 0;  // rows of logits / decode batch bound
    int64_t max_model_len = 0;
    int64_t max_position = 0;
    int rope_hi_rows = 0;
    const float* rope_lo = nullptr;
    const float* rope_hi = nullptr;
    std::vector<int64_t> windows;  // the model's distinct per-layer windows (0 = full)
  };
  static absl::StatusOr<std::unique_ptr<KernelsFacade>> Create(const Config& config);
  ~KernelsFacade();

  // out[i] = table[ids[i]] (rows of `width` elements).
  absl::Status Gather(const int32_t* ids, int64_t n, const void* table, int64_t num_table_rows,
                      int64_t width, void* out, cudaStream_t stream);
  // Appends n tokens' K and V (rows row_stride apart) to the pages; with q != nullptr also
  // rotates the q heads of the first num_q_rows rows (same stride) at q_positions, fused.
  absl::Status KvAppend(const void* k, const void* v, int64_t row_stride, const int64_t* slots,
                        int64_t n, const PagesView& pages, cudaStream_t stream, void* q = nullptr,
                        int64_t num_q_rows = 0, const int32_t* q_positions = nullptr);
  // Rotates the q heads of `n` rows (row_stride elements apart) in place at `positions`.
  absl::Status RotateQ(void* q, int64_t n, int64_t row_stride, const int32_t* positions,
                       cudaStream_t stream);
  // Decode over `batch` sequences (rows of q, pre-rotated), context at most context_bucket keys.
  absl::Status Decode(int64_t window, int64_t batch, int64_t context_bucket, const void* q,
                      int64_t q_row_stride, void* out, const PagesView& pages,
                      const int32_t* block_tables, int64_t table_stride, const int32_t* kv_lens,
                      cudaStream_t stream);
  // Decode over `batch` sequences (q pre-rotated at each query's position) attending to exactly
  // their spans (CSR offsets [batch + 1]); eager only (the workspace grows on demand).
  // KV-policy statistics of selection rows (kernels/cuda/key_stats): each key's probability,
  // summed over its KV head's query heads, added to the rows' blocks. Fused (scores != null):
  // the decode kernel writes the rows' scores, a second kernel normalises them; else a
  // standalone pass re-reads K.
  struct KeyStatsRows {
    float* lse;                   // [rows][num_q_heads]
    const int32_t* span_keys;     // [spans]
    const int64_t* stats_base;    // [rows], -1 = none
    const int32_t* stats_stride;  // [rows]
    float* stats;
    float* scores;                // fused: the scores buffer, else null
    const int64_t* scores_base;   // fused: [rows], -1 = none
    const int32_t* scores_stride; // fused: [rows], keys of the row
    int64_t max_keys;             // fused: the most keys of a row
  };
  // With stats != nullptr also computes the statistics above.
  absl::Status DecodeSelection(int64_t batch, int64_t max_spans, const void* q,
                               int64_t q_row_stride, void* out, const PagesView& pages,
                               const KvSpan* spans, const int32_t* span_offsets,
                               cudaStream_t stream, const KeyStatsRows* stats = nullptr);
  // Prefill / general attention over num_seqs sequences (q unrotated).
  absl::Status Prefill(int64_t num_seqs, int64_t num_rows, int64_t max_kv_len, const void* q,
                       int64_t q_row_stride, void* out, const PagesView& pages,
                       const int32_t* block_tables, int64_t table_stride, const int32_t* q_start,
                       const int32_t* kv_lens, const int32_t* windows, const int32_t* sinks,
                       cudaStream_t stream);
  // Prefill in selection mode over num_seqs sequences (q unrotated; each sequence reads its
  // spans, CSR offsets [num_seqs + 1] into `spans`, query row i at q_positions[i]); total_kv
  // bounds the keys of all sequences.
  absl::Status PrefillSelection(int64_t num_seqs, int64_t num_rows, int64_t total_kv,
                                int64_t max_spans, const void* q, int64_t q_row_stride, void* out,
                                const PagesView& pages, const KvSpan* spans,
                                const int32_t* span_offsets, const int32_t* q_start,
                                const int32_t* q_positions, cudaStream_t stream);
  struct SampleParams {
    const float* temperature;
    const int32_t* top_k;
    const float* top_p;
    const uint64_t* seed;
    const uint64_t* counter;
  };
  absl::Status Sample(const float* logits, int64_t rows, const SampleParams& params,
                      int32_t* tokens, float* logprobs, cudaStream_t stream);

  struct State;

 private:
  explicit KernelsFacade(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

}  // namespace longview::cuda_internal
