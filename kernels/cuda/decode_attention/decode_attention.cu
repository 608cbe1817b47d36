// Split-KV paged decode attention with in-kernel RoPE on keys. See decode_attention.h.
//
// Block = 128 threads for one (partition, KV head, sequence), all G query heads of the group.
// A key row of D elements is held by D / 16 threads, each owning elements [f0, f0 + 8) of the
// first half and [D/2 + f0, D/2 + f0 + 8) of the second, i.e. both members of its 8 RoPE pairs,
// read as two 16-byte loads. Per tile of kTile keys (4 per thread):
//   1. K rows -> registers (ld.global.nc), V rows -> shared memory (cp.async, zero-filled past
//      the end of the partition);
//   2. rotate K: the thread's first key's rotation is composed exactly from the hi/lo tables,
//      the next three by one exact step rotation each (3 float multiplications of error);
//   3. scores for every query head (q pre-scaled by scale * log2 e, in shared memory), reduced
//      over the D / 16 threads of a key by warp shuffles, stored to s_s;
//   4. online softmax per query head, one warp per head: new max, p = exp2(s - m), rescale acc;
//   5. acc[g][:] += sum_t p[g][t] * V[t][:] from shared memory; when G * D / 8 < 128 the tokens are
//      split over thread groups whose sums meet by shared-memory atomics.
// The block ends by writing out (one partition) or a float partial and its log2-sum-exp.
#include "kernels/cuda/decode_attention/decode_attention.h"

#include <algorithm>
#include <climits>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/dispatch.h"
#include "kernels/cuda/vec.cuh"

