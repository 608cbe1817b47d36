// Token sampling on the GPU for the model runner: temperature, top-k, top-p and a seeded draw per
// row of float32 logits, plus the log-probability of the chosen token.
//
// Semantics (engine/sampler.h's order, without penalties and min-p, which the runner applies
// elsewhere or not at all):
//   * NaN logits count as -inf. A row that is all -inf / NaN gives token 0 with logprob -inf.
//   * temperature <= 0 (or NaN), or top_k == 1: greedy, the lowest id of the largest logit.
//   * Otherwise weights w = exp((logit - max) / temperature) (the largest weighs exactly 1);
//     top_k (> 0 and < vocab) keeps the k most probable tokens, ties broken by lower id; top_p
//     (< 1) then keeps the smallest prefix of that set, most probable first (ties: lower id first),
//     whose weight reaches top_p times the set's weight; a token is drawn from what is kept with
//     probability proportional to its weight.
//   * logprob = log-softmax of the RAW logits (temperature 1, no truncation) at the chosen token
//     (vLLM's convention), float32.
// Exactness: the kept set is decided by exact order statistics on the logits (radix select over
// order-preserving 32-bit keys), never by a sort or an approximate threshold. Weights are float32
// exp rounded down to multiples of 2^-45 and summed as integers, so every sum is exact and the
// result does not depend on thread order: the same inputs give the same token on every run.
// Weights below 2^-45 (about 3e-14 of the largest) count as zero and are never drawn.
// Randomness: counter-based Philox4x32-10 with key = seed and counter block = (0, 0, counter low,
// counter high); the draw uses the first two 32-bit outputs as one 64-bit uniform U and picks the
// token whose interval [c_i, c_i + w_i) in id order contains floor(U * kept_weight / 2^64). The
// same (seed, counter) gives the same token in any row; a new counter (e.g. the number of tokens
// generated so far) gives an independent draw.
//
// Layouts: logits float32, row r at logits + r * logits_stride (vocab_size valid entries); the
// per-row parameters are device arrays of num_rows; tokens int32 [num_rows]; logprobs float
// [num_rows].
//
// Plan/run split: PlanSampling validates the shape and sizes the workspace (host, reentrant);
// RunSampling only launches (one block per row), so it is capturable in a CUDA graph and replays
// with new logits and parameters on the device.
//
//   SamplingPlan plan;
//   LV_CUDA_RETURN_IF_ERROR(PlanSampling({.max_rows = 256, .vocab_size = 128256}, &plan));
//   ... allocate plan.workspace_bytes (may be 0) ...
//   SamplingArgs a{.num_rows = n, .logits = logits, .temperature = t, .top_k = k, .top_p = p,
//                  .seed = seeds, .counter = counters, .tokens = tokens, .logprobs = logprobs};
//   LV_CUDA_RETURN_IF_ERROR(RunSampling(plan, a, ws, ws_bytes, stream));
// Thread-safety: Plan is reentrant; Run enqueues work on `stream` only.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace longview::cuda {

struct SamplingShape {
  int max_rows = 0;    // upper bound of every num_rows the run will see, >= 1
  int vocab_size = 0;  // 1 .. 262144
};

struct SamplingPlan {
  SamplingShape shape;
  size_t workspace_bytes = 0;  // 0 in this version: all state lives in shared memory
};

struct SamplingArgs {
  int num_rows = 0;                    // 0 .. plan.shape.max_rows
  const float* logits = nullptr;       // row r at logits + r * logits_stride
  int64_t logits_stride = 0;           // elements; 0 = vocab_size
  const float* temperature = nullptr;  // [num_rows]; <= 0 = greedy
  const int32_t* top_k = nullptr;      // [num_rows] or nullptr; <= 0 or >= vocab = off
  const float* top_p = nullptr;        // [num_rows] or nullptr; in (0, 1], 1 = off
  const uint64_t* seed = nullptr;      // [num_rows] or nullptr (= 0)
  const uint64_t* counter = nullptr;   // [num_rows] or nullptr (= 0)
  int32_t* tokens = nullptr;           // [num_rows], out
  float* logprobs = nullptr;           // [num_rows], out; nullptr = not wanted
};

// Validates the shape (cudaErrorInvalidValue on a bad value) and fills `plan`.
cudaError_t PlanSampling(const SamplingShape& shape, SamplingPlan* plan);

// REQUIRES: `plan` from PlanSampling; workspace of at least plan.workspace_bytes; logits_stride 0
// or >= vocab_size; logits, temperature and tokens non-null. Only launches a kernel.
cudaError_t RunSampling(const SamplingPlan& plan, const SamplingArgs& args, void* workspace,
                        size_t workspace_bytes, cudaStream_t stream);

}  // namespace longview::cuda
