// Constants, parameters, sequence/row ranges and PTX helpers of decode attention (kernels/cuda/decode_attention/internal):
// included by decode_attention.cu only, inside its anonymous namespace (one translation unit).
#pragma once

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
  float* lse;       // nullable: [batch][num_q_heads] log2-sum-exp of the scaled scores
  // Selection mode, nullable: each row's scaled scores (log2 domain) at
  // scores[scores_base[row] + q_head_of_kv_head * scores_stride[row] + key index] for rows with
  // scores_base >= 0, the key index from span_keys (index of a span's first key in its row).
  float* scores;
  const int32_t* span_keys;
  const int64_t* scores_base;
  const int32_t* scores_stride;
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
  const KvSpan* spans;
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