namespace longview::cuda {
namespace {

using detail::FromFloat;
using detail::Pack8;
using detail::ToFloat;
using detail::Unpack8;

constexpr int kThreads = 128;
constexpr int kTokensPerThread = 4;
constexpr int kTargetBlocksPerSm = 4;  // split-KV aims at this many blocks per SM in one launch
constexpr float kLog2e = 1.4426950408889634f;

template <int D>
struct Geometry {
  static constexpr int kThreadsPerToken = D / 16;
  static constexpr int kSlots = kThreads / kThreadsPerToken;  // keys per pass of the block
  static constexpr int kTile = kSlots * kTokensPerThread;     // keys per tile
  static_assert(D % 16 == 0 && kThreadsPerToken <= 32 && kSlots <= kRopeLoRows);
};

// Dynamic shared memory: v_s [kTile][D] of T (first, 16-byte aligned), then floats:
// q_s [G][D], acc_s [G][D], s_s [G][kTile], m_s [G], l_s [G].
template <int D>
constexpr size_t SmemBytes(int group) {
  return static_cast<size_t>(Geometry<D>::kTile) * D * 2 +
         (2 * static_cast<size_t>(group) * D + static_cast<size_t>(group) * Geometry<D>::kTile +
          2 * static_cast<size_t>(group)) *
             sizeof(float);
}

struct Params {
  const void* q;
  void* out;
  const void* pages;
  int64_t page_stride;
  int64_t k_offset;
  int64_t v_offset;
  const int32_t* block_tables;
  const int32_t* kv_lens;
  const int32_t* pos_start;
  const float* rope_lo;
  const float* rope_hi;
  float* part_out;  // [batch][num_q_heads][num_partitions][D]
  float* part_lse;  // [batch][num_q_heads][num_partitions], log2 domain
  float scale_log2;
  int block_table_stride;
  int num_q_heads;
  int num_kv_heads;
  int group;
  int page_size;
  int window;
  int rope_hi_rows;
  int partition_tokens;
  int num_partitions;
};

struct SeqRange {
  int begin;  // first attended key
  int end;    // kv_len
  int pos0;   // position of key 0
  bool valid;  // inside the plan's bounds
};

__device__ __forceinline__ SeqRange GetSeq(const Params& p, int b) {
  SeqRange r;
  r.end = p.kv_lens[b];
  r.pos0 = p.pos_start != nullptr ? p.pos_start[b] : 0;
  r.begin = p.window > 0 ? max(0, r.end - p.window) : 0;
  bool ok = r.end >= 0 &&
            static_cast<int64_t>(r.end) <=
                static_cast<int64_t>(p.block_table_stride) * p.page_size &&
            static_cast<int64_t>(r.end) - r.begin <=
                static_cast<int64_t>(p.num_partitions) * p.partition_tokens;
  if (r.end > 0) {
    ok = ok && r.pos0 >= 0 &&
         static_cast<int64_t>(r.pos0) + r.end - 1 <
             static_cast<int64_t>(p.rope_hi_rows) * kRopeLoRows;
  }
  r.valid = ok;
  return r;
}

__device__ __forceinline__ void CpAsync16(void* smem_dst, const void* gmem_src, int src_bytes) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem_src),
               "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void CpAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
__device__ __forceinline__ void CpAsyncWaitAll() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

// (cos, sin) of A + B from those of A and B.
__device__ __forceinline__ float2 Compose(float ca, float sa, float cb, float sb) {
  return make_float2(ca * cb - sa * sb, sa * cb + ca * sb);
}

__device__ __forceinline__ float WarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) DecodeAttentionKernel(const Params p) {
  using Geo = Geometry<D>;
  constexpr int kTpt = Geo::kThreadsPerToken;
  constexpr int kSlots = Geo::kSlots;
  constexpr int kTile = Geo::kTile;
  constexpr int kHalf = D / 2;
  constexpr int kUnitsPerHead = D / 8;

  const int part = blockIdx.x;
  const int kvh = blockIdx.y;
  const int b = blockIdx.z;
  const int G = p.group;
  const int tid = threadIdx.x;
  const bool direct = p.num_partitions == 1;
  const int64_t head_row0 = static_cast<int64_t>(b) * p.num_q_heads + static_cast<int64_t>(kvh) * G;

  const SeqRange seq = GetSeq(p, b);
  if (!seq.valid || seq.end <= 0) {  // block-uniform: before any barrier
    if (direct) {
      T* out = static_cast<T*>(p.out) + head_row0 * D;
      const float fill = seq.valid ? 0.f : __int_as_float(0x7fc00000);
      for (int i = tid; i < G * D; i += kThreads) out[i] = FromFloat<T>(fill);
    }
    return;
  }
  const int part_begin = seq.begin + part * p.partition_tokens;
  if (part_begin >= seq.end) return;  // past this sequence's keys; the combine skips it
  const int part_end = min(seq.end, part_begin + p.partition_tokens);

  extern __shared__ __align__(16) unsigned char smem[];
  T* v_s = reinterpret_cast<T*>(smem);
  float* q_s = reinterpret_cast<float*>(smem + static_cast<size_t>(kTile) * D * sizeof(T));
  float* acc_s = q_s + G * D;
  float* s_s = acc_s + G * D;
  float* m_s = s_s + G * kTile;
  float* l_s = m_s + G;

  {
    const T* q = static_cast<const T*>(p.q) + head_row0 * D;
    for (int i = tid; i < G * D; i += kThreads) {
      q_s[i] = ToFloat(q[i]) * p.scale_log2;
      acc_s[i] = 0.f;
    }
    for (int g = tid; g < G; g += kThreads) {
      m_s[g] = -INFINITY;
      l_s[g] = 0.f;
    }
  }

  const int chunk = tid % kTpt;
  const int slot = tid / kTpt;
  const int f0 = chunk * 8;  // this thread's first frequency (= element of the first half)

  // Rotation by kSlots positions: the distance between this thread's consecutive keys.
  float2 step[8];
  {
    const float4* src = reinterpret_cast<const float4*>(
        p.rope_lo + (static_cast<size_t>(kSlots) * kHalf + f0) * 2);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float4 v = __ldg(src + k);
      step[2 * k] = make_float2(v.x, v.y);
      step[2 * k + 1] = make_float2(v.z, v.w);
    }
  }

  const T* pages = static_cast<const T*>(p.pages);
  const int64_t token_stride = static_cast<int64_t>(p.num_kv_heads) * D;
  const int32_t* block_table = p.block_tables + static_cast<int64_t>(b) * p.block_table_stride;
  const int64_t head_off = static_cast<int64_t>(kvh) * D + f0;
  const int64_t last_pos = static_cast<int64_t>(seq.pos0) + seq.end - 1;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int units = G * kUnitsPerHead;
  const int groups = units >= kThreads ? 1 : kThreads / units;
  __syncthreads();

  for (int t0 = part_begin; t0 < part_end; t0 += kTile) {
    // 1. Loads: K to registers, V to shared memory.
    uint4 klo[kTokensPerThread], khi[kTokensPerThread];
#pragma unroll
    for (int i = 0; i < kTokensPerThread; ++i) {
      const int row = slot + i * kSlots;
      const int j = t0 + row;
      T* v_dst = v_s + row * D + f0;
      if (j < part_end) {
        const int64_t page = block_table[j / p.page_size];
        const int64_t off =
            page * p.page_stride + static_cast<int64_t>(j % p.page_size) * token_stride + head_off;
        const T* kp = pages + p.k_offset + off;
        const T* vp = pages + p.v_offset + off;
        klo[i] = __ldg(reinterpret_cast<const uint4*>(kp));
        khi[i] = __ldg(reinterpret_cast<const uint4*>(kp + kHalf));
        CpAsync16(v_dst, vp, 16);
        CpAsync16(v_dst + kHalf, vp + kHalf, 16);
      } else {
        klo[i] = make_uint4(0, 0, 0, 0);
        khi[i] = make_uint4(0, 0, 0, 0);
        CpAsync16(v_dst, pages, 0);  // zero fill, reads nothing
        CpAsync16(v_dst + kHalf, pages, 0);
      }
    }
    CpAsyncCommit();

    // 2. Rotation of this thread's first key of the tile, composed from the exact tables. Keys
    // past the end (masked below) borrow the last valid position to stay inside the tables.
    float2 rot[8];
    {
      const int64_t pa = min(static_cast<int64_t>(seq.pos0) + t0 + slot, last_pos);
      const int64_t hi = pa >> kRopeLoBits;
      const int64_t lo = pa & (kRopeLoRows - 1);
      const float4* hs = reinterpret_cast<const float4*>(p.rope_hi + (hi * kHalf + f0) * 2);
      const float4* ls = reinterpret_cast<const float4*>(p.rope_lo + (lo * kHalf + f0) * 2);
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float4 h = __ldg(hs + k);
        const float4 l = __ldg(ls + k);
        rot[2 * k] = Compose(h.x, h.y, l.x, l.y);
        rot[2 * k + 1] = Compose(h.z, h.w, l.z, l.w);
      }
    }
    float kf[kTokensPerThread][16];
