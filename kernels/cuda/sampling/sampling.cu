// GPU sampling, one block of 1024 threads per row. See sampling.h for the semantics.
//
// Passes over the row (logits stay in global memory / L2; nothing is sorted or copied):
//   A. max, lowest argmax and sum exp(logit - max) (online softmax, fixed-order block reduction):
//      greedy rows end here; every row's logprob uses max and the sum.
//   B. top-k: radix select of the k-th largest key by counts, digits of 11/11/10 bits (3 passes,
//      shared-memory histograms of 2048 bins). Gives the cut key K and how many of the tokens
//      equal to K are kept (the lowest ids: ties go to the lower id).
//   C. weight of the kept set: one histogram pass of integer weights (2^45 fixed point) by the
//      top 11 bits of the key; top-p continues the radix select by weight (2 more passes) to the
//      cut key P and the number of tokens at P it keeps.
//   D. draw: r = floor(U * kept_weight / 2^64); tiles of 8192 ids in id order, two block scans
//      per tile (rank among the tokens tied at the cut, then kept weight); the thread whose
//      interval holds r finds the token. Stops at the tile that holds it.
// The kept set is always {key > cut} plus the `cut_ties` lowest ids with key == cut, where the key
// is the order-preserving 32-bit image of the logit (NaN -> -inf, -0 -> +0). Ordering by logit
// equals ordering by weight, ties by id, as engine/sampler.cc sorts.
#include <cmath>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/sampling/sampling.h"

namespace longview::cuda {
namespace {

using u64 = unsigned long long;  // the type of the 64-bit atomics and shuffles

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kBins = 2048;  // 11-bit digits (the last one has 10 bits)
constexpr int kBinsPerThread = kBins / kThreads;
constexpr int kLevels = 3;
constexpr int kPerThread = 8;       // ids per thread in a draw tile
constexpr int kMaxVocab = 1 << 18;  // kMaxVocab * 2^45 < 2^64: integer weight sums never wrap
constexpr int kMassBits = 45;
constexpr u64 kOne = 1ull << kMassBits;          // the weight of the largest logit
constexpr float kMassScale = 35184372088832.0f;  // 2^45
constexpr unsigned kFull = 0xffffffffu;

static_assert(kBins % kThreads == 0 && kWarps == 32);

__device__ __forceinline__ int Shift(int level) { return level == 0 ? 21 : level == 1 ? 10 : 0; }
// Bits above the digit of `level`: the prefix chosen at the previous levels.
__device__ __forceinline__ uint32_t HighMask(int level) {
  return level == 0 ? 0u : level == 1 ? 0xffe00000u : 0xfffffc00u;
}
__device__ __forceinline__ uint32_t Digit(uint32_t key, int level) {
  return (key >> Shift(level)) & (level == 2 ? 0x3ffu : 0x7ffu);
}

__device__ __forceinline__ float Sanitize(float l) {
  return l != l ? -INFINITY : (l == 0.f ? 0.f : l);
}
// Order-preserving image of a sanitized float: a > b <=> Key(a) > Key(b). Key(-inf) = 0x007fffff,
// so a cut key of 0 keeps every token.
__device__ __forceinline__ uint32_t Key(float l) {
  const uint32_t b = __float_as_uint(l);
  return (b & 0x80000000u) != 0 ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float KeyToLogit(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) != 0 ? (key & 0x7fffffffu) : ~key);
}
// exp((l - m) / T) as an integer multiple of 2^-45, rounded down; the largest logit weighs 2^45.
__device__ __forceinline__ u64 Weight(float l, float m, float inv_t) {
  if (l == m) return kOne;
  return static_cast<u64>(expf((l - m) * inv_t) * kMassScale);
}

// Philox4x32-10 (Salmon et al., SC'11).
__device__ __forceinline__ uint4 Philox(uint4 c, uint2 k) {
#pragma unroll
  for (int r = 0; r < 10; ++r) {
    const uint32_t hi0 = __umulhi(0xD2511F53u, c.x), lo0 = 0xD2511F53u * c.x;
    const uint32_t hi1 = __umulhi(0xCD9E8D57u, c.z), lo1 = 0xCD9E8D57u * c.z;
    c = make_uint4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    k.x += 0x9E3779B9u;
    k.y += 0xBB67AE85u;
  }
  return c;
}
__device__ __forceinline__ u64 Uniform64(u64 seed, u64 counter) {
  const uint4 out = Philox(
      make_uint4(0u, 0u, static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32)),
      make_uint2(static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)));
  return (static_cast<u64>(out.y) << 32) | out.x;
}

