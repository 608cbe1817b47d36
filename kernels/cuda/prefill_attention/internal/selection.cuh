// Selection mode of prefill attention (prefill_attention.h, "Selection mode"): the kernels that
// turn each row's spans into the contiguous key workspace the mma.sync attention kernel reads.
// Include only from prefill_attention.cu.
//
//   1. PrefillSpanScanKernel (one block per span row): validates the row's spans and writes
//      each span's key offset inside the row (block scan), and the row's key count (-1 when a
//      span is malformed or the row has too many spans).
//   2. PrefillSelPrepareKernel (one block): per sequence, validates its query rows; exclusive
//      prefix sums of stored keys over head rows (b * num_kv_heads + kv_head, a shared
//      selection stored once per KV head) and of query tiles; a head row past the key
//      capacity is invalid.
//   3. PrefillSelGatherKernel (grid over the key capacity): per stored key, finds its head row
//      (binary search of head_base) and span (binary search of the row's span offsets), rotates
//      K at the span's position, copies K, V and the position into the workspace.
#pragma once

#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "kernels/cuda/prefill_attention/internal/common.cuh"
#include "kernels/cuda/vec.cuh"

namespace longview::cuda::prefill {

inline constexpr int kScanThreads = 256;
inline constexpr int kSelPrepThreads = 512;
inline constexpr int kSelGatherKeys = 32;
inline constexpr int kSelGatherThreads = 256;

// Inclusive block scan of v over kScanThreads threads; *total gets the block's sum.
// REQUIRES: every thread of the block calls it (it synchronises).
__device__ __forceinline__ int BlockInclusiveScan(int v, int* total) {
  __shared__ int s_warp[kScanThreads / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const int a = __shfl_up_sync(0xffffffffu, v, off);
    if (lane >= off) v += a;
  }
  if (lane == 31) s_warp[warp] = v;
  __syncthreads();
  int before = 0, sum = 0;
#pragma unroll
  for (int w = 0; w < kScanThreads / 32; ++w) {
    const int x = s_warp[w];
    if (w < warp) before += x;
    sum += x;
  }
  __syncthreads();  // s_warp is reused by the next call
  *total = sum;
  return v + before;
}

__global__ void __launch_bounds__(kScanThreads) PrefillSpanScanKernel(const Params p) {
  const int sr = blockIdx.x;
  const int s0 = p.span_offsets[sr];
  const int ns = p.span_offsets[sr + 1] - s0;
  const bool row_ok = s0 >= 0 && ns >= 0 && ns <= p.max_spans;  // block-uniform
  const int64_t pos_limit = static_cast<int64_t>(p.rope_hi_rows) * kRopeLoRows;
  int32_t* starts = p.span_key_start + static_cast<int64_t>(sr) * p.max_spans;
  long long carry = 0;
  int bad = 0;
  if (row_ok) {
    for (int c0 = 0; c0 < ns; c0 += kScanThreads) {
      const int i = c0 + threadIdx.x;
      int cnt = 0;
      if (i < ns) {
        const KvSpan sp = p.spans[s0 + i];
        const bool ok = sp.count >= 0 && sp.first_slot >= 0 && sp.page_id >= 0 &&
                        sp.first_slot <= p.page_size - sp.count && sp.first_position >= 0 &&
                        sp.first_position + sp.count <= pos_limit;
        if (ok) {
          cnt = sp.count;
        } else {
          bad = 1;
        }
      }
      int sum = 0;
      const int incl = BlockInclusiveScan(cnt, &sum);
      if (i < ns) starts[i] = static_cast<int32_t>(carry + incl - cnt);  // used when valid
      carry += sum;
    }
  }
  bad = __syncthreads_or(bad);
  if (threadIdx.x == 0) {
    p.span_row_keys[sr] =
        row_ok && !bad && carry <= p.key_capacity ? static_cast<int32_t>(carry) : -1;
  }
}

__global__ void __launch_bounds__(kSelPrepThreads) PrefillSelPrepareKernel(const Params p) {
  __shared__ long long s_cnt[kSelPrepThreads];
  __shared__ int s_tiles[kSelPrepThreads];
  const int tid = threadIdx.x;
  const int H = p.num_kv_heads;
  long long carry_cnt = 0;
  int carry_tiles = 0;
  for (int c0 = 0; c0 < p.batch; c0 += kSelPrepThreads) {
    const int b = c0 + tid;
    SeqInfo si{};
    long long cnt = 0;
    int tiles = 0;
    if (b < p.batch) {
      const int q0 = p.q_start[b], q1 = p.q_start[b + 1];
      const int n = q1 - q0;
      const bool q_ok = q0 >= 0 && n >= 0 && q1 <= p.max_total_q;
      si.q0 = q_ok ? q0 : 0;
      si.n = q_ok ? n : 0;
      si.valid = q_ok ? 1 : 0;
      for (int h = 0; h < H; ++h) {
        const int k = p.span_row_keys[p.per_head ? b * H + h : b];
        cnt += k > 0 ? k : 0;
      }
      tiles = q_ok ? (n + p.block_m - 1) / p.block_m : 0;
    }
    s_cnt[tid] = cnt;
    s_tiles[tid] = tiles;
    __syncthreads();
    for (int off = 1; off < kSelPrepThreads; off <<= 1) {
      const long long a = tid >= off ? s_cnt[tid - off] : 0;
      const int t = tid >= off ? s_tiles[tid - off] : 0;
      __syncthreads();
      s_cnt[tid] += a;
      s_tiles[tid] += t;
      __syncthreads();
    }
    if (b < p.batch) {
      long long base = carry_cnt + s_cnt[tid] - cnt;
      for (int h = 0; h < H; ++h) {
        const int r = b * H + h;
        const int k = p.span_row_keys[p.per_head ? r : b];
        p.head_base[r] = static_cast<int32_t>(min(base, static_cast<long long>(p.key_capacity)));
        p.head_keys[r] = k >= 0 && base + k <= p.key_capacity ? k : -1;
        base += k > 0 ? k : 0;
      }
      p.tile_base[b] = carry_tiles + s_tiles[tid] - tiles;
      p.info[b] = si;
    }
    carry_cnt += s_cnt[kSelPrepThreads - 1];
    carry_tiles += s_tiles[kSelPrepThreads - 1];
    __syncthreads();
  }
  if (tid == 0) {
    p.head_base[p.batch * H] =
        static_cast<int32_t>(min(carry_cnt, static_cast<long long>(p.key_capacity)));
    p.tile_base[p.batch] = carry_tiles;
  }
}

template <typename T, int D>
__global__ void __launch_bounds__(kSelGatherThreads) PrefillSelGatherKernel(const Params p) {
  constexpr int kHalf = D / 2;
  constexpr int kPieces = D / 16;  // units of 8 RoPE pairs per K (or 16 elements per V)
  __shared__ int s_head[kSelGatherKeys];
  __shared__ int s_page[kSelGatherKeys];
  __shared__ int s_slot[kSelGatherKeys];
  __shared__ int s_pos[kSelGatherKeys];
  const int rows = p.batch * p.num_kv_heads;
  const int k0 = blockIdx.x * kSelGatherKeys;
  const int total = p.head_base[rows];
  if (k0 >= total) return;
  const int tid = threadIdx.x;
  if (tid < kSelGatherKeys) {
    const int k = k0 + tid;
    int head = -1;
    if (k < total) {
      const int r = FindSeq(p.head_base, rows, k);
      const int nk = p.head_keys[r];
      const int i = k - p.head_base[r];
      if (nk >= 0 && i < nk) {
        const int b = r / p.num_kv_heads;
        head = r - b * p.num_kv_heads;
        const int sr = p.per_head ? r : b;
        const int s0 = p.span_offsets[sr];
        const int ns = p.span_offsets[sr + 1] - s0;
        const int32_t* starts = p.span_key_start + static_cast<int64_t>(sr) * p.max_spans;
        // Largest span index with start <= i (spans of count 0 share the next one's start).
        int lo = 0, hi = ns - 1;
        while (lo < hi) {
          const int mid = (lo + hi + 1) >> 1;
          if (starts[mid] <= i) {
            lo = mid;
          } else {
            hi = mid - 1;
          }
        }
        const KvSpan sp = p.spans[s0 + lo];
        const int d = i - starts[lo];
        s_page[tid] = sp.page_id;
        s_slot[tid] = sp.first_slot + d;
        s_pos[tid] = static_cast<int>(sp.first_position + d);
        p.key_pos[k] = s_pos[tid];
      }
    }
    s_head[tid] = head;
  }
  __syncthreads();
  const int64_t row_elems = static_cast<int64_t>(p.num_kv_heads) * D;
  constexpr int kUnits = 2 * kPieces;
  const T* pages = static_cast<const T*>(p.pages);
  for (int u = tid; u < kSelGatherKeys * kUnits; u += kSelGatherThreads) {
    const int kk = u / kUnits;
    const int unit = u % kUnits;
    const int h = s_head[kk];
    if (h < 0) continue;
    const bool is_v = unit >= kPieces;
    const int f0 = (unit % kPieces) * 8;
    const T* src = pages + static_cast<int64_t>(s_page[kk]) * p.page_stride +
                   (is_v ? p.v_offset : p.k_offset) + static_cast<int64_t>(s_slot[kk]) * row_elems +
                   static_cast<int64_t>(h) * D + f0;
    T* dst = static_cast<T*>(is_v ? p.v_copy : p.k_rot) + static_cast<int64_t>(k0 + kk) * D + f0;
    uint4 w1 = __ldg(reinterpret_cast<const uint4*>(src));
    uint4 w2 = __ldg(reinterpret_cast<const uint4*>(src + kHalf));
    if (!is_v) {
      float x1[8], x2[8];
      detail::Unpack8<T>(w1, x1);
      detail::Unpack8<T>(w2, x2);
      RotatePairs8<D>(p.rope_lo, p.rope_hi, s_pos[kk], f0, x1, x2);
      w1 = detail::Pack8<T>(x1);
      w2 = detail::Pack8<T>(x2);
    }
    *reinterpret_cast<uint4*>(dst) = w1;
    *reinterpret_cast<uint4*>(dst + kHalf) = w2;
  }
}

}  // namespace longview::cuda::prefill
