// Per-key attention statistics (key_stats.h). Block = 8 warps for one (row, KV head, run of 32
// spans); each warp takes spans, its four 8-lane groups take one key each: lane c of a group
// holds pairs [c * D / 16, + D / 16) of the RoPE rotation (elements i and i + D / 2), rotates
// them in float32 with the exact tables (R(hi) o R(lo)), dots them with the group's query heads
// (q and the log2-sum-exps staged in shared memory), reduces over the 8 lanes and adds the
// summed probability to the row's block.
#include "kernels/cuda/key_stats/key_stats.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/dispatch.h"
#include "kernels/cuda/vec.cuh"

namespace longview::cuda {
namespace {

using namespace detail;  // vec.cuh

constexpr int kWarps = 8;
constexpr int kSpansPerBlock = 32;
constexpr int kMaxGroup = 64;
constexpr float kLog2e = 1.4426950408889634f;

struct Params {
  KeyStatsArgs a;
  int num_q_heads, num_kv_heads, group, page_size, rope_hi_rows;
  int64_t q_row_stride;
  float scale_log2;
};

template <typename T, int D>
__global__ void __launch_bounds__(kWarps * 32) KeyStatsKernel(const Params p) {
  constexpr int kHalf = D / 2;
  constexpr int kP = D / 16;  // pairs per lane
  const int row = blockIdx.z;
  const int kvh = blockIdx.y;
  const int64_t base = p.a.stats_base[row];
  if (base < 0) return;
  const int span_begin = p.a.span_offsets[row];
  const int n_spans = p.a.span_offsets[row + 1] - span_begin;
  const int s0 = blockIdx.x * kSpansPerBlock;
  if (s0 >= n_spans) return;
  const int G = p.group;
  __shared__ float qs[kMaxGroup * D];
  __shared__ float lse[kMaxGroup];
  const T* q = static_cast<const T*>(p.a.q) + static_cast<int64_t>(row) * p.q_row_stride +
               static_cast<int64_t>(kvh) * G * D;
  for (int i = threadIdx.x; i < G * D; i += blockDim.x) qs[i] = ToFloat(q[i]);
  for (int g = threadIdx.x; g < G; g += blockDim.x) {
    lse[g] = p.a.lse[static_cast<int64_t>(row) * p.num_q_heads + kvh * G + g];
  }
  __syncthreads();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int grp = lane / 8, c = lane % 8;
  const int i0 = c * kP;  // first pair of this lane
  const T* pages = static_cast<const T*>(p.a.pages);
  const int64_t token_stride = static_cast<int64_t>(p.num_kv_heads) * D;
  float* stats = p.a.stats + base + static_cast<int64_t>(kvh) * p.a.stats_stride[row];
  const int s_end = min(n_spans, s0 + kSpansPerBlock);
  for (int si = s0 + warp; si < s_end; si += kWarps) {
    const KvSpan sp = p.a.spans[span_begin + si];
    const int64_t max_pos = static_cast<int64_t>(p.rope_hi_rows) * kRopeLoRows;
    if (sp.count <= 0 || sp.page_id < 0 || sp.first_slot < 0 ||
        sp.count > p.page_size - sp.first_slot || sp.first_position < 0 ||
        sp.first_position + sp.count > max_pos) {
      continue;  // warp-uniform
    }
    const int key0 = p.a.span_keys[span_begin + si];
    for (int k0 = 0; k0 < sp.count; k0 += 4) {
      const int k = k0 + grp;
      const bool live = k < sp.count;
      float x1[kP], x2[kP];
      if (live) {
        const T* kp = pages + p.a.k_offset + static_cast<int64_t>(sp.page_id) * p.a.page_stride +
                      static_cast<int64_t>(sp.first_slot + k) * token_stride +
                      static_cast<int64_t>(kvh) * D;
        const int64_t pos = sp.first_position + k;
        const float2* hi =
            reinterpret_cast<const float2*>(p.a.rope_hi) + (pos >> kRopeLoBits) * kHalf;
        const float2* lo =
            reinterpret_cast<const float2*>(p.a.rope_lo) + (pos & (kRopeLoRows - 1)) * kHalf;
        float ka[kP], kb[kP];
        LoadFloats<T, kP>(kp + i0, ka);
        LoadFloats<T, kP>(kp + i0 + kHalf, kb);
#pragma unroll
        for (int j = 0; j < kP; ++j) {
          const float a = ka[j], b = kb[j];
          const float2 h = __ldg(hi + i0 + j), l = __ldg(lo + i0 + j);
          const float cs = h.x * l.x - h.y * l.y, sn = h.y * l.x + h.x * l.y;
          x1[j] = a * cs - b * sn;
          x2[j] = b * cs + a * sn;
        }
      } else {
#pragma unroll
        for (int j = 0; j < kP; ++j) x1[j] = x2[j] = 0.f;
      }
      float prob = 0.f;
      for (int g = 0; g < G; ++g) {
        const float* qg = qs + g * D;
        float d = 0.f;
#pragma unroll
        for (int j = 0; j < kP; ++j) {
          d = fmaf(qg[i0 + j], x1[j], d);
          d = fmaf(qg[i0 + j + kHalf], x2[j], d);
        }
        d += __shfl_xor_sync(0xffffffffu, d, 1);
        d += __shfl_xor_sync(0xffffffffu, d, 2);
        d += __shfl_xor_sync(0xffffffffu, d, 4);
        prob += exp2f(d * p.scale_log2 - lse[g]);
      }
      if (live && c == 0) atomicAdd(stats + key0 + k, prob);
    }
  }
}

// One thread per (row, KV head, key): the sum over the KV head's query heads.
__global__ void __launch_bounds__(256) KeyStatsFromScoresKernel(const KeyStatsFromScoresArgs a,
                                                                int num_q_heads, int group) {
  const int row = blockIdx.z, kvh = blockIdx.y;
  const int64_t sb = a.scores_base[row], tb = a.stats_base[row];
  if (sb < 0 || tb < 0) return;
  const int keys = a.scores_stride[row];
  const int key = blockIdx.x * blockDim.x + threadIdx.x;
  if (key >= keys) return;
  const float* sc = a.scores + sb + static_cast<int64_t>(kvh) * group * keys + key;
  const float* lse = a.lse + static_cast<int64_t>(row) * num_q_heads + kvh * group;
  float prob = 0.f;
  for (int g = 0; g < group; ++g) prob += exp2f(sc[static_cast<int64_t>(g) * keys] - lse[g]);
  atomicAdd(a.stats + tb + static_cast<int64_t>(kvh) * a.stats_stride[row] + key, prob);
}

}  // namespace

cudaError_t RunKeyStatsFromScores(const KeyStatsShape& s, const KeyStatsFromScoresArgs& a,
                                  cudaStream_t stream) {
  LV_CUDA_REQUIRE(s.num_q_heads >= 1 && s.num_kv_heads >= 1 &&
                  s.num_q_heads % s.num_kv_heads == 0 && s.num_kv_heads <= 65535);
  LV_CUDA_REQUIRE(s.num_rows >= 0 && s.num_rows <= 65535 && s.max_keys >= 0);
  if (s.num_rows == 0 || s.max_keys == 0) return cudaSuccess;
  LV_CUDA_REQUIRE(a.scores != nullptr && a.scores_base != nullptr && a.scores_stride != nullptr &&
                  a.lse != nullptr && a.stats_base != nullptr && a.stats_stride != nullptr &&
                  a.stats != nullptr);
  const dim3 grid(static_cast<unsigned>((s.max_keys + 255) / 256),
                  static_cast<unsigned>(s.num_kv_heads), static_cast<unsigned>(s.num_rows));
  KeyStatsFromScoresKernel<<<grid, 256, 0, stream>>>(a, s.num_q_heads,
                                                     s.num_q_heads / s.num_kv_heads);
  return cudaGetLastError();
}

cudaError_t RunKeyStats(const KeyStatsShape& s, const KeyStatsArgs& a, cudaStream_t stream) {
  LV_CUDA_REQUIRE(s.num_q_heads >= 1 && s.num_kv_heads >= 1 &&
                  s.num_q_heads % s.num_kv_heads == 0 &&
                  s.num_q_heads / s.num_kv_heads <= kMaxGroup && s.num_kv_heads <= 65535);
  LV_CUDA_REQUIRE(s.num_rows >= 0 && s.num_rows <= 65535 && s.max_spans >= 0 &&
                  s.page_size >= 1 && s.rope_hi_rows >= 1);
  if (s.num_rows == 0 || s.max_spans == 0) return cudaSuccess;
  LV_CUDA_REQUIRE(a.q != nullptr && a.lse != nullptr && a.pages != nullptr &&
                  a.spans != nullptr && a.span_offsets != nullptr && a.span_keys != nullptr &&
                  a.stats_base != nullptr && a.stats_stride != nullptr && a.stats != nullptr &&
                  a.rope_lo != nullptr && a.rope_hi != nullptr);
  const int64_t packed = static_cast<int64_t>(s.num_q_heads) * s.head_dim;
  LV_CUDA_REQUIRE(a.q_row_stride == 0 || a.q_row_stride >= packed);
  Params p{.a = a,
           .num_q_heads = s.num_q_heads,
           .num_kv_heads = s.num_kv_heads,
           .group = s.num_q_heads / s.num_kv_heads,
           .page_size = s.page_size,
           .rope_hi_rows = s.rope_hi_rows,
           .q_row_stride = a.q_row_stride > 0 ? a.q_row_stride : packed,
           .scale_log2 = a.scale * kLog2e};
  const dim3 grid(static_cast<unsigned>((s.max_spans + kSpansPerBlock - 1) / kSpansPerBlock),
                  static_cast<unsigned>(s.num_kv_heads), static_cast<unsigned>(s.num_rows));
  LV_DISPATCH_DTYPE(s.dtype, T, {
    LV_DISPATCH_HEAD_DIM(s.head_dim, kHeadDim, {
      KeyStatsKernel<T, kHeadDim><<<grid, kWarps * 32, 0, stream>>>(p);
      return cudaGetLastError();
    });
  });
}

}  // namespace longview::cuda
