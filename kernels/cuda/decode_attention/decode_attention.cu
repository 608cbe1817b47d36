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

#include "kernels/kv_selection.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/dispatch.h"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/vec.cuh"

namespace longview::cuda {
namespace {

#include "kernels/cuda/decode_attention/internal/common.cuh"
#include "kernels/cuda/decode_attention/internal/decode_kernel.cuh"
#include "kernels/cuda/decode_attention/internal/combine_kernel.cuh"

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
    // Programmatic dependent launch (pdl.cuh): the combine's blocks are launched while the main
    // kernel runs and wait for its completion and memory, which hides the launch gap between the
    // two (~µs at B = 1). Graph-capturable.
    LV_CUDA_RETURN_IF_ERROR(detail::LaunchPdl(
        DecodeCombineKernel<T, D, kSelect>,
        dim3(static_cast<unsigned>(s.num_q_heads), static_cast<unsigned>(s.batch_size)), dim3(D),
        0, stream, p));
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
    LV_CUDA_REQUIRE(a.scores == nullptr || (a.span_keys != nullptr && a.scores_base != nullptr &&
                                            a.scores_stride != nullptr && !s.spans_per_kv_head));
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
  p.lse = a.lse;
  p.scores = a.scores;
  p.span_keys = a.span_keys;
  p.scores_base = a.scores_base;
  p.scores_stride = a.scores_stride;
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
