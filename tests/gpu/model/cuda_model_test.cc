// Whole-model GPU tests of the CUDA backend (CudaModelRunner) against the CPU engine and the
// transformers golden files (tests/data/golden_gpu, made by tools/golden/make_golden.py
// --gpu-shapes), and greedy continuations against the CPU engine's.
//
// Not registered with ctest (CI has no GPU): run build-cuda/tests/gpu_model_tests on a GPU
// machine (deploy/bundle.sh packs it). LV_TEST_DATA / LV_MODELS_DIR point at the data when the
// binary runs outside the source tree. Each case prints one summary line ending PASS or FAIL.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/cpu/cpu_model_runner.h"
#include "engine/cuda/cuda_model_runner.h"
#include "kernels/kv_selection.h"
#include "scheduler/generator.h"
#include "engine/model/safetensors.h"
#include "gtest/gtest.h"
#include "tests/support/attention.h"
#include "tests/support/cpu_model_of.h"
#include "kvcache/block_pool.h"
#include "kvcache/block_table.h"
#include "scheduler/engine_loop.h"
#include "tests/gpu/model/greedy_compare.h"
#include "tests/support/golden.h"

namespace longview {
namespace {

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : fallback;
}
const std::string kData = Env("LV_TEST_DATA", LONGVIEW_TEST_DATA_DIR);
const std::string kModels = Env("LV_MODELS_DIR", LONGVIEW_MODELS_DIR);

// A sequence driven step by step through a runner: its own pages from a private pool.
class Driver {
 public:
  Driver(ModelRunner& runner, int64_t page_size, int32_t num_pages)
      : runner_(runner), ps_(page_size), pool_(num_pages), table_(page_size) {}

  // Runs tokens [start, start + chunk.size()) and returns the last token's logits (or the
  // device-sampled token when `device` is set: then *token is filled and logits are empty).
  absl::StatusOr<std::vector<float>> Step(std::span<const int32_t> chunk, Attention fwd = {},
                                          std::optional<DeviceSampling> device = std::nullopt,
                                          int32_t* token = nullptr) {
    const int64_t end = pos_ + static_cast<int64_t>(chunk.size());
    auto ids = pool_.Allocate(table_.BlocksNeeded(end));
    if (!ids) return absl::ResourceExhaustedError("test pool exhausted");
    table_.Append(*ids);
    StepPlan plan;
    ScheduledSequence s;
    s.seq_id = 1;
    s.token_ids.assign(chunk.begin(), chunk.end());
    s.start_pos = pos_;
    s.block_ids.assign(table_.blocks().begin(), table_.blocks().end());
    s.need_logits = true;
    s.attention = fwd;
    s.device_sampling = device;
    s.embeddings = embeddings_;
    plan.seqs.push_back(std::move(s));
    StepResult r;
    RETURN_IF_ERROR(runner_.Execute(plan, r));
    pos_ = end;
    if (r.sampled()) {
      if (token != nullptr) *token = r.tokens[0];
      return std::vector<float>{};
    }
    auto row = r.Row(0);
    return std::vector<float>(row.begin(), row.end());
  }
  int64_t pos() const { return pos_; }
  // Input embeddings every later step carries (positions holding kEmbeddingToken read them).
  void set_embeddings(std::shared_ptr<const EmbeddingRuns> e) { embeddings_ = std::move(e); }

