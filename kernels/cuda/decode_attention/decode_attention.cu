// Split-KV paged decode attention with in-kernel RoPE on keys. See decode_attention.h and NOTES.md.
//
// v3: warp-independent flash-decoding with a cp.async pipeline per warp, products on tensor cores.
// Block = 4 warps for one (partition, KV head, sequence, chunk of up to 8 query heads of the
// group). The partition's keys are cut into chunks of kChunk = 16 keys; warp w owns chunks w,
// w + 4, w + 8, ...
//   * Each warp streams its chunks through a private 3-stage shared-memory ring filled by
//     cp.async (16-byte copies of whole 128-byte lines, zero-filled past the partition, key rows
//     XOR-swizzled by unit): 2 chunks (16 KB at D = 128) in flight per warp while it computes a
//     third, plus the chunk's RoPE rows (hi/lo table rows of its first position). Block-table
//     entries are loaded one chunk ahead of their copy, so no copy waits on an index load.
//   * S = q . rot(K)^T by mma.sync m16n8k16: M = the block's heads (8 of 16 rows used), N = the
//     chunk's keys (two n-tiles), K = head_dim in a permuted order, chosen so that lane
//     (gq = lane / 4, cq = lane % 4) holds of keys gq and 8 + gq exactly elements
//     [cq * D/8, +D/8) of both rotation halves: it rotates them in float32 (R(P0) = R(hi) o R(lo)
//     once per chunk, R(P0) o R(n) with R(n) of its two keys in registers: exact angles) and
//     packs them straight into B fragments. The rotated key is T(k) + T(k - T(k)): two mma per
//     k-tile, so scores keep float32 accuracy. q is an A fragment of raw T words (no rounding).
//   * Online softmax on the C fragment (row gq = head, 4 keys per lane; 2 shuffles for the row
//     max); p (split like k) is the B fragment of (p.v)^T = V^T p^T, whose A fragments come from
//     V by ldmatrix.trans: acc is (D/16) x 4 floats per lane. Rescaling only when a max rises.
//   * At the end the warps merge through shared memory, once.
// The block ends by writing out (one partition) or a float partial and its log2-sum-exp; the
// combine kernel is a programmatic dependent launch.
//
// Selection mode (kSelect): the same kernel over a row's spans instead of [begin, kv_len). A
// warp chunk is a piece of one span (span s gives chunks_per_span = ceil(page_size / kChunk)
// "virtual" chunks, those past the span's count are empty), so the chunk's keys still sit at
// P0 + d, d < kChunk, and the rotation composes as above. A partition is a run of spans. The
// span of a chunk is loaded one chunk ahead (as the dense path's block-table entries); its key
// count travels to the compute step in the stage's one metadata unit. A malformed span is read
// as empty and turns the block's outputs (or its partial's log-sum-exp) into NaN.
#include "kernels/cuda/decode_attention/decode_attention.h"

#include <algorithm>
#include <climits>
#include <type_traits>

#include "kernels/cpu/kv_selection.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/dispatch.h"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/vec.cuh"