struct Shared {
  uint32_t count[kBins];
  u64 mass[kBins];
  u64 scan[kWarps];
  float red_m[kWarps];
  float red_s[kWarps];
  int red_i[kWarps];
  float max_logit;
  float sum_exp;
  int argmax;
  int bin;
  u64 above;
  int token;
};

// Exclusive prefix sum over the block in thread order; *total = the block's sum.
__device__ u64 BlockExclusiveScan(u64 v, Shared& sh, u64* total) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  u64 incl = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const u64 t = __shfl_up_sync(kFull, incl, o);
    if (lane >= o) incl += t;
  }
  if (lane == 31) sh.scan[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    u64 w = sh.scan[lane];
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const u64 t = __shfl_up_sync(kFull, w, o);
      if (lane >= o) w += t;
    }
    sh.scan[lane] = w;
  }
  __syncthreads();
  const u64 base = warp > 0 ? sh.scan[warp - 1] : 0;
  *total = sh.scan[kWarps - 1];
  __syncthreads();  // sh.scan is reused by the next call
  return base + incl - v;
}

// Online softmax state of a set of logits: max, sum exp(l - max), lowest id of the max.
struct MaxSum {
  float m;
  float s;
  int i;
};
__device__ __forceinline__ MaxSum Merge(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.m, b.m);
  float s = 0.f;
  if (a.m != -INFINITY) s += a.s * expf(a.m - m);
  if (b.m != -INFINITY) s += b.s * expf(b.m - m);
  const int i = a.m > b.m ? a.i : b.m > a.m ? b.i : min(a.i, b.i);
  return {m, s, i};
}

