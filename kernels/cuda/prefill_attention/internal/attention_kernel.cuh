// The tensor-core attention kernel of prefill attention (FlashAttention-2 style). Reads queries
// from q (rotating them while staging), rotated keys and values from the contiguous workspace the
// gather kernel wrote. Include only from prefill_attention.cu.
//
// Block = 4 warps = 64 query rows of one (sequence, query tile, query head); warp w owns rows
// 16w..16w+15. Grid (num_q_heads, tile slots): the heads of a KV group are adjacent (their K/V
// tiles meet in L2) and slot 0 takes the globally last tile (the one with the most keys first).
// Shared memory: two stages of (K tile, V tile), each 64 rows x D, 16-byte chunks XOR-swizzled
// by (row & 7) so ldmatrix is conflict-free; the query tile is staged in stage 1's K before the
// first tile of a pass lands there.
// Per tile: S = Q K^T by mma.sync m16n8k16 (Q fragments in registers, K by ldmatrix), masking
// only on tiles that cross the causal diagonal, the window edge or the range end, online softmax
// in registers (log2 domain), P reused from the S accumulators as A fragments, O += P V with V by
// ldmatrix.trans. cp.async double buffering: tile i + 1 is in flight while tile i is computed.
// Two passes share the softmax state: the sink keys [0, sinks) with q rotated at
// min(t, sinks + window - 1) (StreamingLLM's re-assigned distance), then the window keys at q's
// own position t (RoPE scores depend only on the position difference).
// Selection mode (kSel, selection.cuh): one pass over the head row's gathered keys; their
// positions ride along in shared memory (64 ints per stage) and the mask is key position <=
// query position (q_positions). A warp skips a tile whose smallest key position is above all of
// its rows' positions and masks only tiles that are not entirely visible to all of its rows;
// a row that sees no key gets zeros, a row whose position is outside the tables NaN.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <climits>
#include <cstdint>

#include "kernels/cuda/prefill_attention/internal/common.cuh"