namespace longview::cuda {
namespace {

using detail::FromFloat;
using detail::Pack8;
using detail::ToFloat;
using detail::Float2ToWord2;
using detail::Word2ToFloat2;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kChunk = 16;         // keys per warp chunk: two n-tiles of 8 keys
constexpr int kStages = 3;         // cp.async ring depth per warp
constexpr int kHeadsPerBlock = 8;  // query heads per block (the N of p.v); more take several blocks
constexpr int kBlocksPerSm = 2;    // by design: 2 x ~108 KB shared memory, <= 255 registers
constexpr float kLog2e = 1.4426950408889634f;

// DecodeKvSpan is cpu::KvSpan's layout: host selections copy as they are.
static_assert(sizeof(DecodeKvSpan) == sizeof(cpu::KvSpan) &&
              offsetof(DecodeKvSpan, page_id) == offsetof(cpu::KvSpan, page_id) &&
              offsetof(DecodeKvSpan, first_slot) == offsetof(cpu::KvSpan, first_slot) &&
              offsetof(DecodeKvSpan, count) == offsetof(cpu::KvSpan, count) &&
              offsetof(DecodeKvSpan, first_position) == offsetof(cpu::KvSpan, first_position));

template <int D, bool kSelect>
struct Geometry {
  static constexpr int kRowUnits = D / 8;                 // 16-byte units of a key row
  static constexpr int kE = D / 8;                        // elements per rotation half per lane
  static constexpr int kKvUnits = 2 * kChunk * kRowUnits;  // K rows, then V rows
  static constexpr int kRopeRowUnits = D / 4;             // one table row: D / 2 (cos, sin)
  static constexpr int kRopeUnits = 2 * kRopeRowUnits;    // hi and lo rows of the chunk's P0
  static constexpr int kMetaUnits = kSelect ? 1 : 0;      // selection: the chunk's key count
  static constexpr int kStageUnits = kKvUnits + kRopeUnits + kMetaUnits;
  static constexpr int kWarpUnits = kStages * kStageUnits;
  static constexpr size_t kSmemBytes = static_cast<size_t>(kWarps) * kWarpUnits * 16;
  static_assert((D == 64 || D == 128) && kChunk <= kRopeLoRows);
  // The final merge reuses a warp's ring: acc [kHeadsPerBlock][D], m, l.
  static_assert((kHeadsPerBlock * D + 2 * kHeadsPerBlock) * 4 <= kWarpUnits * 16);
  // Key rows are XOR-swizzled by unit so that the fragment reads (a lane's own units of keys
  // gq, gq + 8) and the transposing ldmatrix of V (one unit of 8 keys) hit 8 distinct bank
  // groups: at D = 128 a row is 16 units (keys 2i, 2i + 1 differ in unit parity), at D = 64 8.
  __device__ static __forceinline__ int Swz(int key) {
    return D == 128 ? (key & 7) : (((key & 1) << 2) | ((key >> 1) & 3));
  }
  // RoPE row units: lane cq reads units [cq * kE / 2, + kE / 2); spread the four cq's banks.
  __device__ static __forceinline__ int RopeSwz(int u) { return u ^ ((u >> 3) & (kE / 2 - 1)); }
};

struct Params {
  const void* q;
  int64_t q_row_stride;  // elements
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
  int num_head_chunks;  // ceil(group / kHeadsPerBlock)
  int page_size;
  int page_shift;  // log2(page_size) when a power of two, else -1
  int window;
  int rope_hi_rows;
  int partition_tokens;
  int num_partitions;
  // Selection mode.
  const DecodeKvSpan* spans;
  const int32_t* span_offsets;
  int spans_per_kv_head;
  int max_spans;
  int partition_spans;
  int chunks_per_span;  // ceil(page_size / kChunk)
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

struct RowRange {
  int begin;    // first span of the row
  int n_spans;
  bool valid;   // inside the plan's bounds
};

__device__ __forceinline__ RowRange GetRow(const Params& p, int b, int kvh) {
  const int row = p.spans_per_kv_head ? b * p.num_kv_heads + kvh : b;
  const int begin = p.span_offsets[row];
  const int end = p.span_offsets[row + 1];
  RowRange r;
  r.begin = begin;
  r.n_spans = end - begin;
  r.valid = begin >= 0 && end >= begin && end - begin <= p.max_spans;
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
template <int N>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// (cos, sin) of A + B from those of A and B.
__device__ __forceinline__ float2 Compose(float ca, float sa, float cb, float sb) {
  return make_float2(ca * cb - sa * sb, sa * cb + ca * sb);
}

__device__ __forceinline__ float4 AsFloat4(const uint4& u) {
  return make_float4(__uint_as_float(u.x), __uint_as_float(u.y), __uint_as_float(u.z),
                     __uint_as_float(u.w));
}

// Tensor-core products: m16n8k16, float accumulators; A row-major 16x16, B "col" 16x8.
template <typename T>
__device__ __forceinline__ void Mma16816(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
}

__device__ __forceinline__ void LdMatrixX4Trans(uint32_t (&r)[4], const void* smem_row) {
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// The pair (a, b) - T(a, b) as T, for the word `hi` holding the rounded pair.
template <typename T>
__device__ __forceinline__ uint32_t Residual2(float a, float b, uint32_t hi) {
  const float2 h = Word2ToFloat2(hi, static_cast<T*>(nullptr));
  return Float2ToWord2(a - h.x, b - h.y, static_cast<T*>(nullptr));
}

template <typename T, int D, bool kSelect>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm) DecodeAttentionKernel(const Params p) {
  using Geo = Geometry<D, kSelect>;
  constexpr int kHalf = D / 2;
  constexpr int kE = Geo::kE;
  constexpr int kRowUnits = Geo::kRowUnits;
  constexpr int kKT = D / 16;     // k-tiles of q.k = m-tiles of (p.v)^T
  constexpr int kKTH = kKT / 2;   // k-tiles per rotation half
  constexpr int kLaneUnits = kE / 8;  // 16-byte units of a key half per lane
  constexpr int kG = kHeadsPerBlock;
  // The rotated key rounded to T keeps 8 (bf16) / 11 (fp16) bits: q.k adds the product with the
  // rounding residual (one more mma per k-tile), so that scores carry no more error than the
  // float32 rotation (without it, sharp softmaxes over ~5k keys missed the tests' tolerances).
  constexpr bool kSplitK = true;

  const int hc = static_cast<int>(blockIdx.x % static_cast<unsigned>(p.num_head_chunks));
  const int part = static_cast<int>(blockIdx.x / static_cast<unsigned>(p.num_head_chunks));
  const int kvh = blockIdx.y;
  const int b = blockIdx.z;
  const int G = p.group;
  const int g0 = hc * kG;
  const int n_heads = min(kG, G - g0);  // valid query heads of this block, >= 1
  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const bool direct = p.num_partitions == 1;
  const int64_t head_row0 =
      static_cast<int64_t>(b) * p.num_q_heads + static_cast<int64_t>(kvh) * G + g0;
  // This kernel is itself a programmatic dependent launch (pdl.cuh): nothing is read before the
  // previous kernel (q's rotation) completed. Then it lets the combine kernel be scheduled; that
  // one still waits for this grid's completion before reading anything.
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");

  // Dense: keys [part_begin, part_end) of the sequence. Selection: the row's virtual chunks
  // [part_begin, part_end) (chunk c is piece c % chunks_per_span of span c / chunks_per_span).
  int part_begin, part_end;
  int row_span0 = 0;  // selection: the row's first span
  int64_t pos_part = 0;  // dense: position of key part_begin
  {
    bool valid, empty;
    if constexpr (kSelect) {
      const RowRange row = GetRow(p, b, kvh);
      valid = row.valid;
      empty = row.n_spans <= 0;
      row_span0 = row.begin;
      const int span_begin = part * p.partition_spans;
      part_begin = span_begin * p.chunks_per_span;
      part_end = min(row.n_spans, span_begin + p.partition_spans) * p.chunks_per_span;
    } else {
      const SeqRange seq = GetSeq(p, b);
      valid = seq.valid;
      empty = seq.end <= 0;
      part_begin = seq.begin + part * p.partition_tokens;
      part_end = min(seq.end, part_begin + p.partition_tokens);
      pos_part = static_cast<int64_t>(seq.pos0) + part_begin;
    }
    if (!valid || empty) {  // block-uniform: before any barrier
      if (direct) {
        T* out = static_cast<T*>(p.out) + head_row0 * D;
        const float fill = valid ? 0.f : __int_as_float(0x7fc00000);
        for (int i = tid; i < n_heads * D; i += kThreads) out[i] = FromFloat<T>(fill);
      }
      return;
    }
    if (part_begin >= part_end) return;  // past this row's keys; the combine skips it
  }

  // Fragment coordinates: row group gq (query head of S, d of (p.v)^T, key of K^T) and column
  // pair cq. Lane (gq, cq) holds, of each key it rotates, elements [cq * kE, cq * kE + kE) of the
  // first half and the same of the second (both members of its kE RoPE pairs); the q.k reduction
  // index is permuted so that these are exactly its B-fragment elements (q uses the same order).
  const int gq = lane >> 2;
  const int cq = lane & 3;

  // q of head gq (zeros past the block's heads) as A fragments: rows gq (rows gq + 8 are zero).
  uint32_t qa[kKT][2];
  {
    const bool real = gq < n_heads;
    const T* qp = static_cast<const T*>(p.q) + b * p.q_row_stride +
                  (static_cast<int64_t>(kvh) * G + g0 + min(gq, n_heads - 1)) * D + cq * kE;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
#pragma unroll
      for (int u = 0; u < kLaneUnits; ++u) {
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (real) v = __ldg(reinterpret_cast<const uint4*>(qp + h * kHalf + 8 * u));
        const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int e = 0; e < 4; ++e) qa[h * kKTH + (4 * u + e) / 2][(4 * u + e) & 1] = w[e];
      }
    }
  }
  // R(n) for this lane's keys n = gq and gq + 8 of a chunk and its kE frequencies (exact rows of
  // the lo table): a chunk's key n sits at P0 + n.
  float2 rn[2][kE];
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
    const float4* rs =
        reinterpret_cast<const float4*>(p.rope_lo + ((nt * 8 + gq) * kHalf + cq * kE) * 2);
#pragma unroll
    for (int k = 0; k < kE / 2; ++k) {
      const float4 v = __ldg(rs + k);
      rn[nt][2 * k] = make_float2(v.x, v.y);
      rn[nt][2 * k + 1] = make_float2(v.z, v.w);
    }
  }

