// Hopper prefill attention for head_dim 128 (sm_90a): a tile gather that writes rotated keys and
// transposed values as ready-made shared-memory images, and a warp-specialised wgmma attention
// kernel that streams those images with 1-D bulk copies. Include only from prefill_attention.cu.
//
// Workspace ("tiled layout"): per sequence, key rows padded to kWgBlockN, as
//   [sink region: keys 0 .. sinks-1, zero-padded to sink_rows] [window region: keys lo_w .. ]
// where sink_rows > 0 only when the sinks lie below the chunk's window (sinks < lo); otherwise
// the window region starts at key 0 (sinks present) or at lo rounded down to kWgBlockN (no sinks).
// Rows of keys no query sees (lo_w <= j < lo, j >= kv_len, sink padding) are zero, so masked
// probabilities (exactly 0) never meet NaN values. Tile t of KV head h (rows t*BN .. t*BN+BN-1) is
// stored as two 32 KB images at element (t * num_kv_heads + h) * BN * D of k_rot / v_copy:
//   K:   BN rows (keys) x 128 (d), K-major, 128-byte swizzle (hopper.cuh)
//   V^T: 128 rows (d) x BN (keys), K-major, 128-byte swizzle (keys are the K of O += P V)
// so the attention kernel's producer copies each with one cp.async.bulk and both GEMMs read
// K-major operands. The prepare kernel computes the padded prefix (kv_base) and per-sequence
// sink_rows / lo_w; the row capacity is max_total_kv + 3 * BN * batch (each sequence adds at most
// one padded tile per region and the lo_w round-down).
//
// Attention block = 3 warpgroups, 128 query rows of one (sequence, query tile, query head):
// warpgroup 0 is the producer (one thread issues the bulk copies of K and V tiles into a
// 2-stage ring, full/empty mbarriers), warpgroups 1 and 2 each own 64 query rows: the query is
// rotated while staged into a swizzled image, S = Q K^T by 8 wgmma m64n128k16 (both operands in
// shared memory), masks only on tiles crossing the diagonal / window edge / range ends, online
// softmax in registers (log2 domain), P converted in registers to the A operand of O += P V^T
// (8 wgmma, A from registers). Registers: producer 40, consumers 232 (setmaxnreg). Passes as the
// mma.sync kernel: the sink keys with q at min(t, sinks + window - 1), then the window keys.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/prefill_attention/internal/common.cuh"
#include "kernels/cuda/prefill_attention/internal/hopper.cuh"

