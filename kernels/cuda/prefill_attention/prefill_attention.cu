// Paged prefill attention: prepare (bounds, prefix sums), gather + rotate keys, tensor-core
// attention; selection mode: span scan, prepare, span gather, mma.sync attention masked by
// position. See prefill_attention.h, NOTES.md, internal/attention_kernel.cuh, selection.cuh.
#include <algorithm>
#include <climits>
#include <cstdlib>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/dispatch.h"
#include "kernels/cuda/prefill_attention/internal/attention_kernel.cuh"
#include "kernels/cuda/prefill_attention/internal/common.cuh"
#include "kernels/cuda/prefill_attention/internal/selection.cuh"
#include "kernels/cuda/prefill_attention/internal/wgmma_kernel.cuh"
#include "kernels/cuda/prefill_attention/prefill_attention.h"
#include "kernels/cuda/vec.cuh"

namespace longview::cuda {
namespace {

using prefill::kBlockM;
using prefill::Params;
using prefill::SeqInfo;

constexpr int kPrepThreads = 512;
constexpr int kGatherRows = 16;
constexpr int kGatherThreads = 256;

// One block: validates every sequence against the plan's bounds, then exclusive prefix sums of
// stored keys (kv_base) and query tiles (tile_base), chunk by chunk. With the tiled layout
// (wgmma kernel) a second scan pads each valid sequence's rows (wgmma_kernel.cuh); validity
// still uses the unpadded count against max_total_kv, so both kernels accept the same inputs.
__global__ void __launch_bounds__(kPrepThreads) PrefillPrepareKernel(const Params p) {
  __shared__ long long s_cnt[kPrepThreads];
  __shared__ int s_tiles[kPrepThreads];
  const int tid = threadIdx.x;
  long long carry_cnt = 0, carry_rows = 0;
  int carry_tiles = 0;
  for (int c0 = 0; c0 < p.batch; c0 += kPrepThreads) {
    const int b = c0 + tid;
    SeqInfo si{};
    long long cnt = 0;
    int tiles = 0;
    bool ok = false;
    if (b < p.batch) {
      const int q0 = p.q_start[b], q1 = p.q_start[b + 1];
      const int n = q1 - q0;
      const bool q_ok = q0 >= 0 && n >= 0 && q1 <= p.max_total_q;
      const int kv = p.kv_lens[b];
      const int W = p.window != nullptr ? p.window[b] : p.default_window;
      const int S = p.sinks != nullptr ? p.sinks[b] : p.default_sinks;
      ok = q_ok && kv >= n &&
           static_cast<int64_t>(kv) <= static_cast<int64_t>(p.block_table_stride) * p.page_size &&
           static_cast<int64_t>(kv) <= static_cast<int64_t>(p.rope_hi_rows) * kRopeLoRows &&
           W >= 0 && S >= 0 && (S == 0 || (W >= 1 && S <= W));
      si.q0 = q_ok ? q0 : 0;
      si.n = q_ok ? n : 0;
      si.kv_len = kv;
      si.window = W;
      si.sinks = S;
      if (ok) {
        const int t0 = kv - n;
        si.lo = W > 0 ? max(0, t0 - W + 1) : 0;
        si.s_eff = min(S, si.lo);
        cnt = static_cast<long long>(si.s_eff) + kv - si.lo;
      }
      tiles = q_ok ? (n + p.block_m - 1) / p.block_m : 0;
    }
    s_cnt[tid] = cnt;
    s_tiles[tid] = tiles;
    __syncthreads();
    for (int off = 1; off < kPrepThreads; off <<= 1) {
      const long long a = tid >= off ? s_cnt[tid - off] : 0;
      const int t = tid >= off ? s_tiles[tid - off] : 0;
      __syncthreads();
      s_cnt[tid] += a;
      s_tiles[tid] += t;
      __syncthreads();
    }
    if (b < p.batch) {
      const long long excl = carry_cnt + s_cnt[tid] - cnt;
      si.valid = ok && excl + cnt <= p.max_total_kv ? 1 : 0;
      if (!p.tile_layout) {
        p.kv_base[b] = static_cast<int32_t>(min(excl, static_cast<long long>(p.max_total_kv)));
      }
      p.tile_base[b] = carry_tiles + s_tiles[tid] - tiles;
    }
    carry_cnt += s_cnt[kPrepThreads - 1];
    carry_tiles += s_tiles[kPrepThreads - 1];
    if (p.tile_layout) {  // block-uniform
      long long rows = 0;
      if (b < p.batch && si.valid && si.n > 0) {
        constexpr int BN = prefill::kWgBlockN;
        const int S = si.sinks;
        if (S > 0 && si.lo > S) {
          si.sink_rows = (S + BN - 1) / BN * BN;
          si.lo_w = si.lo / BN * BN;
        } else {
          si.sink_rows = 0;
          si.lo_w = S > 0 ? 0 : si.lo / BN * BN;
        }
        rows = si.sink_rows + static_cast<long long>(si.kv_len - si.lo_w + BN - 1) / BN * BN;
      }
      __syncthreads();  // the first scan's reads of s_cnt are done
      s_cnt[tid] = rows;
      __syncthreads();
      for (int off = 1; off < kPrepThreads; off <<= 1) {
        const long long a = tid >= off ? s_cnt[tid - off] : 0;
        __syncthreads();
        s_cnt[tid] += a;
        __syncthreads();
      }
      if (b < p.batch) p.kv_base[b] = static_cast<int32_t>(carry_rows + s_cnt[tid] - rows);
      carry_rows += s_cnt[kPrepThreads - 1];
    }
    if (b < p.batch) p.info[b] = si;
    __syncthreads();
  }
  if (tid == 0) {
    p.kv_base[p.batch] = static_cast<int32_t>(
        p.tile_layout ? carry_rows : min(carry_cnt, static_cast<long long>(p.max_total_kv)));
    p.tile_base[p.batch] = carry_tiles;
  }
}

// Copies every stored key (rotated at its position, rounded to T) and its value from the pages
// into the workspace. Block = kGatherRows stored rows; a thread unit = 8 RoPE pairs of one KV
// head's K (two 16-byte halves) or the same 16 elements of its V.
template <typename T, int D>
__global__ void __launch_bounds__(kGatherThreads) PrefillGatherKernel(const Params p) {
  constexpr int kHalf = D / 2;
  constexpr int kPieces = D / 16;
  __shared__ int s_b[kGatherRows];
  const int r0 = blockIdx.x * kGatherRows;
  const int total = p.kv_base[p.batch];
  if (r0 >= total) return;
  const int tid = threadIdx.x;
  if (tid < kGatherRows) {
    const int r = r0 + tid;
    s_b[tid] = r < total ? prefill::FindSeq(p.kv_base, p.batch, r) : -1;
  }
  __syncthreads();
  const int64_t row_elems = static_cast<int64_t>(p.num_kv_heads) * D;
  const int k_units = p.num_kv_heads * kPieces;
  const int units = 2 * k_units;
  const T* pages = static_cast<const T*>(p.pages);
  for (int u = tid; u < kGatherRows * units; u += kGatherThreads) {
    const int rr = u / units;
    const int unit = u % units;
    const int b = s_b[rr];
    if (b < 0) continue;
    const SeqInfo si = p.info[b];
    if (!si.valid) continue;
    const int r = r0 + rr;
    const int i = r - p.kv_base[b];
    const int j = i < si.s_eff ? i : si.lo + (i - si.s_eff);
    const bool is_v = unit >= k_units;
    const int uu = is_v ? unit - k_units : unit;
    const int f0 = (uu % kPieces) * 8;
    const int64_t head_off = static_cast<int64_t>(uu / kPieces) * D + f0;
    T* dst = static_cast<T*>(is_v ? p.v_copy : p.k_rot) + r * row_elems + head_off;
    const int page =
        p.block_tables[static_cast<int64_t>(b) * p.block_table_stride + j / p.page_size];
    if (page < 0) {  // a visible key's page was released: poison, never read out of bounds
      float nan8[8];
      for (int e = 0; e < 8; ++e) nan8[e] = __int_as_float(0x7fc00000);
      const uint4 w = detail::Pack8<T>(nan8);
      *reinterpret_cast<uint4*>(dst) = w;
      *reinterpret_cast<uint4*>(dst + kHalf) = w;
      continue;
    }
    const T* src = pages + static_cast<int64_t>(page) * p.page_stride +
                   (is_v ? p.v_offset : p.k_offset) +
                   static_cast<int64_t>(j % p.page_size) * row_elems + head_off;
    uint4 w1 = __ldg(reinterpret_cast<const uint4*>(src));
    uint4 w2 = __ldg(reinterpret_cast<const uint4*>(src + kHalf));
    if (!is_v) {
      float x1[8], x2[8];
      detail::Unpack8<T>(w1, x1);
      detail::Unpack8<T>(w2, x2);
      prefill::RotatePairs8<D>(p.rope_lo, p.rope_hi, j, f0, x1, x2);
      w1 = detail::Pack8<T>(x1);
      w2 = detail::Pack8<T>(x2);
    }
    *reinterpret_cast<uint4*>(dst) = w1;
    *reinterpret_cast<uint4*>(dst + kHalf) = w2;
  }
}

bool Aligned16Host(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

size_t Align256(size_t x) { return (x + 255) / 256 * 256; }

// Key rows of the tiled layout (wgmma_kernel.cuh): max_total_kv plus up to three padded tiles
// per sequence, rounded up to whole tiles.
int64_t WgRowCapacity(const PrefillAttentionShape& s) {
  constexpr int64_t BN = prefill::kWgBlockN;
  const int64_t rows = s.max_total_kv + 3 * BN * s.batch_size;
  return (rows + BN - 1) / BN * BN;
}

// True when the wgmma kernel serves this shape on this device: head_dim 128 on compute
// capability 9.0 (the binary is sm_90a), unless LONGVIEW_PREFILL_MMA_SYNC=1 forces the mma.sync
// kernel (tests of the fallback, A/B timing).
bool UseWgmma(const PrefillAttentionShape& s, int device, int optin) {
  if (s.head_dim != prefill::kWgD) return false;
  const char* force = std::getenv("LONGVIEW_PREFILL_MMA_SYNC");
  if (force != nullptr && force[0] == '1') return false;
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    return false;
  }
  const int64_t rows = WgRowCapacity(s);
  return major == 9 && minor == 0 && prefill::kWgSmemBytes <= static_cast<size_t>(optin) &&
         rows <= INT_MAX &&
         (static_cast<int64_t>(s.max_total_q) + prefill::kWgBlockM - 1) / prefill::kWgBlockM +
                 s.batch_size <=
             65535;
}

// Selection mode's metadata after the SeqInfo array: byte offsets of tile_base, span_row_keys,
// head_base, head_keys, span_key_start, key_pos, and the end.
struct SelMeta {
  size_t tile_base, span_row_keys, head_base, head_keys, span_key_start, key_pos, end;
};
int64_t SpanRows(const PrefillAttentionShape& s) {
  return s.spans_per_kv_head ? static_cast<int64_t>(s.batch_size) * s.num_kv_heads : s.batch_size;
}
SelMeta SelLayout(const PrefillAttentionShape& s) {
  const size_t rows = static_cast<size_t>(s.batch_size) * s.num_kv_heads;
  const size_t span_rows = static_cast<size_t>(SpanRows(s));
  SelMeta m;
  m.tile_base = Align256(static_cast<size_t>(s.batch_size) * sizeof(SeqInfo));
  m.span_row_keys = Align256(m.tile_base + (static_cast<size_t>(s.batch_size) + 1) * 4);
  m.head_base = Align256(m.span_row_keys + span_rows * 4);
  m.head_keys = Align256(m.head_base + (rows + 1) * 4);
  m.span_key_start = Align256(m.head_keys + rows * 4);
  m.key_pos = Align256(m.span_key_start + span_rows * static_cast<size_t>(s.max_spans) * 4);
  m.end = Align256(m.key_pos + static_cast<size_t>(s.max_total_kv) * s.num_kv_heads * 4);
  return m;
}

template <typename T, int D>
cudaError_t PlanSelectionImpl(const PrefillAttentionShape& s, PrefillAttentionPlan* plan,
                              int optin) {
  using Geo = prefill::AttnGeo<D>;
  LV_CUDA_REQUIRE(Geo::kSelSmemBytes <= static_cast<size_t>(optin));
  LV_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(prefill::PrefillAttentionKernel<T, D, true>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(Geo::kSelSmemBytes)));
  LV_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(prefill::PrefillAttentionKernel<T, D, true>,
                                               cudaFuncAttributePreferredSharedMemoryCarveout,
                                               cudaSharedmemCarveoutMaxShared));
  plan->kernel = 0;
  plan->num_tile_slots = (s.max_total_q + kBlockM - 1) / kBlockM + s.batch_size;
  plan->smem_bytes = Geo::kSelSmemBytes;
  plan->meta_bytes = SelLayout(s).end;
  plan->kv_bytes = Align256(static_cast<size_t>(s.max_total_kv) * s.num_kv_heads * D * sizeof(T));
  plan->workspace_bytes = plan->meta_bytes + 2 * plan->kv_bytes;
  return cudaSuccess;
}

