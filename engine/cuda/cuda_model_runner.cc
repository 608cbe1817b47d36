// CudaModelRunner: step preparation, the forward, CUDA graphs. See cuda_model_runner.h.
#include "engine/cuda/cuda_model_runner.h"
#include "engine/model/rope_params.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "absl/strings/str_format.h"
#include "engine/attention/attention_mode.h"
#include "engine/cuda/cublaslt_gemm.h"
#include "engine/cuda/internal/device_weights.h"
#include "engine/cuda/internal/kernels_facade.h"
#include "engine/cuda/internal/layer_ops.h"
#include "engine/cuda/internal/runner_impl.h"
#include "engine/cuda/internal/step_meta.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/activation/silu_mul.h"
#include "kernels/cuda/decode_attention/decode_attention.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/norm/rmsnorm.h"
#include "kernels/cuda/status.h"

namespace longview {

using cuda::CudaStatus;
using cuda::DType;
using cuda_internal::DeviceWeights;
using cuda_internal::KernelsFacade;
using cuda_internal::MetaArena;

bool CudaDeviceAvailable() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

CudaModelRunner::Impl::~Impl() {
  DropGraphs();
  kernels.reset();
  gemm.reset();
  w.Free();
  for (void* p : allocs) (void)cudaFree(p);
  if (meta_host != nullptr) (void)cudaFreeHost(meta_host);
  if (meta_dev != nullptr) (void)cudaFree(meta_dev);
  if (sel_lse != nullptr) (void)cudaFree(sel_lse);
  if (key_stats != nullptr) (void)cudaFree(key_stats);
  if (sel_scores != nullptr) (void)cudaFree(sel_scores);
  if (stats_q != nullptr) (void)cudaFree(stats_q);
  if (stats_out != nullptr) (void)cudaFree(stats_out);
  if (step_start != nullptr) (void)cudaEventDestroy(step_start);
  if (step_end != nullptr) (void)cudaEventDestroy(step_end);
  if (stream != nullptr) (void)cudaStreamDestroy(stream);
}

void CudaModelRunner::Impl::DropGraphs() {
  for (auto& [key, g] : graphs) (void)cudaGraphExecDestroy(g.exec);
  graphs.clear();
}

absl::StatusOr<void*> CudaModelRunner::Impl::Alloc(size_t bytes, const char* what) {
  void* p = nullptr;
  RETURN_IF_ERROR(CudaStatus(cudaMalloc(&p, std::max<size_t>(bytes, 16)), what));
  allocs.push_back(p);
  return p;
}

absl::Status CudaModelRunner::Impl::EnsureMeta(size_t bytes) {
  if (bytes <= meta_capacity) return absl::OkStatus();
  // Graphs read the old buffer: they go with it.
  RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(stream), "sync"));
  DropGraphs();
  if (meta_host != nullptr) (void)cudaFreeHost(meta_host);
  if (meta_dev != nullptr) (void)cudaFree(meta_dev);
  meta_host = nullptr;
  meta_dev = nullptr;
  const size_t cap = std::max(bytes + bytes / 2, meta_capacity * 2);
  RETURN_IF_ERROR(CudaStatus(cudaMallocHost(&meta_host, cap), "pinned metadata"));
  RETURN_IF_ERROR(CudaStatus(cudaMalloc(&meta_dev, cap), "metadata"));
  meta_capacity = cap;
  return absl::OkStatus();
}

absl::Status CudaModelRunner::Impl::EnsureKeyStats(int64_t rows, int64_t stats_rows,
                                                   int64_t floats, int64_t score_floats) {
  // Only eager steps use them (selection rows are never captured): growing here is safe.
  auto grow = [&](float** buf, int64_t* have, int64_t need, const char* what) -> absl::Status {
    if (need <= *have) return absl::OkStatus();
    RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(stream), "sync"));
    if (*buf != nullptr) (void)cudaFree(*buf);
    *buf = nullptr;
    *have = 0;
    const int64_t cap = std::max(need + need / 2, int64_t{1024});
    RETURN_IF_ERROR(CudaStatus(cudaMalloc(buf, cap * sizeof(float)), what));
    *have = cap;
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(
      grow(&sel_lse, &sel_lse_floats, (rows + stats_rows) * nh, "attention log-sum-exps"));
  if (stats_rows > stats_rows_cap) {
    RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(stream), "sync"));
    if (stats_q != nullptr) (void)cudaFree(stats_q);
    if (stats_out != nullptr) (void)cudaFree(stats_out);
    stats_q = stats_out = nullptr;
    stats_rows_cap = 0;
    const int64_t cap = std::max<int64_t>(stats_rows + stats_rows / 2, 64);
    RETURN_IF_ERROR(CudaStatus(cudaMalloc(&stats_q, cap * qkv_dim * ElemBytes()), "stats rows"));
    RETURN_IF_ERROR(CudaStatus(cudaMalloc(&stats_out, cap * q_dim * ElemBytes()), "stats rows"));
    stats_rows_cap = cap;
  }
  RETURN_IF_ERROR(grow(&sel_scores, &sel_scores_floats, score_floats, "attention scores"));
  return grow(&key_stats, &key_stats_floats, floats, "key statistics");
}

