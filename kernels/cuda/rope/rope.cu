#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/dispatch.h"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/rope/rope.h"
#include "kernels/cuda/rope/rotate.cuh"
#include "kernels/cuda/vec.cuh"

namespace longview::cuda {
namespace {

constexpr int kThreads = 128;

// One block per row.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads)
    RotateRowsKernel(T* __restrict__ x, const int32_t* __restrict__ positions,
                     const float* __restrict__ rope_lo, const float* __restrict__ rope_hi,
                     int num_heads, int64_t row_stride, int rope_hi_rows) {
  detail::PdlWaitThenRelease();
  const int64_t row = blockIdx.x;
  detail::RotateRowHeads<T, D>(x + row * row_stride, num_heads, positions[row], rope_lo, rope_hi,
                               rope_hi_rows, threadIdx.x, kThreads);
}

}  // namespace

cudaError_t RotateRows(const RotateRowsArgs& a, cudaStream_t stream) {
  LV_CUDA_REQUIRE(a.num_rows >= 0 && a.num_rows <= 0x7fffffff && a.num_heads >= 1);
  LV_CUDA_REQUIRE(a.x != nullptr && a.positions != nullptr && a.rope_lo != nullptr &&
                  a.rope_hi != nullptr && a.rope_hi_rows >= 1);
  LV_CUDA_REQUIRE(detail::Aligned16(a.x) && detail::Aligned16(a.rope_lo) &&
                  detail::Aligned16(a.rope_hi));
  LV_DISPATCH_DTYPE(a.dtype, T, {
    LV_DISPATCH_HEAD_DIM(a.head_dim, kHeadDim, {
      const int64_t packed = static_cast<int64_t>(a.num_heads) * kHeadDim;
      const int64_t stride = a.row_stride != 0 ? a.row_stride : packed;
      LV_CUDA_REQUIRE(stride >= packed && stride % 8 == 0);
      if (a.num_rows == 0) return cudaSuccess;
      LV_CUDA_RETURN_IF_ERROR(
          detail::LaunchPdl(RotateRowsKernel<T, kHeadDim>, dim3(static_cast<unsigned>(a.num_rows)),
                            dim3(kThreads), 0, stream, static_cast<T*>(a.x), a.positions, a.rope_lo,
                            a.rope_hi, a.num_heads, stride, a.rope_hi_rows));
      return cudaGetLastError();
    });
  });
}

}  // namespace longview::cuda