// Pass A. Results in sh.max_logit, sh.sum_exp, sh.argmax.
__device__ void MaxSumPass(const float* __restrict__ x, int vocab, Shared& sh) {
  MaxSum st{-INFINITY, 0.f, 0x7fffffff};
  for (int i = threadIdx.x; i < vocab; i += kThreads) {
    const float l = Sanitize(x[i]);
    if (l == -INFINITY) continue;
    if (l > st.m) {
      st.s = st.s * expf(st.m - l) + 1.f;
      st.m = l;
      st.i = i;
    } else {
      st.s += expf(l - st.m);
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const MaxSum other{__shfl_xor_sync(kFull, st.m, o), __shfl_xor_sync(kFull, st.s, o),
                       __shfl_xor_sync(kFull, st.i, o)};
    st = Merge(st, other);
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) {
    sh.red_m[warp] = st.m;
    sh.red_s[warp] = st.s;
    sh.red_i[warp] = st.i;
  }
  __syncthreads();
  if (warp == 0) {
    st = MaxSum{sh.red_m[lane], sh.red_s[lane], sh.red_i[lane]};
    for (int o = 16; o > 0; o >>= 1) {
      const MaxSum other{__shfl_xor_sync(kFull, st.m, o), __shfl_xor_sync(kFull, st.s, o),
                         __shfl_xor_sync(kFull, st.i, o)};
      st = Merge(st, other);
    }
    if (lane == 0) {
      sh.max_logit = st.m;
      sh.sum_exp = st.s;
      sh.argmax = st.i;
    }
  }
  __syncthreads();
}

// Histogram, by the digit of `level`, of the tokens with key > lo_key whose higher digits equal
// `prefix`: counts (kMass false) or integer weights (kMass true).
template <bool kMass>
__device__ void HistogramPass(const float* __restrict__ x, int vocab, uint32_t lo_key, int level,
                              uint32_t prefix, float m, float inv_t, Shared& sh) {
  for (int b = threadIdx.x; b < kBins; b += kThreads) {
    if constexpr (kMass) {
      sh.mass[b] = 0;
    } else {
      sh.count[b] = 0;
    }
  }
  __syncthreads();
  const uint32_t high = HighMask(level);
  for (int i = threadIdx.x; i < vocab; i += kThreads) {
    const float l = Sanitize(x[i]);
    const uint32_t key = Key(l);
    if (key > lo_key && (key & high) == prefix) {
      if constexpr (kMass) {
        const u64 q = Weight(l, m, inv_t);
        if (q != 0) atomicAdd(&sh.mass[Digit(key, level)], q);
      } else {
        atomicAdd(&sh.count[Digit(key, level)], 1u);
      }
    }
  }
  __syncthreads();
}

// Walking the bins from the top, the bin b where the running sum reaches `need` (>= 1, at most
// the sum of all bins): above(b) < need <= above(b) + v[b], above(b) = sum of the bins over b.
// Returns b; *above = above(b).
template <bool kMass>
__device__ int FindBin(u64 need, Shared& sh, u64* above) {
  const int b1 = kBins - 1 - kBinsPerThread * threadIdx.x;  // this thread's bins, descending
  u64 v[kBinsPerThread];
  u64 local = 0;
#pragma unroll
  for (int j = 0; j < kBinsPerThread; ++j) {
    v[j] = kMass ? sh.mass[b1 - j] : static_cast<u64>(sh.count[b1 - j]);
    local += v[j];
  }
  u64 total;
  u64 run = BlockExclusiveScan(local, sh, &total);
  if (run < need && need <= run + local) {
#pragma unroll
    for (int j = 0; j < kBinsPerThread; ++j) {
      if (need <= run + v[j]) {
        sh.bin = b1 - j;
        sh.above = run;
        break;
      }
      run += v[j];
    }
  }
  __syncthreads();
  *above = sh.above;
  const int bin = sh.bin;
  __syncthreads();
  return bin;
}

// Adds the tie group (ties tokens with key lo_key, weight q each) to the weight histogram of
// `level` if it matches `prefix`.
__device__ void AddTieGroup(uint32_t lo_key, uint32_t ties, u64 q, int level, uint32_t prefix,
                            Shared& sh) {
  if (threadIdx.x == 0 && ties > 0 && (lo_key & HighMask(level)) == prefix) {
    sh.mass[Digit(lo_key, level)] += static_cast<u64>(ties) * q;
  }
  __syncthreads();
}

// Pass D: the token whose interval of kept weight, in id order, contains r (< kept weight).
// Returns -1 only if r is past the kept weight (not reachable).
__device__ int DrawPass(const float* __restrict__ x, int vocab, uint32_t cut_key, uint32_t cut_ties,
                        float m, float inv_t, u64 r, Shared& sh) {
  if (threadIdx.x == 0) sh.token = -1;
  __syncthreads();
  u64 mass_base = 0, tie_base = 0;
  for (int tile = 0; tile < vocab; tile += kThreads * kPerThread) {
    const int i0 = tile + threadIdx.x * kPerThread;
    float l[kPerThread];
    u64 ties = 0;
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
      l[j] = i0 + j < vocab ? Sanitize(x[i0 + j]) : -INFINITY;
      ties += (i0 + j < vocab && Key(l[j]) == cut_key) ? 1 : 0;
    }
    u64 tie_total;
    const u64 tie_rank0 = tie_base + BlockExclusiveScan(ties, sh, &tie_total);
    u64 mass = 0;
    u64 rank = tie_rank0;
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
      const uint32_t key = Key(l[j]);
      bool kept = key > cut_key;
      if (i0 + j < vocab && key == cut_key) kept = rank++ < cut_ties;
      if (kept) mass += Weight(l[j], m, inv_t);
    }
    u64 mass_total;
    const u64 start = mass_base + BlockExclusiveScan(mass, sh, &mass_total);
    if (start <= r && r < start + mass) {
      u64 cum = start;
      rank = tie_rank0;
      for (int j = 0; j < kPerThread; ++j) {
        const uint32_t key = Key(l[j]);
        bool kept = key > cut_key;
        if (i0 + j < vocab && key == cut_key) kept = rank++ < cut_ties;
        if (kept) cum += Weight(l[j], m, inv_t);
        if (r < cum) {
          sh.token = i0 + j;
          break;
        }
      }
    }
    __syncthreads();
    if (sh.token >= 0) break;  // uniform: read by every thread after the barrier
    mass_base += mass_total;
    tie_base += tie_total;
  }
  const int token = sh.token;
  __syncthreads();
  return token;
}

