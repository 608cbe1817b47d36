// RoPE of one row of heads in place (device code shared by RotateRows and the fused
// rotate-and-append of paged_kv_append): exact angles composed from the hi/lo tables of
// decode_attention/rope_tables.h, float32 rotation, one rounding. A position outside the tables
// writes NaN (a slip is visible, never a wrong angle). Device-side header: .cu files only.
#pragma once

#include <cstdint>

#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/vec.cuh"

namespace longview::cuda::detail {

// (cos, sin) of a + b from (cos a, sin a) and (cos b, sin b); the composition of decode attention.
__device__ __forceinline__ float2 Compose(float ca, float sa, float cb, float sb) {
  return make_float2(ca * cb - sa * sb, sa * cb + ca * sb);
}

// Rotates the num_heads heads of row `xr` at `pos`, threads tid, tid + nthreads, ... each taking
// units (head, f0): elements [f0, f0 + 8) and [D/2 + f0, D/2 + f0 + 8), i.e. 8 RoPE pairs, read
// and written as two 16-byte vectors.
template <typename T, int D>
__device__ __forceinline__ void RotateRowHeads(T* xr, int num_heads, int64_t pos,
                                               const float* __restrict__ rope_lo,
                                               const float* __restrict__ rope_hi, int rope_hi_rows,
                                               int tid, int nthreads) {
  constexpr int kHalf = D / 2;
  constexpr int kUnitsPerHead = kHalf / 8;
  const bool in_range = pos >= 0 && pos < static_cast<int64_t>(rope_hi_rows) * kRopeLoRows;
  const int64_t hi = in_range ? pos >> kRopeLoBits : 0;
  const int64_t lo = in_range ? pos & (kRopeLoRows - 1) : 0;
  const int units = num_heads * kUnitsPerHead;
  for (int u = tid; u < units; u += nthreads) {
    const int head = u / kUnitsPerHead;
    const int f0 = (u % kUnitsPerHead) * 8;
    uint4* p1 = reinterpret_cast<uint4*>(xr + head * D + f0);
    uint4* p2 = reinterpret_cast<uint4*>(xr + head * D + kHalf + f0);
    if (!in_range) {
      const uint4 nan_bits = make_uint4(~0u, ~0u, ~0u, ~0u);
      *p1 = nan_bits;
      *p2 = nan_bits;
      continue;
    }
    const float4* hs = reinterpret_cast<const float4*>(rope_hi + (hi * kHalf + f0) * 2);
    const float4* ls = reinterpret_cast<const float4*>(rope_lo + (lo * kHalf + f0) * 2);
    float x1[8], x2[8];
    Unpack8<T>(*p1, x1);
    Unpack8<T>(*p2, x2);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float4 h = __ldg(hs + k);
      const float4 l = __ldg(ls + k);
      const float2 c0 = Compose(h.x, h.y, l.x, l.y);  // frequency f0 + 2k
      const float2 c1 = Compose(h.z, h.w, l.z, l.w);  // frequency f0 + 2k + 1
      const float a0 = x1[2 * k], b0 = x2[2 * k];
      const float a1 = x1[2 * k + 1], b1 = x2[2 * k + 1];
      x1[2 * k] = a0 * c0.x - b0 * c0.y;
      x2[2 * k] = b0 * c0.x + a0 * c0.y;
      x1[2 * k + 1] = a1 * c1.x - b1 * c1.y;
      x2[2 * k + 1] = b1 * c1.x + a1 * c1.y;
    }
    *p1 = Pack8<T>(x1);
    *p2 = Pack8<T>(x2);
  }
}

}  // namespace longview::cuda::detail