 private:
  std::shared_ptr<const EmbeddingRuns> embeddings_;
  ModelRunner& runner_;
  int64_t ps_;
  int64_t pos_ = 0;
  BlockPool pool_;
  BlockTable table_;
};

struct RowCompare {
  double max_abs = 0, ref_max = 0;
  int32_t argmax_a = -1, argmax_b = -1;
};

RowCompare CompareRow(std::span<const float> a, std::span<const float> b) {
  RowCompare c;
  float ma = -INFINITY, mb = -INFINITY;
  for (size_t i = 0; i < a.size(); ++i) {
    c.max_abs = std::max(c.max_abs, static_cast<double>(std::fabs(a[i] - b[i])));
    if (!std::isfinite(a[i])) c.max_abs = INFINITY;
    c.ref_max = std::max(c.ref_max, static_cast<double>(std::fabs(b[i])));
    if (a[i] > ma) ma = a[i], c.argmax_a = static_cast<int32_t>(i);
    if (b[i] > mb) mb = b[i], c.argmax_b = static_cast<int32_t>(i);
  }
  return c;
}

CudaRunnerOptions SmallOptions(bool fp16, int64_t page_size) {
  CudaRunnerOptions o;
  o.fp16 = fp16;
  o.page_size = page_size;
  o.num_pages = 512;
  o.max_num_tokens = 512;
  o.max_num_seqs = 16;
  return o;
}

// Relative logit tolerance (max |gpu - ref| / max |ref| per row): the GPU rounds weights and
// activations to bf16 (8 significant bits) or fp16 (11); the references are float32 / float64.
double Tol(bool fp16) { return fp16 ? 1e-2 : 4e-2; }

// ---------------------------------------------------------------------------------------------
// Logits at every position against transformers (float64) and the CPU engine, fed token by token
// (decode kernel, CUDA graphs) and in chunks (prefill kernel over a cached prefix).
TEST(CudaModelGpu, GoldenLogitsEveryPosition) {
  for (const char* name : {"llama", "mistral", "qwen2"}) {
    const std::string dir = kData + "/golden_gpu/" + name;
    auto lm = LoadedModel::Load(dir);
    ASSERT_TRUE(lm.ok()) << lm.status();
    std::unique_ptr<CpuModel> cpu_model = CpuModelOf(**lm);
    const std::vector<GoldenPrompt> golden = ReadGolden(dir);
    ASSERT_FALSE(golden.empty());
    const int64_t vocab = (*lm)->config.vocab_size;
    for (bool fp16 : {false, true}) {
      for (int64_t ps : {1, 16}) {
        auto runner = CudaModelRunner::Create((*lm)->config, (*lm)->weights.get(),
                                              SmallOptions(fp16, ps));
        ASSERT_TRUE(runner.ok()) << runner.status();
        double worst_golden = 0, worst_cpu = 0;
        int64_t rows = 0, argmax_mismatch = 0;
        for (const GoldenPrompt& g : golden) {
          const int64_t T = static_cast<int64_t>(g.ids.size());
          // CPU engine, all positions.
          BlockTable cpu_table(ps);
          BlockPool cpu_pool(static_cast<int32_t>(T / ps + 2));
          cpu_table.Append(*cpu_pool.Allocate(cpu_table.BlocksNeeded(T)));
          HostKvStorage cpu_kv(cpu_model->kv_layout(ps), cpu_pool.num_blocks());
          std::vector<float> cpu_logits;
          ASSERT_TRUE(cpu_model->Forward({g.ids, 0, &cpu_table}, cpu_kv, true, cpu_logits).ok());
          // Token by token: every position.
          Driver d(**runner, ps, 512);
          for (int64_t t = 0; t < T; ++t) {
            auto row = d.Step(std::span<const int32_t>(&g.ids[t], 1));
            ASSERT_TRUE(row.ok()) << row.status();
            const RowCompare vs_golden = CompareRow(*row, {&g.logits[t * vocab], size_t(vocab)});
            const RowCompare vs_cpu = CompareRow(*row, {&cpu_logits[t * vocab], size_t(vocab)});
            worst_golden = std::max(worst_golden, vs_golden.max_abs / vs_golden.ref_max);
            worst_cpu = std::max(worst_cpu, vs_cpu.max_abs / vs_cpu.ref_max);
            argmax_mismatch += vs_golden.argmax_a != vs_golden.argmax_b;
            ++rows;
          }
          // Chunks of 1, 5, 16 and the rest: the prefill kernel over a cached prefix.
          Driver c(**runner, ps, 512);
          for (int64_t start = 0, i = 0; start < T; ++i) {
            const int64_t len = std::min<int64_t>(T - start, i == 0 ? 1 : i == 1 ? 5 : i == 2 ? 16 : T);
            auto row = c.Step(std::span<const int32_t>(&g.ids[start], len));
            ASSERT_TRUE(row.ok()) << row.status();
            start += len;
            const RowCompare vs_golden =
                CompareRow(*row, {&g.logits[(start - 1) * vocab], size_t(vocab)});
            worst_golden = std::max(worst_golden, vs_golden.max_abs / vs_golden.ref_max);
            ++rows;
          }
        }
        const bool pass = worst_golden <= Tol(fp16) && worst_cpu <= Tol(fp16);
        std::printf("[golden] %s %s ps=%lld rows=%lld max_rel_err_vs_transformers=%.3g "
                    "vs_cpu=%.3g argmax_mismatch=%lld graphs=%lld/%lld %s\n",
                    name, fp16 ? "fp16" : "bf16", static_cast<long long>(ps),
                    static_cast<long long>(rows), worst_golden, worst_cpu,
                    static_cast<long long>(argmax_mismatch),
                    static_cast<long long>((*runner)->stats().graph_replays),
                    static_cast<long long>((*runner)->stats().graph_captures),
                    pass ? "PASS" : "FAIL");
        EXPECT_TRUE(pass) << name;
      }
    }
  }
}

// Greedy continuations: sampled on the GPU (temperature 0) for 64 tokens, equal to the CPU
// engine's Generate, on the golden models (fp16) and on the embedded model (bf16 and fp16) —
// or equal until a near-tie of the CPU's own logits (GreedyAgrees), where two precisions may
// legitimately choose differently.
TEST(CudaModelGpu, GreedyContinuationsMatchCpu) {
  struct Case {
    std::string dir;
    bool fp16;
  };
  std::vector<Case> cases;
  for (const char* name : {"llama", "mistral", "qwen2"}) {
    cases.push_back({kData + "/golden_gpu/" + name, true});
  }
  cases.push_back({kModels + "/longview-tiny", false});
  cases.push_back({kModels + "/longview-tiny", true});
  const std::vector<std::string> prompts = {
      "In the beginning", "The key is 83119. Remember it. The sky was grey and",
      "Once upon a time, in a small village by the sea, there lived"};
  for (const Case& c : cases) {
    auto lm = LoadedModel::Load(c.dir);
    ASSERT_TRUE(lm.ok()) << lm.status();
    auto runner = CudaModelRunner::Create((*lm)->config, (*lm)->weights.get(),
                                          SmallOptions(c.fp16, 16));
    ASSERT_TRUE(runner.ok()) << runner.status();
    for (const std::string& prompt : prompts) {
      GenerateOptions go;
      go.max_tokens = 64;
      go.ignore_eos = true;
      go.sampling.temperature = 0;
      auto cpu = Generate(**lm, prompt, go);
      ASSERT_TRUE(cpu.ok()) << cpu.status();
      Driver d(**runner, 16, 512);
      int32_t tok = -1;
      auto first = d.Step(cpu->prompt_tokens, {}, DeviceSampling{.temperature = 0}, &tok);
      ASSERT_TRUE(first.ok()) << first.status();
      std::vector<int32_t> gpu{tok};
      while (gpu.size() < 64) {
        auto r = d.Step(std::span<const int32_t>(&gpu.back(), 1), {},
                        DeviceSampling{.temperature = 0}, &tok);
        ASSERT_TRUE(r.ok()) << r.status();
        gpu.push_back(tok);
      }
      EXPECT_TRUE(GreedyAgrees(**lm, cpu->prompt_tokens, gpu, cpu->output_tokens, Tol(c.fp16),
                               absl::StrFormat("%s %s prompt=\"%.20s\"", c.dir,
                                               c.fp16 ? "fp16" : "bf16", prompt)))
          << c.dir;
    }
  }
}

// StreamingLLM sinks + window and a plain window override through the CUDA backend, against the
// CPU engine at every position of a stream several windows long (pages out of the window freed).
TEST(CudaModelGpu, SlidingWindowAndSinksMatchCpu) {
  auto lm = LoadedModel::Load(kModels + "/longview-tiny");
  ASSERT_TRUE(lm.ok()) << lm.status();
  std::unique_ptr<CpuModel> cpu_model = CpuModelOf(**lm);
  const int64_t vocab = (*lm)->config.vocab_size;
  std::vector<int32_t> ids;
  for (int i = 0; i < 300; ++i) ids.push_back(3 + (i * 7919) % static_cast<int32_t>(vocab - 3));
  for (int64_t sinks : {0, 4}) {
    const Attention fwd = SlidingWindow(48, sinks);
    auto runner = CudaModelRunner::Create((*lm)->config, (*lm)->weights.get(),
                                          SmallOptions(true, 16));
    ASSERT_TRUE(runner.ok()) << runner.status();
    BlockTable table(16);
    BlockPool pool(64);
    table.Append(*pool.Allocate(table.BlocksNeeded(300)));
    HostKvStorage kv(cpu_model->kv_layout(16), pool.num_blocks());
    Driver d(**runner, 16, 512);
    double worst = 0;
    int64_t mismatch = 0;
    std::vector<float> cpu;
    for (int64_t t = 0; t < 300;) {
      const int64_t len = t < 100 ? 1 : std::min<int64_t>(37, 300 - t);  // decode, then chunks
      ASSERT_TRUE(cpu_model->Forward({std::span<const int32_t>(&ids[t], len), t, &table}, kv,
                                        false, cpu, fwd).ok());
      auto row = d.Step(std::span<const int32_t>(&ids[t], len), fwd);
      ASSERT_TRUE(row.ok()) << row.status();
      const RowCompare c = CompareRow(*row, {cpu.data(), size_t(vocab)});
      worst = std::max(worst, c.max_abs / c.ref_max);
      mismatch += c.argmax_a != c.argmax_b;
      t += len;
    }
    const bool pass = worst <= Tol(true);
    std::printf("[window] window=48 sinks=%lld max_rel_err_vs_cpu=%.3g argmax_mismatch=%lld %s\n",
                static_cast<long long>(sinks), worst, static_cast<long long>(mismatch),
                pass ? "PASS" : "FAIL");
    EXPECT_TRUE(pass);
  }
}

// The engine loop over the CUDA runner (device sampling, graphs, batching) gives the CPU
// backend's greedy text for a batch of concurrent requests.
TEST(CudaModelGpu, EngineLoopMatchesCpuBackend) {
  auto load = [] { return LoadedModel::Load(kModels + "/longview-tiny"); };
  auto lm_gpu = load();
  ASSERT_TRUE(lm_gpu.ok()) << lm_gpu.status();
  auto runner = CudaModelRunner::Create((*lm_gpu)->config, (*lm_gpu)->weights.get(),
                                        SmallOptions(true, 16));
  ASSERT_TRUE(runner.ok()) << runner.status();
  const int32_t pages = (*runner)->num_pages();
  std::vector<std::string> prompts;
  for (int i = 0; i < 12; ++i) prompts.push_back("Story " + std::to_string(i) + ": the river");
  auto run = [&](std::shared_ptr<const LoadedModel> lm, std::shared_ptr<ModelRunner> r) {
    EngineLoopOptions eo;
    eo.num_kv_pages = pages;
    eo.max_num_seqs = 16;
    eo.max_num_batched_tokens = 512;
    eo.runner = std::move(r);
    EngineLoop loop(lm, eo);
    loop.Start();
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (size_t i = 0; i < prompts.size(); ++i) {
      GenerationRequest req;
      req.request_id = "r" + std::to_string(i);
      req.prompt_tokens = lm->tokenizer->Encode(prompts[i], true);
      req.sampling.temperature = 0;
      req.max_tokens = 24;
      req.ignore_eos = true;
      auto s = loop.Submit(std::move(req));
      EXPECT_TRUE(s.ok()) << s.status();
      if (s.ok()) streams.push_back(*s);
    }
    std::vector<std::vector<int32_t>> out(streams.size());
    for (size_t i = 0; i < streams.size(); ++i) {
      RequestOutput o;
      while (streams[i]->Next(&o)) {
        for (const SequenceDelta& d : o.deltas) {
          out[i].insert(out[i].end(), d.token_ids.begin(), d.token_ids.end());
        }
        if (o.finished) break;
      }
    }
    loop.Stop();
    return out;
  };
  std::shared_ptr<const LoadedModel> shared_gpu(std::move(*lm_gpu));
  const auto gpu = run(shared_gpu, std::shared_ptr<ModelRunner>(std::move(*runner)));
  auto lm_cpu = load();
  ASSERT_TRUE(lm_cpu.ok());
  std::shared_ptr<const LoadedModel> shared_cpu(std::move(*lm_cpu));
  const auto cpu = run(shared_cpu, nullptr);
  int64_t equal = 0, agree = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    equal += gpu[i] == cpu[i] && gpu[i].size() == 24;
    agree += GreedyAgrees(*shared_cpu, shared_cpu->tokenizer->Encode(prompts[i], true), gpu[i],
                          cpu[i], Tol(true), "engine_loop request " + std::to_string(i));
  }
  std::printf("[engine_loop] %lld/%zu requests equal to the CPU backend, %lld/%zu agree %s\n",
              static_cast<long long>(equal), prompts.size(), static_cast<long long>(agree),
              prompts.size(), agree == static_cast<int64_t>(prompts.size()) ? "PASS" : "FAIL");
  EXPECT_EQ(agree, static_cast<int64_t>(prompts.size()));
  EXPECT_EQ(cpu[0].size(), 24u);
}