namespace longview::cuda::prefill {

template <int D>
struct AttnGeo {
  static constexpr int kChunks = D / 8;  // 16-byte chunks per row
  static constexpr int kTileElems = kBlockN * D;
  static constexpr size_t kSmemBytes = 4 * static_cast<size_t>(kTileElems) * 2;
  static constexpr size_t kSelSmemBytes = kSmemBytes + 2 * kBlockN * sizeof(int);  // positions
  static constexpr int kMinBlocks = D == 128 ? 2 : 3;
  static_assert(kBlockM == kBlockN, "the query tile is staged in a K tile's place");
};

// Element offset of 16-byte chunk c of row r in a swizzled tile.
template <int D>
__device__ __forceinline__ int Swz(int r, int c) {
  return r * D + ((c ^ (r & 7)) << 3);
}

__device__ __forceinline__ void LdMatrixX4(uint32_t* r, const void* smem) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void LdMatrixX4Trans(uint32_t* r, const void* smem) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

// d += a * b, m16n8k16, float accumulators.
__device__ __forceinline__ void Mma(float* d, const uint32_t* a, uint32_t b0, uint32_t b1,
                                    __nv_bfloat16*) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void Mma(float* d, const uint32_t* a, uint32_t b0, uint32_t b1,
                                    __half*) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ int WarpMin(int v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}
__device__ __forceinline__ int WarpMax(int v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

template <typename T, int D, bool kSel>
__global__ void __launch_bounds__(kThreads, AttnGeo<D>::kMinBlocks)
    PrefillAttentionKernel(const Params p) {
  using Geo = AttnGeo<D>;
  constexpr int kHalf = D / 2;
  constexpr int kKSteps = D / 16;  // k-steps of Q K^T
  constexpr int kONt = D / 8;      // n-tiles of O
  constexpr int kSNt = kBlockN / 8;
  T* const null_t = nullptr;

  const int total_tiles = p.tile_base[p.batch];
  const int slot = blockIdx.y;
  if (slot >= total_tiles) return;
  const int tl = total_tiles - 1 - slot;
  const int b = FindSeq(p.tile_base, p.batch, tl);
  const int qt = tl - p.tile_base[b];
  const SeqInfo si = p.info[b];
  const int h = blockIdx.x;
  const int kvh = h / p.group;
  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;
  const int g = lane >> 2;  // row inside the warp's 8-row half
  const int c4 = lane & 3;
  const int rows_valid = min(kBlockM, si.n - qt * kBlockM);
  const int64_t out_row_stride = static_cast<int64_t>(p.num_q_heads) * D;
  T* const out = static_cast<T*>(p.out) +
                 (static_cast<int64_t>(si.q0) + qt * kBlockM) * out_row_stride +
                 static_cast<int64_t>(h) * D;

  bool valid = si.valid != 0;
  int sel_keys = 0;      // selection: keys of the head row
  int64_t sel_base = 0;  // selection: workspace row of its first key
  if constexpr (kSel) {
    const int r = b * p.num_kv_heads + kvh;
    sel_keys = p.head_keys[r];
    sel_base = p.head_base[r];
    valid = valid && sel_keys >= 0;
  }
  if (!valid) {  // block-uniform, before any barrier
    const T nan = detail::FromFloat<T>(__int_as_float(0x7fc00000));
    for (int i = tid; i < rows_valid * D; i += kThreads)
      out[(i / D) * out_row_stride + i % D] = nan;
    return;
  }

  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* const smem = reinterpret_cast<T*>(smem_raw);
  // stage s: K at smem + (2s) * kTileElems, V at smem + (2s + 1) * kTileElems
  T* const q_stage = smem + 2 * Geo::kTileElems;

  const int t_lo = si.kv_len - si.n + qt * kBlockM;  // token of row 0
  const int t_hi = t_lo + rows_valid - 1;            // token of the last valid row
  const int W = si.window;
  const int S = si.sinks;
  // Rule mode: rows [key][kv_head][D]; selection mode: the head row's keys, [key][D].
  const int64_t kv_row_stride = kSel ? D : static_cast<int64_t>(p.num_kv_heads) * D;
  const int64_t head_col = kSel ? 0 : static_cast<int64_t>(kvh) * D;
  const T* const k_ws = static_cast<const T*>(p.k_rot) + head_col;
  const T* const v_ws = static_cast<const T*>(p.v_copy) + head_col;
  int* const s_kpos = reinterpret_cast<int*>(smem + 4 * Geo::kTileElems);  // selection only
  const int64_t pos_limit = static_cast<int64_t>(p.rope_hi_rows) * kRopeLoRows;
  // Selection: positions of this thread's rows g, g + 8 (-1: past the chunk or invalid), the
  // warp's smallest and largest valid row position, rows whose position is invalid.
  int qp[2] = {-1, -1};
  int wq_min = INT_MAX, wq_max = INT_MIN, q_bad = 0;
  if constexpr (kSel) {
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int r = warp * 16 + g + hr * 8;
      if (r < rows_valid) {
        const int v = p.q_positions[si.q0 + qt * kBlockM + r];
        if (v < 0 || v >= pos_limit) {
          q_bad |= 1 << hr;
        } else {
          qp[hr] = v;
        }
        wq_min = min(wq_min, qp[hr]);
        wq_max = max(wq_max, qp[hr]);
      }
    }
    wq_min = WarpMin(wq_min);
    wq_max = WarpMax(wq_max);
  }
  const T* const q_src = static_cast<const T*>(p.q) + static_cast<int64_t>(h) * D;

  float o[kONt][4];
#pragma unroll
  for (int nt = 0; nt < kONt; ++nt) o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.f;
  float m_run[2] = {-INFINITY, -INFINITY};
  float l_run[2] = {0.f, 0.f};
  uint32_t qf[kKSteps][4];

  // Copies key tile [k0, k0 + 64) (rows >= jb zero-filled) into stage `st`; stored row of key j
  // is kv_base + j - shift.
  auto load_tile = [&](int st, int k0, int jb, int64_t row0) {
    T* ks = smem + (2 * st) * Geo::kTileElems;
    T* vs = ks + Geo::kTileElems;
#pragma unroll
    for (int i = 0; i < kBlockN * Geo::kChunks / kThreads; ++i) {
      const int x = tid + i * kThreads;
      const int r = x / Geo::kChunks;
      const int c = x % Geo::kChunks;
      const bool ok = k0 + r < jb;
      const int64_t off = ok ? (row0 + k0 + r) * kv_row_stride + c * 8 : 0;
      CpAsync16(ks + Swz<D>(r, c), k_ws + off, ok ? 16 : 0);
      CpAsync16(vs + Swz<D>(r, c), v_ws + off, ok ? 16 : 0);
    }
    if constexpr (kSel) {
      if (tid < kBlockN) {
        const bool ok = k0 + tid < jb;
        CpAsync4(s_kpos + st * kBlockN + tid, p.key_pos + row0 + (ok ? k0 + tid : 0), ok ? 4 : 0);
      }
    }
  };

  // Stages the query tile rotated at pos(t) (rows past the chunk zero) and loads the fragments.
  auto stage_q = [&](bool sink_pass) {
    for (int x = tid; x < kBlockM * (D / 16); x += kThreads) {
      const int r = x / (D / 16);
      const int piece = x % (D / 16);
      const int f0 = piece * 8;
      uint4 w1 = make_uint4(0, 0, 0, 0), w2 = w1;
      if (r < rows_valid) {
        const T* src = q_src + (static_cast<int64_t>(si.q0) + qt * kBlockM + r) * p.q_row_stride;
        float x1[8], x2[8];
        detail::Unpack8<T>(*reinterpret_cast<const uint4*>(src + f0), x1);
        detail::Unpack8<T>(*reinterpret_cast<const uint4*>(src + kHalf + f0), x2);
        int pos;
        if constexpr (kSel) {
          pos = p.q_positions[si.q0 + qt * kBlockM + r];
          if (pos < 0 || pos >= pos_limit) pos = 0;  // the row's output is NaN
        } else {
          const int t = t_lo + r;
          pos = sink_pass ? min(t, S + W - 1) : t;
        }
        RotatePairs8<D>(p.rope_lo, p.rope_hi, pos, f0, x1, x2);
        w1 = detail::Pack8<T>(x1);
        w2 = detail::Pack8<T>(x2);
      }
      *reinterpret_cast<uint4*>(q_stage + Swz<D>(r, piece)) = w1;
      *reinterpret_cast<uint4*>(q_stage + Swz<D>(r, piece + D / 16)) = w2;
    }
    __syncthreads();
#pragma unroll
    for (int ks = 0; ks < kKSteps; ++ks) {
      const int r = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
      const int c = ks * 2 + (lane >> 4);
      LdMatrixX4(qf[ks], q_stage + Swz<D>(r, c));
    }
  };

  // One pass over keys [ja, jb) stored at rows kv_base + j - shift. use_window: the per-row
  // window edge applies (the window pass); otherwise only j <= t (the sink pass).
  auto run_pass = [&](int ja, int jb, int shift, bool sink_pass) {
    __syncthreads();  // every warp is done with both stages (previous pass)
    const int64_t row0 = kSel ? sel_base : static_cast<int64_t>(p.kv_base[b]) - shift;
    const int num_tiles = (jb - ja + kBlockN - 1) / kBlockN;
    load_tile(0, ja, jb, row0);
    CpAsyncCommit();
    stage_q(sink_pass);
    const bool use_window = !sink_pass && W > 0;
    for (int it = 0; it < num_tiles; ++it) {
      const int k0 = ja + it * kBlockN;
      CpAsyncWaitAll();
      __syncthreads();  // tile it visible; every warp is done with tile it - 1 and q_stage
      if (it + 1 < num_tiles) load_tile((it + 1) & 1, k0 + kBlockN, jb, row0);
      CpAsyncCommit();
      const T* ks = smem + (2 * (it & 1)) * Geo::kTileElems;
      const T* vs = ks + Geo::kTileElems;
      const int* kp = s_kpos + (it & 1) * kBlockN;
      bool sel_full = false;  // selection: every key of the tile is visible to every row
      if constexpr (kSel) {
        int kmin = INT_MAX, kmax = INT_MIN;
#pragma unroll
        for (int x = 0; x < 2; ++x) {
          const int j = lane + 32 * x;
          if (k0 + j < jb) kmin = min(kmin, kp[j]), kmax = max(kmax, kp[j]);
        }
        kmin = WarpMin(kmin);
        kmax = WarpMax(kmax);
        if (kmin > wq_max) continue;  // warp-uniform: no row of the warp sees any key
        sel_full = k0 + kBlockN <= jb && kmax <= wq_min;
      }

      float s[kSNt][4];
#pragma unroll
      for (int nt = 0; nt < kSNt; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
      for (int np = 0; np < kSNt / 2; ++np) {
#pragma unroll
        for (int kk = 0; kk < kKSteps; ++kk) {
          uint32_t kb[4];
          const int r = np * 16 + (lane & 7) + (lane >> 4) * 8;
          const int c = kk * 2 + ((lane >> 3) & 1);
          LdMatrixX4(kb, ks + Swz<D>(r, c));
          Mma(s[2 * np], qf[kk], kb[0], kb[1], null_t);
          Mma(s[2 * np + 1], qf[kk], kb[2], kb[3], null_t);
        }
      }

      const bool need_mask = kSel ? !sel_full
                                  : k0 + kBlockN > jb || k0 + kBlockN - 1 > t_lo ||
                                        (use_window && k0 <= t_lo + kBlockM - 1 - W);
      if (need_mask) {
#pragma unroll
        for (int nt = 0; nt < kSNt; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int jj = nt * 8 + 2 * c4 + (e & 1);
            const int j = k0 + jj;
            bool ok;
            if constexpr (kSel) {
              ok = j < jb && kp[jj] <= qp[e >> 1];
            } else {
              const int t = t_lo + warp * 16 + g + (e >> 1) * 8;
              ok = j < jb && j <= t && (!use_window || j > t - W);
            }
            if (!ok) s[nt][e] = -INFINITY;
          }
        }
      }

      // Online softmax; rows g (e = 0, 1) and g + 8 (e = 2, 3) of the warp's 16.
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < kSNt; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * hr], s[nt][2 * hr + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        mx *= p.scale_log2;  // -inf stays -inf (scale > 0)
        const float m_new = fmaxf(m_run[hr], mx);
        const float m_use = m_new == -INFINITY ? 0.f : m_new;
        const float alpha = exp2f(m_run[hr] - m_use);  // 0 while m_run is -inf
        m_run[hr] = m_new;
        l_run[hr] *= alpha;
#pragma unroll
        for (int nt = 0; nt < kONt; ++nt) {
          o[nt][2 * hr] *= alpha;
          o[nt][2 * hr + 1] *= alpha;
        }
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < kSNt; ++nt) {
          s[nt][2 * hr] = exp2f(fmaf(s[nt][2 * hr], p.scale_log2, -m_use));
          s[nt][2 * hr + 1] = exp2f(fmaf(s[nt][2 * hr + 1], p.scale_log2, -m_use));
          sum += s[nt][2 * hr] + s[nt][2 * hr + 1];
        }
        l_run[hr] += sum;
      }

      // O += P V: P's accumulator layout is the A fragment layout of k-step kk (keys 16kk..).
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) {
        uint32_t pa[4];
        pa[0] = detail::Float2ToWord2(s[2 * kk][0], s[2 * kk][1], null_t);
        pa[1] = detail::Float2ToWord2(s[2 * kk][2], s[2 * kk][3], null_t);
        pa[2] = detail::Float2ToWord2(s[2 * kk + 1][0], s[2 * kk + 1][1], null_t);
        pa[3] = detail::Float2ToWord2(s[2 * kk + 1][2], s[2 * kk + 1][3], null_t);
#pragma unroll
        for (int dp = 0; dp < kONt / 2; ++dp) {
          uint32_t vb[4];
          const int r = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
          const int c = dp * 2 + (lane >> 4);
          LdMatrixX4Trans(vb, vs + Swz<D>(r, c));
          Mma(o[2 * dp], pa, vb[0], vb[1], null_t);
          Mma(o[2 * dp + 1], pa, vb[2], vb[3], null_t);
        }
      }
    }
  };

  if constexpr (kSel) {
    run_pass(0, sel_keys, 0, false);  // every key of the head row, masked by position
  } else {
    // Sink pass: keys [0, min(S, t_hi + 1)), stored unshifted.
    if (S > 0) run_pass(0, min(S, t_hi + 1), 0, true);
    // Window (or full causal) pass: keys [max(S, t_lo - W + 1), t_hi], stored shifted.
    const int ja = max(S, W > 0 ? t_lo - W + 1 : 0);
    if (ja <= t_hi) run_pass(ja, t_hi + 1, si.lo - si.s_eff, false);
  }

#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    float l = l_run[hr];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    float inv = 1.f / l;
    if constexpr (kSel) {  // no visible key: zeros; a position outside the tables: NaN
      inv = (q_bad >> hr) & 1 ? __int_as_float(0x7fc00000) : (l > 0.f ? inv : 0.f);
    }
    const int r = warp * 16 + g + hr * 8;
    if (r < rows_valid) {
      T* dst = out + r * out_row_stride + 2 * c4;
#pragma unroll
      for (int nt = 0; nt < kONt; ++nt) {
        *reinterpret_cast<uint32_t*>(dst + nt * 8) =
            detail::Float2ToWord2(o[nt][2 * hr] * inv, o[nt][2 * hr + 1] * inv, null_t);
      }
    }
  }
}

}  // namespace longview::cuda::prefill
