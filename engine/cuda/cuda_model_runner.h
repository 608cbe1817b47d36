// The CUDA backend (DESIGN §6): the transformer forward on one GPU in bf16 / fp16 with float32
// accumulation, over a GPU page pool laid out as DESIGN §3 (one page holds every layer's K and V,
// keys before RoPE). It implements the same ModelRunner interface as the CPU backend, so the
// scheduler and engine loop drive either.
//
// One step: embedding -> per layer [fused add+RMSNorm, QKV GEMM (+bias), paged KV append,
// attention, O GEMM, fused add+RMSNorm, gate/up GEMM, SiLU-mul, down GEMM] -> final norm ->
// LM head (float32 logits) -> logits to the host, or tokens sampled on the GPU. GEMMs run on
// cuBLASLt. Sequences with one new token and the model's own windows go to the split-KV decode
// kernel (q rotated first); the rest (prefill chunks, per-request windows, StreamingLLM sinks)
// to the prefill kernel, which rotates q itself and applies window / sinks per sequence.
// Pure-decode steps replay a CUDA graph per (batch bucket, context bucket), captured on first use.
//
//   CudaRunnerOptions o;  o.gpu_memory_utilization = 0.9;
//   ASSIGN_OR_RETURN(auto runner, CudaModelRunner::Create(cfg, &weights, o));
//   KvCacheManager kv({.num_blocks = runner->num_pages(), .page_size = o.page_size});
//   RETURN_IF_ERROR(runner->Execute(plan, result));
// Thread-safety: one thread drives a runner (the engine loop).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "common/status.h"
#include "engine/model/model_config.h"
#include "engine/runner/model_runner.h"
#include "engine/model/weights.h"

namespace longview {

struct CudaRunnerOptions {
  bool fp16 = false;            // activations, weights and KV pages in fp16 instead of bf16
  int64_t page_size = 16;
  int32_t num_pages = 0;        // 0 = size the pool from free memory
  double gpu_memory_utilization = 0.90;  // of the card's total memory, weights included
  int64_t max_num_tokens = 8192;  // tokens in one step (the scheduler's token budget)
  int64_t max_num_seqs = 256;     // sequences in one step
  int64_t max_model_len = 0;      // 0 = config's max_position_embeddings
  bool cuda_graphs = true;        // replay pure-decode steps from CUDA graphs
  // KV-policy statistics: the most floats of attention scores a step may store for the fused
  // path (512 MiB; B=64 rows of 32 query heads over 32k keys take 256 MiB); a larger step
  // takes the standalone pass, which re-reads K. 0: always the standalone pass.
  int64_t max_score_floats = int64_t{1} << 27;
  int device = 0;
};

// Whether a CUDA device can be used (false without a driver or GPU).
bool CudaDeviceAvailable();

class CudaModelRunner : public ModelRunner {
 public:
  // Uploads `weights` (converted to bf16 / fp16), or fills random weights (uniform, scaled by
  // 1 / sqrt(fan_in); norms 1) when `weights` is null — for speed runs in a real model's shape.
  // InvalidArgument for an unsupported model (head_dim other than 64 / 128), bad options or
  // weights that do not match `cfg`; ResourceExhausted when the weights and activations leave no
  // room for KV pages; Internal for CUDA failures.
  static absl::StatusOr<std::unique_ptr<CudaModelRunner>> Create(const ModelConfig& cfg,
                                                                 const ModelWeights* weights,
                                                                 const CudaRunnerOptions& options,
                                                                 uint64_t random_seed = 0);
  ~CudaModelRunner() override;

  int64_t vocab_size() const override;
  int32_t num_pages() const;
  KvStorage& kv_storage() override;
  int64_t page_bytes() const;
  bool samples_on_device() const override { return true; }
  // KV policies (ScheduledSequence::kv_selection): a decode token is a selection-decode row over
  // the kept keys; a prompt chunk takes the prefill kernel (rule mode before any eviction,
  // selection mode after); rows that ask for statistics are attended (again) as selection rows
  // and get each key's probability from kernels/cuda/key_stats. Such steps run eagerly, never
  // graph-captured. Per-KV-head policy selections are refused (Unimplemented).
  bool supports_kv_policies() const override { return true; }
  absl::Status Execute(const StepPlan& plan, StepResult& result) override;

  struct Stats {
    int64_t graph_replays = 0;
    int64_t graph_captures = 0;
    int64_t eager_steps = 0;
    double last_step_gpu_ms = 0;  // GPU time of the last step, metadata upload to last kernel
  };
  const Stats& stats() const;

  struct Impl;

 private:
  explicit CudaModelRunner(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace longview