template <typename T, int D>
cudaError_t PlanImpl(const PrefillAttentionShape& s, PrefillAttentionPlan* plan) {
  using Geo = prefill::AttnGeo<D>;
  int device = 0;
  LV_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  int optin = 0;
  LV_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  plan->shape = s;
  if (s.max_spans > 0) return PlanSelectionImpl<T, D>(s, plan, optin);
  plan->meta_bytes = Align256(static_cast<size_t>(s.batch_size) * sizeof(SeqInfo) +
                              2 * (static_cast<size_t>(s.batch_size) + 1) * sizeof(int32_t));
  if constexpr (D == prefill::kWgD) {
    if (UseWgmma(s, device, optin)) {
      constexpr int kSmem = static_cast<int>(prefill::kWgSmemBytes);
      LV_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(prefill::PrefillAttentionWgmmaKernel<T>,
                                                   cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   kSmem));
      plan->kernel = 1;
      plan->num_tile_slots =
          (s.max_total_q + prefill::kWgBlockM - 1) / prefill::kWgBlockM + s.batch_size;
      plan->smem_bytes = prefill::kWgSmemBytes;
      plan->kv_bytes = static_cast<size_t>(WgRowCapacity(s)) * s.num_kv_heads * D * sizeof(T);
      plan->workspace_bytes = plan->meta_bytes + 2 * plan->kv_bytes;
      return cudaSuccess;
    }
  }
  LV_CUDA_REQUIRE(Geo::kSmemBytes <= static_cast<size_t>(optin));
  LV_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(prefill::PrefillAttentionKernel<T, D, false>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(Geo::kSmemBytes)));
  LV_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(prefill::PrefillAttentionKernel<T, D, false>,
                                               cudaFuncAttributePreferredSharedMemoryCarveout,
                                               cudaSharedmemCarveoutMaxShared));
  plan->kernel = 0;
  plan->num_tile_slots = (s.max_total_q + kBlockM - 1) / kBlockM + s.batch_size;
  plan->smem_bytes = Geo::kSmemBytes;
  plan->kv_bytes = Align256(static_cast<size_t>(s.max_total_kv) * s.num_kv_heads * D * sizeof(T));
  plan->workspace_bytes = plan->meta_bytes + 2 * plan->kv_bytes;
  return cudaSuccess;
}