  extern __shared__ uint4 smem[];
  uint4* ring = smem + warp * Geo::kWarpUnits;

  const int n_chunks =
      kSelect ? part_end - part_begin : (part_end - part_begin + kChunk - 1) / kChunk;
  const int my_chunks = warp < n_chunks ? (n_chunks - 1 - warp) / kWarps + 1 : 0;
  const T* pages = static_cast<const T*>(p.pages);
  const int64_t token_stride = static_cast<int64_t>(p.num_kv_heads) * D;
  const int32_t* block_table = p.block_tables + static_cast<int64_t>(b) * p.block_table_stride;
  const int64_t head_off = static_cast<int64_t>(kvh) * D;
  // Dense: lanes 2k, 2k + 1 look up the page of key k = ck of the next chunk.
  const int ck = lane >> 1;
  auto page_of = [&](int j) { return p.page_shift >= 0 ? j >> p.page_shift : j / p.page_size; };

  int next_page = 0;  // dense: block-table entry of key ck of the next chunk to copy
  // Selection: the next chunk's page, first slot, key count (0: empty) and first position.
  int nx_page = 0, nx_slot = 0, nx_n = 0, nx_pos = 0;
  bool bad = false;  // selection: a malformed span was met
  auto load_pages = [&](int i) {
    if constexpr (kSelect) {
      nx_n = 0;
      if (i < my_chunks) {
        const int vc = part_begin + warp + i * kWarps;
        const int si = p.chunks_per_span == 1 ? vc : vc / p.chunks_per_span;
        const int piece_off = (vc - si * p.chunks_per_span) * kChunk;
        const DecodeKvSpan* sp = p.spans + row_span0 + si;
        const int count = __ldg(&sp->count);
        if (count != 0) {
          const int page = __ldg(&sp->page_id);
          const int first_slot = __ldg(&sp->first_slot);
          const int64_t first_pos = __ldg(&sp->first_position);
          const bool ok = count > 0 && page >= 0 && first_slot >= 0 &&
                          count <= p.page_size - first_slot && first_pos >= 0 &&
                          first_pos + count <= static_cast<int64_t>(p.rope_hi_rows) * kRopeLoRows;
          bad = bad || !ok;
          nx_page = page;
          nx_slot = first_slot + piece_off;
          nx_n = ok ? min(kChunk, max(0, count - piece_off)) : 0;
          nx_pos = static_cast<int>(first_pos) + piece_off;  // used only when nx_n > 0
        }
      }
    } else {
      const int j = part_begin + (warp + i * kWarps) * kChunk + ck;
      next_page = i < my_chunks && j < part_end ? __ldg(block_table + page_of(j)) : 0;
    }
  };
  // Copies chunk i (if it exists) into its stage; the caller commits the group.
  auto issue = [&](int i) {
    if (i >= my_chunks) return;
    uint4* st = ring + (i % kStages) * Geo::kStageUnits;
    // Copy q copies keys q * kKpi + lane / kRowUnits, unit lane % kRowUnits: each instruction
    // reads whole 128-byte lines (a key's K or V row of this KV head is D * 2 bytes).
    constexpr int kKpi = 32 / kRowUnits;
    const int cu = lane % kRowUnits;
    int64_t pos;
    int rope_bytes = 16;
    int chunk0 = 0;  // dense: key index of the chunk's first key
    if constexpr (kSelect) {
      pos = nx_n > 0 ? nx_pos : 0;
      rope_bytes = nx_n > 0 ? 16 : 0;  // an empty chunk: zeros
      if (lane == 0) {
        reinterpret_cast<int*>(st + Geo::kKvUnits + Geo::kRopeUnits)[0] = nx_n;
      }
    } else {
      chunk0 = part_begin + (warp + i * kWarps) * kChunk;
      pos = pos_part + static_cast<int64_t>(warp + i * kWarps) * kChunk;  // a valid key
    }
#pragma unroll
    for (int q = 0; q < kChunk / kKpi; ++q) {
      const int key = q * kKpi + lane / kRowUnits;
      bool valid;
      int64_t off;
      if constexpr (kSelect) {
        valid = key < nx_n;
        off = static_cast<int64_t>(nx_page) * p.page_stride +
              static_cast<int64_t>(nx_slot + key) * token_stride + head_off;
      } else {
        const int page = __shfl_sync(0xffffffffu, next_page, 2 * key);  // lanes 2k, 2k+1: key k
        const int j = chunk0 + key;
        valid = j < part_end;
        const int in_page = j - page_of(j) * p.page_size;
        off = static_cast<int64_t>(page) * p.page_stride +
              static_cast<int64_t>(in_page) * token_stride + head_off;
      }
      const int bytes = valid ? 16 : 0;  // zero fill past the keys, reads nothing
      uint4* kd = st + key * kRowUnits + (cu ^ Geo::Swz(key));
      CpAsync16(kd, valid ? static_cast<const void*>(pages + p.k_offset + off + 8 * cu) : pages,
                bytes);
      CpAsync16(kd + kChunk * kRowUnits,
                valid ? static_cast<const void*>(pages + p.v_offset + off + 8 * cu) : pages,
                bytes);
    }
    // Exact-table rows (hi, lo) of the chunk's first position, all frequencies.
    const int64_t hi = pos >> kRopeLoBits;
    const int64_t lo = pos & (kRopeLoRows - 1);
    uint4* rd = st + Geo::kKvUnits;
#pragma unroll
    for (int u = lane; u < 2 * Geo::kRopeRowUnits; u += 32) {
      const bool is_hi = u < Geo::kRopeRowUnits;
      const int uu = is_hi ? u : u - Geo::kRopeRowUnits;
      const float* src = is_hi ? p.rope_hi + hi * D : p.rope_lo + lo * D;
      CpAsync16(rd + (is_hi ? 0 : Geo::kRopeRowUnits) + Geo::RopeSwz(uu), src + 4 * uu,
                rope_bytes);
    }
  };

