// GPU tests of HiP's pruning stage (kernels/cuda/hip_mask) against the CPU reference
// (kernels/cpu/hip_mask.h, HipRefineStage / HipSelect with share_heads): the kept chunks of every
// block, stage by stage and chained, must be the CPU's exactly. Keys are random and equal on both
// sides (the bf16 / fp16 values, widened to float for the CPU), queries too; pages are shuffled
// and unused slots are NaN (a probe of a wrong key drops out of the max and turns the descent
// right, which shows as other kept chunks, though not in every case). Cases: the relative RoPE scheme
// (decode rows, several blocks of different lengths, some too short to prune), the chunk-indexed
// scheme with pooled queries, odd page and chunk sizes, head_dim 64 and 128, both dtypes, the
// paper's stage sizes at 48k tokens, more ranges and chunks than one CTA's tile, queries at their
// own (strided, per-block) positions and below the chunks' ranks, and argument checks. Random inputs from the logged seed
// (LV_TEST_SEED=<n> to repeat). Run: gpu_kernel_tests --gtest_filter='HipMaskGpu.*'.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/attention/attention_spec.h"
#include "engine/attention/hip.h"
#include "gtest/gtest.h"
#include "kernels/cpu/hip_mask.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/hip_mask/hip_mask.h"
#include "tests/gpu/gpu_test_util.h"