template <typename T, int D>
cudaError_t RunImpl(const PrefillAttentionPlan& plan, Params p, cudaStream_t stream) {
  const PrefillAttentionShape& s = plan.shape;
  if constexpr (D == prefill::kWgD) {
    if (plan.kernel == 1) {
      p.block_m = prefill::kWgBlockM;
      p.tile_layout = 1;
      PrefillPrepareKernel<<<1, kPrepThreads, 0, stream>>>(p);
      LV_CUDA_RETURN_IF_ERROR(cudaGetLastError());
      const size_t tile_bytes = size_t{prefill::kWgTileBytes} * s.num_kv_heads;
      const dim3 gather_grid(static_cast<unsigned>(plan.kv_bytes / tile_bytes),
                             static_cast<unsigned>(s.num_kv_heads));
      prefill::PrefillTileGatherKernel<T><<<gather_grid, prefill::kWgGatherThreads, 0, stream>>>(p);
      LV_CUDA_RETURN_IF_ERROR(cudaGetLastError());
      const dim3 grid(static_cast<unsigned>(s.num_q_heads),
                      static_cast<unsigned>(plan.num_tile_slots));
      prefill::PrefillAttentionWgmmaKernel<T>
          <<<grid, prefill::kWgThreads, plan.smem_bytes, stream>>>(p);
      LV_CUDA_RETURN_IF_ERROR(cudaGetLastError());
      return cudaSuccess;
    }
  }
  LV_CUDA_REQUIRE(plan.kernel == 0);
  p.block_m = kBlockM;
  p.tile_layout = 0;
  const dim3 grid(static_cast<unsigned>(s.num_q_heads), static_cast<unsigned>(plan.num_tile_slots));
  if (s.max_spans > 0) {
    prefill::PrefillSpanScanKernel<<<static_cast<unsigned>(SpanRows(s)), prefill::kScanThreads, 0,
                                     stream>>>(p);
    LV_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    prefill::PrefillSelPrepareKernel<<<1, prefill::kSelPrepThreads, 0, stream>>>(p);
    LV_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    const int64_t blocks = (static_cast<int64_t>(p.key_capacity) + prefill::kSelGatherKeys - 1) /
                           prefill::kSelGatherKeys;
    prefill::PrefillSelGatherKernel<T, D>
        <<<static_cast<unsigned>(blocks), prefill::kSelGatherThreads, 0, stream>>>(p);
    LV_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    prefill::PrefillAttentionKernel<T, D, true>
        <<<grid, prefill::kThreads, plan.smem_bytes, stream>>>(p);
    LV_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return cudaSuccess;
  }
  PrefillPrepareKernel<<<1, kPrepThreads, 0, stream>>>(p);
  LV_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  const int64_t gather_blocks = (s.max_total_kv + kGatherRows - 1) / kGatherRows;
  PrefillGatherKernel<T, D><<<static_cast<unsigned>(gather_blocks), kGatherThreads, 0, stream>>>(p);
  LV_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  prefill::PrefillAttentionKernel<T, D, false>
      <<<grid, prefill::kThreads, plan.smem_bytes, stream>>>(p);
  LV_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return cudaSuccess;
}

}  // namespace

