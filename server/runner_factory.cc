#include "server/runner_factory.h"

#include "absl/strings/str_format.h"
#include "engine/cpu/cpu_model_runner.h"

#ifdef LONGVIEW_HAVE_CUDA
#include "engine/cuda/cuda_model_runner.h"
#include "engine/cuda/pinned_page_arena.h"
#endif

namespace longview {

bool CudaBackendAvailable() {
#ifdef LONGVIEW_HAVE_CUDA
  return CudaDeviceAvailable();
#else
  return false;
#endif
}

absl::StatusOr<BackendChoice> CreateBackend(const LoadedModel& lm, const BackendOptions& o) {
  if (o.device != "auto" && o.device != "cpu" && o.device != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrFormat("--device must be auto, cpu or cuda, got '%s'", o.device));
  }
  if (o.page_size < 1) return absl::InvalidArgumentError("--page-size must be at least 1");
  if (o.num_kv_pages < 0) return absl::InvalidArgumentError("--num-kv-pages must be >= 0");
  const bool cuda = o.device == "cuda" || (o.device == "auto" && CudaBackendAvailable());
  BackendChoice c;
  if (!cuda) {
    c.device = "cpu";
    c.num_kv_pages = o.num_kv_pages > 0 ? o.num_kv_pages : 4096;
    ASSIGN_OR_RETURN(c.runner, CpuModelRunner::Create(lm, static_cast<int32_t>(c.num_kv_pages),
                                                      o.page_size));
    return c;
  }
#ifdef LONGVIEW_HAVE_CUDA
  CudaRunnerOptions ro;
  ro.fp16 = o.fp16;
  ro.page_size = o.page_size;
  ro.num_pages = static_cast<int32_t>(o.num_kv_pages);
  ro.gpu_memory_utilization = o.gpu_memory_utilization;
  ro.max_num_tokens = o.max_num_batched_tokens;
  ro.max_num_seqs = o.max_num_seqs;
  ro.cuda_graphs = o.cuda_graphs;
  ASSIGN_OR_RETURN(std::unique_ptr<CudaModelRunner> r,
                   CudaModelRunner::Create(lm.config, lm.weights.get(), ro));
  c.device = "cuda";
  c.num_kv_pages = r->num_pages();
  c.make_page_arena = MakePinnedPageArena;
  c.runner = std::move(r);
  return c;
#else
  return absl::FailedPreconditionError("--device cuda: this binary was built without CUDA");
#endif
}

}  // namespace longview