#pragma unroll
    for (int i = 0; i < kTokensPerThread; ++i) {
      float x1[8], x2[8];
      Unpack8<T>(klo[i], x1);
      Unpack8<T>(khi[i], x2);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        kf[i][e] = x1[e] * rot[e].x - x2[e] * rot[e].y;
        kf[i][8 + e] = x2[e] * rot[e].x + x1[e] * rot[e].y;
      }
      if (i + 1 < kTokensPerThread) {
#pragma unroll
        for (int e = 0; e < 8; ++e) rot[e] = Compose(rot[e].x, rot[e].y, step[e].x, step[e].y);
      }
    }

    // 3. Scores (log2 domain) for every query head of the group.
    for (int g = 0; g < G; ++g) {
      float qv[16];
      const float4* q1 = reinterpret_cast<const float4*>(q_s + g * D + f0);
      const float4* q2 = reinterpret_cast<const float4*>(q_s + g * D + kHalf + f0);
      const float4 a0 = q1[0], a1 = q1[1], b0 = q2[0], b1 = q2[1];
      qv[0] = a0.x, qv[1] = a0.y, qv[2] = a0.z, qv[3] = a0.w;
      qv[4] = a1.x, qv[5] = a1.y, qv[6] = a1.z, qv[7] = a1.w;
      qv[8] = b0.x, qv[9] = b0.y, qv[10] = b0.z, qv[11] = b0.w;
      qv[12] = b1.x, qv[13] = b1.y, qv[14] = b1.z, qv[15] = b1.w;
      float sc[kTokensPerThread];
#pragma unroll
      for (int i = 0; i < kTokensPerThread; ++i) {
        float acc = 0.f;
#pragma unroll
        for (int e = 0; e < 16; ++e) acc = fmaf(qv[e], kf[i][e], acc);
        sc[i] = acc;
      }
#pragma unroll
      for (int o = kTpt / 2; o > 0; o >>= 1) {
#pragma unroll
        for (int i = 0; i < kTokensPerThread; ++i) sc[i] += __shfl_xor_sync(0xffffffffu, sc[i], o);
      }
      if (chunk == 0) {
#pragma unroll
        for (int i = 0; i < kTokensPerThread; ++i) {
          const int row = slot + i * kSlots;
          s_s[g * kTile + row] = t0 + row < part_end ? sc[i] : -INFINITY;
        }
      }
    }
    __syncthreads();

    // 4. Online softmax, one warp per query head; rescales that head's accumulator.
    for (int g = warp; g < G; g += kThreads / 32) {
      float* sg = s_s + g * kTile;
      float mx = -INFINITY;
      for (int k = lane; k < kTile; k += 32) mx = fmaxf(mx, sg[k]);
      mx = WarpMax(mx);
      const float m_old = m_s[g];
      const float m_new = fmaxf(m_old, mx);  // finite: the tile has a valid key
      float sum = 0.f;
      for (int k = lane; k < kTile; k += 32) {
        const float e = exp2f(sg[k] - m_new);
        sg[k] = e;
        sum += e;
      }
      sum = WarpSum(sum);
      const float alpha = exp2f(m_old - m_new);  // 0 on the first tile (m_old = -inf)
      for (int d = lane; d < D; d += 32) acc_s[g * D + d] *= alpha;
      __syncwarp();
      if (lane == 0) {
        m_s[g] = m_new;
        l_s[g] = l_s[g] * alpha + sum;
      }
    }
    CpAsyncWaitAll();
    __syncthreads();

    // 5. acc += P V.
    const int n_tile = min(kTile, part_end - t0);
    for (int u = tid; u < units * groups; u += kThreads) {
      const int unit = u % units;
      const int grp = u / units;
      const int g = unit / kUnitsPerHead;
      const int d0 = (unit % kUnitsPerHead) * 8;
      const float* pg = s_s + g * kTile;
      const T* vcol = v_s + d0;
      float a[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
#pragma unroll 4
      for (int t = grp; t < n_tile; t += groups) {
        const float pt = pg[t];
        float v[8];
        Unpack8<T>(*reinterpret_cast<const uint4*>(vcol + t * D), v);
#pragma unroll
        for (int e = 0; e < 8; ++e) a[e] = fmaf(pt, v[e], a[e]);
      }
      float* dst = acc_s + g * D + d0;
      if (groups == 1) {  // the unit is this thread's alone
#pragma unroll
        for (int e = 0; e < 8; ++e) dst[e] += a[e];
      } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) atomicAdd(dst + e, a[e]);
      }
    }
    __syncthreads();
  }

  // Output: normalised by l. One partition: `out`; else a float partial and its log2-sum-exp.
  for (int u = tid; u < units; u += kThreads) {
    const int g = u / kUnitsPerHead;
    const int d0 = (u % kUnitsPerHead) * 8;
    const float inv_l = 1.f / l_s[g];
    float a[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) a[e] = acc_s[g * D + d0 + e] * inv_l;
    if (direct) {
      T* out = static_cast<T*>(p.out) + (head_row0 + g) * D + d0;
      *reinterpret_cast<uint4*>(out) = Pack8<T>(a);
    } else {
      const int64_t row = (head_row0 + g) * p.num_partitions + part;
      float4* po = reinterpret_cast<float4*>(p.part_out + row * D + d0);
      po[0] = make_float4(a[0], a[1], a[2], a[3]);
      po[1] = make_float4(a[4], a[5], a[6], a[7]);
      if (d0 == 0) p.part_lse[row] = m_s[g] + log2f(l_s[g]);
    }
  }
}