  float acc[kKT][4];  // (p.v)^T: rows d = 16 mt + gq (+ 8), columns heads 2 cq, 2 cq + 1
#pragma unroll
  for (int mt = 0; mt < kKT; ++mt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[mt][e] = 0.f;
  }
  float m = -INFINITY;  // running max of head gq (log2 domain), same on the 4 lanes of gq
  float l = 0.f;        // partial sum of this lane's columns

  load_pages(0);
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    issue(s);
    CpAsyncCommit();
    load_pages(s + 1);
  }

  // ldmatrix row this lane addresses for V: matrix mi = lane / 8 (keys 0-7 / 8-15, d units
  // 2 mt / 2 mt + 1), row lane % 8.
  const int v_key = ((lane >> 4) << 3) | (lane & 7);
  const int v_sw = Geo::Swz(v_key);
  const int v_du = (lane >> 3) & 1;

  for (int i = 0; i < my_chunks; ++i) {
    __syncwarp();  // every lane is done with the stage that the next copy overwrites
    issue(i + kStages - 1);
    CpAsyncCommit();
    CpAsyncWait<kStages - 1>();  // chunk i has landed (for this lane)
    __syncwarp();                // ... and the units the other lanes copied are visible

    const uint4* st = ring + (i % kStages) * Geo::kStageUnits;
    const uint4* rh = st + Geo::kKvUnits;
    const uint4* rl = rh + Geo::kRopeRowUnits;

    // S = q . rot(K)^T for keys gq (n-tile 0) and 8 + gq (n-tile 1): separate accumulators for
    // the two halves, so that the chains are 4 deep (D = 128).
    float sa[2][2][4];
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
#pragma unroll
        for (int e = 0; e < 4; ++e) sa[nt][h][e] = 0.f;
      }
    }
    uint4 kx[2][2][kLaneUnits];  // [n-tile][half][unit] raw K of the lane's two keys
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      const int n = nt * 8 + gq;
      const uint4* kr = st + n * kRowUnits;
      const int sw = Geo::Swz(n);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
#pragma unroll
        for (int u = 0; u < kLaneUnits; ++u) {
          kx[nt][h][u] = kr[(h * (kRowUnits / 2) + cq * kLaneUnits + u) ^ sw];
        }
      }
    }
