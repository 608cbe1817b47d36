#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/dispatch.h"
#include "kernels/cuda/kv_append/paged_kv_append.h"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/rope/rotate.cuh"
#include "kernels/cuda/vec.cuh"

namespace longview::cuda {
namespace {

constexpr int kThreads = 128;

// The fused q rotation (KvAppendArgs::q), or none when q == nullptr.
struct QRotation {
  void* q;
  int num_heads;
  int64_t row_stride;
  int64_t num_rows;
  const int32_t* positions;
  const float* rope_lo;
  const float* rope_hi;
  int rope_hi_rows;
};

// One block per token; row_vecs = num_kv_heads * head_dim / 8 vectors of 16 bytes for K, then V;
// source rows are k_stride_vecs / v_stride_vecs vectors apart.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads, 1)
    PagedKvAppendKernel(const uint4* __restrict__ k, const uint4* __restrict__ v,
                        const int64_t* __restrict__ slot_mapping, uint16_t* __restrict__ pages,
                        int64_t row_vecs, int64_t k_stride_vecs, int64_t v_stride_vecs,
                        int page_size, int64_t page_stride, int64_t k_offset, int64_t v_offset,
                        QRotation rot) {
  detail::PdlWaitThenRelease();
  const int64_t t = blockIdx.x;
  if (rot.q != nullptr && t < rot.num_rows) {
    detail::RotateRowHeads<T, D>(static_cast<T*>(rot.q) + t * rot.row_stride, rot.num_heads,
                                 rot.positions[t], rot.rope_lo, rot.rope_hi, rot.rope_hi_rows,
                                 threadIdx.x, kThreads);
  }
  const int64_t slot = slot_mapping[t];
  if (slot < 0) return;
  const int64_t page = slot / page_size;
  const int64_t in_page = slot % page_size;
  uint16_t* base = pages + page * page_stride + in_page * row_vecs * 8;
  uint4* kd = reinterpret_cast<uint4*>(base + k_offset);
  uint4* vd = reinterpret_cast<uint4*>(base + v_offset);
  const uint4* ks = k + t * k_stride_vecs;
  const uint4* vs = v + t * v_stride_vecs;
  for (int64_t i = threadIdx.x; i < row_vecs; i += kThreads) {
    const uint4 kv = ks[i];
    const uint4 vv = vs[i];
    kd[i] = kv;
    vd[i] = vv;
  }
}

}  // namespace

cudaError_t PagedKvAppend(const KvAppendArgs& a, cudaStream_t stream) {
  LV_CUDA_REQUIRE(a.num_tokens >= 0 && a.num_tokens <= 0x7fffffff);
  LV_CUDA_REQUIRE(a.num_kv_heads >= 1 && a.page_size >= 1);
  LV_CUDA_REQUIRE(a.k != nullptr && a.v != nullptr && a.slot_mapping != nullptr &&
                  a.pages != nullptr);
  LV_CUDA_REQUIRE(detail::Aligned16(a.k) && detail::Aligned16(a.v) && detail::Aligned16(a.pages));
  LV_CUDA_REQUIRE(a.page_stride % 8 == 0 && a.k_offset % 8 == 0 && a.v_offset % 8 == 0);
  LV_CUDA_REQUIRE(a.k_offset >= 0 && a.v_offset >= 0);
  LV_DISPATCH_DTYPE(a.dtype, T, {
    LV_DISPATCH_HEAD_DIM(a.head_dim, kHeadDim, {
      static_assert(sizeof(T) == sizeof(uint16_t));
      const int64_t row = static_cast<int64_t>(a.num_kv_heads) * kHeadDim;
      LV_CUDA_REQUIRE(a.k_offset + a.page_size * row <= a.page_stride &&
                      a.v_offset + a.page_size * row <= a.page_stride);
      const int64_t k_stride = a.k_row_stride != 0 ? a.k_row_stride : row;
      const int64_t v_stride = a.v_row_stride != 0 ? a.v_row_stride : row;
      LV_CUDA_REQUIRE(k_stride >= row && v_stride >= row && k_stride % 8 == 0 && v_stride % 8 == 0);
      QRotation rot{.q = a.q,
                    .num_heads = a.num_q_heads,
                    .row_stride = a.q_row_stride != 0
                                      ? a.q_row_stride
                                      : static_cast<int64_t>(a.num_q_heads) * kHeadDim,
                    .num_rows = a.num_q_rows,
                    .positions = a.q_positions,
                    .rope_lo = a.rope_lo,
                    .rope_hi = a.rope_hi,
                    .rope_hi_rows = a.rope_hi_rows};
      if (a.q != nullptr) {
        LV_CUDA_REQUIRE(a.num_q_heads >= 1 && a.num_q_rows >= 0 && a.num_q_rows <= a.num_tokens &&
                        a.q_positions != nullptr && a.rope_lo != nullptr && a.rope_hi != nullptr &&
                        a.rope_hi_rows >= 1 && detail::Aligned16(a.q) &&
                        detail::Aligned16(a.rope_lo) && detail::Aligned16(a.rope_hi) &&
                        rot.row_stride >= static_cast<int64_t>(a.num_q_heads) * kHeadDim &&
                        rot.row_stride % 8 == 0);
      }
      if (a.num_tokens == 0) return cudaSuccess;
      LV_CUDA_RETURN_IF_ERROR(detail::LaunchPdl(
          PagedKvAppendKernel<T, kHeadDim>, dim3(static_cast<unsigned>(a.num_tokens)),
          dim3(kThreads), 0, stream, static_cast<const uint4*>(a.k), static_cast<const uint4*>(a.v),
          a.slot_mapping, static_cast<uint16_t*>(a.pages), row / 8, k_stride / 8, v_stride / 8,
          a.page_size, a.page_stride, a.k_offset, a.v_offset, rot));
      return cudaGetLastError();
    });
  });
}

}  // namespace longview::cuda