absl::Status CudaModelRunner::Impl::Init(const ModelWeights* weights, uint64_t seed) {
  hidden = cfg.hidden_size;
  nh = cfg.num_attention_heads;
  nkv = cfg.num_key_value_heads;
  hd = cfg.head_dim;
  q_dim = nh * hd;
  kv_dim = nkv * hd;
  qkv_dim = q_dim + 2 * kv_dim;
  inter = cfg.intermediate_size;
  vocab = cfg.vocab_size;
  num_layers = cfg.num_hidden_layers;
  max_model_len = opt.max_model_len > 0 ? opt.max_model_len : cfg.max_position_embeddings;
  max_blocks = (max_model_len + opt.page_size - 1) / opt.page_size;
  layout = KvLayout{
      .num_layers = num_layers, .num_kv_heads = nkv, .head_dim = hd, .page_size = opt.page_size};
  layer_window.assign(cfg.layer_window.begin(), cfg.layer_window.end());
  std::set<int64_t> ws(layer_window.begin(), layer_window.end());
  distinct_windows.assign(ws.begin(), ws.end());
  for (int64_t lw : layer_window) {
    layer_window_index.push_back(
        static_cast<int>(std::lower_bound(distinct_windows.begin(), distinct_windows.end(), lw) -
                         distinct_windows.begin()));
  }

  RETURN_IF_ERROR(CudaStatus(cudaSetDevice(opt.device), "cudaSetDevice"));
  RETURN_IF_ERROR(CudaStatus(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream"));
  RETURN_IF_ERROR(CudaStatus(cudaEventCreate(&step_start), "event"));
  RETURN_IF_ERROR(CudaStatus(cudaEventCreate(&step_end), "event"));
  ASSIGN_OR_RETURN(gemm, cuda::CublasLtGemm::Create(size_t{32} << 20));
  if (weights != nullptr) {
    ASSIGN_OR_RETURN(w, cuda_internal::UploadWeights(cfg, *weights, dt));
  } else {
    ASSIGN_OR_RETURN(w, cuda_internal::RandomWeights(cfg, dt, seed));
  }

  // RoPE tables (exact rotation at any position below kMaxRopePosition).
  const cuda::RopeTablesHost tables =
      cuda::BuildRopeTables(cpu::InvFrequencies(RopeParamsOf(cfg)), kMaxRopePosition);
  rope_hi_rows = tables.num_hi_rows;
  ASSIGN_OR_RETURN(void* lo, Alloc(tables.lo.size() * sizeof(float), "rope"));
  ASSIGN_OR_RETURN(void* hi, Alloc(tables.hi.size() * sizeof(float), "rope"));
  rope_lo = static_cast<float*>(lo);
  rope_hi = static_cast<float*>(hi);
  RETURN_IF_ERROR(CudaStatus(cudaMemcpy(rope_lo, tables.lo.data(), tables.lo.size() * sizeof(float),
                                        cudaMemcpyHostToDevice),
                             "rope upload"));
  RETURN_IF_ERROR(CudaStatus(cudaMemcpy(rope_hi, tables.hi.data(), tables.hi.size() * sizeof(float),
                                        cudaMemcpyHostToDevice),
                             "rope upload"));

  // Activations.
  // Rows of a step: its tokens plus the padding of the decode group to its bucket.
  max_rows = std::max<int64_t>(NextPow2(opt.max_num_seqs), opt.max_num_seqs);
  const int64_t T = opt.max_num_tokens + max_rows, E = ElemBytes();
  ASSIGN_OR_RETURN(x, Alloc(T * hidden * E, "activations"));
  ASSIGN_OR_RETURN(xn, Alloc(T * hidden * E, "activations"));
  ASSIGN_OR_RETURN(qkv, Alloc(T * qkv_dim * E, "activations"));
  ASSIGN_OR_RETURN(attn, Alloc(T * q_dim * E, "activations"));
  ASSIGN_OR_RETURN(proj, Alloc(T * hidden * E, "activations"));
  ASSIGN_OR_RETURN(gu, Alloc(T * 2 * inter * E, "activations"));
  ASSIGN_OR_RETURN(act, Alloc(T * inter * E, "activations"));
  ASSIGN_OR_RETURN(last, Alloc(max_rows * hidden * E, "activations"));
  ASSIGN_OR_RETURN(void* lg, Alloc(max_rows * vocab * sizeof(float), "logits"));
  logits = static_cast<float*>(lg);
  ASSIGN_OR_RETURN(void* st, Alloc(max_rows * sizeof(int32_t), "sampling"));
  sampled_tokens = static_cast<int32_t*>(st);
  ASSIGN_OR_RETURN(void* sl, Alloc(max_rows * sizeof(float), "sampling"));
  sampled_logprobs = static_cast<float*>(sl);

  KernelsFacade::Config kc{.dtype = dt,
                           .head_dim = static_cast<int>(hd),
                           .num_q_heads = static_cast<int>(nh),
                           .num_kv_heads = static_cast<int>(nkv),
                           .page_size = static_cast<int>(opt.page_size),
                           .vocab = vocab,
                           .max_rows = max_rows,
                           .max_model_len = max_model_len,
                           .max_position = kMaxRopePosition,
                           .rope_hi_rows = rope_hi_rows,
                           .rope_lo = rope_lo,
                           .rope_hi = rope_hi,
                           .windows = distinct_windows};
  ASSIGN_OR_RETURN(kernels, KernelsFacade::Create(kc));
  attention_ops.assign(num_layers, std::make_shared<cuda_internal::PagedAttentionOp>());
  RETURN_IF_ERROR(EnsureMeta(size_t{1} << 20));
  RETURN_IF_ERROR(CudaStatus(cudaDeviceSynchronize(), "init"));

  // The page pool: what is left of the budget.
  const int64_t page_bytes = layout.PageElements() * ElemBytes();
  if (opt.num_pages > 0) {
    num_pages = opt.num_pages;
  } else {
    size_t free_b = 0, total_b = 0;
    RETURN_IF_ERROR(CudaStatus(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo"));
    const double budget = opt.gpu_memory_utilization * static_cast<double>(total_b);
    const double used = static_cast<double>(total_b - free_b);
    const double room = std::min(budget - used, static_cast<double>(free_b) - (256 << 20));
    if (room < static_cast<double>(page_bytes)) {
      return absl::ResourceExhaustedError(
          absl::StrFormat("no GPU memory left for KV pages: %.2f GiB in use of a %.2f GiB budget "
                          "(--gpu-memory-utilization %.2f)",
                          used / (1 << 30), budget / (1 << 30), opt.gpu_memory_utilization));
    }
    num_pages = static_cast<int32_t>(std::min<double>(room / page_bytes, 1 << 30));
  }
  ASSIGN_OR_RETURN(kv, CudaKvStorage::Create(layout, ElemBytes(), num_pages, /*num_state_slots=*/0,
                                             /*state_bytes=*/0, stream));
  return absl::OkStatus();
}

}  // namespace longview

namespace longview {

// The forward of one laid-out step, composed of per-layer ops (layer_ops.h); only enqueues
// (capturable for pure dense-decode steps).
static absl::Status Forward(CudaModelRunner::Impl& m, const StepLayout& L) {
  RETURN_IF_ERROR(cuda_internal::EmbedTokens(m, L));
  for (int64_t l = 0; l < m.num_layers; ++l) {
    RETURN_IF_ERROR(cuda_internal::AttentionBlock(m, L, l));
    RETURN_IF_ERROR(cuda_internal::MlpBlock(m, L, l));
  }
  return cuda_internal::LogitsHead(m, L);
}

absl::Status CudaModelRunner::Impl::EnsureLogitsRows(int64_t rows) {
  if (rows <= max_rows || rows <= wide_rows) return absl::OkStatus();
  // Outside any captured graph: only prefill steps score prompts. Waits for the stream so that
  // the old buffers are not in use when freed.
  RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(stream), "logits buffers"));
  for (void* p : {wide_last, static_cast<void*>(wide_logits)}) {
    if (p != nullptr) {
      std::erase(allocs, p);
      RETURN_IF_ERROR(CudaStatus(cudaFree(p), "logits buffers"));
    }
  }
  wide_last = nullptr;
  wide_logits = nullptr;
  wide_rows = 0;
  ASSIGN_OR_RETURN(wide_last, Alloc(rows * hidden * ElemBytes(), "prompt logits"));
  ASSIGN_OR_RETURN(void* lg, Alloc(rows * vocab * sizeof(float), "prompt logits"));
  wide_logits = static_cast<float*>(lg);
  wide_rows = rows;
  return absl::OkStatus();
}

CudaModelRunner::CudaModelRunner(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaModelRunner::~CudaModelRunner() = default;

absl::StatusOr<std::unique_ptr<CudaModelRunner>> CudaModelRunner::Create(
    const ModelConfig& cfg, const ModelWeights* weights, const CudaRunnerOptions& o,
    uint64_t random_seed) {
  if (cfg.head_dim != 64 && cfg.head_dim != 128) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the CUDA backend supports head_dim 64 and 128, the model has %d", cfg.head_dim));
  }
  if (o.page_size < 1 || o.max_num_tokens < 1 || o.max_num_seqs < 1 || o.num_pages < 0 ||
      o.max_model_len < 0) {
    return absl::InvalidArgumentError(
        "CUDA runner: page_size, max_num_tokens and max_num_seqs must be >= 1");
  }
  if (!(o.gpu_memory_utilization > 0 && o.gpu_memory_utilization <= 1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "gpu_memory_utilization must be in (0, 1], got %g", o.gpu_memory_utilization));
  }
  if (!CudaDeviceAvailable()) return absl::FailedPreconditionError("no CUDA device is available");
  auto impl = std::make_unique<Impl>();
  impl->cfg = cfg;
  impl->opt = o;
  impl->dt = o.fp16 ? DType::kFP16 : DType::kBF16;
  RETURN_IF_ERROR(impl->Init(weights, random_seed));
  return std::unique_ptr<CudaModelRunner>(new CudaModelRunner(std::move(impl)));
}

int64_t CudaModelRunner::vocab_size() const { return impl_->vocab; }
int32_t CudaModelRunner::num_pages() const { return impl_->num_pages; }
KvStorage& CudaModelRunner::kv_storage() { return *impl_->kv; }
int64_t CudaModelRunner::page_bytes() const { return impl_->layout.PageElements() * 2; }
const CudaModelRunner::Stats& CudaModelRunner::stats() const { return impl_->stats; }

absl::Status CudaModelRunner::Execute(const StepPlan& plan, StepResult& result) {
  Impl& m = *impl_;
  RETURN_IF_ERROR(CheckCopies(plan.copies, m.num_pages));
  RETURN_IF_ERROR(CheckCopies(plan.slot_copies, m.num_pages, m.opt.page_size));
  StepLayout L;
  RETURN_IF_ERROR(PrepareStep(m, plan, L));
  if (L.stats_floats > 0) {
    RETURN_IF_ERROR(m.EnsureKeyStats(L.ns, L.nx, L.stats_floats, L.scores_floats));
    RETURN_IF_ERROR(CudaStatus(
        cudaMemsetAsync(m.key_stats, 0, L.stats_floats * sizeof(float), m.stream), "stats"));
  }
  RETURN_IF_ERROR(m.EnsureLogitsRows(static_cast<int64_t>(L.logit_src.size())));
  RETURN_IF_ERROR(m.kv->CopyPages(plan.copies));
  RETURN_IF_ERROR(m.kv->CopySlots(plan.slot_copies));
  RETURN_IF_ERROR(m.kv->CopyStates(plan.state_copies));
  RETURN_IF_ERROR(m.kv->ClearStates(plan.cleared_state_slots));
  RETURN_IF_ERROR(CudaStatus(cudaEventRecord(m.step_start, m.stream), "event"));
  RETURN_IF_ERROR(CudaStatus(
      cudaMemcpyAsync(m.meta_dev, m.meta_host, L.meta_bytes, cudaMemcpyHostToDevice, m.stream),
      "metadata upload"));
  const bool graph =
      m.opt.cuda_graphs && LogitsInPlace(L) && L.batch_padded > 0 && L.embed_rows.empty();
  if (graph) {
    const auto key = std::make_tuple(L.batch_padded, L.context_bucket, L.sample);
    auto it = m.graphs.find(key);
    if (it == m.graphs.end()) {
      // cuBLASLt picks its algorithms outside the capture: run the step once eagerly first.
      RETURN_IF_ERROR(Forward(m, L));
      cudaGraph_t g = nullptr;
      RETURN_IF_ERROR(CudaStatus(cudaStreamBeginCapture(m.stream, cudaStreamCaptureModeThreadLocal),
                                 "capture"));
      const absl::Status fs = Forward(m, L);
      const cudaError_t end = cudaStreamEndCapture(m.stream, &g);
      RETURN_IF_ERROR(fs);
      RETURN_IF_ERROR(CudaStatus(end, "end capture"));
      cudaGraphExec_t exec = nullptr;
      const cudaError_t inst = cudaGraphInstantiate(&exec, g, 0);
      (void)cudaGraphDestroy(g);
      RETURN_IF_ERROR(CudaStatus(inst, "graph instantiate"));
      m.graphs[key] = Impl::Graph{exec};
      ++m.stats.graph_captures;
    } else {
      RETURN_IF_ERROR(CudaStatus(cudaGraphLaunch(it->second.exec, m.stream), "graph launch"));
      ++m.stats.graph_replays;
    }
  } else {
    RETURN_IF_ERROR(Forward(m, L));
    ++m.stats.eager_steps;
  }
  RETURN_IF_ERROR(CudaStatus(cudaEventRecord(m.step_end, m.stream), "event"));
  // KV policies' per-key statistics: one download, split per sequence after the sync below.
  std::vector<float> stats(L.stats_floats);
  if (L.stats_floats > 0) {
    RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(stats.data(), m.key_stats,
                                               L.stats_floats * sizeof(float),
                                               cudaMemcpyDeviceToHost, m.stream),
                               "key statistics download"));
  }
  result.key_stats.assign(plan.seqs.size(), {});
  result.key_stats_heads = m.nkv;
  result.key_stats_row_norm = static_cast<double>(m.num_layers) * static_cast<double>(m.nh / m.nkv);
  auto split_stats = [&] {
    for (size_t i = 0; i < plan.seqs.size(); ++i) {
      if (L.stats_offset[i] < 0) continue;
      const float* b = stats.data() + L.stats_offset[i];
      result.key_stats[i].assign(b, b + m.nkv * L.stats_keys[i]);
    }
  };
  const int64_t r = static_cast<int64_t>(L.logit_src.size());
  result.vocab_size = m.vocab;
  result.logits_row.assign(L.out_row.begin(), L.out_row.end());
  result.logits_count.assign(L.out_count.begin(), L.out_count.end());
  result.tokens.clear();
  result.token_logprobs.clear();
  if (L.sample) {
    std::vector<int32_t> toks(r);
    std::vector<float> lps(r);
    RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(toks.data(), m.sampled_tokens, r * sizeof(int32_t),
                                               cudaMemcpyDeviceToHost, m.stream),
                               "tokens download"));
    RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(lps.data(), m.sampled_logprobs, r * sizeof(float),
                                               cudaMemcpyDeviceToHost, m.stream),
                               "logprobs download"));
    RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(m.stream), "step"));
    split_stats();
    float gpu_ms = 0;
    if (cudaEventElapsedTime(&gpu_ms, m.step_start, m.step_end) == cudaSuccess) {
      m.stats.last_step_gpu_ms = gpu_ms;
    }
    result.logits.clear();
    result.tokens.assign(plan.seqs.size(), -1);
    result.token_logprobs.assign(plan.seqs.size(), 0.f);
    for (size_t i = 0; i < plan.seqs.size(); ++i) {
      if (L.out_row[i] < 0) continue;
      result.tokens[i] = toks[L.out_row[i]];
      result.token_logprobs[i] = lps[L.out_row[i]];
    }
    return absl::OkStatus();
  }
  result.logits.resize(r * m.vocab);
  const float* logits = r > m.max_rows ? m.wide_logits : m.logits;
  RETURN_IF_ERROR(
      CudaStatus(cudaMemcpyAsync(result.logits.data(), logits, r * m.vocab * sizeof(float),
                                 cudaMemcpyDeviceToHost, m.stream),
                 "logits download"));
  RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(m.stream), "step"));
  split_stats();
  float gpu_ms = 0;
  if (cudaEventElapsedTime(&gpu_ms, m.step_start, m.step_end) == cudaSuccess) {
    m.stats.last_step_gpu_ms = gpu_ms;
  }
  return absl::OkStatus();
}

}  // namespace longview