#pragma unroll
    for (int t = 0; t < kKTH; ++t) {  // frequencies cq * kE + 4 t + [0, 4): k-tiles t, kKTH + t
      float2 base[4];  // R(P0)
      {
        const int u0 = cq * (kE / 2) + 2 * t;
        const float4 h0 = AsFloat4(rh[Geo::RopeSwz(u0)]);
        const float4 h1 = AsFloat4(rh[Geo::RopeSwz(u0 + 1)]);
        const float4 o0 = AsFloat4(rl[Geo::RopeSwz(u0)]);
        const float4 o1 = AsFloat4(rl[Geo::RopeSwz(u0 + 1)]);
        base[0] = Compose(h0.x, h0.y, o0.x, o0.y);
        base[1] = Compose(h0.z, h0.w, o0.z, o0.w);
        base[2] = Compose(h1.x, h1.y, o1.x, o1.y);
        base[3] = Compose(h1.z, h1.w, o1.z, o1.w);
      }
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        // Words 2t, 2t + 1 of each half: elements 4t .. 4t + 3 of the lane's range.
        const uint4& ul = kx[nt][0][t / 2];
        const uint4& uh = kx[nt][1][t / 2];
        const uint32_t wl0 = (t & 1) ? ul.z : ul.x, wl1 = (t & 1) ? ul.w : ul.y;
        const uint32_t wh0 = (t & 1) ? uh.z : uh.x, wh1 = (t & 1) ? uh.w : uh.y;
        const float2 xa = Word2ToFloat2(wl0, static_cast<T*>(nullptr));
        const float2 xb = Word2ToFloat2(wl1, static_cast<T*>(nullptr));
        const float2 ya = Word2ToFloat2(wh0, static_cast<T*>(nullptr));
        const float2 yb = Word2ToFloat2(wh1, static_cast<T*>(nullptr));
        const float x1[4] = {xa.x, xa.y, xb.x, xb.y};
        const float x2[4] = {ya.x, ya.y, yb.x, yb.y};
        float k1[4], k2[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float2 r = Compose(base[e].x, base[e].y, rn[nt][4 * t + e].x, rn[nt][4 * t + e].y);
          k1[e] = x1[e] * r.x - x2[e] * r.y;
          k2[e] = x2[e] * r.x + x1[e] * r.y;
        }
        T* const tag = nullptr;
        const uint32_t b1h0 = Float2ToWord2(k1[0], k1[1], tag);
        const uint32_t b1h1 = Float2ToWord2(k1[2], k1[3], tag);
        const uint32_t b2h0 = Float2ToWord2(k2[0], k2[1], tag);
        const uint32_t b2h1 = Float2ToWord2(k2[2], k2[3], tag);
        Mma16816<T>(sa[nt][0], qa[t][0], 0u, qa[t][1], 0u, b1h0, b1h1);
        Mma16816<T>(sa[nt][1], qa[kKTH + t][0], 0u, qa[kKTH + t][1], 0u, b2h0, b2h1);
        if constexpr (kSplitK) {  // + q . (rotated K - its rounding to T)
          Mma16816<T>(sa[nt][0], qa[t][0], 0u, qa[t][1], 0u, Residual2<T>(k1[0], k1[1], b1h0),
                      Residual2<T>(k1[2], k1[3], b1h1));
          Mma16816<T>(sa[nt][1], qa[kKTH + t][0], 0u, qa[kKTH + t][1], 0u,
                      Residual2<T>(k2[0], k2[1], b2h0), Residual2<T>(k2[2], k2[3], b2h1));
        }
      }
    }
    // Scores of head gq for keys 2cq, 2cq + 1, 8 + 2cq, 9 + 2cq of the chunk.
    float s[4] = {sa[0][0][0] + sa[0][1][0], sa[0][0][1] + sa[0][1][1],
                  sa[1][0][0] + sa[1][1][0], sa[1][0][1] + sa[1][1][1]};
    int n_valid;
    if constexpr (kSelect) {
      n_valid = reinterpret_cast<const int*>(st + Geo::kKvUnits + Geo::kRopeUnits)[0];
    } else {
      n_valid = part_end - (part_begin + (warp + i * kWarps) * kChunk);
    }
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int col = (e >> 1) * 8 + 2 * cq + (e & 1);
      s[e] = col < n_valid ? s[e] * p.scale_log2 : -INFINITY;
    }

    // Online softmax per head (row gq); s becomes p.
    float mx = fmaxf(fmaxf(s[0], s[1]), fmaxf(s[2], s[3]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    if (__any_sync(0xffffffffu, mx > m)) {  // rare after the first chunks
      const float alpha = mx > m ? exp2f(m - mx) : 1.f;  // 0 when m was -inf
      m = fmaxf(m, mx);
      l *= alpha;
      const float a0 = __shfl_sync(0xffffffffu, alpha, 8 * cq);      // head 2 cq
      const float a1 = __shfl_sync(0xffffffffu, alpha, 8 * cq + 4);  // head 2 cq + 1
#pragma unroll
      for (int mt = 0; mt < kKT; ++mt) {
        acc[mt][0] *= a0;
        acc[mt][1] *= a1;
        acc[mt][2] *= a0;
        acc[mt][3] *= a1;
      }
    }
    const float ms = m == -INFINITY ? 0.f : m;  // -inf only while all keys are masked
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      s[e] = exp2f(s[e] - ms);
      l += s[e];
    }
    // (p.v)^T += V^T p^T: B fragment = p of head gq (columns as the C layout of S), A from V by
    // transposing ldmatrix.
    T* const tag = nullptr;
    // p is split as T(p) + T(p - T(p)) like the keys: V is exact, so p.v keeps float32 accuracy.
    const uint32_t pb0 = Float2ToWord2(s[0], s[1], tag);
    const uint32_t pb1 = Float2ToWord2(s[2], s[3], tag);
    const uint32_t pr0 = Residual2<T>(s[0], s[1], pb0);
    const uint32_t pr1 = Residual2<T>(s[2], s[3], pb1);
    const uint4* vrow = st + kChunk * kRowUnits + v_key * kRowUnits;
#pragma unroll
    for (int mt = 0; mt < kKT; ++mt) {
      uint32_t a[4];
      LdMatrixX4Trans(a, vrow + ((2 * mt + v_du) ^ v_sw));
      Mma16816<T>(acc[mt], a[0], a[1], a[2], a[3], pb0, pb1);
      Mma16816<T>(acc[mt], a[0], a[1], a[2], a[3], pr0, pr1);
    }
    // Block-table entries of the chunk copied next iteration: loaded here, not earlier, so that
    // they hold no registers through the chunk's arithmetic (mostly L1 hits).
    load_pages(i + kStages);
  }
  asm volatile("cp.async.wait_all;\n" ::: "memory");

  // l over the 4 lanes of a head.
  l += __shfl_xor_sync(0xffffffffu, l, 1);
  l += __shfl_xor_sync(0xffffffffu, l, 2);
  // Warps meet in shared memory: each warp's ring becomes acc [kG][D], m [kG], l [kG].
  __syncwarp();
  {
    float* mw = reinterpret_cast<float*>(ring);
#pragma unroll
    for (int mt = 0; mt < kKT; ++mt) {
      const int d = 16 * mt + gq;
      mw[(2 * cq) * D + d] = acc[mt][0];
      mw[(2 * cq + 1) * D + d] = acc[mt][1];
      mw[(2 * cq) * D + d + 8] = acc[mt][2];
      mw[(2 * cq + 1) * D + d + 8] = acc[mt][3];
    }
    if (cq == 0) {
      mw[kG * D + gq] = m;
      mw[kG * D + kG + gq] = l;
    }
  }
  if constexpr (kSelect) {
    bad = __syncthreads_or(bad) != 0;
  } else {
    __syncthreads();
  }

  // Output: normalised by l. One partition: `out`; else a float partial and its log2-sum-exp.
  constexpr int kUnitsPerHead = D / 8;
  for (int u = tid; u < n_heads * kUnitsPerHead; u += kThreads) {
    const int g = u / kUnitsPerHead;
    const int d0 = (u % kUnitsPerHead) * 8;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      mx = fmaxf(mx, reinterpret_cast<const float*>(smem + w * Geo::kWarpUnits)[kG * D + g]);
    }
    float sum = 0.f;
    float a[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float* mw = reinterpret_cast<const float*>(smem + w * Geo::kWarpUnits);
      const float mw_g = mw[kG * D + g];
      const float wt = mw_g == -INFINITY ? 0.f : exp2f(mw_g - mx);
      sum = fmaf(mw[kG * D + kG + g], wt, sum);
      const float4 v0 = reinterpret_cast<const float4*>(mw + g * D + d0)[0];
      const float4 v1 = reinterpret_cast<const float4*>(mw + g * D + d0)[1];
      a[0] = fmaf(v0.x, wt, a[0]);
      a[1] = fmaf(v0.y, wt, a[1]);
      a[2] = fmaf(v0.z, wt, a[2]);
      a[3] = fmaf(v0.w, wt, a[3]);
      a[4] = fmaf(v1.x, wt, a[4]);
      a[5] = fmaf(v1.y, wt, a[5]);
      a[6] = fmaf(v1.z, wt, a[6]);
      a[7] = fmaf(v1.w, wt, a[7]);
    }
    float inv_l = 1.f / sum;
    if constexpr (kSelect) {  // a partition of empty spans has sum 0; a malformed span: NaN
      inv_l = bad ? __int_as_float(0x7fc00000) : (sum > 0.f ? inv_l : 0.f);
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) a[e] *= inv_l;
    if (direct) {
      T* out = static_cast<T*>(p.out) + (head_row0 + g) * D + d0;
      *reinterpret_cast<uint4*>(out) = Pack8<T>(a);
    } else {
      const int64_t row = (head_row0 + g) * p.num_partitions + part;
      float4* po = reinterpret_cast<float4*>(p.part_out + row * D + d0);
      po[0] = make_float4(a[0], a[1], a[2], a[3]);
      po[1] = make_float4(a[4], a[5], a[6], a[7]);
      if (d0 == 0) {
        p.part_lse[row] = kSelect && bad ? __int_as_float(0x7fc00000) : mx + log2f(sum);
      }
    }
  }
}

