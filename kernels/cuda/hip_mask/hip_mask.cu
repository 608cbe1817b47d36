// HiP pruning stage (hip_mask.h): cut, score (binary descent per chunk and query head), select.
#include "kernels/cuda/hip_mask/hip_mask.h"

#include <algorithm>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/dispatch.h"
#include "kernels/cuda/rope/rotate.cuh"
#include "kernels/cuda/vec.cuh"

namespace longview::cuda {
namespace {

using namespace detail;  // vec.cuh, rope/rotate.cuh (Compose)

constexpr int kCutThreads = 256;
constexpr int kScoreWarps = 8;
constexpr int kKeyLanes = 8;  // lanes per probed key
constexpr int kChunksPerCta = kScoreWarps * 2;
constexpr int kSelectThreads = 1024;
constexpr int kMaxQueries = 64;

// The workspace: per block its cut, the chunks' scores as order-preserving keys, its chunk count
// and how many it keeps.
struct Workspace {
  HipChunk* chunks;
  uint32_t* keys;
  int32_t* n_chunks;
  int32_t* n_keep;
};

size_t Align16(size_t n) { return (n + 15) / 16 * 16; }

Workspace Carve(const HipStageShape& s, void* base) {
  const size_t cells = static_cast<size_t>(s.num_blocks) * s.max_chunks;
  char* p = static_cast<char*>(base);
  Workspace w;
  w.chunks = reinterpret_cast<HipChunk*>(p);
  p += Align16(cells * sizeof(HipChunk));
  w.keys = reinterpret_cast<uint32_t*>(p);
  p += Align16(cells * sizeof(uint32_t));
  w.n_chunks = reinterpret_cast<int32_t*>(p);
  p += Align16(s.num_blocks * sizeof(int32_t));
  w.n_keep = reinterpret_cast<int32_t*>(p);
  return w;
}

// float -> uint32 with the same order (-0 and +0 are made one value by the caller).
__device__ __forceinline__ uint32_t OrderedKey(float f) {
  const uint32_t b = __float_as_uint(f);
  return (b & 0x80000000u) != 0 ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float FromOrderedKey(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) != 0 ? (k & 0x7fffffffu) : ~k);
}

__global__ void __launch_bounds__(kCutThreads) CutKernel(HipStageShape s, const HipChunk* in,
                                                         const int32_t* in_count,
                                                         const uint8_t* active, Workspace w) {
  using Scan = cub::BlockScan<int, kCutThreads>;
  using Reduce = cub::BlockReduce<long long, kCutThreads>;
  __shared__ typename Scan::TempStorage scan_tmp;
  __shared__ typename Reduce::TempStorage reduce_tmp;
  const int b = blockIdx.x;
  if (active != nullptr && active[b] == 0) return;
  const int n_in = min(max(in_count[b], 0), s.max_ranges);
  const HipChunk* ranges = in + static_cast<int64_t>(b) * s.max_ranges;
  HipChunk* out = w.chunks + static_cast<int64_t>(b) * s.max_chunks;
  uint32_t* keys = w.keys + static_cast<int64_t>(b) * s.max_chunks;
  int carry = 0;
  long long tokens = 0;
  for (int t0 = 0; t0 < n_in; t0 += kCutThreads) {
    const int r = t0 + threadIdx.x;
    HipChunk range{0, 0};
    if (r < n_in) range = ranges[r];
    const int len = max(range.end - range.begin, 0);
    const int pieces = (len + s.chunk - 1) / s.chunk;
    int offset = 0, total = 0;
    Scan(scan_tmp).ExclusiveSum(pieces, offset, total);
    for (int i = 0; i < pieces; ++i) {
      const int c = carry + offset + i;
      if (c >= s.max_chunks) break;
      const int begin = range.begin + i * s.chunk;
      out[c] = HipChunk{begin, min(range.end, begin + s.chunk)};
      keys[c] = 0;  // below every score's key
    }
    const long long t = Reduce(reduce_tmp).Sum(static_cast<long long>(len));
    if (threadIdx.x == 0) tokens += t;
    carry += total;
    __syncthreads();  // the temp storages are reused
  }
  if (threadIdx.x == 0) {
    const int n = min(carry, s.max_chunks);
    const int max_keep = max(1, s.keep / s.chunk);
    w.n_chunks[b] = n;
    w.n_keep[b] = (tokens > s.keep && n > max_keep) ? max_keep : n;
  }
}

// The key of token `tok`, KV head `kvh`, as lane c of a key group holds it: elements
// [c * kP, + kP) into x1 and the same of the second half into x2 (as cached, before RoPE).
template <typename T, int D>
__device__ __forceinline__ void LoadKey(const T* __restrict__ pages, const HipStageArgs& a,
                                        const int32_t* __restrict__ table, int page_size,
                                        int64_t token_stride, int kvh, int tok, int c, float* x1,
                                        float* x2) {
  constexpr int kP = D / 2 / kKeyLanes;
  const int32_t page = table[tok / page_size];
  const T* kp = pages + a.k_offset + static_cast<int64_t>(page) * a.page_stride +
                static_cast<int64_t>(tok % page_size) * token_stride +
                static_cast<int64_t>(kvh) * D + c * kP;
  LoadFloats<T, kP>(kp, x1);
  LoadFloats<T, kP>(kp + D / 2, x2);
}

// The sum over a key group's lanes.
__device__ __forceinline__ float SumKeyLanes(float d) {
  d += __shfl_xor_sync(0xffffffffu, d, 1);
  d += __shfl_xor_sync(0xffffffffu, d, 2);
  return d + __shfl_xor_sync(0xffffffffu, d, 4);
}

// The largest q . rot(key) over the block's queries, for the key of token `tok` at RoPE position
// `pos` (kRotateKey; else the key as cached, the queries rotated by the difference instead),
// computed by the kKeyLanes lanes of a key group (lane c holds pairs [c * kP, + kP)).
template <typename T, int D, bool kRotateKey>
__device__ __forceinline__ float Probe(const T* __restrict__ pages, const HipStageArgs& a,
                                       const int32_t* __restrict__ table, int page_size,
                                       int64_t token_stride, int kvh, int tok, int pos,
                                       const float* qs, int n_q, int c) {
  constexpr int kHalf = D / 2;
  constexpr int kP = kHalf / kKeyLanes;
  float x1[kP], x2[kP];
  LoadKey<T, D>(pages, a, table, page_size, token_stride, kvh, tok, c, x1, x2);
  if constexpr (kRotateKey) {
    const float2* hi = reinterpret_cast<const float2*>(a.rope_hi) + (pos >> kRopeLoBits) * kHalf;
    const float2* lo =
        reinterpret_cast<const float2*>(a.rope_lo) + (pos & (kRopeLoRows - 1)) * kHalf;
#pragma unroll
    for (int j = 0; j < kP; ++j) {
      const float2 h = __ldg(hi + c * kP + j), l = __ldg(lo + c * kP + j);
      const float2 r = Compose(h.x, h.y, l.x, l.y);
      const float cs = r.x, sn = r.y;
      const float xa = x1[j], xb = x2[j];
      x1[j] = xa * cs - xb * sn;
      x2[j] = xb * cs + xa * sn;
    }
  } else {
    (void)pos;
  }
  float best = -INFINITY;
  for (int i = 0; i < n_q; ++i) {
    const float* q = qs + i * D + c * kP;
    float d = 0.f;
#pragma unroll
    for (int j = 0; j < kP; ++j) {
      d = fmaf(q[j], x1[j], d);
      d = fmaf(q[j + kHalf], x2[j], d);
    }
    best = fmaxf(best, SumKeyLanes(d));
  }
  return best;
}

// The chunk-indexed scheme with one query (decode): q . rot(key, rank) = rot(q, -rank) . key, so
// the half-warp rotates the query once per chunk (registers qr: kP pairs, x1 then x2) and reads
// keys as cached.
template <typename T, int D>
__device__ __forceinline__ float ProbeReg(const T* __restrict__ pages, const HipStageArgs& a,
                                          const int32_t* __restrict__ table, int page_size,
                                          int64_t token_stride, int kvh, int tok, const float* qr,
                                          int c) {
  constexpr int kHalf = D / 2;
  constexpr int kP = kHalf / kKeyLanes;
  float x1[kP], x2[kP];
  LoadKey<T, D>(pages, a, table, page_size, token_stride, kvh, tok, c, x1, x2);
  float d = 0.f;
#pragma unroll
  for (int j = 0; j < kP; ++j) {
    d = fmaf(qr[j], x1[j], d);
    d = fmaf(qr[kP + j], x2[j], d);
  }
  return SumKeyLanes(d);
}

// A warp takes two chunks (a half-warp each: lanes 0-7 probe the left half's middle key, lanes
// 8-15 the right one's); the descent runs while either chunk's does (a finished half re-probes
// its last key and ignores it), so every shuffle has the whole warp.
// kScheme: kRelative, kChunkIndexed (several queries: keys rotated), kChunkIndexedOne (one
// query, rotated per chunk) — separate instantiations keep each path's registers to itself.
enum Scheme { kRelative = 0, kChunkIndexed = 1, kChunkIndexedOne = 2 };

template <typename T, int D, int kScheme>
__global__ void __launch_bounds__(kScoreWarps * 32) ScoreKernel(HipStageShape s, HipStageArgs a,
                                                                Workspace w) {
  constexpr int kHalf = D / 2;
  const int b = blockIdx.z, head = blockIdx.y;
  if (a.active != nullptr && a.active[b] == 0) return;
  const int n = w.n_chunks[b];
  if (w.n_keep[b] >= n) return;  // keeps every chunk
  const int c0 = blockIdx.x * kChunksPerCta;
  if (c0 >= n) return;
  // Rotated queries, [versions][num_queries][D]. Chunk-indexed: one version at the queries'
  // positions (the keys are rotated to their chunk's rank). Relative: the keys stay as cached
  // and the queries take the difference — q at query_position against left probes (position
  // 0), at query_position - 1 against right ones (position 1): R(a)q . R(b)k = R(a - b)q . k.
  extern __shared__ float qs[];
  const int n_q = s.num_queries;
  const float* q = a.q + (static_cast<int64_t>(b) * n_q * s.num_q_heads + head) * D;
  const int cap = s.scan_chunks + s.scan_window;
  const int versions = s.chunk_indexed ? 1 : 2;
  for (int u = threadIdx.x; u < versions * n_q * kHalf; u += blockDim.x) {
    const int i = u / kHalf % n_q, f = u % kHalf, v = u / (n_q * kHalf);
    const int pos = s.chunk_indexed
                        ? min(max(a.first_query_position[b], 0) + i * s.query_stride, cap)
                        : s.query_position - v;
    const float2 h = __ldg(reinterpret_cast<const float2*>(a.rope_hi) +
                           (pos >> kRopeLoBits) * kHalf + f);
    const float2 l = __ldg(reinterpret_cast<const float2*>(a.rope_lo) +
                           (pos & (kRopeLoRows - 1)) * kHalf + f);
    const float2 r = Compose(h.x, h.y, l.x, l.y);
    const float cs = r.x, sn = r.y;
    const float x1 = q[static_cast<int64_t>(i) * s.num_q_heads * D + f];
    const float x2 = q[static_cast<int64_t>(i) * s.num_q_heads * D + f + kHalf];
    float* out = qs + (v * n_q + i) * D;
    out[f] = x1 * cs - x2 * sn;
    out[f + kHalf] = x2 * cs + x1 * sn;
  }
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int ci = c0 + warp * 2 + lane / 16;
  const bool live = ci < n;
  if (!__any_sync(0xffffffffu, live)) return;  // warp-uniform
  const bool right = (lane % 16) >= kKeyLanes;
  const int c = lane % kKeyLanes;
  // A dead second half shadows the first one's chunk (valid tokens), its result unused.
  const HipChunk ch = w.chunks[static_cast<int64_t>(b) * s.max_chunks + (live ? ci : ci - 1)];
  const int kvh = head / (s.num_q_heads / s.num_kv_heads);
  const int pos = s.chunk_indexed ? ci : 0;
  const float* qv = qs + (!s.chunk_indexed && right ? n_q * D : 0);
  const T* pages = static_cast<const T*>(a.pages);
  const int32_t* table = a.block_tables + static_cast<int64_t>(b) * a.block_table_stride;
  const int64_t token_stride = static_cast<int64_t>(s.num_kv_heads) * D;
  // One query in the chunk-indexed scheme: rotated here by (its position - the chunk's rank).
  constexpr int kP = kHalf / kKeyLanes;
  constexpr bool q_in_regs = kScheme == kChunkIndexedOne;
  float qr[q_in_regs ? 2 * kP : 1];
  if constexpr (q_in_regs) {
    const int d = min(max(a.first_query_position[b], 0), cap) - (live ? ci : ci - 1);
    const int ad = abs(d);
    const float2* hi = reinterpret_cast<const float2*>(a.rope_hi) + (ad >> kRopeLoBits) * kHalf;
    const float2* lo =
        reinterpret_cast<const float2*>(a.rope_lo) + (ad & (kRopeLoRows - 1)) * kHalf;
#pragma unroll
    for (int j = 0; j < kP; ++j) {
      const float2 h = __ldg(hi + c * kP + j), l = __ldg(lo + c * kP + j);
      const float2 r = Compose(h.x, h.y, l.x, l.y);
      const float cs = r.x, sn = (d < 0 ? -1.f : 1.f) * r.y;
      const float x1 = q[c * kP + j], x2 = q[c * kP + j + kHalf];
      qr[j] = x1 * cs - x2 * sn;
      qr[kP + j] = x2 * cs + x1 * sn;
    }
  }
  auto probe = [&](int tok) {
    if constexpr (q_in_regs) {
      return ProbeReg<T, D>(pages, a, table, s.page_size, token_stride, kvh, tok, qr, c);
    } else {
      return Probe<T, D, kScheme == kChunkIndexed>(pages, a, table, s.page_size, token_stride,
                                                   kvh, tok, pos, qv, n_q, c);
    }
  };
  int begin = ch.begin, end = ch.end;
  float best = -INFINITY;
  while (__any_sync(0xffffffffu, end - begin > 1)) {
    const bool active = end - begin > 1;
    const int mid = begin + (end - begin) / 2;
    const int tok = !active ? begin : right ? mid + (end - mid) / 2 : begin + (mid - begin) / 2;
    const float mine = probe(tok);
    const float other = __shfl_xor_sync(0xffffffffu, mine, kKeyLanes);
    if (active) {
      const float l = right ? other : mine, r = right ? mine : other;
      best = fmaxf(best, fmaxf(l, r));
      if (l > r) {
        end = mid;
      } else {
        begin = mid;
      }
    }
  }
  const float last = probe(begin);
  best = fmaxf(best, fmaxf(last, __shfl_xor_sync(0xffffffffu, last, kKeyLanes)));
  if (live && lane % 16 == 0 && !isnan(best)) {
    atomicMax(w.keys + static_cast<int64_t>(b) * s.max_chunks + ci, OrderedKey(best + 0.0f));
  }
}

__global__ void __launch_bounds__(kSelectThreads) SelectKernel(HipStageShape s, HipStageArgs a,
                                                               Workspace w) {
  using Scan = cub::BlockScan<int, kSelectThreads>;
  __shared__ typename Scan::TempStorage scan_tmp;
  __shared__ int hist[256];
  __shared__ uint32_t s_prefix;
  __shared__ int s_remaining;
  const int b = blockIdx.x;
  if (a.active != nullptr && a.active[b] == 0) return;
  const int n = w.n_chunks[b], k = w.n_keep[b];
  const HipChunk* chunks = w.chunks + static_cast<int64_t>(b) * s.max_chunks;
  const uint32_t* keys = w.keys + static_cast<int64_t>(b) * s.max_chunks;
  HipChunk* out = a.out_ranges + static_cast<int64_t>(b) * s.max_chunks;
  if (a.chunk_scores != nullptr) {
    float* sc = a.chunk_scores + static_cast<int64_t>(b) * s.max_chunks;
    for (int c = threadIdx.x; c < n; c += blockDim.x) {
      sc[c] = k >= n ? NAN : FromOrderedKey(keys[c]);
    }
  }
  if (k >= n) {
    for (int c = threadIdx.x; c < n; c += blockDim.x) out[c] = chunks[c];
    if (threadIdx.x == 0) a.out_count[b] = n;
    return;
  }
  // The k-th largest key, 8 bits at a time; `remaining`: how many of the keys equal to the
  // prefix so far are still to be taken.
  if (threadIdx.x == 0) {
    s_prefix = 0;
    s_remaining = k;
  }
  uint32_t mask = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
    __syncthreads();
    const uint32_t prefix = s_prefix;
    for (int c = threadIdx.x; c < n; c += blockDim.x) {
      const uint32_t key = keys[c];
      if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1);
    }
    __syncthreads();
    if (threadIdx.x < 32) {  // warp 0: the bin where the count from the top reaches remaining
      const int lane = threadIdx.x, remaining = s_remaining;
      int local[8], sum = 0;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        local[j] = hist[255 - lane * 8 - j];
        sum += local[j];
      }
      int incl = sum;
#pragma unroll
      for (int off = 1; off < 32; off *= 2) {
        const int t = __shfl_up_sync(0xffffffffu, incl, off);
        if (lane >= off) incl += t;
      }
      __syncwarp();
      int above = incl - sum;
      if (above < remaining && remaining <= incl) {  // exactly one lane
        int j = 0;
        while (above + local[j] < remaining) above += local[j++];
        s_remaining = remaining - above;
        s_prefix = prefix | (static_cast<uint32_t>(255 - lane * 8 - j) << shift);
      }
    }
    mask |= 255u << shift;
    __syncthreads();
  }
  const uint32_t threshold = s_prefix;
  const int take_equal = s_remaining;
  int eq_carry = 0, out_carry = 0;
  for (int t0 = 0; t0 < n; t0 += kSelectThreads) {
    const int c = t0 + threadIdx.x;
    const uint32_t key = c < n ? keys[c] : 0;
    const int eq = c < n && key == threshold ? 1 : 0;
    int eq_rank = 0, eq_total = 0;
    Scan(scan_tmp).ExclusiveSum(eq, eq_rank, eq_total);
    __syncthreads();
    const int keep = c < n && (key > threshold || (eq == 1 && eq_carry + eq_rank < take_equal));
    int slot = 0, kept = 0;
    Scan(scan_tmp).ExclusiveSum(keep, slot, kept);
    __syncthreads();
    if (keep) out[out_carry + slot] = chunks[c];
    eq_carry += eq_total;
    out_carry += kept;
  }
  if (threadIdx.x == 0) a.out_count[b] = out_carry;
}