cudaError_t PlanPrefillAttention(const PrefillAttentionShape& s, PrefillAttentionPlan* plan) {
  LV_CUDA_REQUIRE(plan != nullptr);
  LV_CUDA_REQUIRE(s.num_q_heads >= 1 && s.num_kv_heads >= 1 &&
                  s.num_q_heads % s.num_kv_heads == 0 && s.num_q_heads <= 65535);
  LV_CUDA_REQUIRE(s.batch_size >= 1 && s.page_size >= 1 && s.max_total_q >= 1 &&
                  s.max_total_kv >= 1 && s.max_total_kv <= INT_MAX && s.rope_hi_rows >= 1);
  LV_CUDA_REQUIRE(s.window >= 0 && s.sinks >= 0 && (s.sinks == 0 || s.sinks <= s.window));
  LV_CUDA_REQUIRE(s.max_spans >= 0 && (s.max_spans > 0 || !s.spans_per_kv_head));
  if (s.max_spans > 0) {  // selection mode: no rule, bounded workspace indices
    LV_CUDA_REQUIRE(s.window == 0 && s.sinks == 0);
    LV_CUDA_REQUIRE(s.max_total_kv * s.num_kv_heads <= INT_MAX &&
                    static_cast<int64_t>(s.batch_size) * s.num_kv_heads < INT_MAX &&
                    SpanRows(s) * s.max_spans <= INT_MAX);
  }
  LV_CUDA_REQUIRE((static_cast<int64_t>(s.max_total_q) + kBlockM - 1) / kBlockM + s.batch_size <=
                  65535);
  LV_DISPATCH_DTYPE(s.dtype, T, {
    LV_DISPATCH_HEAD_DIM(s.head_dim, kHeadDim, { return PlanImpl<T, kHeadDim>(s, plan); });
  });
}