// One block of D threads per (query head, sequence): merges the partitions by log-sum-exp.
template <typename T, int D, bool kSelect>
__global__ void __launch_bounds__(D) DecodeCombineKernel(const Params p) {
  const int hq = blockIdx.x;
  const int b = blockIdx.y;
  const int d = threadIdx.x;
  const int64_t head_row = static_cast<int64_t>(b) * p.num_q_heads + hq;
  T* out = static_cast<T*>(p.out) + head_row * D;
  // Launched as a programmatic dependent of the main kernel: wait for all of it (and its
  // writes) before touching the workspace or `out`.
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  bool valid;
  int n;  // partitions that hold keys of this head
  if constexpr (kSelect) {
    const RowRange row = GetRow(p, b, hq / p.group);
    valid = row.valid;
    n = row.n_spans > 0 ? (row.n_spans + p.partition_spans - 1) / p.partition_spans : 0;
  } else {
    const SeqRange seq = GetSeq(p, b);
    valid = seq.valid;
    n = seq.end > seq.begin ? (seq.end - seq.begin + p.partition_tokens - 1) / p.partition_tokens
                            : 0;
  }
  if (!valid) {
    out[d] = FromFloat<T>(__int_as_float(0x7fc00000));
    return;
  }
  if (n == 0) {
    out[d] = FromFloat<T>(0.f);
    return;
  }
  const int64_t row0 = head_row * p.num_partitions;
  const float* lse = p.part_lse + row0;
  float m = -INFINITY;
  for (int i = 0; i < n; ++i) m = fmaxf(m, lse[i]);
  if constexpr (kSelect) {
    // Partitions of empty spans have lse -inf (all of them: no key, zeros); a malformed span's
    // partition has NaN, which fmaxf skips.
    bool nan = false;
    for (int i = 0; i < n; ++i) nan = nan || isnan(lse[i]);
    if (nan || m == -INFINITY) {
      out[d] = FromFloat<T>(nan ? __int_as_float(0x7fc00000) : 0.f);
      return;
    }
  }
  float wsum = 0.f, acc = 0.f;
  for (int i = 0; i < n; ++i) {
    const float w = exp2f(lse[i] - m);
    wsum += w;
    acc = fmaf(w, p.part_out[(row0 + i) * D + d], acc);
  }
  out[d] = FromFloat<T>(acc / wsum);
}