// Spans of a piece of `n` tokens from `t0`: one per page it touches.
__device__ __forceinline__ int PieceSpans(int t0, int n, int ps) {
  return n > 0 ? (t0 + n - 1) / ps - t0 / ps + 1 : 0;
}

// One CTA per row: the row's pieces — the sinks page by page, the kept chunks clipped to the
// window, the window page by page — each thread one piece (so no thread walks the window),
// split at page boundaries into the row's staging slots; counts[r] = spans (max_spans + 1 if
// more, the last malformed).
__global__ void __launch_bounds__(kCutThreads) SpansStageKernel(HipSpansShape s, HipSpansArgs a,
                                                                KvSpan* staging, int32_t* counts) {
  using Scan = cub::BlockScan<int, kCutThreads>;
  using Reduce = cub::BlockReduce<int, kCutThreads>;
  __shared__ typename Scan::TempStorage scan_tmp;
  __shared__ typename Reduce::TempStorage reduce_tmp;
  __shared__ int s_kept_tokens;
  const int r = blockIdx.x, ps = s.page_size;
  const int token = a.token[r];
  const int window_begin = max(a.sinks[r], token + 1 - a.window[r]);
  const int sinks = min(a.sinks[r], window_begin);
  const int nk = min(max(a.kept_count[r], 0), s.max_kept);
  const HipChunk* kept = a.kept + static_cast<int64_t>(r) * s.max_kept;
  const int32_t* table = a.block_tables + static_cast<int64_t>(r) * a.block_table_stride;
  KvSpan* out = staging + static_cast<int64_t>(r) * (s.max_spans + 1);
  auto clipped = [&](int i) {
    const HipChunk c = kept[i];
    return HipChunk{c.begin, max(c.begin, min(c.end, window_begin))};
  };
  int total = 0;
  for (int t0 = 0; t0 < nk; t0 += kCutThreads) {
    const int i = t0 + threadIdx.x;
    int len = 0;
    if (i < nk) {
      const HipChunk c = clipped(i);
      len = c.end - c.begin;
    }
    const int t = Reduce(reduce_tmp).Sum(len);
    if (threadIdx.x == 0) total += t;
    __syncthreads();
  }
  if (threadIdx.x == 0) s_kept_tokens = total;
  __syncthreads();
  const int first_position = max(0, window_begin - s_kept_tokens - sinks);
  const int window_len = token + 1 - window_begin;
  const int ns = PieceSpans(0, sinks, ps), nw = PieceSpans(window_begin, window_len, ps);
  const int first_window_page = window_begin / ps;
  const int pieces = ns + nk + nw;
  int span_carry = 0, token_carry = 0;
  for (int t0 = 0; t0 < pieces; t0 += kCutThreads) {
    const int p = t0 + threadIdx.x;
    int begin = 0, n = 0, is_kept = 0;
    int64_t pos = 0;
    if (p < ns) {  // sinks, page p
      begin = p * ps;
      n = min(sinks, begin + ps) - begin;
      pos = first_position + begin;
    } else if (p < ns + nk) {
      const HipChunk c = clipped(p - ns);
      begin = c.begin;
      n = c.end - c.begin;
      is_kept = 1;
    } else if (p < pieces) {  // window, page first_window_page + j at own positions
      const int page = first_window_page + (p - ns - nk);
      begin = max(window_begin, page * ps);
      n = min(token + 1, (page + 1) * ps) - begin;
      pos = begin;
    }
    const int spans = p < pieces ? PieceSpans(begin, n, ps) : 0;
    int span_off = 0, span_total = 0, tok_off = 0, tok_total = 0;
    Scan(scan_tmp).ExclusiveSum(spans, span_off, span_total);
    __syncthreads();
    Scan(scan_tmp).ExclusiveSum(is_kept * n, tok_off, tok_total);
    __syncthreads();
    if (is_kept) pos = first_position + sinks + token_carry + tok_off;
    for (int t = begin, k = span_carry + span_off; t < begin + n; ++k) {
      const int slot = t % ps, c = min(begin + n - t, ps - slot);
      if (k < s.max_spans) {
        out[k] = KvSpan{.page_id = table[t / ps], .first_slot = slot, .count = c, .reserved = 0,
                        .first_position = pos};
      }
      pos += c;
      t += c;
    }
    span_carry += span_total;
    token_carry += tok_total;
  }
  if (threadIdx.x == 0) {
    if (span_carry > s.max_spans) {
      out[s.max_spans] = KvSpan{.page_id = 0, .first_slot = 0, .count = -1, .reserved = 0,
                                .first_position = 0};
      span_carry = s.max_spans + 1;
    }
    counts[r] = span_carry;
  }
}

