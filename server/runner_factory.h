// Picks and builds the backend for `serve` and `eval` (`--device auto|cpu|cuda`): the CUDA
// backend where this binary was built with CUDA and a GPU is present, else the CPU backend.
//
//   ASSIGN_OR_RETURN(BackendChoice b, CreateBackend(*lm, {.device = "auto", .page_size = 16}));
//   EngineLoopOptions eo;  eo.runner = b.runner;  eo.num_kv_pages = b.num_kv_pages;
// Thread-safety: call from one thread at startup.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "engine/model/loaded_model.h"
#include "engine/runner/model_runner.h"
#include "kvcache/page_bytes.h"

namespace longview {

struct BackendOptions {
  std::string device = "auto";  // auto | cpu | cuda
  int64_t page_size = 16;
  int64_t num_kv_pages = 0;     // 0 = CPU: 4096; CUDA: from free memory
  double gpu_memory_utilization = 0.9;
  int64_t max_num_batched_tokens = 2048;
  int64_t max_num_seqs = 256;
  bool fp16 = false;            // CUDA: fp16 instead of bf16
  bool cuda_graphs = true;
};

struct BackendChoice {
  std::string device;  // "cpu" or "cuda"
  std::shared_ptr<ModelRunner> runner;
  int64_t num_kv_pages = 0;
  // Host memory for the KV tiers' pages (pinned on the CUDA backend: asynchronous copies at
  // full speed); empty on the CPU backend, whose page moves are plain memcpy.
  std::function<absl::StatusOr<std::shared_ptr<PageArena>>(int64_t block_bytes,
                                                           int64_t num_blocks)>
      make_page_arena;
};

// Whether this binary has the CUDA backend and a GPU is usable.
bool CudaBackendAvailable();

// InvalidArgument for an unknown device or bad sizes; FailedPrecondition for `cuda` without a
// GPU or in a build without CUDA; the backend's own errors otherwise.
absl::StatusOr<BackendChoice> CreateBackend(const LoadedModel& lm, const BackendOptions& options);

}  // namespace longview
