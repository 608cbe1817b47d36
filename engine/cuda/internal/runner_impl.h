// CudaModelRunner's state and one step's layout (engine/cuda internal), shared by the runner
// (cuda_model_runner.cc: setup, forward, graphs) and the step planner (step_layout.cc).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "engine/cuda/cublaslt_gemm.h"
#include "engine/cuda/cuda_kv_storage.h"
#include "engine/cuda/cuda_model_runner.h"
#include "engine/cuda/internal/device_weights.h"
#include "engine/cuda/internal/kernels_facade.h"
#include "kvcache/kv_layout.h"

namespace longview {

namespace cuda_internal {
class AttentionOp;  // layer_ops.h
}  // namespace cuda_internal

// Positions the RoPE tables cover: StreamingLLM sequences keep their token index as position
// inside the prefill kernel (only differences matter), so streams far past the model's context
// work.
inline constexpr int64_t kMaxRopePosition = (int64_t{1} << 24) - 1;
inline constexpr int64_t kMinContextBucket = 256;

using cuda_internal::NextPow2;

struct CudaModelRunner::Impl {
  ModelConfig cfg;
  CudaRunnerOptions opt;
  cuda::DType dt = cuda::DType::kBF16;
  int64_t hidden = 0, nh = 0, nkv = 0, hd = 0, q_dim = 0, kv_dim = 0, qkv_dim = 0, inter = 0;
  int64_t vocab = 0, num_layers = 0, max_model_len = 0, max_blocks = 0;
  KvLayout layout;
  std::vector<int64_t> layer_window;      // per layer, 0 = full
  std::vector<int64_t> distinct_windows;  // sorted distinct values of layer_window
  std::vector<int> layer_window_index;    // layer -> index into distinct_windows

  cudaStream_t stream = nullptr;
  std::unique_ptr<cuda::CublasLtGemm> gemm;
  cuda_internal::DeviceWeights w;
  std::vector<void*> allocs;  // device allocations freed with the runner
  std::unique_ptr<CudaKvStorage> kv;  // the KV pages and state slots
  int32_t num_pages = 0;
  float* rope_lo = nullptr;
  float* rope_hi = nullptr;
  int rope_hi_rows = 0;

  // Activations, sized for max_num_tokens rows.
  void *x = nullptr, *xn = nullptr, *qkv = nullptr, *attn = nullptr, *proj = nullptr;
  void *gu = nullptr, *act = nullptr, *last = nullptr;
  float* logits = nullptr;  // [max_num_seqs][vocab]
  // KV-policy statistics (grown on demand): per selection row and query head the attention's
  // log2-sum-exp, and the step's per-key sums (StepLayout::stats_floats).
  float* sel_lse = nullptr;
  int64_t sel_lse_floats = 0;
  float* key_stats = nullptr;
  int64_t key_stats_floats = 0;
  float* sel_scores = nullptr;  // the fused path's scores
  int64_t sel_scores_floats = 0;
  void* stats_q = nullptr;    // stats rows: [rows][qkv_dim] gathered q (rotated)
  void* stats_out = nullptr;  // stats rows: [rows][q_dim] dropped attention outputs
  int64_t stats_rows_cap = 0;
  // Grows the statistics buffers for `rows` selection rows, `stats_rows` stats rows, `floats`
  // statistics and `score_floats` fused scores.
  absl::Status EnsureKeyStats(int64_t rows, int64_t stats_rows, int64_t floats,
                              int64_t score_floats);
  // Steps that score prompts need more logits rows than max_num_seqs: buffers grown on demand.
  void* wide_last = nullptr;    // [wide_rows][hidden]
  float* wide_logits = nullptr;  // [wide_rows][vocab]
  int64_t wide_rows = 0;
  int32_t* sampled_tokens = nullptr;
  float* sampled_logprobs = nullptr;

  // Per-step metadata.
  char* meta_host = nullptr;  // pinned
  char* meta_dev = nullptr;
  size_t meta_capacity = 0;

  std::unique_ptr<cuda_internal::KernelsFacade> kernels;
  // Per layer, the op computing attention from the qkv rows (layer_ops.h).
  std::vector<std::shared_ptr<const cuda_internal::AttentionOp>> attention_ops;

  struct Graph {
    cudaGraphExec_t exec = nullptr;
  };
  std::map<std::tuple<int64_t, int64_t, bool>, Graph> graphs;  // (batch, context bucket, sample)
  Stats stats;
  cudaEvent_t step_start = nullptr, step_end = nullptr;

