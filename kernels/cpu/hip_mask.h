// CPU reference of HiP's hierarchical pruning (InfiniteHiP, arXiv 2502.08910, as its v1.2 code
// runs it; docs/hip.md): which key chunks of a sequence's middle — between its sinks and its
// sliding window — a block of queries reads. Exact and single-minded: it is the oracle the CUDA
// pruning kernels are to be checked against.
//
// One stage takes candidate ranges of token indices (the middle for the first stage, the previous
// stage's survivors after it), cuts each into chunks of `chunk` tokens (the last one of a range may
// be shorter), gives every chunk a score and keeps the `keep / chunk` best. A chunk's score comes
// from a binary descent, run for each query head on its own: split the chunk in two halves, probe
// the middle key of each half (HipProbe), go on into the half whose probe scored higher (the right
// one on a tie), until one key is left, which is probed too; the chunk's score for that head is the
// largest probe score on the way. A probe's score is the largest q·k over the block's queries
// (averaged in groups of the stage's `pool` consecutive queries first, as v1.2 does). The
// chunks are ranked by the largest score over the query heads of the layer (`share_heads`, v1.2's
// default: every KV head keeps the same chunks) or of each KV head's group.
//
// RoPE while pruning is v1.2's "relative" scheme: keys are cached before RoPE and the positions are
// not their own — the left probe key at 0, the right one at 1, the queries (passed before RoPE) at
// `query_position` — so a score depends on the key's content, not on its distance. On the layers
// v1.2 calls dense it is the "streaming" (chunk-indexed) scheme instead (`chunk_indexed`): both
// probe keys of a chunk at the chunk's rank among the stage's chunks, query i at
// min(first_query_position + i, scan chunks + scan_window), where a stage's scan chunks are
// HipScanChunks (stage 0: first_stage_chunks, from the model's context; later: the previous
// stage's keep over this stage's chunk) — later chunks sit closer to the queries.
//
//   HipMaskParams p{.num_q_heads = 32, .num_kv_heads = 8, .head_dim = 128};
//   HipHeadRanges r = HipSelect(p, view, rope, q, n_q,
//                               {{256, 32768}, {32, 8192}, {8, 2048}}, {sinks, middle_end});
//
// Ties between chunks go to the earlier one, so the result is a function of the inputs alone. A
// stage whose candidates hold no more than `keep` tokens keeps all of them (re-cut into chunks).
// Thread-safety: reentrant; uses a few threads over KV heads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/cpu/paged_attention.h"
#include "kernels/hip_stage.h"
#include "kernels/cpu/rope.h"

namespace longview::cpu {

// Token indices [begin, end) of a sequence.
struct HipRange {
  int64_t begin = 0;
  int64_t end = 0;
  bool operator==(const HipRange&) const = default;
};

struct HipMaskParams {
  int64_t num_q_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  bool share_heads = true;       // rank by the max over every query head (else each KV group's)
  int64_t query_position = 769;  // the queries' RoPE position while pruning (v1.2: window - 256 + 1)
  // The chunk-indexed scheme (see above) instead of the relative one.
  bool chunk_indexed = false;
  int64_t first_query_position = 0;  // the first query's own position (queries are consecutive)
  int64_t scan_window = 768;         // v1.2: window - first chunk
  int64_t first_stage_chunks = 0;    // v1.2: ceil((context - sinks - window) / first chunk)
};

// Per KV head, ranges sorted by begin and disjoint.
using HipHeadRanges = std::vector<std::vector<HipRange>>;

// The key the descent probes in the half [begin, end) (end > begin): its middle.
inline int64_t HipProbe(int64_t begin, int64_t end) { return begin + (end - begin) / 2; }

// One stage over `candidates` (num_kv_heads lists) for the queries q[0, n_q) ([n_q, num_q_heads,
// head_dim], before RoPE). The keys of every candidate token must be in the
// view's pages (kv.block_table). Returns the kept chunks per KV head, sorted by begin.
// REQUIRES: stage.chunk >= 1, stage.keep >= stage.chunk, n_q >= 1; with share_heads, every
// head's candidates are the same (candidates[0] is read).
// `scan_chunks` is the stage's HipScanChunks (read by the chunk-indexed scheme only).
HipHeadRanges HipRefineStage(const HipMaskParams& params, const PagedKvView& kv,
                             const RopeTable& rope, const float* q, int64_t n_q,
                             const HipStage& stage, const HipHeadRanges& candidates,
                             int64_t scan_chunks = 0);

// The chunk count stage `i` of `stages` scans at most, for the chunk-indexed scheme.
int64_t HipScanChunks(const HipMaskParams& params, const std::vector<HipStage>& stages, size_t i);

// The stages one after another from the middle [middle.begin, middle.end) (every head).
HipHeadRanges HipSelect(const HipMaskParams& params, const PagedKvView& kv, const RopeTable& rope,
                        const float* q, int64_t n_q, const std::vector<HipStage>& stages,
                        HipRange middle);

}  // namespace longview::cpu