// KV policies on the CUDA runner against the CPU runner, plan for plan: a prompt prefilled in
// two chunks (the prefill kernel; the second asks for its last 16 rows' statistics, as SnapKV's
// window does: stats rows), then an eviction that keeps the sinks and a random 35% of the rest at
// their own slots (holes, two whole pages released), then chunks over that selection (the
// prefill kernel's selection mode; with statistics of 5 and of all 30 rows, and without) and
// decode steps (selection-decode rows) asking for statistics. Logits of the last row and the per-key statistics (summed over layers
// and query heads) must match within the dtype's tolerance, on both dtypes, with the fused
// statistics path and (fp16) the standalone one.
TEST(CudaModelGpu, KvPolicySelectionsAndKeyStatsMatchCpu) {
  auto lm = LoadedModel::Load(kModels + "/longview-tiny");
  ASSERT_TRUE(lm.ok()) << lm.status();
  const ModelConfig& cfg = (*lm)->config;
  const int64_t ps = 16, vocab = cfg.vocab_size;
  std::vector<int32_t> ids;
  for (int i = 0; i < 400; ++i) ids.push_back(3 + (i * 7919) % static_cast<int32_t>(vocab - 3));
  for (auto [fp16, fused] : {std::pair{true, true}, {false, true}, {true, false}}) {
    CudaRunnerOptions opt = SmallOptions(fp16, ps);
    if (!fused) opt.max_score_floats = 0;  // the standalone statistics pass
    auto gpu = CudaModelRunner::Create(cfg, (*lm)->weights.get(), opt);
    ASSERT_TRUE(gpu.ok()) << gpu.status();
    auto cpu = CpuModelRunner::Create(**lm, 64, ps);
    ASSERT_TRUE(cpu.ok()) << cpu.status();
    std::vector<int32_t> blocks(25);
    for (int i = 0; i < 25; ++i) blocks[i] = 3 + 2 * i;  // scattered pages, same on both
    std::mt19937_64 rng(17);
    std::vector<int64_t> kept;  // token indices the selection reads, in order
    auto selection = [&](int64_t end) {
      KvSelection sel;
      for (int64_t t : kept) AppendTokenRange(blocks, ps, t, 1, t, sel);
      std::vector<KvSpan> merged;
      for (const KvSpan& sp : sel.spans) {
        if (!merged.empty() && merged.back().page_id == sp.page_id &&
            merged.back().first_slot + merged.back().count == sp.first_slot &&
            merged.back().first_position + merged.back().count == sp.first_position) {
          ++merged.back().count;
        } else {
          merged.push_back(sp);
        }
      }
      sel.spans = merged;
      (void)end;
      return std::make_shared<const KvSelection>(std::move(sel));
    };
    double worst_logit = 0, worst_stat = 0;
    int64_t steps = 0, stat_steps = 0, argmax_mismatch = 0;
    auto step = [&](int64_t start, int64_t n, int64_t stats_rows) {
      for (int64_t t = start; t < start + n; ++t) kept.push_back(t);
      StepPlan plan;
      ScheduledSequence s;
      s.seq_id = 1;
      s.start_pos = start;
      s.token_ids.assign(ids.begin() + start, ids.begin() + start + n);
      s.block_ids = blocks;
      s.need_logits = true;
      s.kv_selection = selection(start + n);
      s.key_stats_rows = stats_rows;
      plan.seqs.push_back(s);
      StepResult rg, rc;
      ASSERT_TRUE((*gpu)->Execute(plan, rg).ok());
      ASSERT_TRUE((*cpu)->Execute(plan, rc).ok());
      const RowCompare c = CompareRow(rg.Row(0), rc.Row(0));
      worst_logit = std::max(worst_logit, c.max_abs / c.ref_max);
      argmax_mismatch += c.argmax_a != c.argmax_b;
      ++steps;
      if (stats_rows == 0) return;
      ++stat_steps;
      ASSERT_EQ(rg.key_stats.size(), 1u);
      ASSERT_EQ(rg.key_stats[0].size(), rc.key_stats[0].size());
      EXPECT_EQ(rg.key_stats_heads, rc.key_stats_heads);
      EXPECT_DOUBLE_EQ(rg.key_stats_row_norm, rc.key_stats_row_norm);
      // Each KV head's sums over its keys equal rows x layers x query heads per KV head.
      const double total = rc.key_stats_row_norm * static_cast<double>(stats_rows);
      double max_abs = 0;
      for (size_t i = 0; i < rc.key_stats[0].size(); ++i) {
        max_abs = std::max(max_abs, static_cast<double>(
                                        std::fabs(rg.key_stats[0][i] - rc.key_stats[0][i])));
      }
      const size_t keys = rc.key_stats[0].size() / static_cast<size_t>(rc.key_stats_heads);
      for (int64_t h = 0; h < rc.key_stats_heads; ++h) {
        double sum = 0;
        for (size_t j = 0; j < keys; ++j) sum += rg.key_stats[0][h * keys + j];
        EXPECT_NEAR(sum, total, 1e-3 * total) << "kv head " << h;
      }
      worst_stat = std::max(worst_stat, max_abs / total);
    };
    step(0, 200, 0);
    step(200, 100, 16);
    // Evict: sinks 0-3, a random 35% of 4..299, none of pages 6 and 7 (tokens 96-127).
    std::vector<int64_t> survivors;
    std::bernoulli_distribution keep(0.35);
    for (int64_t t : kept) {
      if (t < 4 || (keep(rng) && (t < 96 || t >= 128))) survivors.push_back(t);
    }
    kept = survivors;
    blocks[6] = blocks[7] = -1;  // released: never read
    step(300, 5, 5);
    step(305, 40, 0);   // a chunk over the holes: the prefill kernel's selection mode
    step(345, 30, 30);  // ... with every row's statistics (H2O's prompt steps)
    for (int64_t t = 375; t < 382; ++t) step(t, 1, 1);
    const double tol = Tol(fp16);
    const bool pass = worst_logit <= tol && worst_stat <= tol && argmax_mismatch == 0;
    std::printf("[kv_policy] %s %s steps=%lld (stats %lld) max_rel_logit_err=%.3g "
                "max_stat_err/rows_total=%.3g argmax_mismatch=%lld %s\n",
                fp16 ? "fp16" : "bf16", fused ? "fused" : "standalone",
                static_cast<long long>(steps),
                static_cast<long long>(stat_steps), worst_logit, worst_stat,
                static_cast<long long>(argmax_mismatch), pass ? "PASS" : "FAIL");
    EXPECT_LE(worst_logit, tol);
    EXPECT_LE(worst_stat, tol);
    EXPECT_EQ(argmax_mismatch, 0);
  }
}