// One CTA per row: its offset (the sum of the counts before it, reduced in parallel), then its
// staged spans copied there; the last row writes the total.
__global__ void __launch_bounds__(kCutThreads) SpansCopyKernel(HipSpansShape s,
                                                               const KvSpan* staging,
                                                               const int32_t* counts,
                                                               int32_t* offsets, KvSpan* spans) {
  using Reduce = cub::BlockReduce<int, kCutThreads>;
  __shared__ typename Reduce::TempStorage reduce_tmp;
  __shared__ int s_offset;
  const int r = blockIdx.x;
  int before = 0;
  for (int i = threadIdx.x; i < r; i += blockDim.x) before += counts[i];
  before = Reduce(reduce_tmp).Sum(before);
  if (threadIdx.x == 0) {
    s_offset = before;
    offsets[r] = before;
    if (r == s.num_rows - 1) offsets[s.num_rows] = before + counts[r];
  }
  __syncthreads();
  const KvSpan* src = staging + static_cast<int64_t>(r) * (s.max_spans + 1);
  for (int k = threadIdx.x; k < counts[r]; k += blockDim.x) spans[s_offset + k] = src[k];
}

}  // namespace

size_t HipStageWorkspaceBytes(const HipStageShape& s) {
  const size_t cells = static_cast<size_t>(std::max(s.num_blocks, 0)) * std::max(s.max_chunks, 0);
  return Align16(cells * sizeof(HipChunk)) + Align16(cells * sizeof(uint32_t)) +
         2 * Align16(static_cast<size_t>(std::max(s.num_blocks, 0)) * sizeof(int32_t));
}

