// Shared pieces of the prefill attention kernels: parameters, the per-sequence bounds the prepare
// kernel writes, exact RoPE rotation and cp.async wrappers. Include only from .cu files.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/decode_attention/decode_attention.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/vec.cuh"

namespace longview::cuda::prefill {

inline constexpr int kBlockM = 64;  // query rows per attention block (4 warps x 16)
inline constexpr int kBlockN = 64;  // keys per tile
inline constexpr int kWgBlockM = 128;  // wgmma kernel: query rows per block (2 x 64)
inline constexpr int kWgBlockN = 128;  // wgmma kernel: keys per tile
inline constexpr int kWarps = 4;
inline constexpr int kThreads = kWarps * 32;
inline constexpr float kLog2e = 1.4426950408889634f;

// Per-sequence bounds, written by the prepare kernel. Keys visible to some query of the chunk are
// [0, s_eff) and [lo, kv_len); they are stored in the workspace at rows
// kv_base + j (j < s_eff) and kv_base + j - (lo - s_eff) (j >= lo).
struct SeqInfo {
  int q0;  // first q row
  int n;   // query rows
  int kv_len;
  int window;  // 0 = none
  int sinks;   // 0 = none
  int lo;      // first stored key past the sinks
  int s_eff;   // stored sink keys: min(sinks, lo)
  int valid;   // 1: attend; 0: rows get NaN
  // Tiled layout (wgmma kernel, wgmma_kernel.cuh) only: rows of the sink region (multiple of
  // kWgBlockN; 0 when the window region already holds the sinks) and the first key of the window
  // region (a multiple of kWgBlockN).
  int sink_rows;
  int lo_w;
};

struct Params {
  const void* q;
  void* out;
  const void* pages;
  int64_t q_row_stride;
  int64_t page_stride;
  int64_t k_offset;
  int64_t v_offset;
  const int32_t* block_tables;
  const int32_t* q_start;
  const int32_t* kv_lens;
  const int32_t* window;  // nullable
  const int32_t* sinks;   // nullable
  const float* rope_lo;
  const float* rope_hi;
  SeqInfo* info;       // [batch]
  int32_t* kv_base;    // [batch + 1], exclusive prefix of stored key rows (padded when tiled)
  int32_t* tile_base;  // [batch + 1], exclusive prefix of block_m-row query tiles
  void* k_rot;         // [max_total_kv][num_kv_heads][D], rotated keys
  void* v_copy;        // [max_total_kv][num_kv_heads][D]
  float scale_log2;
  int block_table_stride;
  int num_q_heads;
  int num_kv_heads;
  int group;
  int batch;
  int page_size;
  int max_total_q;
  int max_total_kv;
  int rope_hi_rows;
  int default_window;
  int default_sinks;
  int block_m;      // query rows per attention block: kBlockM, or kWgBlockM (wgmma kernel)
  int tile_layout;  // 1: K/V stored as swizzled tile images (wgmma kernel); 0: rows
  // Selection mode (selection.cuh; max_spans > 0). Head row r = b * num_kv_heads + kv_head;
  // span row = r with spans_per_kv_head, else b. The workspace holds each head row's keys
  // contiguously: key i of head row r at k_rot / v_copy row head_base[r] + i ([row][D]).
  const KvSpan* spans;
  const int32_t* span_offsets;  // [span rows + 1]
  const int32_t* q_positions;   // [total_q]
  int32_t* span_key_start;      // [span rows][max_spans]: key offset of each span in its row
  int32_t* span_row_keys;       // [span rows]: keys of the span row, -1 = malformed
  int32_t* head_base;           // [batch * num_kv_heads + 1]: exclusive prefix of stored keys
  int32_t* head_keys;           // [batch * num_kv_heads]: keys of the head row, -1 = invalid
  int32_t* key_pos;             // [key capacity]: RoPE position of each stored key
  int max_spans;
  int per_head;      // spans_per_kv_head
  int key_capacity;  // num_kv_heads * max_total_kv
};

__device__ __forceinline__ void CpAsync16(void* smem_dst, const void* gmem_src, int src_bytes) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem_src),
               "r"(src_bytes)
               : "memory");
}
// 4-byte copy (cp.async.ca; src_bytes 0 zero-fills).
__device__ __forceinline__ void CpAsync4(void* smem_dst, const void* gmem_src, int src_bytes) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(gmem_src),
               "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void CpAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
__device__ __forceinline__ void CpAsyncWaitAll() {
  asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}

// Rotates the 8 pairs (x1[e], x2[e]) = (x[f0 + e], x[D/2 + f0 + e]) by position pos with the
// exact tables: angle(pos) = angle(hi * 1024) + angle(lo), composed by angle addition.
// REQUIRES: 0 <= pos < rope_hi_rows * 1024; f0 a multiple of 8.
template <int D>
__device__ __forceinline__ void RotatePairs8(const float* rope_lo, const float* rope_hi, int pos,
                                             int f0, float* x1, float* x2) {
  constexpr int kHalf = D / 2;
  const int hi = pos >> kRopeLoBits;
  const int lo = pos & (kRopeLoRows - 1);
  const float4* hs =
      reinterpret_cast<const float4*>(rope_hi + (static_cast<int64_t>(hi) * kHalf + f0) * 2);
  const float4* ls =
      reinterpret_cast<const float4*>(rope_lo + (static_cast<int64_t>(lo) * kHalf + f0) * 2);
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float4 h = __ldg(hs + k);
    const float4 l = __ldg(ls + k);
    // pair 2k: (h.x, h.y) o (l.x, l.y); pair 2k + 1: (h.z, h.w) o (l.z, l.w)
    const float c0 = h.x * l.x - h.y * l.y, s0 = h.y * l.x + h.x * l.y;
    const float c1 = h.z * l.z - h.w * l.w, s1 = h.w * l.z + h.z * l.w;
    const float a0 = x1[2 * k], b0 = x2[2 * k], a1 = x1[2 * k + 1], b1 = x2[2 * k + 1];
    x1[2 * k] = a0 * c0 - b0 * s0;
    x2[2 * k] = b0 * c0 + a0 * s0;
    x1[2 * k + 1] = a1 * c1 - b1 * s1;
    x2[2 * k + 1] = b1 * c1 + a1 * s1;
  }
}

// Sequence of the i-th entry of an exclusive prefix `base` [batch + 1]: the largest b with
// base[b] <= i. REQUIRES: base[0] <= i < base[batch].
__device__ __forceinline__ int FindSeq(const int32_t* base, int batch, int i) {
  int lo = 0, hi = batch - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (base[mid] <= i) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

}  // namespace longview::cuda::prefill
