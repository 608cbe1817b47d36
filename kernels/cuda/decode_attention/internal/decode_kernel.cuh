// The split-KV main kernel (dense and selection) of decode attention (kernels/cuda/decode_attention/internal):
// included by decode_attention.cu only, inside its anonymous namespace (one translation unit).
#pragma once
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
  float* scores = nullptr;  // selection with scores: query head g0's row of this row's scores
  int scores_stride = 0;
  int64_t pos_part = 0;  // dense: position of key part_begin
  {
    bool valid, empty;
    if constexpr (kSelect) {
      const RowRange row = GetRow(p, b, kvh);
      valid = row.valid;
      empty = row.n_spans <= 0;
      row_span0 = row.begin;
      if (p.scores != nullptr) {
        const int64_t base = p.scores_base[b];
        if (base >= 0) {
          scores_stride = p.scores_stride[b];
          scores = p.scores + base + (static_cast<int64_t>(kvh) * G + g0) * scores_stride;
        }
      }
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
        if (p.lse != nullptr && tid < n_heads) {
          p.lse[head_row0 + tid] = valid ? -INFINITY : __int_as_float(0x7fc00000);
        }
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
  int nx_page = 0, nx_slot = 0, nx_n = 0, nx_pos = 0, nx_key = 0;
  bool bad = false;  // selection: a malformed span was met
  auto load_pages = [&](int i) {
    if constexpr (kSelect) {
      nx_n = 0;
      if (i < my_chunks) {
        const int vc = part_begin + warp + i * kWarps;
        const int si = p.chunks_per_span == 1 ? vc : vc / p.chunks_per_span;
        const int piece_off = (vc - si * p.chunks_per_span) * kChunk;
        const KvSpan* sp = p.spans + row_span0 + si;
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
          if (scores != nullptr) nx_key = __ldg(p.span_keys + row_span0 + si) + piece_off;
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
        reinterpret_cast<int*>(st + Geo::kKvUnits + Geo::kRopeUnits)[1] = nx_key;
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
    if constexpr (kSelect) {
      // KV policies: the scaled scores of the chunk's keys, normalised after the combine
      // (kernels/cuda/key_stats: RunKeyStatsFromScores).
      if (scores != nullptr && gq < n_heads) {
        const int key0 = reinterpret_cast<const int*>(st + Geo::kKvUnits + Geo::kRopeUnits)[1];
        float* dst = scores + static_cast<int64_t>(gq) * scores_stride + key0;
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = (e >> 1) * 8 + 2 * cq + (e & 1);
          if (col < n_valid) dst[col] = s[e];
        }
      }
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
      if (p.lse != nullptr && d0 == 0) {
        p.lse[head_row0 + g] = kSelect && bad ? __int_as_float(0x7fc00000)
                               : sum > 0.f    ? mx + log2f(sum)
                                              : -INFINITY;
      }
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