size_t HipSpansWorkspaceBytes(const HipSpansShape& s) {
  const size_t rows = static_cast<size_t>(std::max(s.num_rows, 0));
  return Align16(rows * (std::max(s.max_spans, 0) + 1) * sizeof(KvSpan)) +
         Align16(rows * sizeof(int32_t));
}

cudaError_t RunHipSpans(const HipSpansShape& s, const HipSpansArgs& a, cudaStream_t stream) {
  LV_CUDA_REQUIRE(s.page_size >= 1 && s.num_rows >= 0 && s.num_rows <= 65535 && s.max_kept >= 0 &&
                  s.max_spans >= 1);
  if (s.num_rows == 0) return cudaSuccess;
  LV_CUDA_REQUIRE(a.kept != nullptr && a.kept_count != nullptr && a.block_tables != nullptr &&
                  a.token != nullptr && a.sinks != nullptr && a.window != nullptr &&
                  a.spans != nullptr && a.span_offsets != nullptr && a.workspace != nullptr &&
                  Aligned16(a.workspace));
  KvSpan* staging = static_cast<KvSpan*>(a.workspace);
  int32_t* counts = reinterpret_cast<int32_t*>(
      static_cast<char*>(a.workspace) +
      Align16(static_cast<size_t>(s.num_rows) * (s.max_spans + 1) * sizeof(KvSpan)));
  SpansStageKernel<<<s.num_rows, kCutThreads, 0, stream>>>(s, a, staging, counts);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  SpansCopyKernel<<<s.num_rows, kCutThreads, 0, stream>>>(s, staging, counts, a.span_offsets,
                                                          a.spans);
  return cudaGetLastError();
}