__global__ void __launch_bounds__(kThreads)
    SamplingKernel(const float* __restrict__ logits, int64_t stride, int vocab,
                   const float* __restrict__ temperature, const int32_t* __restrict__ top_k,
                   const float* __restrict__ top_p, const uint64_t* __restrict__ seed,
                   const uint64_t* __restrict__ counter, int32_t* __restrict__ tokens,
                   float* __restrict__ logprobs) {
  __shared__ Shared sh;
  const int row = blockIdx.x;
  const float* x = logits + row * stride;
  MaxSumPass(x, vocab, sh);
  const float m = sh.max_logit;
  if (m == -INFINITY) {  // nothing has probability: token 0, as engine/sampler.cc
    if (threadIdx.x == 0) {
      tokens[row] = 0;
      if (logprobs != nullptr) logprobs[row] = -INFINITY;
    }
    return;
  }
  const float t = temperature[row];
  const int k = top_k != nullptr ? top_k[row] : 0;
  int token = sh.argmax;
  if (t > 0.f && k != 1) {
    const float inv_t = 1.f / t;
    // The candidate set: key > cut_key, plus the cut_ties lowest ids with key == cut_key.
    uint32_t cut_key = 0, cut_ties = 0;
    if (k > 1 && k < vocab) {
      uint32_t prefix = 0;
      u64 need = static_cast<u64>(k);
      for (int level = 0; level < kLevels; ++level) {
        HistogramPass<false>(x, vocab, 0u, level, prefix, m, inv_t, sh);
        u64 above;
        const int bin = FindBin<false>(need, sh, &above);
        need -= above;
        prefix |= static_cast<uint32_t>(bin) << Shift(level);
      }
      cut_key = prefix;
      cut_ties = static_cast<uint32_t>(need);
    }
    const uint32_t lo_key = cut_key, lo_ties = cut_ties;
    const u64 lo_q = lo_ties > 0 ? Weight(KeyToLogit(lo_key), m, inv_t) : 0;
    HistogramPass<true>(x, vocab, lo_key, 0, 0u, m, inv_t, sh);
    AddTieGroup(lo_key, lo_ties, lo_q, 0, 0u, sh);
    u64 kept_mass;
    {
      u64 local = 0;
      for (int j = 0; j < kBinsPerThread; ++j) local += sh.mass[threadIdx.x * kBinsPerThread + j];
      (void)BlockExclusiveScan(local, sh, &kept_mass);
    }
    const float p = top_p != nullptr ? top_p[row] : 1.f;
    if (p < 1.f) {
      const double want = ceil(static_cast<double>(p) * static_cast<double>(kept_mass));
      u64 need = want < 1.0                               ? 1
                 : want >= static_cast<double>(kept_mass) ? kept_mass
                                                          : static_cast<u64>(want);
      const u64 target = need;
      uint32_t prefix = 0;
      for (int level = 0; level < kLevels; ++level) {
        if (level > 0) {
          HistogramPass<true>(x, vocab, lo_key, level, prefix, m, inv_t, sh);
          AddTieGroup(lo_key, lo_ties, lo_q, level, prefix, sh);
        }
        u64 above;
        const int bin = FindBin<true>(need, sh, &above);
        need -= above;
        prefix |= static_cast<uint32_t>(bin) << Shift(level);
      }
      // Tokens with key > prefix weigh target - need < target; take ties at `prefix` (all of
      // weight q > 0) in id order until the target is reached.
      const u64 q = Weight(KeyToLogit(prefix), m, inv_t);
      const u64 ties = (need + q - 1) / q;
      cut_key = prefix;
      cut_ties = static_cast<uint32_t>(ties);
      kept_mass = target - need + ties * q;
    }
    const u64 s = seed != nullptr ? seed[row] : 0;
    const u64 c = counter != nullptr ? counter[row] : 0;
    const u64 r = __umul64hi(Uniform64(s, c), kept_mass);
    const int drawn = DrawPass(x, vocab, cut_key, cut_ties, m, inv_t, r, sh);
    if (drawn >= 0) token = drawn;
  }
  if (threadIdx.x == 0) {
    tokens[row] = token;
    if (logprobs != nullptr) logprobs[row] = (Sanitize(x[token]) - m) - logf(sh.sum_exp);
  }
}

}  // namespace

cudaError_t PlanSampling(const SamplingShape& shape, SamplingPlan* plan) {
  LV_CUDA_REQUIRE(plan != nullptr);
  LV_CUDA_REQUIRE(shape.max_rows >= 1 && shape.vocab_size >= 1 && shape.vocab_size <= kMaxVocab);
  plan->shape = shape;
  plan->workspace_bytes = 0;
  return cudaSuccess;
}

cudaError_t RunSampling(const SamplingPlan& plan, const SamplingArgs& a, void* workspace,
                        size_t workspace_bytes, cudaStream_t stream) {
  const SamplingShape& s = plan.shape;
  LV_CUDA_REQUIRE(s.max_rows >= 1 && s.vocab_size >= 1 && s.vocab_size <= kMaxVocab);
  LV_CUDA_REQUIRE(a.num_rows >= 0 && a.num_rows <= s.max_rows);
  LV_CUDA_REQUIRE(workspace_bytes >= plan.workspace_bytes &&
                  (plan.workspace_bytes == 0 || workspace != nullptr));
  LV_CUDA_REQUIRE(a.logits != nullptr && a.temperature != nullptr && a.tokens != nullptr);
  const int64_t stride = a.logits_stride != 0 ? a.logits_stride : s.vocab_size;
  LV_CUDA_REQUIRE(stride >= s.vocab_size);
  if (a.num_rows == 0) return cudaSuccess;
  SamplingKernel<<<static_cast<unsigned>(a.num_rows), kThreads, 0, stream>>>(
      a.logits, stride, s.vocab_size, a.temperature, a.top_k, a.top_p, a.seed, a.counter, a.tokens,
      a.logprobs);
  return cudaGetLastError();
}

}  // namespace longview::cuda