// One block of D threads per (query head, sequence): merges the partitions by log-sum-exp.
template <typename T, int D>
__global__ void __launch_bounds__(D) DecodeCombineKernel(const Params p) {
  const int hq = blockIdx.x;
  const int b = blockIdx.y;
  const int d = threadIdx.x;
  const int64_t head_row = static_cast<int64_t>(b) * p.num_q_heads + hq;
  T* out = static_cast<T*>(p.out) + head_row * D;
  const SeqRange seq = GetSeq(p, b);
  if (!seq.valid) {
    out[d] = FromFloat<T>(__int_as_float(0x7fc00000));
    return;
  }
  const int n = seq.end > seq.begin
                    ? (seq.end - seq.begin + p.partition_tokens - 1) / p.partition_tokens
                    : 0;
  if (n == 0) {
    out[d] = FromFloat<T>(0.f);
    return;
  }
  const int64_t row0 = head_row * p.num_partitions;
  const float* lse = p.part_lse + row0;
  float m = -INFINITY;
  for (int i = 0; i < n; ++i) m = fmaxf(m, lse[i]);
  float wsum = 0.f, acc = 0.f;
  for (int i = 0; i < n; ++i) {
    const float w = exp2f(lse[i] - m);
    wsum += w;
    acc = fmaf(w, p.part_out[(row0 + i) * D + d], acc);
  }
  out[d] = FromFloat<T>(acc / wsum);
}