cudaError_t RunHipStage(const HipStageShape& s, const HipStageArgs& a, cudaStream_t stream) {
  LV_CUDA_REQUIRE(s.num_q_heads >= 1 && s.num_kv_heads >= 1 &&
                  s.num_q_heads % s.num_kv_heads == 0 && s.num_q_heads <= 65535);
  LV_CUDA_REQUIRE(s.num_blocks >= 0 && s.num_blocks <= 65535 && s.num_queries >= 1 &&
                  s.num_queries <= kMaxQueries && s.max_ranges >= 0 && s.max_chunks >= 0 &&
                  s.page_size >= 1 && s.rope_hi_rows >= 1 && s.chunk >= 1 && s.keep >= s.chunk);
  LV_CUDA_REQUIRE(!s.chunk_indexed || (s.query_stride >= 1 && s.scan_window >= 0 &&
                                       s.scan_chunks >= 0 && a.first_query_position != nullptr));
  // Every position a probe or a query takes must be inside the tables.
  const int64_t max_pos = static_cast<int64_t>(s.rope_hi_rows) * kRopeLoRows;
  LV_CUDA_REQUIRE(s.chunk_indexed ? (static_cast<int64_t>(s.scan_chunks) + s.scan_window < max_pos &&
                                     s.max_chunks < max_pos)
                                  : (s.query_position >= 1 && s.query_position < max_pos));
  LV_CUDA_REQUIRE((s.head_dim == 64 || s.head_dim == 128) &&
                  (s.dtype == DType::kBF16 || s.dtype == DType::kFP16));
  if (s.num_blocks == 0) return cudaSuccess;
  LV_CUDA_REQUIRE(s.max_chunks >= 1 && s.max_ranges >= 1);
  LV_CUDA_REQUIRE(a.q != nullptr && a.pages != nullptr && a.block_tables != nullptr &&
                  a.in_ranges != nullptr && a.in_count != nullptr && a.out_ranges != nullptr &&
                  a.out_count != nullptr && a.rope_lo != nullptr && a.rope_hi != nullptr &&
                  a.workspace != nullptr && Aligned16(a.workspace) && Aligned16(a.pages) &&
                  a.k_offset % 8 == 0 && a.page_stride % 8 == 0);
  const Workspace w = Carve(s, a.workspace);
  CutKernel<<<s.num_blocks, kCutThreads, 0, stream>>>(s, a.in_ranges, a.in_count, a.active, w);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  const dim3 grid(static_cast<unsigned>((s.max_chunks + kChunksPerCta - 1) / kChunksPerCta),
                  static_cast<unsigned>(s.num_q_heads), static_cast<unsigned>(s.num_blocks));
  const size_t smem =
      static_cast<size_t>(s.chunk_indexed ? 1 : 2) * s.num_queries * s.head_dim * sizeof(float);
  LV_DISPATCH_DTYPE(s.dtype, T, {
    LV_DISPATCH_HEAD_DIM(s.head_dim, kHeadDim, {
      // Over the default 48 KiB only for blocks of more than 48 queries (relative scheme).
      auto launch = [&](auto kernel) {
        if (smem > 48 * 1024) {
          if (cudaError_t e = cudaFuncSetAttribute(
                  kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
              e != cudaSuccess) {
            return e;
          }
        }
        kernel<<<grid, kScoreWarps * 32, smem, stream>>>(s, a, w);
        return cudaGetLastError();
      };
      const cudaError_t e =
          !s.chunk_indexed      ? launch(ScoreKernel<T, kHeadDim, kRelative>)
          : s.num_queries == 1  ? launch(ScoreKernel<T, kHeadDim, kChunkIndexedOne>)
                                : launch(ScoreKernel<T, kHeadDim, kChunkIndexed>);
      if (e != cudaSuccess) return e;
      SelectKernel<<<s.num_blocks, kSelectThreads, 0, stream>>>(s, a, w);
      return cudaGetLastError();
    });
  });
}

}  // namespace longview::cuda
