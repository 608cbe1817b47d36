// The combine kernel (log-sum-exp merge of partitions) of decode attention (kernels/cuda/decode_attention/internal):
// included by decode_attention.cu only, inside its anonymous namespace (one translation unit).
#pragma once
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
  // The merged log2-sum-exp (thread 0), when asked: NaN for an invalid row, -inf without keys.
  auto put_lse = [&](float v) {
    if (p.lse != nullptr && d == 0) p.lse[head_row] = v;
  };
  if (!valid) {
    out[d] = FromFloat<T>(__int_as_float(0x7fc00000));
    put_lse(__int_as_float(0x7fc00000));
    return;
  }
  if (n == 0) {
    out[d] = FromFloat<T>(0.f);
    put_lse(-INFINITY);
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
      put_lse(nan ? __int_as_float(0x7fc00000) : -INFINITY);
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
  put_lse(m + log2f(wsum));
}

bool Aligned16Host(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

int HeadChunks(int group) { return (group + kHeadsPerBlock - 1) / kHeadsPerBlock; }