namespace longview::cuda::prefill {

inline constexpr int kWgD = 128;
inline constexpr int kWgThreads = 384;
inline constexpr int kWgStages = 2;
inline constexpr int kWgGatherThreads = 256;
inline constexpr uint32_t kWgTileBytes = kWgBlockN * kWgD * 2;  // one K or V^T image
inline constexpr uint32_t kWgQBytes = 64 * kWgD * 2;            // one consumer's query image
inline constexpr size_t kWgSmemData = 2 * kWgQBytes + 2 * kWgStages * size_t{kWgTileBytes};
inline constexpr size_t kWgSmemBytes = kWgSmemData + 2 * kWgStages * 8 + 1024;  // + align slack

// Element offset of 16-byte chunk `chunk` (0..15, i.e. columns 8*chunk..) of row r in a
// 128-column swizzled image of `rows` rows.
__device__ __forceinline__ int ImgOff(int rows, int r, int chunk) {
  return (chunk >> 3) * rows * 64 + r * 64 + (((chunk & 7) ^ (r & 7)) << 3);
}

// Key held by row r (0..BN-1) of tile rows starting at local row `local0` of sequence si, or -1
// for a zero row.
__device__ __forceinline__ int TileRowKey(const SeqInfo& si, int local) {
  if (local < si.sink_rows) return local < si.sinks ? local : -1;
  const int j = si.lo_w + (local - si.sink_rows);
  return j < si.kv_len && (j < si.sinks || j >= si.lo) ? j : -1;
}

// Grid (row capacity / BN, num_kv_heads). Writes tile blockIdx.x of KV head blockIdx.y.
template <typename T>
__global__ void __launch_bounds__(kWgGatherThreads) PrefillTileGatherKernel(const Params p) {
  constexpr int D = kWgD, BN = kWgBlockN, kHalf = D / 2;
  __shared__ __align__(16) uint16_t v_s[BN][D + 8];
  const int tile = blockIdx.x;
  const int h = blockIdx.y;
  const int r0 = tile * BN;
  if (r0 >= p.kv_base[p.batch]) return;
  const int b = FindSeq(p.kv_base, p.batch, r0);
  const SeqInfo si = p.info[b];
  if (!si.valid) return;  // never: invalid sequences store no rows
  const int local0 = r0 - p.kv_base[b];
  const int tid = threadIdx.x;
  const int64_t row_elems = static_cast<int64_t>(p.num_kv_heads) * D;
  const int64_t img = (static_cast<int64_t>(tile) * p.num_kv_heads + h) * (BN * D);
  T* const k_img = static_cast<T*>(p.k_rot) + img;
  uint16_t* const v_img = static_cast<uint16_t*>(p.v_copy) + img;
  const T* const pages = static_cast<const T*>(p.pages);
  const int32_t* const bt = p.block_tables + static_cast<int64_t>(b) * p.block_table_stride;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  float nan8[8];
#pragma unroll
  for (int e = 0; e < 8; ++e) nan8[e] = __int_as_float(0x7fc00000);
  const uint4 nan = detail::Pack8<T>(nan8);

  // Keys: a unit = 8 RoPE pairs (x[f0..f0+7], x[64+f0..]) of one row.
  for (int u = tid; u < BN * 8; u += kWgGatherThreads) {
    const int r = u >> 3;
    const int piece = u & 7;
    const int f0 = piece * 8;
    const int j = TileRowKey(si, local0 + r);
    uint4 w1 = zero, w2 = zero;
    if (j >= 0) {
      const int page = bt[j / p.page_size];
      if (page < 0) {
        w1 = w2 = nan;
      } else {
        const T* src = pages + static_cast<int64_t>(page) * p.page_stride + p.k_offset +
                       static_cast<int64_t>(j % p.page_size) * row_elems +
                       static_cast<int64_t>(h) * D + f0;
        float x1[8], x2[8];
        detail::Unpack8<T>(__ldg(reinterpret_cast<const uint4*>(src)), x1);
        detail::Unpack8<T>(__ldg(reinterpret_cast<const uint4*>(src + kHalf)), x2);
        RotatePairs8<D>(p.rope_lo, p.rope_hi, j, f0, x1, x2);
        w1 = detail::Pack8<T>(x1);
        w2 = detail::Pack8<T>(x2);
      }
    }
    *reinterpret_cast<uint4*>(k_img + ImgOff(BN, r, piece)) = w1;
    *reinterpret_cast<uint4*>(k_img + ImgOff(BN, r, 8 + piece)) = w2;
  }
  // Values: rows into shared memory, then written transposed (d rows, key columns).
  for (int u = tid; u < BN * 16; u += kWgGatherThreads) {
    const int r = u >> 4;
    const int c = u & 15;
    const int j = TileRowKey(si, local0 + r);
    uint4 w = zero;
    if (j >= 0) {
      const int page = bt[j / p.page_size];
      if (page < 0) {
        w = nan;
      } else {
        const T* src = pages + static_cast<int64_t>(page) * p.page_stride + p.v_offset +
                       static_cast<int64_t>(j % p.page_size) * row_elems +
                       static_cast<int64_t>(h) * D + c * 8;
        w = __ldg(reinterpret_cast<const uint4*>(src));
      }
    }
    *reinterpret_cast<uint4*>(&v_s[r][c * 8]) = w;
  }
  __syncthreads();
  for (int u = tid; u < D * 16; u += kWgGatherThreads) {
    const int d = u & (D - 1);
    const int kc = u >> 7;  // keys 8kc .. 8kc + 7
    uint32_t w[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      w[e] = static_cast<uint32_t>(v_s[kc * 8 + 2 * e][d]) |
             (static_cast<uint32_t>(v_s[kc * 8 + 2 * e + 1][d]) << 16);
    }
    *reinterpret_cast<uint4*>(v_img + ImgOff(D, d, kc)) = make_uint4(w[0], w[1], w[2], w[3]);
  }
}

template <typename T>
__global__ void __launch_bounds__(kWgThreads, 1) PrefillAttentionWgmmaKernel(const Params p) {
  constexpr int D = kWgD, BN = kWgBlockN, BM = kWgBlockM, kHalf = D / 2;
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
  const int rows_valid = min(BM, si.n - qt * BM);
  const int64_t out_row_stride = static_cast<int64_t>(p.num_q_heads) * D;
  T* const out = static_cast<T*>(p.out) + (static_cast<int64_t>(si.q0) + qt * BM) * out_row_stride +
                 static_cast<int64_t>(h) * D;
  if (!si.valid) {  // block-uniform, before any barrier
    const T nan = detail::FromFloat<T>(__int_as_float(0x7fc00000));
    for (int i = tid; i < rows_valid * D; i += kWgThreads)
      out[(i / D) * out_row_stride + i % D] = nan;
    return;
  }

  extern __shared__ __align__(128) unsigned char smem_raw[];
  unsigned char* const base = smem_raw + ((1024 - (SmemAddr(smem_raw) & 1023)) & 1023);
  T* const q_s = reinterpret_cast<T*>(base);
  const uint32_t kv_addr = SmemAddr(base + 2 * kWgQBytes);  // stage s: K, then V^T
  const uint32_t bar_addr = SmemAddr(base + kWgSmemData);   // full[s], then empty[s]
  auto k_addr = [&](int st) { return kv_addr + st * 2 * kWgTileBytes; };
  auto full_bar = [&](int st) { return bar_addr + 8 * st; };
  auto empty_bar = [&](int st) { return bar_addr + 8 * (kWgStages + st); };
  if (tid == 0) {
    for (int st = 0; st < kWgStages; ++st) {
      MbarInit(full_bar(st), 1);
      MbarInit(empty_bar(st), 8);  // one arrival per consumer warp
    }
    FenceBarrierInit();
  }
  __syncthreads();

  // Key tiles of the block: the sink pass's [0, jb_s) from the sink region (or the window
  // region when it starts at key 0: both begin at the sequence's first row), then the window
  // pass's [ja, jb) from the window region.
  const int t_lo = si.kv_len - si.n + qt * BM;  // token of row 0
  const int t_hi = t_lo + rows_valid - 1;
  const int W = si.window;
  const int S = si.sinks;
  const int jb_s = S > 0 ? min(S, t_hi + 1) : 0;
  const int n_sink = (jb_s + BN - 1) / BN;
  const int ja = max(S, W > 0 ? t_lo - W + 1 : 0);
  const int jb = t_hi + 1;
  const int w_first = ja < jb ? (ja - si.lo_w) / BN : 0;
  const int n_win = ja < jb ? (jb - 1 - si.lo_w) / BN - w_first + 1 : 0;
  const int n_tiles = n_sink + n_win;

  if (tid < 128) {  // producer warpgroup
    SetMaxRegsDec<40>();
    if (tid == 0) {
      const int64_t tile0 = p.kv_base[b] / BN;
      const int64_t wtile0 = (p.kv_base[b] + si.sink_rows) / BN + w_first;
      const T* const k_ws = static_cast<const T*>(p.k_rot);
      const T* const v_ws = static_cast<const T*>(p.v_copy);
      for (int it = 0; it < n_tiles; ++it) {
        const int st = it % kWgStages;
        if (it >= kWgStages) MbarWait(empty_bar(st), ((it / kWgStages) - 1) & 1);
        const int64_t tile = it < n_sink ? tile0 + it : wtile0 + (it - n_sink);
        const int64_t off = (tile * p.num_kv_heads + kvh) * (BN * D);
        MbarArriveExpectTx(full_bar(st), 2 * kWgTileBytes);
        BulkCopyG2S(k_addr(st), k_ws + off, kWgTileBytes, full_bar(st));
        BulkCopyG2S(k_addr(st) + kWgTileBytes, v_ws + off, kWgTileBytes, full_bar(st));
      }
    }
    return;
  }
  SetMaxRegsInc<232>();

  const int wgc = tid / 128 - 1;  // consumer warpgroup: rows 64 wgc ..
  const int ctid = tid & 127;
  const int warp = ctid >> 5;
  const int lane = tid & 31;
  const int g = lane >> 2;
  const int c4 = lane & 3;
  T* const q_wg = q_s + wgc * (64 * D);
  const uint32_t q_addr = SmemAddr(q_wg);
  const int t_lo_wg = t_lo + wgc * 64;
  const int t_max_wg = t_lo_wg + 63;
  const T* const q_src = static_cast<const T*>(p.q) + static_cast<int64_t>(h) * D;

  float o[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) o[i] = 0.f;
  float m_run[2] = {-INFINITY, -INFINITY};
  float l_run[2] = {0.f, 0.f};
  int it = 0;
  int pending = -1;  // stage whose V the last issued P V still reads

  auto stage_q = [&](bool sink_pass) {
    NamedBarrier(1 + wgc, 128);  // every warp of the warpgroup is done reading the last q
    for (int x = ctid; x < 64 * 8; x += 128) {
      const int r = x >> 3;
      const int piece = x & 7;
      const int f0 = piece * 8;
      const int rr = wgc * 64 + r;
      uint4 w1 = make_uint4(0, 0, 0, 0), w2 = w1;
      if (rr < rows_valid) {
        const T* src = q_src + (static_cast<int64_t>(si.q0) + qt * BM + rr) * p.q_row_stride;
        float x1[8], x2[8];
        detail::Unpack8<T>(*reinterpret_cast<const uint4*>(src + f0), x1);
        detail::Unpack8<T>(*reinterpret_cast<const uint4*>(src + kHalf + f0), x2);
        const int t = t_lo + rr;
        const int pos = sink_pass ? min(t, S + W - 1) : t;
        RotatePairs8<D>(p.rope_lo, p.rope_hi, pos, f0, x1, x2);
        w1 = detail::Pack8<T>(x1);
        w2 = detail::Pack8<T>(x2);
      }
      *reinterpret_cast<uint4*>(q_wg + ImgOff(64, r, piece)) = w1;
      *reinterpret_cast<uint4*>(q_wg + ImgOff(64, r, 8 + piece)) = w2;
    }
    FenceProxyAsync();
    NamedBarrier(1 + wgc, 128);
  };

  // Tiles it .. it + count - 1; tile i holds keys key0 + i * BN ..; keys outside [jlo, jhi)
  // are masked.
  auto run_tiles = [&](int count, int key0, bool sink_pass, int jlo, int jhi) {
    const bool use_window = !sink_pass && W > 0;
    for (int i = 0; i < count; ++i, ++it) {
      const int st = it % kWgStages;
      const int k0 = key0 + i * BN;
      const uint32_t ks = k_addr(st);
      const uint32_t vs = ks + kWgTileBytes;
      MbarWait(full_bar(st), (it / kWgStages) & 1);

      float s[64];
#pragma unroll
      for (int e = 0; e < 64; ++e) s[e] = 0.f;
      WgmmaFence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint32_t koff = (kk & 3) * 32u;
        WgmmaSS(s, SwizzledDesc(q_addr + (kk >> 2) * kWgQBytes / 2 + koff),
                SwizzledDesc(ks + (kk >> 2) * (kWgTileBytes / 2) + koff), kk > 0 ? 1 : 0, null_t);
      }
      WgmmaCommit();
      WgmmaWait<0>();  // S ready; the previous tile's P V is done too
#pragma unroll
      for (int e = 0; e < 64; ++e) {
        FenceReg(s[e]);
        FenceReg(o[e]);
      }
      if (pending >= 0 && lane == 0) MbarArrive(empty_bar(pending));
      pending = -1;

      const bool need_mask =
          k0 < jlo || k0 + BN > jhi || k0 + BN - 1 > t_lo_wg || (use_window && k0 <= t_max_wg - W);
      if (need_mask) {
#pragma unroll
        for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int j = k0 + nt * 8 + 2 * c4 + (e & 1);
            const int t = t_lo_wg + warp * 16 + g + (e >> 1) * 8;
            const bool ok = j >= jlo && j < jhi && j <= t && (!use_window || j > t - W);
            if (!ok) s[nt * 4 + e] = -INFINITY;
          }
        }
      }

