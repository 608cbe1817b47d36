// CPU reference of HiP's hierarchical pruning (InfiniteHiP, arXiv 2502.08910): which key
// chunks of a sequence's middle — between its sinks and its sliding window — a block of
// queries reads. Exact and single-minded: it is the oracle the CUDA pruning kernels are
// checked against, and the CPU backend's implementation of attention mode `hip`.
//
// One stage takes candidate ranges of token indices (the whole middle for the first stage, the
// previous stage's survivors after it), cuts each into chunks of `chunk` tokens (the last one of
// a range may be shorter), gives every chunk a score and keeps the `keep / chunk` best. A chunk's
// score comes from one of its keys, found by binary descent: split the chunk in two halves,
// probe one key of each half (the middle key of the half, HipProbe), go on into the half whose
// probe scored higher, until one key is left; the chunk's score is that key's. A key's score is
// the largest q·k over the block's queries and the query heads of its KV head's group, the keys
// rotated to their own token positions (keys are cached before RoPE). Every KV head chooses its
// own chunks.
//
//   HipMaskParams p{.num_q_heads = 32, .num_kv_heads = 8, .head_dim = 128};
//   std::vector<HipRange> middle = {{sinks, end}};
//   HipHeadRanges r = HipRefineStage(p, view, rope, q, n_q, {.chunk = 256, .keep = 32768},
//                                    HipHeadRanges(8, middle));
//   r = HipRefineStage(p, view, rope, q, n_q, {.chunk = 32, .keep = 8192}, r);
//   r = HipRefineStage(p, view, rope, q, n_q, {.chunk = 8, .keep = 2048}, r);
//
// Ties go to the earlier key or chunk, so the result is a function of the inputs alone. A stage
// whose candidates hold no more than `keep` tokens keeps all of them (re-cut into its chunks).
// Thread-safety: reentrant; uses a few threads over KV heads.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/paged_attention.h"
#include "kernels/cpu/rope.h"

namespace longview::cpu {

// Token indices [begin, end) of a sequence.
struct HipRange {
  int64_t begin = 0;
  int64_t end = 0;
  bool operator==(const HipRange&) const = default;
};

// One pruning stage: chunks of `chunk` tokens, the best `keep / chunk` of them kept.
struct HipStageParams {
  int64_t chunk = 0;
  int64_t keep = 0;
};

struct HipMaskParams {
  int64_t num_q_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
};

// Per KV head, ranges sorted by begin and disjoint.
using HipHeadRanges = std::vector<std::vector<HipRange>>;

// The key of [begin, end) (end - begin >= 2) the descent probes for that half: its middle.
inline int64_t HipProbe(int64_t begin, int64_t end) { return begin + (end - begin) / 2; }

// One stage over `candidates` (num_kv_heads lists) for the queries q[0, n_q) ([n_q, num_q_heads,
// head_dim], rotated to their positions). The keys of every candidate token must be in the
// view's pages (kv.block_table). Returns the kept chunks per KV head, sorted by begin.
// REQUIRES: stage.chunk >= 1, stage.keep >= stage.chunk, n_q >= 1.
HipHeadRanges HipRefineStage(const HipMaskParams& params, const PagedKvView& kv,
                             const RopeTable& rope, const float* q, int64_t n_q,
                             const HipStageParams& stage, const HipHeadRanges& candidates);

// The stages one after another from the middle [middle.begin, middle.end) (every head).
HipHeadRanges HipSelect(const HipMaskParams& params, const PagedKvView& kv, const RopeTable& rope,
                        const float* q, int64_t n_q, const std::vector<HipStageParams>& stages,
                        HipRange middle);

}  // namespace longview::cpu