  ~Impl();
  absl::Status Init(const ModelWeights* weights, uint64_t seed);
  absl::StatusOr<void*> Alloc(size_t bytes, const char* what);
  absl::Status EnsureMeta(size_t bytes);
  // Makes the logits buffers hold `rows` rows (grows the wide ones past max_num_seqs).
  absl::Status EnsureLogitsRows(int64_t rows);
  int64_t max_rows = 0;  // rows of `last` and `logits`
  void DropGraphs();
  int64_t ElemBytes() const { return 2; }
  char* Row(void* base, int64_t row, int64_t width) const {
    return static_cast<char*>(base) + row * width * ElemBytes();
  }
};

// One step, laid out in rows of the activation matrices:
//   [0, batch_padded)                  dense-decode sequences (one token each, the model's own
//                                      windows), padded to a power of two for graph buckets
//   [batch_padded, batch_padded + ns)  selection rows: decode sequences of a request window or
//                                      StreamingLLM sinks (one token), and every token of a KV
//                                      policy's sequence (each row reads the kept keys and the
//                                      step's tokens up to itself): spans built on the host
//   [prefill_row0, sp_row0)            prefill chunks: the prefill kernel (window/sinks rule)
//   [sp_row0, total_rows)              KV-policy prompt chunks after an eviction: the prefill
//                                      kernel's selection mode over the kept keys + the chunk
// plus nx "stats rows" outside the activations: prefill tokens of KV-policy sequences (before
// any eviction) whose per-key statistics are asked, attended again as selection rows over
// scratch copies of their q (outputs dropped). Selection metadata arrays hold ns + nx rows.
struct StepLayout {
  int64_t num_tokens = 0;
  int64_t nd = 0;              // dense-decode sequences
  int64_t ns = 0;              // selection rows
  int64_t ns_seqs = 0;         // sequences of the selection rows
  int64_t nx = 0;              // stats rows: KV-policy prefill tokens whose statistics are asked
  int64_t np = 0;              // prefill sequences (rule mode)
  int64_t nsp = 0;             // prefill sequences in selection mode (KV policies after eviction)
  int64_t sp_row0 = 0;         // first row of the selection-mode prefill sequences
  int64_t sp_max_spans = 0;    // their most spans
  int64_t sp_total_kv = 0;     // their keys, summed
  int64_t batch_padded = 0;    // dense-decode rows after padding to the bucket (>= nd)
  int64_t prefill_row0 = 0;    // batch_padded + ns
  int64_t context_bucket = 0;  // dense decode: keys bound of the plan
  int64_t decode_stride = 0;   // dense-decode block-table stride
  int64_t prefill_stride = 0;  // prefill block-table stride
  int64_t total_rows = 0;
  int64_t max_spans = 0;           // selection decode: most spans of a row
  // KV-policy statistics: floats of the step's stats buffer, and per plan sequence the offset
  // of its [num_kv_heads][keys] block (-1: none) and its keys.
  int64_t stats_floats = 0;
  std::vector<int64_t> stats_offset;
  std::vector<int64_t> stats_keys;
  // Fused statistics: floats of the rows' scores (0: the standalone pass), the most keys of a
  // stats row.
  int64_t scores_floats = 0;
  int64_t max_row_keys = 0;
  std::vector<size_t> order;       // plan index of each processed sequence, in row order
  std::vector<int64_t> row0;       // first row of each processed sequence
  std::vector<int64_t> logit_src;  // rows whose logits are needed, in output order
  std::vector<int32_t> out_count;  // per plan sequence: its logits rows (all_logits: every token)
  std::vector<int32_t> out_row;    // per plan sequence: output row or -1
  bool sample = false;
  // Input embeddings (ScheduledSequence::embeddings): per row taking one, the row and its values
  // (hidden floats, owned by the plan), written over the token-table gather.
  std::vector<std::pair<int64_t, const float*>> embed_rows;
  // Offsets into the metadata buffer.
  size_t ids = 0, slots = 0, dec_pos = 0, dec_lens = 0, dec_tables = 0, sel_spans = 0,
         sel_offsets = 0, sel_span_keys = 0, sel_stats_base = 0, sel_stats_stride = 0,
         sel_scores_base = 0, sel_scores_stride = 0, stats_rows_src = 0, stats_rows_pos = 0,
         sp_qstart = 0, sp_offsets = 0, sp_qpos = 0, pre_qstart = 0, pre_lens = 0, pre_tables = 0, pre_windows = 0,
         pre_sinks = 0, gather = 0, s_temp = 0, s_topk = 0, s_topp = 0, s_seed = 0, s_counter = 0;
  size_t meta_bytes = 0;
  int64_t prefill_total_kv = 0;  // keys the prefill kernel's workspace must hold (all layers' max)
};

// Validates `plan` (InvalidArgument naming the sequence), lays it out into `L` and writes its
// metadata into m.meta_host (growing the buffers when needed).
absl::Status PrepareStep(CudaModelRunner::Impl& m, const StepPlan& plan, StepLayout& L);

// Whether the needed logits are exactly rows 0..r-1 (a pure dense-decode step), so the LM head
// reads the normed rows in place.
bool LogitsInPlace(const StepLayout& L);

}  // namespace longview