cudaError_t RunPrefillAttention(const PrefillAttentionPlan& plan, const PrefillAttentionArgs& a,
                                void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  const PrefillAttentionShape& s = plan.shape;
  LV_CUDA_REQUIRE(plan.num_tile_slots >= 1 && plan.workspace_bytes > 0);
  const bool sel = s.max_spans > 0;
  LV_CUDA_REQUIRE(a.q != nullptr && a.out != nullptr && a.pages != nullptr &&
                  a.q_start != nullptr && a.rope_lo != nullptr && a.rope_hi != nullptr);
  if (sel) {
    LV_CUDA_REQUIRE(a.spans != nullptr && a.span_offsets != nullptr && a.q_positions != nullptr &&
                    (reinterpret_cast<uintptr_t>(a.spans) & 7u) == 0);
  } else {
    LV_CUDA_REQUIRE(a.block_tables != nullptr && a.kv_lens != nullptr && a.block_table_stride >= 1);
  }
  LV_CUDA_REQUIRE(Aligned16Host(a.q) && Aligned16Host(a.out) && Aligned16Host(a.pages) &&
                  Aligned16Host(a.rope_lo) && Aligned16Host(a.rope_hi));
  LV_CUDA_REQUIRE(a.q_row_stride >= static_cast<int64_t>(s.num_q_heads) * s.head_dim &&
                  a.q_row_stride % 8 == 0);
  LV_CUDA_REQUIRE(a.page_stride % 8 == 0 && a.k_offset % 8 == 0 && a.v_offset % 8 == 0 &&
                  a.k_offset >= 0 && a.v_offset >= 0);
  LV_CUDA_REQUIRE(a.scale > 0.f && a.scale < INFINITY);
  LV_CUDA_REQUIRE(workspace != nullptr && Aligned16Host(workspace) &&
                  workspace_bytes >= plan.workspace_bytes);
  unsigned char* ws = static_cast<unsigned char*>(workspace);
  Params p{};
  p.q = a.q;
  p.out = a.out;
  p.pages = a.pages;
  p.q_row_stride = a.q_row_stride;
  p.page_stride = a.page_stride;
  p.k_offset = a.k_offset;
  p.v_offset = a.v_offset;
  p.block_tables = a.block_tables;
  p.q_start = a.q_start;
  p.kv_lens = a.kv_lens;
  p.window = a.window;
  p.sinks = a.sinks;
  p.rope_lo = a.rope_lo;
  p.rope_hi = a.rope_hi;
  p.info = reinterpret_cast<SeqInfo*>(ws);
  p.kv_base = reinterpret_cast<int32_t*>(ws + static_cast<size_t>(s.batch_size) * sizeof(SeqInfo));
  p.tile_base = p.kv_base + s.batch_size + 1;
  p.k_rot = ws + plan.meta_bytes;
  p.v_copy = ws + plan.meta_bytes + plan.kv_bytes;
  p.scale_log2 = a.scale * prefill::kLog2e;
  p.block_table_stride = a.block_table_stride;
  p.num_q_heads = s.num_q_heads;
  p.num_kv_heads = s.num_kv_heads;
  p.group = s.num_q_heads / s.num_kv_heads;
  p.batch = s.batch_size;
  p.page_size = s.page_size;
  p.max_total_q = s.max_total_q;
  p.max_total_kv = static_cast<int>(s.max_total_kv);
  p.rope_hi_rows = s.rope_hi_rows;
  p.default_window = s.window;
  p.default_sinks = s.sinks;
  if (sel) {
    const SelMeta m = SelLayout(s);
    p.tile_base = reinterpret_cast<int32_t*>(ws + m.tile_base);
    p.kv_base = nullptr;
    p.span_row_keys = reinterpret_cast<int32_t*>(ws + m.span_row_keys);
    p.head_base = reinterpret_cast<int32_t*>(ws + m.head_base);
    p.head_keys = reinterpret_cast<int32_t*>(ws + m.head_keys);
    p.span_key_start = reinterpret_cast<int32_t*>(ws + m.span_key_start);
    p.key_pos = reinterpret_cast<int32_t*>(ws + m.key_pos);
    p.spans = a.spans;
    p.span_offsets = a.span_offsets;
    p.q_positions = a.q_positions;
    p.max_spans = s.max_spans;
    p.per_head = s.spans_per_kv_head ? 1 : 0;
    p.key_capacity = static_cast<int>(s.max_total_kv * s.num_kv_heads);
  }
  LV_DISPATCH_DTYPE(s.dtype, T, {
    LV_DISPATCH_HEAD_DIM(s.head_dim, kHeadDim, { return RunImpl<T, kHeadDim>(plan, p, stream); });
  });
}

}  // namespace longview::cuda