bool Aligned16Host(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

template <typename T, int D>
cudaError_t PlanImpl(const DecodeAttentionShape& s, DecodeAttentionPlan* plan) {
  using Geo = Geometry<D>;
  const int group = s.num_q_heads / s.num_kv_heads;
  const size_t smem = SmemBytes<D>(group);
  int device = 0;
  LV_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  int num_sms = s.num_sms;
  if (num_sms <= 0) {
    LV_CUDA_RETURN_IF_ERROR(
        cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, device));
  }
  if (smem > 48 * 1024) {
    int optin = 0;
    LV_CUDA_RETURN_IF_ERROR(
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    LV_CUDA_REQUIRE(smem <= static_cast<size_t>(optin));
    LV_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(DecodeAttentionKernel<T, D>,
                                                 cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 static_cast<int>(smem)));
  }
  const int64_t eff = s.window > 0 ? std::min(s.max_kv_len, s.window) : s.max_kv_len;
  int64_t part = s.partition_tokens;
  if (part == 0) {
    const int64_t blocks = static_cast<int64_t>(s.batch_size) * s.num_kv_heads;
    const int64_t target = static_cast<int64_t>(num_sms) * kTargetBlocksPerSm;
    const int64_t want = std::max<int64_t>(1, (target + blocks - 1) / blocks);
    part = (eff + want - 1) / want;
    part = (part + Geo::kTile - 1) / Geo::kTile * Geo::kTile;
  }
  const int64_t num_parts = (eff + part - 1) / part;
  LV_CUDA_REQUIRE(num_parts >= 1 && num_parts <= 65535 && part <= INT_MAX);
  plan->shape = s;
  plan->partition_tokens = static_cast<int>(part);
  plan->num_partitions = static_cast<int>(num_parts);
  plan->smem_bytes = smem;
  plan->workspace_bytes =
      num_parts > 1 ? static_cast<size_t>(s.batch_size) * s.num_q_heads * num_parts * (D + 1) *
                          sizeof(float)
                    : 0;
  return cudaSuccess;
}

template <typename T, int D>
cudaError_t RunImpl(const DecodeAttentionPlan& plan, const Params& p, cudaStream_t stream) {
  const DecodeAttentionShape& s = plan.shape;
  const dim3 grid(static_cast<unsigned>(plan.num_partitions), static_cast<unsigned>(s.num_kv_heads),
                  static_cast<unsigned>(s.batch_size));
  DecodeAttentionKernel<T, D><<<grid, kThreads, plan.smem_bytes, stream>>>(p);
  LV_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  if (plan.num_partitions > 1) {
    const dim3 cgrid(static_cast<unsigned>(s.num_q_heads), static_cast<unsigned>(s.batch_size));
    DecodeCombineKernel<T, D><<<cgrid, D, 0, stream>>>(p);
    LV_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  }
  return cudaSuccess;
}

}  // namespace