      // Online softmax; rows g (e = 0, 1) and g + 8 (e = 2, 3) of the warp's 16.
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < BN / 8; ++nt) {
          mx = fmaxf(mx, fmaxf(s[nt * 4 + 2 * hr], s[nt * 4 + 2 * hr + 1]));
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        mx *= p.scale_log2;  // -inf stays -inf (scale > 0)
        const float m_new = fmaxf(m_run[hr], mx);
        const float m_use = m_new == -INFINITY ? 0.f : m_new;
        const float alpha = exp2f(m_run[hr] - m_use);  // 0 while m_run is -inf
        m_run[hr] = m_new;
        l_run[hr] *= alpha;
#pragma unroll
        for (int nt = 0; nt < D / 8; ++nt) {
          o[nt * 4 + 2 * hr] *= alpha;
          o[nt * 4 + 2 * hr + 1] *= alpha;
        }
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < BN / 8; ++nt) {
          float& a = s[nt * 4 + 2 * hr];
          float& c = s[nt * 4 + 2 * hr + 1];
          a = exp2f(fmaf(a, p.scale_log2, -m_use));
          c = exp2f(fmaf(c, p.scale_log2, -m_use));
          sum += a + c;
        }
        l_run[hr] += sum;
      }

      // O += P V: the S accumulator layout is the A-fragment layout of k-step kk (keys 16kk..).
      uint32_t pa[BN / 16][4];
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        pa[kk][0] = detail::Float2ToWord2(s[8 * kk + 0], s[8 * kk + 1], null_t);
        pa[kk][1] = detail::Float2ToWord2(s[8 * kk + 2], s[8 * kk + 3], null_t);
        pa[kk][2] = detail::Float2ToWord2(s[8 * kk + 4], s[8 * kk + 5], null_t);
        pa[kk][3] = detail::Float2ToWord2(s[8 * kk + 6], s[8 * kk + 7], null_t);
      }
