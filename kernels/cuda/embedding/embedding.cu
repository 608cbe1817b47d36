#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/dispatch.h"
#include "kernels/cuda/embedding/embedding.h"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/vec.cuh"

namespace longview::cuda {
namespace {

constexpr int kThreads = 256;

// One block per token. U is the copy unit: uint4 (8 elements) on the 16-byte path, uint16_t
// otherwise; `units` is the row length in units. All-ones bits are NaN in bf16 and fp16.
template <typename U>
__global__ void __launch_bounds__(kThreads)
    EmbeddingKernel(const int32_t* __restrict__ ids, const U* __restrict__ table,
                    U* __restrict__ out, int64_t vocab_size, int64_t units) {
  detail::PdlWaitThenRelease();
  const int64_t t = blockIdx.x;
  const int64_t id = ids[t];
  U* dst = out + t * units;
  if (id < 0 || id >= vocab_size) {
    U nan_bits;
    memset(&nan_bits, 0xFF, sizeof(U));
    for (int64_t i = threadIdx.x; i < units; i += kThreads) dst[i] = nan_bits;
    return;
  }
  const U* src = table + id * units;
  for (int64_t i = threadIdx.x; i < units; i += kThreads) dst[i] = src[i];
}

}  // namespace

cudaError_t EmbeddingLookup(const EmbeddingArgs& a, cudaStream_t stream) {
  LV_CUDA_REQUIRE(a.num_tokens >= 0 && a.num_tokens <= 0x7fffffff);
  LV_CUDA_REQUIRE(a.vocab_size >= 1 && a.hidden >= 1);
  LV_CUDA_REQUIRE(a.ids != nullptr && a.table != nullptr && a.out != nullptr);
  LV_DISPATCH_DTYPE(a.dtype, T, {
    static_assert(sizeof(T) == sizeof(uint16_t));
    if (a.num_tokens == 0) return cudaSuccess;
    const dim3 grid(static_cast<unsigned>(a.num_tokens));
    const bool vec = a.hidden % 8 == 0 && detail::Aligned16(a.table) && detail::Aligned16(a.out);
    if (vec) {
      LV_CUDA_RETURN_IF_ERROR(
          detail::LaunchPdl(EmbeddingKernel<uint4>, dim3(grid), dim3(kThreads), 0, stream, a.ids,
                            static_cast<const uint4*>(a.table), static_cast<uint4*>(a.out),
                            a.vocab_size, a.hidden / 8));
    } else {
      LV_CUDA_RETURN_IF_ERROR(
          detail::LaunchPdl(EmbeddingKernel<uint16_t>, dim3(grid), dim3(kThreads), 0, stream, a.ids,
                            static_cast<const uint16_t*>(a.table), static_cast<uint16_t*>(a.out),
                            a.vocab_size, a.hidden));
    }
    return cudaGetLastError();
  });
}

}  // namespace longview::cuda