// Bad plans are refused with InvalidArgument, and the runner keeps working afterwards.
// Input embeddings: the model's own token rows given as embeddings (positions holding
// kEmbeddingToken) give the very logits their tokens give, in prefill chunks and in a one-row
// step (which a token would take through a CUDA graph), in bf16 and fp16.
TEST(CudaModelGpu, InputEmbeddingsOfTheModelsOwnTokensGiveTheirLogits) {
  auto lm = LoadedModel::Load(kModels + "/longview-tiny");
  ASSERT_TRUE(lm.ok()) << lm.status();
  const int64_t hidden = (*lm)->config.hidden_size;
  std::vector<int32_t> tokens = (*lm)->tokenizer->Encode(
      "The lamps come on one by one along the river, and the boats go home in the dark", true);
  ASSERT_GE(tokens.size(), 12u);
  const int64_t n = static_cast<int64_t>(tokens.size()), first = 1, last = n - 3;  // rows
  std::vector<float> rows;
  std::vector<int32_t> embedded = tokens;
  for (int64_t i = first; i < last; ++i) {
    const float* r = &(*lm)->weights->embed_tokens.data[tokens[i] * hidden];
    rows.insert(rows.end(), r, r + hidden);
    embedded[i] = kEmbeddingToken;
  }
  auto runs = std::make_shared<const EmbeddingRuns>(
      EmbeddingRuns{MakeEmbeddingRun(first, hidden, std::move(rows))});
  // Chunks: a prefill, a single row inside the embedded run, a prefill across its end, decode.
  const std::vector<std::pair<int64_t, int64_t>> chunks = {
      {0, 5}, {5, 6}, {6, last + 1}, {last + 1, n - 1}, {n - 1, n}};
  for (bool fp16 : {false, true}) {
    auto a = CudaModelRunner::Create((*lm)->config, (*lm)->weights.get(), SmallOptions(fp16, 16));
    auto b = CudaModelRunner::Create((*lm)->config, (*lm)->weights.get(), SmallOptions(fp16, 16));
    ASSERT_TRUE(a.ok() && b.ok());
    Driver da(**a, 16, 512), db(**b, 16, 512);
    db.set_embeddings(runs);
    double worst = 0;
    for (const auto& [from, to] : chunks) {
      auto la = da.Step(std::span<const int32_t>(tokens).subspan(from, to - from));
      auto lb = db.Step(std::span<const int32_t>(embedded).subspan(from, to - from));
      ASSERT_TRUE(la.ok()) << la.status();
      ASSERT_TRUE(lb.ok()) << lb.status();
      const RowCompare c = CompareRow(*lb, *la);
      worst = std::max(worst, c.max_abs);
      EXPECT_EQ(c.max_abs, 0.0) << (fp16 ? "fp16" : "bf16") << " chunk [" << from << ", " << to
                                << ")";
    }
    std::printf("[embeddings] %s: %lld rows as embeddings, %zu steps, max |logit diff| %g %s\n",
                fp16 ? "fp16" : "bf16", static_cast<long long>(last - first), chunks.size(),
                worst, worst == 0 ? "PASS" : "FAIL");
  }
}