#pragma unroll
      for (int e = 0; e < 64; ++e) FenceReg(o[e]);
      WgmmaFence();
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        WgmmaRS(o, pa[kk], SwizzledDesc(vs + (kk >> 2) * (kWgTileBytes / 2) + (kk & 3) * 32u),
                null_t);
      }
      WgmmaCommit();
      pending = st;
    }
  };

  if (n_sink > 0) {
    stage_q(true);
    run_tiles(n_sink, 0, true, 0, jb_s);
    WgmmaWait<0>();
#pragma unroll
    for (int e = 0; e < 64; ++e) FenceReg(o[e]);
  }
  if (n_win > 0) {
    stage_q(false);
    run_tiles(n_win, si.lo_w + w_first * BN, false, ja, jb);
  }
  WgmmaWait<0>();
#pragma unroll
  for (int e = 0; e < 64; ++e) FenceReg(o[e]);
  if (pending >= 0 && lane == 0) MbarArrive(empty_bar(pending));

#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    float l = l_run[hr];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const float inv = 1.f / l;
    const int r = wgc * 64 + warp * 16 + g + hr * 8;
    if (r < rows_valid) {
      T* dst = out + r * out_row_stride + 2 * c4;
#pragma unroll
      for (int nt = 0; nt < D / 8; ++nt) {
        *reinterpret_cast<uint32_t*>(dst + nt * 8) =
            detail::Float2ToWord2(o[nt * 4 + 2 * hr] * inv, o[nt * 4 + 2 * hr + 1] * inv, null_t);
      }
    }
  }
}

}  // namespace longview::cuda::prefill