bool Aligned16Host(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

int HeadChunks(int group) { return (group + kHeadsPerBlock - 1) / kHeadsPerBlock; }

template <typename T, int D, bool kSelect>
cudaError_t PlanImpl(const DecodeAttentionShape& s, DecodeAttentionPlan* plan) {
  using Geo = Geometry<D, kSelect>;
  const int group = s.num_q_heads / s.num_kv_heads;
  const int head_chunks = HeadChunks(group);
  const size_t smem = Geo::kSmemBytes;
  int device = 0;
  LV_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  int num_sms = s.num_sms;
  if (num_sms <= 0) {
    LV_CUDA_RETURN_IF_ERROR(
        cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, device));
  }
  int optin = 0;
  LV_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  LV_CUDA_REQUIRE(smem <= static_cast<size_t>(optin));
  LV_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(DecodeAttentionKernel<T, D, kSelect>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(smem)));
  // All shared memory, no L1 preference: two blocks (2 x ~108 KB) per SM.
  LV_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(DecodeAttentionKernel<T, D, kSelect>,
                                               cudaFuncAttributePreferredSharedMemoryCarveout,
                                               cudaSharedmemCarveoutMaxShared));
  // Dense: keys; selection: spans (each up to page_size keys, whole spans per partition).
  const int64_t eff = kSelect ? s.max_spans
                              : (s.window > 0 ? std::min(s.max_kv_len, s.window) : s.max_kv_len);
  int64_t part = kSelect ? s.partition_spans : s.partition_tokens;
  if (part == 0) {
    // Partitions of whole block-chunks (kWarps * kChunk keys; selection: kWarps spans). Up to
    // twice the count that fills the GPU's block slots (kBlocksPerSm per SM), pick the one that
    // minimises waves x keys per partition; ties go to fewer partitions (less workspace
    // traffic, no combine when one). More partitions only trade wave quantisation for combine
    // traffic.
    const int64_t unit = static_cast<int64_t>(kWarps) * (kSelect ? 1 : kChunk);
    const int64_t pairs = static_cast<int64_t>(s.batch_size) * s.num_kv_heads * head_chunks;
    const int64_t slots = static_cast<int64_t>(num_sms) * kBlocksPerSm;
    const int64_t max_parts = std::max<int64_t>(
        1, std::min<int64_t>({(eff + unit - 1) / unit, 2 * ((slots + pairs - 1) / pairs),
                              65535 / head_chunks}));
    int64_t best_cost = INT64_MAX;
    part = (eff + unit - 1) / unit * unit;
    for (int64_t n = 1; n <= max_parts; ++n) {
      const int64_t len = ((eff + n - 1) / n + unit - 1) / unit * unit;
      const int64_t n_eff = (eff + len - 1) / len;
      const int64_t waves = (pairs * n_eff + slots - 1) / slots;
      const int64_t cost = waves * len;
      if (cost < best_cost) {
        best_cost = cost;
        part = len;
      }
    }
  }
  const int64_t num_parts = (eff + part - 1) / part;
  LV_CUDA_REQUIRE(num_parts >= 1 && num_parts * head_chunks <= 65535 && part <= INT_MAX);
  if constexpr (kSelect) {  // virtual chunk indices of a row fit an int
    LV_CUDA_REQUIRE((num_parts * part) * ((s.page_size + kChunk - 1) / kChunk) +
                        kWarps * kChunk <=
                    INT_MAX);
  }
  plan->shape = s;
  plan->partition_tokens = kSelect ? 0 : static_cast<int>(part);
  plan->partition_spans = kSelect ? static_cast<int>(part) : 0;
  plan->num_partitions = static_cast<int>(num_parts);
  plan->smem_bytes = smem;
  plan->workspace_bytes =
      num_parts > 1 ? static_cast<size_t>(s.batch_size) * s.num_q_heads * num_parts * (D + 1) *
                          sizeof(float)
                    : 0;
  return cudaSuccess;
}

template <typename T, int D, bool kSelect>
cudaError_t RunImpl(const DecodeAttentionPlan& plan, Params p, cudaStream_t stream) {
  const DecodeAttentionShape& s = plan.shape;
  p.chunks_per_span = (s.page_size + kChunk - 1) /
                      kChunk;
  const dim3 grid(static_cast<unsigned>(plan.num_partitions) * p.num_head_chunks,
                  static_cast<unsigned>(s.num_kv_heads), static_cast<unsigned>(s.batch_size));
  LV_CUDA_RETURN_IF_ERROR(detail::LaunchPdl(DecodeAttentionKernel<T, D, kSelect>, grid,
                                            dim3(kThreads), plan.smem_bytes, stream, p));
  if (plan.num_partitions > 1) {
    // Programmatic dependent launch: the combine's blocks are launched while the main kernel
    // runs (it signals at its start) and wait in griddepcontrol.wait for its completion and
    // memory, which hides the launch gap between the two (~µs at B = 1). Graph-capturable.
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(static_cast<unsigned>(s.num_q_heads), static_cast<unsigned>(s.batch_size));
    cfg.blockDim = dim3(D);
    cfg.dynamicSmemBytes = 0;
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    LV_CUDA_RETURN_IF_ERROR(cudaLaunchKernelEx(&cfg, DecodeCombineKernel<T, D, kSelect>, p));
  }
  return cudaSuccess;
}

}  // namespace