namespace longview::cuda {
namespace {

struct HipCase {
  DType dtype = DType::kBF16;
  int head_dim = 128;
  int num_q_heads = 8;
  int num_kv_heads = 2;
  int page_size = 16;
  std::vector<int64_t> tokens;  // per block: the sequence's length; the middle is [sinks, len)
  int64_t sinks = 4;
  int num_queries = 1;  // before pooling
  std::vector<HipStage> stages;
  bool chunk_indexed = false;
  int64_t scan_window = 768;
  // Chunk-indexed: block b's first query at first_query_position + 37 b (-1: its last tokens).
  int64_t first_query_position = -1;
};

// One K pool (one layer, [token][kv_head][head_dim] per page, V not needed by pruning), float for
// the CPU and dtype bits for the GPU, with a shuffled block table per block.
struct KeyPool {
  int64_t page_elems = 0;
  std::vector<float> f;
  std::vector<uint16_t> bits;
  std::vector<std::vector<int32_t>> tables;
};

KeyPool MakePool(const HipCase& c, std::mt19937_64& rng) {
  KeyPool p;
  p.page_elems = static_cast<int64_t>(c.page_size) * c.num_kv_heads * c.head_dim;
  int64_t pages = 0;
  for (int64_t t : c.tokens) pages += (t + c.page_size - 1) / c.page_size;
  p.f.assign(static_cast<size_t>((pages + 1) * p.page_elems), NAN);
  p.bits.assign(p.f.size(), kPoison);
  std::vector<int32_t> ids(pages);
  for (int64_t i = 0; i < pages; ++i) ids[i] = static_cast<int32_t>(i + 1);  // page 0 unused
  std::shuffle(ids.begin(), ids.end(), rng);
  std::normal_distribution<float> normal;
  size_t next = 0;
  const int64_t row = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
  for (int64_t t : c.tokens) {
    std::vector<int32_t> table;
    for (int64_t tok = 0; tok < t; tok += c.page_size) table.push_back(ids[next++]);
    for (int64_t tok = 0; tok < t; ++tok) {
      const int64_t base = table[tok / c.page_size] * p.page_elems + (tok % c.page_size) * row;
      for (int64_t e = 0; e < row; ++e) {
        const uint16_t b = ToBits(normal(rng), c.dtype);
        p.bits[base + e] = b;
        p.f[base + e] = FromBits(b, c.dtype);
      }
    }
    p.tables.push_back(std::move(table));
  }
  return p;
}

cpu::PagedKvView View(const HipCase& c, const KeyPool& p, size_t block) {
  return cpu::PagedKvView{.pages = p.f.data(),
                          .page_elements = p.page_elems,
                          .k_offset = 0,
                          .v_offset = 0,
                          .token_stride = static_cast<int64_t>(c.num_kv_heads) * c.head_dim,
                          .page_size = c.page_size,
                          .block_table = p.tables[block].data(),
                          .num_blocks = static_cast<int64_t>(p.tables[block].size())};
}

using Ranges = std::vector<cpu::HipRange>;

std::string Describe(const Ranges& r) {
  std::string s;
  for (size_t i = 0; i < r.size() && i < 12; ++i) {
    s += "[" + std::to_string(r[i].begin) + "," + std::to_string(r[i].end) + ")";
  }
  return s + (r.size() > 12 ? "... (" + std::to_string(r.size()) + ")" : "");
}

// Runs the case's stages on the GPU one after another; after each, compares every block's kept
// chunks with the CPU's HipRefineStage on the same input, then the chain with HipSelect.
// *pruned gets, per stage, how many blocks had more candidates than it keeps (so really pruned).
void RunCase(const HipCase& c, uint64_t seed, std::vector<int64_t>* pruned) {
  pruned->assign(c.stages.size(), 0);
  SCOPED_TRACE(::testing::Message() << "dtype=" << (c.dtype == DType::kBF16 ? "bf16" : "fp16")
                                    << " D=" << c.head_dim << " hq=" << c.num_q_heads
                                    << " hkv=" << c.num_kv_heads << " page=" << c.page_size
                                    << " n_q=" << c.num_queries
                                    << " chunk_indexed=" << c.chunk_indexed);
  std::mt19937_64 rng(seed);
  const KeyPool pool = MakePool(c, rng);
  const int nb = static_cast<int>(c.tokens.size());
  const int64_t qrow = static_cast<int64_t>(c.num_q_heads) * c.head_dim;
  std::normal_distribution<float> normal;
  std::vector<float> q(static_cast<size_t>(nb) * c.num_queries * qrow);
  for (float& x : q) x = FromBits(ToBits(normal(rng), c.dtype), c.dtype);
  int64_t max_pos = 1;
  for (int64_t t : c.tokens) max_pos = std::max(max_pos, t + 4096);
  const std::vector<float> inv_freq =
      cpu::InvFrequencies(cpu::RopeParams{.head_dim = c.head_dim, .theta = 10000.0});
  cpu::RopeTable rope(inv_freq, c.head_dim);
  rope.Reserve(max_pos + 65536);
  const RopeTablesHost tables = BuildRopeTables(inv_freq, max_pos + 65536);

  cpu::HipMaskParams params{.num_q_heads = c.num_q_heads,
                            .num_kv_heads = c.num_kv_heads,
                            .head_dim = c.head_dim,
                            .share_heads = true,
                            .query_position = 769,
                            .chunk_indexed = c.chunk_indexed,
                            .first_query_position = 0,
                            .scan_window = c.scan_window,
                            .first_stage_chunks = 0};
  std::vector<int32_t> first_pos(nb);
  int64_t max_middle = 0;
  for (int b = 0; b < nb; ++b) {
    first_pos[b] = static_cast<int32_t>(c.first_query_position >= 0
                                            ? c.first_query_position + 37 * b
                                            : c.tokens[b] - c.num_queries);
    max_middle = std::max(max_middle, c.tokens[b] - c.sinks);
  }
  params.first_stage_chunks = (max_middle + c.stages[0].chunk - 1) / c.stages[0].chunk;

  // Device inputs.
  DeviceBuffer dpages(pool.bits.size() * 2), dq(q.size() * 4), drope_lo(tables.lo.size() * 4),
      drope_hi(tables.hi.size() * 4), dfirst(nb * 4);
  int bt_stride = 1;
  for (const auto& t : pool.tables) bt_stride = std::max<int>(bt_stride, t.size());
  std::vector<int32_t> bt(static_cast<size_t>(nb) * bt_stride, -1);
  for (int b = 0; b < nb; ++b) std::copy(pool.tables[b].begin(), pool.tables[b].end(), bt.begin() + b * bt_stride);
  DeviceBuffer dbt(bt.size() * 4);
  CUDA_OK(Upload(dpages, pool.bits));
  CUDA_OK(Upload(drope_lo, tables.lo));
  CUDA_OK(Upload(drope_hi, tables.hi));
  CUDA_OK(Upload(dbt, bt));
  CUDA_OK(Upload(dfirst, first_pos));

  // Host state: per block the stage's input ranges (CPU's view), starting with the middle.
  std::vector<Ranges> in(nb);
  for (int b = 0; b < nb; ++b) in[b] = {{c.sinks, c.tokens[b]}};
  std::vector<Ranges> chained = in;
  for (size_t si = 0; si < c.stages.size(); ++si) {
    const HipStage& st = c.stages[si];
    SCOPED_TRACE(::testing::Message() << "stage " << si << " chunk=" << st.chunk
                                      << " keep=" << st.keep << " pool=" << st.pool);
    // Pooled queries as the CPU forms them (float sums in order, then one division).
    const int pool_n = std::max<int64_t>(1, st.pool);
    const int groups = c.num_queries > 1 && pool_n > 1 ? (c.num_queries + pool_n - 1) / pool_n
                                                      : c.num_queries;
    std::vector<float> qp(static_cast<size_t>(nb) * groups * qrow, 0.f);
    for (int b = 0; b < nb; ++b) {
      for (int g = 0; g < groups; ++g) {
        const int first = groups == c.num_queries ? g : g * pool_n;
        const int count = groups == c.num_queries ? 1 : std::min(pool_n, c.num_queries - first);
        float* out = qp.data() + (static_cast<size_t>(b) * groups + g) * qrow;
        for (int i = first; i < first + count; ++i) {
          const float* src = q.data() + (static_cast<size_t>(b) * c.num_queries + i) * qrow;
          for (int64_t j = 0; j < qrow; ++j) out[j] += src[j];
        }
        if (count > 1) {
          for (int64_t j = 0; j < qrow; ++j) out[j] /= static_cast<float>(count);
        }
      }
    }
    int max_ranges = 1, max_chunks = 1;
    for (int b = 0; b < nb; ++b) {
      max_ranges = std::max<int>(max_ranges, in[b].size());
      int chunks = 0;
      for (const auto& r : in[b]) chunks += static_cast<int>((r.end - r.begin + st.chunk - 1) / st.chunk);
      max_chunks = std::max(max_chunks, chunks);
    }
    std::vector<HipChunk> hin(static_cast<size_t>(nb) * max_ranges);
    std::vector<int32_t> hcount(nb);
    for (int b = 0; b < nb; ++b) {
      hcount[b] = static_cast<int32_t>(in[b].size());
      for (size_t i = 0; i < in[b].size(); ++i) {
        hin[b * max_ranges + i] = {static_cast<int32_t>(in[b][i].begin),
                                   static_cast<int32_t>(in[b][i].end)};
      }
    }
    const int64_t scan_chunks = cpu::HipScanChunks(params, c.stages, si);
    const HipStageShape shape{.dtype = c.dtype,
                              .head_dim = c.head_dim,
                              .num_q_heads = c.num_q_heads,
                              .num_kv_heads = c.num_kv_heads,
                              .page_size = c.page_size,
                              .num_blocks = nb,
                              .num_queries = groups,
                              .max_ranges = max_ranges,
                              .max_chunks = max_chunks,
                              .rope_hi_rows = tables.num_hi_rows,
                              .chunk = static_cast<int>(st.chunk),
                              .keep = static_cast<int>(st.keep),
                              .chunk_indexed = c.chunk_indexed,
                              .query_position = static_cast<int>(params.query_position),
                              .query_stride = groups == c.num_queries ? 1 : pool_n,
                              .scan_window = static_cast<int>(params.scan_window),
                              .scan_chunks = static_cast<int>(scan_chunks)};
    DeviceBuffer din(hin.size() * 8), dcount(nb * 4), dout(static_cast<size_t>(nb) * max_chunks * 8),
        doutcount(nb * 4), dws(HipStageWorkspaceBytes(shape)), dqp(qp.size() * 4);
    CUDA_OK(Upload(din, hin));
    CUDA_OK(Upload(dcount, hcount));
    CUDA_OK(Upload(dqp, qp));
    CUDA_OK(cudaMemset(dout.get(), 0xff, static_cast<size_t>(nb) * max_chunks * 8));
    const HipStageArgs args{.q = dqp.as<float>(),
                            .first_query_position = dfirst.as<int32_t>(),
                            .pages = dpages.get(),
                            .page_stride = pool.page_elems,
                            .k_offset = 0,
                            .block_tables = dbt.as<int32_t>(),
                            .block_table_stride = bt_stride,
                            .in_ranges = din.as<HipChunk>(),
                            .in_count = dcount.as<int32_t>(),
                            .out_ranges = dout.as<HipChunk>(),
                            .out_count = doutcount.as<int32_t>(),
                            .rope_lo = drope_lo.as<float>(),
                            .rope_hi = drope_hi.as<float>(),
                            .workspace = dws.get()};
    CUDA_OK(RunHipStage(shape, args, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<HipChunk> hout(static_cast<size_t>(nb) * max_chunks);
    std::vector<int32_t> hout_count(nb);
    CUDA_OK(Download(hout, dout));
    CUDA_OK(Download(hout_count, doutcount));

    int64_t pruned_blocks = 0;
    for (int b = 0; b < nb; ++b) {
      cpu::HipMaskParams pb = params;
      pb.first_query_position = first_pos[b];
      const cpu::HipHeadRanges cand(c.num_kv_heads, in[b]);
      // The CPU pools itself from the raw queries.
      const cpu::HipHeadRanges want =
          cpu::HipRefineStage(pb, View(c, pool, b), rope,
                              q.data() + static_cast<size_t>(b) * c.num_queries * qrow,
                              c.num_queries, st, cand, scan_chunks);
      Ranges got;
      for (int i = 0; i < hout_count[b]; ++i) {
        got.push_back({hout[b * max_chunks + i].begin, hout[b * max_chunks + i].end});
      }
      int64_t in_tokens = 0;
      for (const auto& r : in[b]) in_tokens += r.end - r.begin;
      pruned_blocks += in_tokens > st.keep;
      EXPECT_EQ(got, want[0]) << "block " << b << " (" << c.tokens[b] << " tokens): gpu "
                              << Describe(got) << " cpu " << Describe(want[0]);
      in[b] = want[0];  // the next stage starts from the reference's output
    }
    (*pruned)[si] = pruned_blocks;
  }
  // The whole chain on the CPU equals the per-stage walk (the GPU matched every stage of it).
  for (int b = 0; b < nb; ++b) {
    cpu::HipMaskParams pb = params;
    pb.first_query_position = first_pos[b];
    const cpu::HipHeadRanges all = cpu::HipSelect(
        pb, View(c, pool, b), rope, q.data() + static_cast<size_t>(b) * c.num_queries * qrow,
        c.num_queries, c.stages, {c.sinks, c.tokens[b]});
    EXPECT_EQ(all[0], in[b]) << "block " << b;
  }
}

TEST(HipMaskGpu, RelativeDecodeBlocksOfDifferentLengths) {
  for (DType t : kDTypes) {
    HipCase c{.dtype = t,
              .tokens = {9000, 5000, 1500, 700, 3001},
              .stages = {{64, 2048, 1}, {16, 512, 1}, {4, 128, 1}}};
    std::vector<int64_t> pruned;
    RunCase(c, Seed() + 1, &pruned);
    EXPECT_EQ(pruned, (std::vector<int64_t>{3, 5, 5}));  // 700 and 1500 tokens: stage 0 keeps all
  }
}

TEST(HipMaskGpu, HeadDim64OddPageAndChunkSizes) {
  HipCase c{.dtype = DType::kFP16,
            .head_dim = 64,
            .num_q_heads = 12,
            .num_kv_heads = 4,
            .page_size = 7,
            .tokens = {6001, 4444},
            .sinks = 16,
            .stages = {{48, 2000, 1}, {12, 480, 1}, {3, 99, 1}}};
  std::vector<int64_t> pruned;
  RunCase(c, Seed() + 2, &pruned);
  EXPECT_EQ(pruned, (std::vector<int64_t>{2, 2, 2}));
}

TEST(HipMaskGpu, ChunkIndexedPooledQueries) {
  for (int n_q : {1, 16, 63}) {
    HipCase c{.num_q_heads = 8,
              .num_kv_heads = 8,
              .tokens = {7000, 12000},
              .num_queries = n_q,
              .stages = {{64, 2048, 4}, {16, 512, 4}, {4, 128, 1}},
              .chunk_indexed = true};
    std::vector<int64_t> pruned;
    RunCase(c, Seed() + 3 + n_q, &pruned);
    EXPECT_EQ(pruned, (std::vector<int64_t>{2, 2, 2}));
  }
}

// The cap (scan chunks + scan_window) above the queries: each pooled group at its own strided
// position, which differs per block; then positions below most chunks' ranks (the query
// rotated by a negative difference).
TEST(HipMaskGpu, ChunkIndexedOwnAndSmallPositions) {
  for (int n_q : {1, 16}) {
    HipCase c{.tokens = {3000, 5000, 4100},
              .num_queries = n_q,
              .stages = {{64, 1024, 4}, {16, 256, 4}, {4, 64, 1}},
              .chunk_indexed = true,
              .scan_window = 16384};
    std::vector<int64_t> pruned;
    RunCase(c, Seed() + 8 + n_q, &pruned);
    EXPECT_EQ(pruned, (std::vector<int64_t>{3, 3, 3}));
  }
  HipCase small{.tokens = {6000, 7000},
                .stages = {{64, 1024, 1}, {16, 256, 1}},
                .chunk_indexed = true,
                .first_query_position = 5};
  std::vector<int64_t> pruned;
  RunCase(small, Seed() + 9, &pruned);
  EXPECT_EQ(pruned, (std::vector<int64_t>{2, 2}));
}

// More input ranges than the cut's tile (256) and more chunks than the select's (1024).
TEST(HipMaskGpu, ManyRangesAndChunks) {
  HipCase c{.tokens = {20000, 23000}, .stages = {{16, 8192, 1}, {4, 2048, 1}}};
  std::vector<int64_t> pruned;
  RunCase(c, Seed() + 10, &pruned);
  EXPECT_EQ(pruned, (std::vector<int64_t>{2, 2}));
}

TEST(HipMaskGpu, RelativePrefillBlockUnpooled) {
  HipCase c{.tokens = {8000}, .num_queries = 64, .stages = {{64, 2048, 1}, {8, 256, 1}}};
  std::vector<int64_t> pruned;
  RunCase(c, Seed() + 4, &pruned);
  EXPECT_EQ(pruned, (std::vector<int64_t>{1, 1}));
}

// v1.2's stage sizes (32k, 8k, 2k kept) at Llama-3-8B's heads over 48k tokens, two blocks.
TEST(HipMaskGpu, PaperStagesLlamaHeads) {
  HipCase c{.num_q_heads = 32,
            .num_kv_heads = 8,
            .tokens = {49152, 40000},
            .sinks = 256,
            .stages = {{256, 32768, 1}, {32, 8192, 1}, {8, 2048, 1}}};
  std::vector<int64_t> pruned;
  RunCase(c, Seed() + 5, &pruned);
  EXPECT_EQ(pruned, (std::vector<int64_t>{2, 2, 2}));
}

// A block marked inactive keeps what the previous call wrote (a row whose stage is not due):
// the second call, with other queries, recomputes block 0 only.
TEST(HipMaskGpu, InactiveBlocksKeepTheirOutput) {
  const HipCase c{.tokens = {6000, 7000}, .stages = {{64, 1024, 1}}};
  std::mt19937_64 rng(Seed() + 6);
  const KeyPool pool = MakePool(c, rng);
  const int nb = 2, D = c.head_dim;
  const int64_t qrow = static_cast<int64_t>(c.num_q_heads) * D;
  std::normal_distribution<float> normal;
  std::vector<float> q1(nb * qrow), q2(nb * qrow);
  for (float& x : q1) x = normal(rng);
  for (float& x : q2) x = normal(rng);
  const std::vector<float> inv_freq =
      cpu::InvFrequencies(cpu::RopeParams{.head_dim = D, .theta = 10000.0});
  cpu::RopeTable rope(inv_freq, D);
  rope.Reserve(16384);
  const RopeTablesHost tables = BuildRopeTables(inv_freq, 16384);
  const int bt_stride = static_cast<int>(std::max(pool.tables[0].size(), pool.tables[1].size()));
  std::vector<int32_t> bt(nb * bt_stride, -1);
  for (int b = 0; b < nb; ++b) std::copy(pool.tables[b].begin(), pool.tables[b].end(), bt.begin() + b * bt_stride);
  const int max_chunks = static_cast<int>((7000 + 63) / 64);
  const std::vector<HipChunk> in = {{4, 6000}, {4, 7000}};
  const std::vector<int32_t> in_count = {1, 1};
  DeviceBuffer dpages(pool.bits.size() * 2), dq(q1.size() * 4), dlo(tables.lo.size() * 4),
      dhi(tables.hi.size() * 4), dbt(bt.size() * 4), din(16), dcount(8),
      dout(static_cast<size_t>(nb) * max_chunks * 8), doutc(8), dactive(2);
  CUDA_OK(Upload(dpages, pool.bits));
  CUDA_OK(Upload(dlo, tables.lo));
  CUDA_OK(Upload(dhi, tables.hi));
  CUDA_OK(Upload(dbt, bt));
  CUDA_OK(Upload(din, in));
  CUDA_OK(Upload(dcount, in_count));
  const HipStageShape shape{.head_dim = D, .num_q_heads = c.num_q_heads,
                            .num_kv_heads = c.num_kv_heads, .page_size = c.page_size,
                            .num_blocks = nb, .max_ranges = 1, .max_chunks = max_chunks,
                            .rope_hi_rows = tables.num_hi_rows, .chunk = 64, .keep = 1024,
                            .query_position = 769};
  DeviceBuffer dws(HipStageWorkspaceBytes(shape));
  HipStageArgs args{.q = dq.as<float>(), .pages = dpages.get(), .page_stride = pool.page_elems,
                    .block_tables = dbt.as<int32_t>(), .block_table_stride = bt_stride,
                    .in_ranges = din.as<HipChunk>(), .in_count = dcount.as<int32_t>(),
                    .out_ranges = dout.as<HipChunk>(), .out_count = doutc.as<int32_t>(),
                    .rope_lo = dlo.as<float>(), .rope_hi = dhi.as<float>(),
                    .workspace = dws.get()};
  auto run = [&](const std::vector<float>& q, const std::vector<uint8_t>* active,
                 std::vector<Ranges>* got) {
    ASSERT_EQ(Upload(dq, q), cudaSuccess);
    if (active != nullptr) {
      ASSERT_EQ(Upload(dactive, *active), cudaSuccess);
    }
    args.active = active != nullptr ? dactive.as<uint8_t>() : nullptr;
    ASSERT_EQ(RunHipStage(shape, args, nullptr), cudaSuccess);
    std::vector<HipChunk> out(static_cast<size_t>(nb) * max_chunks);
    std::vector<int32_t> count(nb);
    ASSERT_EQ(Download(out, dout), cudaSuccess);
    ASSERT_EQ(Download(count, doutc), cudaSuccess);
    got->assign(nb, {});
    for (int b = 0; b < nb; ++b) {
      for (int i = 0; i < count[b]; ++i) (*got)[b].push_back({out[b * max_chunks + i].begin, out[b * max_chunks + i].end});
    }
  };
  auto want = [&](const std::vector<float>& q, int b) {
    const cpu::HipMaskParams p{.num_q_heads = c.num_q_heads, .num_kv_heads = c.num_kv_heads,
                               .head_dim = D};
    return cpu::HipRefineStage(p, View(c, pool, b), rope, q.data() + b * qrow, 1, c.stages[0],
                               cpu::HipHeadRanges(c.num_kv_heads, {{in[b].begin, in[b].end}}))[0];
  };
  std::vector<Ranges> first, second;
  run(q1, nullptr, &first);
  EXPECT_EQ(first[0], want(q1, 0));
  EXPECT_EQ(first[1], want(q1, 1));
  const std::vector<uint8_t> active = {1, 0};
  run(q2, &active, &second);
  EXPECT_EQ(second[0], want(q2, 0));
  EXPECT_EQ(second[1], first[1]);       // untouched
  EXPECT_NE(want(q2, 1), first[1]);     // and recomputing it would have changed it
}

// RunHipSpans against the engine's rule (HipRowSelection for a row that is its own block):
// random rows (token >= sinks, where the engine prunes) with kept chunks below, across and
// inside the window, rows whose window reaches back to the sinks, page sizes 16 and 5, and a row over its span capacity (NaN marker).
TEST(HipMaskGpu, SpansEqualHipRowSelection) {
  for (int ps : {16, 5}) {
    std::mt19937_64 rng(Seed() + 7 + ps);
    const int rows = 37, max_kept = 2000;
    std::vector<int32_t> token(rows), sinks(rows), window(rows), kept_count(rows);
    std::vector<HipChunk> kept(static_cast<size_t>(rows) * max_kept);
    int bt_stride = 0;
    std::vector<std::vector<int32_t>> tables(rows);
    std::vector<KvSelection> want(rows);
    int max_spans = 1;
    for (int r = 0; r < rows; ++r) {
      HipAttention h;
      h.sinks = std::uniform_int_distribution<int>(0, 300)(rng);
      h.window = std::uniform_int_distribution<int>(1, 1500)(rng);
      token[r] = std::uniform_int_distribution<int>(0, 20000)(rng);
      token[r] = std::max<int>(token[r], static_cast<int>(h.sinks));  // the rule's domain
      if (r == 3) {  // the window reaches back to the sinks
        h.sinks = 3;
        token[r] = 5;
      }
      if (r == 11) {  // the most spans of all: one-token chunks every other token
        h.sinks = 300;
        h.window = 1500;
        token[r] = 20000;
      }
      sinks[r] = static_cast<int32_t>(h.sinks);
      window[r] = static_cast<int32_t>(h.window);
      const int blocks = token[r] / ps + 1;
      for (int b = 0; b < blocks; ++b) {
        tables[r].push_back(std::uniform_int_distribution<int>(0, 1 << 20)(rng));
      }
      bt_stride = std::max<int>(bt_stride, blocks);
      // Kept chunks: sorted, disjoint, from the sinks to the row (some inside the window).
      cpu::HipHeadRanges ranges(1);
      for (int t = static_cast<int>(h.sinks); t < token[r] && static_cast<int>(ranges[0].size()) < max_kept;) {
        t += r == 11 ? 1 : std::uniform_int_distribution<int>(0, 200)(rng);
        const int len = r == 11 ? 1 : std::uniform_int_distribution<int>(1, 40)(rng);
        if (t + len > token[r]) break;
        ranges[0].push_back({t, t + len});
        t += len;
      }
      kept_count[r] = static_cast<int32_t>(ranges[0].size());
      for (size_t i = 0; i < ranges[0].size(); ++i) {
        kept[static_cast<size_t>(r) * max_kept + i] = {static_cast<int32_t>(ranges[0][i].begin),
                                                       static_cast<int32_t>(ranges[0][i].end)};
      }
      want[r] = HipRowSelection(h, tables[r], ps, token[r], token[r], ranges);
      if (r != 11) max_spans = std::max<int>(max_spans, want[r].spans.size());
    }
    std::vector<int32_t> bt(static_cast<size_t>(rows) * bt_stride, -1);
    for (int r = 0; r < rows; ++r) std::copy(tables[r].begin(), tables[r].end(), bt.begin() + r * bt_stride);
    const bool overflow = static_cast<int>(want[11].spans.size()) > max_spans;
    EXPECT_TRUE(overflow) << want[11].spans.size() << " spans vs " << max_spans;
    const HipSpansShape shape{.page_size = ps, .num_rows = rows, .max_kept = max_kept,
                              .max_spans = max_spans};
    DeviceBuffer dkept(kept.size() * 8), dcount(rows * 4), dbt(bt.size() * 4), dtok(rows * 4),
        dsinks(rows * 4), dwin(rows * 4),
        dspans(static_cast<size_t>(rows) * (max_spans + 1) * sizeof(KvSpan)),
        doffs((rows + 1) * 4), dws(HipSpansWorkspaceBytes(shape));
    CUDA_OK(Upload(dkept, kept));
    CUDA_OK(Upload(dcount, kept_count));
    CUDA_OK(Upload(dbt, bt));
    CUDA_OK(Upload(dtok, token));
    CUDA_OK(Upload(dsinks, sinks));
    CUDA_OK(Upload(dwin, window));
    const HipSpansArgs args{.kept = dkept.as<HipChunk>(), .kept_count = dcount.as<int32_t>(),
                            .block_tables = dbt.as<int32_t>(), .block_table_stride = bt_stride,
                            .token = dtok.as<int32_t>(), .sinks = dsinks.as<int32_t>(),
                            .window = dwin.as<int32_t>(), .spans = dspans.as<KvSpan>(),
                            .span_offsets = doffs.as<int32_t>(), .workspace = dws.get()};
    CUDA_OK(RunHipSpans(shape, args, nullptr));
    std::vector<int32_t> offs(rows + 1);
    CUDA_OK(Download(offs, doffs));
    std::vector<KvSpan> spans(offs[rows]);
    if (!spans.empty()) CUDA_OK(cudaMemcpy(spans.data(), dspans.get(), spans.size() * sizeof(KvSpan), cudaMemcpyDeviceToHost));
    for (int r = 0; r < rows; ++r) {
      SCOPED_TRACE(::testing::Message() << "page " << ps << " row " << r << " token " << token[r]
                                        << " sinks " << sinks[r] << " window " << window[r]);
      const std::vector<KvSpan> got(spans.begin() + offs[r], spans.begin() + offs[r + 1]);
      size_t compare = want[r].spans.size();
      if (r == 11 && overflow) {  // the first max_spans spans, then the marker
        ASSERT_EQ(static_cast<int>(got.size()), max_spans + 1);
        EXPECT_EQ(got.back().count, -1);
        compare = max_spans;
      } else {
        ASSERT_EQ(got.size(), want[r].spans.size());
      }
      for (size_t k = 0; k < compare; ++k) {
        EXPECT_TRUE(got[k].page_id == want[r].spans[k].page_id &&
                    got[k].first_slot == want[r].spans[k].first_slot &&
                    got[k].count == want[r].spans[k].count &&
                    got[k].first_position == want[r].spans[k].first_position)
            << "span " << k;
      }
    }
  }
}

TEST(HipMaskGpu, RejectsBadArguments) {
  DeviceBuffer any(1024);
  CUDA_OK(cudaMemset(any.get(), 0, 1024));  // no candidates: a valid call does nothing
  HipStageShape s{.num_q_heads = 8, .num_kv_heads = 2, .num_blocks = 1, .max_ranges = 1,
                  .max_chunks = 4, .rope_hi_rows = 4, .chunk = 8, .keep = 16,
                  .query_position = 769};
  const HipStageArgs a{.q = any.as<float>(), .pages = any.get(), .block_tables = any.as<int32_t>(),
                       .in_ranges = any.as<HipChunk>(), .in_count = any.as<int32_t>(),
                       .out_ranges = any.as<HipChunk>(), .out_count = any.as<int32_t>(),
                       .rope_lo = any.as<float>(), .rope_hi = any.as<float>(),
                       .workspace = any.get()};
  auto bad = [&](HipStageShape x, HipStageArgs y) { return RunHipStage(x, y, nullptr); };
  ASSERT_LE(HipStageWorkspaceBytes(s), 1024u);
  EXPECT_EQ(bad(s, a), cudaSuccess);  // the base call is valid
  CUDA_OK(cudaDeviceSynchronize());
  HipStageShape x = s;
  x.keep = 4;  // keep < chunk
  EXPECT_EQ(bad(x, a), cudaErrorInvalidValue);
  x = s;
  x.num_kv_heads = 3;
  EXPECT_EQ(bad(x, a), cudaErrorInvalidValue);
  x = s;
  x.num_queries = 65;
  EXPECT_EQ(bad(x, a), cudaErrorInvalidValue);
  x = s;
  x.head_dim = 96;
  EXPECT_EQ(bad(x, a), cudaErrorInvalidValue);
  x = s;
  x.query_position = 4 * kRopeLoRows;  // beyond the tables
  EXPECT_EQ(bad(x, a), cudaErrorInvalidValue);
  x.query_position = 0;  // the right probes' query would stand at -1
  EXPECT_EQ(bad(x, a), cudaErrorInvalidValue);
  x = s;
  x.chunk_indexed = true;  // without first_query_position
  EXPECT_EQ(bad(x, a), cudaErrorInvalidValue);
  x = s;
  x.max_chunks = 0;  // blocks but no room for their chunks
  EXPECT_EQ(bad(x, a), cudaErrorInvalidValue);
  x = s;
  x.dtype = static_cast<DType>(7);
  EXPECT_EQ(bad(x, a), cudaErrorInvalidValue);
  HipStageArgs y = a;
  y.workspace = static_cast<char*>(any.get()) + 4;  // misaligned
  EXPECT_EQ(bad(s, y), cudaErrorInvalidValue);
  y = a;
  y.k_offset = 4;  // keys not 16-byte aligned
  EXPECT_EQ(bad(s, y), cudaErrorInvalidValue);
  y = a;
  y.out_ranges = nullptr;
  EXPECT_EQ(bad(s, y), cudaErrorInvalidValue);
}

}  // namespace
}  // namespace longview::cuda