cudaError_t PlanDecodeAttention(const DecodeAttentionShape& s, DecodeAttentionPlan* plan) {
  LV_CUDA_REQUIRE(plan != nullptr);
  LV_CUDA_REQUIRE(s.num_q_heads >= 1 && s.num_kv_heads >= 1 &&
                  s.num_q_heads % s.num_kv_heads == 0 && s.num_kv_heads <= 65535);
  LV_CUDA_REQUIRE(s.batch_size >= 1 && s.batch_size <= 65535 && s.num_q_heads <= 65535);
  LV_CUDA_REQUIRE(s.page_size >= 1 && s.max_kv_len >= 1 && s.window >= 0 &&
                  s.partition_tokens >= 0);
  LV_CUDA_REQUIRE(s.rope_hi_rows >= 1 && s.max_position >= s.max_kv_len - 1 &&
                  s.max_position < static_cast<int64_t>(s.rope_hi_rows) * kRopeLoRows);
  LV_DISPATCH_DTYPE(s.dtype, T, {
    LV_DISPATCH_HEAD_DIM(s.head_dim, kHeadDim, { return PlanImpl<T, kHeadDim>(s, plan); });
  });
}

cudaError_t RunDecodeAttention(const DecodeAttentionPlan& plan, const DecodeAttentionArgs& a,
                               void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  const DecodeAttentionShape& s = plan.shape;
  LV_CUDA_REQUIRE(plan.num_partitions >= 1 && plan.partition_tokens >= 1);
  LV_CUDA_REQUIRE(a.q != nullptr && a.out != nullptr && a.pages != nullptr &&
                  a.block_tables != nullptr && a.kv_lens != nullptr && a.rope_lo != nullptr &&
                  a.rope_hi != nullptr);
  LV_CUDA_REQUIRE(Aligned16Host(a.q) && Aligned16Host(a.out) && Aligned16Host(a.pages) &&
                  Aligned16Host(a.rope_lo) && Aligned16Host(a.rope_hi));
  LV_CUDA_REQUIRE(a.page_stride % 8 == 0 && a.k_offset % 8 == 0 && a.v_offset % 8 == 0 &&
                  a.k_offset >= 0 && a.v_offset >= 0 && a.block_table_stride >= 1);
  float* part_out = nullptr;
  float* part_lse = nullptr;
  if (plan.num_partitions > 1) {
    LV_CUDA_REQUIRE(workspace != nullptr && Aligned16Host(workspace) &&
                    workspace_bytes >= plan.workspace_bytes);
    part_out = static_cast<float*>(workspace);
    part_lse = part_out + static_cast<size_t>(s.batch_size) * s.num_q_heads *
                              plan.num_partitions * s.head_dim;
  }
  Params p;
  p.q = a.q;
  p.out = a.out;
  p.pages = a.pages;
  p.page_stride = a.page_stride;
  p.k_offset = a.k_offset;
  p.v_offset = a.v_offset;
  p.block_tables = a.block_tables;
  p.kv_lens = a.kv_lens;
  p.pos_start = a.pos_start;
  p.rope_lo = a.rope_lo;
  p.rope_hi = a.rope_hi;
  p.part_out = part_out;
  p.part_lse = part_lse;
  p.scale_log2 = a.scale * kLog2e;
  p.block_table_stride = a.block_table_stride;
  p.num_q_heads = s.num_q_heads;
  p.num_kv_heads = s.num_kv_heads;
  p.group = s.num_q_heads / s.num_kv_heads;
  p.page_size = s.page_size;
  p.window = s.window;
  p.rope_hi_rows = s.rope_hi_rows;
  p.partition_tokens = plan.partition_tokens;
  p.num_partitions = plan.num_partitions;
  LV_DISPATCH_DTYPE(s.dtype, T, {
    LV_DISPATCH_HEAD_DIM(s.head_dim, kHeadDim, { return RunImpl<T, kHeadDim>(plan, p, stream); });
  });
}

}  // namespace longview::cuda