cudaError_t PlanDecodeAttention(const DecodeAttentionShape& s, DecodeAttentionPlan* plan) {
  LV_CUDA_REQUIRE(plan != nullptr);
  LV_CUDA_REQUIRE(s.num_q_heads >= 1 && s.num_kv_heads >= 1 &&
                  s.num_q_heads % s.num_kv_heads == 0 && s.num_kv_heads <= 65535);
  LV_CUDA_REQUIRE(s.batch_size >= 1 && s.batch_size <= 65535 && s.num_q_heads <= 65535);
  LV_CUDA_REQUIRE(s.max_spans >= 0);
  if (s.max_spans > 0) {  // selection mode
    LV_CUDA_REQUIRE(s.page_size >= 1 && s.window == 0 && s.partition_spans >= 0);
    LV_CUDA_REQUIRE(s.rope_hi_rows >= 1 && s.max_position >= 0 &&
                    s.max_position < static_cast<int64_t>(s.rope_hi_rows) * kRopeLoRows);
    LV_DISPATCH_DTYPE(s.dtype, T, {
      LV_DISPATCH_HEAD_DIM(s.head_dim, kHeadDim,
                           { return PlanImpl<T, kHeadDim, true>(s, plan); });
    });
  }
  LV_CUDA_REQUIRE(s.page_size >= 1 && s.max_kv_len >= 1 && s.window >= 0 &&
                  s.partition_tokens >= 0);
  LV_CUDA_REQUIRE(s.rope_hi_rows >= 1 && s.max_position >= s.max_kv_len - 1 &&
                  s.max_position < static_cast<int64_t>(s.rope_hi_rows) * kRopeLoRows);
  LV_DISPATCH_DTYPE(s.dtype, T, {
    LV_DISPATCH_HEAD_DIM(s.head_dim, kHeadDim, { return PlanImpl<T, kHeadDim, false>(s, plan); });
  });
}

cudaError_t RunDecodeAttention(const DecodeAttentionPlan& plan, const DecodeAttentionArgs& a,
                               void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  const DecodeAttentionShape& s = plan.shape;
  const bool select = s.max_spans > 0;
  LV_CUDA_REQUIRE(plan.num_partitions >= 1);
  LV_CUDA_REQUIRE(select ? plan.partition_spans >= 1 : plan.partition_tokens >= 1);
  LV_CUDA_REQUIRE(a.q != nullptr && a.out != nullptr && a.pages != nullptr &&
                  a.rope_lo != nullptr && a.rope_hi != nullptr);
  if (select) {
    LV_CUDA_REQUIRE(a.spans != nullptr && a.span_offsets != nullptr &&
                    (reinterpret_cast<uintptr_t>(a.spans) & 7u) == 0);
  } else {
    LV_CUDA_REQUIRE(a.block_tables != nullptr && a.kv_lens != nullptr &&
                    a.block_table_stride >= 1);
  }
  LV_CUDA_REQUIRE(Aligned16Host(a.q) && Aligned16Host(a.out) && Aligned16Host(a.pages) &&
                  Aligned16Host(a.rope_lo) && Aligned16Host(a.rope_hi));
  LV_CUDA_REQUIRE(a.page_stride % 8 == 0 && a.k_offset % 8 == 0 && a.v_offset % 8 == 0 &&
                  a.k_offset >= 0 && a.v_offset >= 0);
  const int64_t packed_q = static_cast<int64_t>(s.num_q_heads) * s.head_dim;
  LV_CUDA_REQUIRE(a.q_row_stride == 0 || (a.q_row_stride >= packed_q && a.q_row_stride % 8 == 0));
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
  p.q_row_stride = a.q_row_stride > 0 ? a.q_row_stride : packed_q;
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
  p.num_head_chunks = HeadChunks(p.group);
  p.page_size = s.page_size;
  p.page_shift = -1;
  for (int sh = 0; sh < 31; ++sh) {
    if ((1 << sh) == s.page_size) p.page_shift = sh;
  }
  p.window = s.window;
  p.rope_hi_rows = s.rope_hi_rows;
  p.partition_tokens = plan.partition_tokens;
  p.num_partitions = plan.num_partitions;
  p.spans = a.spans;
  p.span_offsets = a.span_offsets;
  p.spans_per_kv_head = s.spans_per_kv_head ? 1 : 0;
  p.max_spans = s.max_spans;
  p.partition_spans = plan.partition_spans;
  p.chunks_per_span = 1;  // set by RunImpl
  if (select) {
    LV_DISPATCH_DTYPE(s.dtype, T, {
      LV_DISPATCH_HEAD_DIM(s.head_dim, kHeadDim,
                           { return RunImpl<T, kHeadDim, true>(plan, p, stream); });
    });
  }
  LV_DISPATCH_DTYPE(s.dtype, T, {
    LV_DISPATCH_HEAD_DIM(s.head_dim, kHeadDim,
                         { return RunImpl<T, kHeadDim, false>(plan, p, stream); });
  });
}

}  // namespace longview::cuda