TEST(CudaModelGpu, RejectsBadPlans) {
  auto lm = LoadedModel::Load(kModels + "/longview-tiny");
  ASSERT_TRUE(lm.ok()) << lm.status();
  auto runner = CudaModelRunner::Create((*lm)->config, (*lm)->weights.get(),
                                        SmallOptions(false, 16));
  ASSERT_TRUE(runner.ok()) << runner.status();
  StepPlan plan;
  ScheduledSequence s;
  s.token_ids = {1, 2, 3};
  s.block_ids = {0};
  s.need_logits = true;
  plan.seqs.push_back(s);
  StepResult r;
  plan.seqs[0].token_ids[1] = static_cast<int32_t>((*lm)->config.vocab_size);
  EXPECT_EQ((*runner)->Execute(plan, r).code(), absl::StatusCode::kInvalidArgument);
  plan.seqs[0].token_ids[1] = 2;
  plan.seqs[0].block_ids = {(*runner)->num_pages()};
  EXPECT_EQ((*runner)->Execute(plan, r).code(), absl::StatusCode::kInvalidArgument);
  plan.seqs[0].block_ids = {0};
  plan.seqs[0].start_pos = 14;  // 14 + 3 > 16
  EXPECT_EQ((*runner)->Execute(plan, r).code(), absl::StatusCode::kInvalidArgument);
  plan.seqs[0].start_pos = 0;
  EXPECT_TRUE((*runner)->Execute(plan, r).ok());
  std::printf("[reject] bad token, page and capacity refused; runner still works PASS\n");
}

}  // namespace
}  // namespace longview
