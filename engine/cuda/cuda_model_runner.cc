// CudaModelRunner: step preparation, the forward, CUDA graphs. See cuda_model_runner.h.
#include "engine/cuda/cuda_model_runner.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "absl/strings/str_format.h"
#include "engine/cpu_model.h"
#include "engine/cuda/cublaslt_gemm.h"
#include "engine/cuda/internal/device_weights.h"
#include "engine/cuda/internal/kernels_facade.h"
#include "engine/cuda/internal/step_meta.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/activation/silu_mul.h"
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

namespace {

constexpr int64_t kMinContextBucket = 256;
// Positions the RoPE tables cover: StreamingLLM sequences keep their token index as position
// inside the kernels (only differences matter), so streams far past the model's context work.
constexpr int64_t kMaxRopePosition = (int64_t{1} << 24) - 1;

int64_t NextPow2(int64_t x) {
  int64_t p = 1;
  while (p < x) p <<= 1;
  return p;
}

// A device allocation freed with the runner.
struct DeviceAlloc {
  void* p = nullptr;
  size_t bytes = 0;
};

}  // namespace

struct CudaModelRunner::Impl {
  ModelConfig cfg;
  CudaRunnerOptions opt;
  DType dt = DType::kBF16;
  int64_t hidden = 0, nh = 0, nkv = 0, hd = 0, q_dim = 0, kv_dim = 0, qkv_dim = 0, inter = 0;
  int64_t vocab = 0, num_layers = 0, max_model_len = 0, max_blocks = 0;
  KvLayout layout;
  std::vector<int64_t> layer_window;      // per layer, 0 = full
  std::vector<int64_t> distinct_windows;  // sorted distinct values of layer_window
  std::vector<int> layer_window_index;    // layer -> index into distinct_windows

  cudaStream_t stream = nullptr;
  std::unique_ptr<cuda::CublasLtGemm> gemm;
  DeviceWeights w;
  std::vector<DeviceAlloc> allocs;
  void* pages = nullptr;
  int32_t num_pages = 0;
  float* rope_lo = nullptr;
  float* rope_hi = nullptr;
  int rope_hi_rows = 0;

  // Activations, sized for max_num_tokens rows.
  void *x = nullptr, *xn = nullptr, *qkv = nullptr, *attn = nullptr, *proj = nullptr;
  void *gu = nullptr, *act = nullptr, *last = nullptr;
  float* logits = nullptr;  // [max_num_seqs][vocab]
  int32_t* sampled_tokens = nullptr;
  float* sampled_logprobs = nullptr;

  // Per-step metadata.
  char* meta_host = nullptr;  // pinned
  char* meta_dev = nullptr;
  size_t meta_capacity = 0;

  std::unique_ptr<KernelsFacade> kernels;

  struct Graph {
    cudaGraphExec_t exec = nullptr;
  };
  std::map<std::tuple<int64_t, int64_t, bool>, Graph> graphs;  // (batch, context bucket, sample)
  Stats stats;

  ~Impl();
  absl::Status Init(const ModelWeights* weights, uint64_t seed);
  absl::StatusOr<void*> Alloc(size_t bytes, const char* what);
  absl::Status EnsureMeta(size_t bytes);
  void DropGraphs();
  int64_t ElemBytes() const { return 2; }
  char* Row(void* base, int64_t row, int64_t width) const {
    return static_cast<char*>(base) + row * width * ElemBytes();
  }
};

namespace {

// One step, laid out: decode-kernel sequences first (their rows 0..nd), then the rest.
struct StepLayout {
  int64_t num_tokens = 0;
  int64_t nd = 0;                 // rows (= sequences) of the decode group
  int64_t np = 0;                 // sequences of the prefill group
  int64_t batch_padded = 0;       // decode rows after padding to the bucket (>= nd)
  int64_t context_bucket = 0;     // decode: keys bound of the plan
  int64_t decode_stride = 0;      // decode block-table stride
  int64_t prefill_stride = 0;     // prefill block-table stride
  int64_t total_rows = 0;         // batch_padded + prefill rows
  std::vector<size_t> order;      // plan index of each processed sequence (decode group first)
  std::vector<int64_t> row0;      // first row of each processed sequence
  std::vector<int64_t> logit_src; // rows whose logits are needed, in output order
  std::vector<int32_t> out_row;   // per plan sequence: output row or -1
  bool sample = false;
  // Offsets into the metadata buffer.
  size_t ids = 0, slots = 0, dec_pos = 0, dec_lens = 0, dec_tables = 0, pre_qstart = 0,
         pre_lens = 0, pre_tables = 0, pre_windows = 0, pre_sinks = 0, gather = 0, s_temp = 0,
         s_topk = 0, s_topp = 0, s_seed = 0, s_counter = 0;
  size_t meta_bytes = 0;
  int64_t prefill_total_kv = 0;  // keys the prefill kernel's workspace must hold (all layers' max)
};

bool InDecodeGroup(const ScheduledSequence& s) {
  return s.token_ids.size() == 1 && s.forward.window_override < 0 && s.forward.sinks == 0;
}

}  // namespace

CudaModelRunner::Impl::~Impl() {
  DropGraphs();
  kernels.reset();
  gemm.reset();
  w.Free();
  for (DeviceAlloc& a : allocs) (void)cudaFree(a.p);
  if (meta_host != nullptr) (void)cudaFreeHost(meta_host);
  if (meta_dev != nullptr) (void)cudaFree(meta_dev);
  if (stream != nullptr) (void)cudaStreamDestroy(stream);
}

void CudaModelRunner::Impl::DropGraphs() {
  for (auto& [key, g] : graphs) (void)cudaGraphExecDestroy(g.exec);
  graphs.clear();
}

absl::StatusOr<void*> CudaModelRunner::Impl::Alloc(size_t bytes, const char* what) {
  void* p = nullptr;
  RETURN_IF_ERROR(CudaStatus(cudaMalloc(&p, std::max<size_t>(bytes, 16)), what));
  allocs.push_back({p, bytes});
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
  layout = KvLayout{.num_layers = num_layers, .num_kv_heads = nkv, .head_dim = hd,
                    .page_size = opt.page_size};
  layer_window.assign(cfg.layer_window.begin(), cfg.layer_window.end());
  std::set<int64_t> ws(layer_window.begin(), layer_window.end());
  distinct_windows.assign(ws.begin(), ws.end());
  for (int64_t lw : layer_window) {
    layer_window_index.push_back(static_cast<int>(
        std::lower_bound(distinct_windows.begin(), distinct_windows.end(), lw) -
        distinct_windows.begin()));
  }

  RETURN_IF_ERROR(CudaStatus(cudaSetDevice(opt.device), "cudaSetDevice"));
  RETURN_IF_ERROR(CudaStatus(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream"));
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
  RETURN_IF_ERROR(CudaStatus(cudaMemcpy(rope_lo, tables.lo.data(),
                                        tables.lo.size() * sizeof(float), cudaMemcpyHostToDevice),
                             "rope upload"));
  RETURN_IF_ERROR(CudaStatus(cudaMemcpy(rope_hi, tables.hi.data(),
                                        tables.hi.size() * sizeof(float), cudaMemcpyHostToDevice),
                             "rope upload"));

  // Activations.
  // Rows of a step: its tokens plus the padding of the decode group to its bucket.
  const int64_t max_rows = std::max<int64_t>(NextPow2(opt.max_num_seqs), opt.max_num_seqs);
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

  KernelsFacade::Config kc{.dtype = dt, .head_dim = static_cast<int>(hd),
                           .num_q_heads = static_cast<int>(nh),
                           .num_kv_heads = static_cast<int>(nkv),
                           .page_size = static_cast<int>(opt.page_size),
                           .vocab = vocab, .max_rows = max_rows,
                           .max_num_tokens = opt.max_num_tokens,
                           .max_model_len = max_model_len,
                           .max_position = kMaxRopePosition, .rope_hi_rows = rope_hi_rows,
                           .rope_lo = rope_lo, .rope_hi = rope_hi,
                           .windows = distinct_windows};
  ASSIGN_OR_RETURN(kernels, KernelsFacade::Create(kc));
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
      return absl::ResourceExhaustedError(absl::StrFormat(
          "no GPU memory left for KV pages: %.2f GiB in use of a %.2f GiB budget "
          "(--gpu-memory-utilization %.2f)",
          used / (1 << 30), budget / (1 << 30), opt.gpu_memory_utilization));
    }
    num_pages = static_cast<int32_t>(std::min<double>(room / page_bytes, 1 << 30));
  }
  ASSIGN_OR_RETURN(pages, Alloc(static_cast<size_t>(num_pages) * page_bytes, "KV pages"));
  return absl::OkStatus();
}

}  // namespace longview

namespace longview {
namespace {

// Fills `L` and the metadata of `plan` into m.meta_host; InvalidArgument for a malformed plan.
absl::Status Prepare(CudaModelRunner::Impl& m, const StepPlan& plan, StepLayout& L) {
  const int64_t ps = m.opt.page_size;
  if (static_cast<int64_t>(plan.seqs.size()) > m.opt.max_num_seqs) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "step has %d sequences, the runner takes at most %d", plan.seqs.size(), m.opt.max_num_seqs));
  }
  int64_t num_tokens = 0;
  int64_t num_logits = 0, num_device_sampled = 0;
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const ScheduledSequence& s = plan.seqs[i];
    const int64_t n = static_cast<int64_t>(s.token_ids.size());
    if (n == 0) return absl::InvalidArgumentError(absl::StrFormat("sequence %d: no tokens", i));
    if (absl::Status st = ValidateForwardOptions(s.forward); !st.ok()) {
      return absl::InvalidArgumentError(absl::StrFormat("sequence %d: %s", i, st.message()));
    }
    const int64_t capacity = static_cast<int64_t>(s.block_ids.size()) * ps;
    if (s.start_pos < 0 || capacity < s.start_pos + n) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "sequence %d: block table holds %d tokens, positions up to %d needed", i, capacity,
          s.start_pos + n));
    }
    if (s.forward.sinks == 0 && s.start_pos + n > m.max_model_len) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "sequence %d: %d tokens exceed the runner's max_model_len %d", i, s.start_pos + n,
          m.max_model_len));
    }
    if (s.start_pos + n > kMaxRopePosition) {
      return absl::InvalidArgumentError(
          absl::StrFormat("sequence %d: position %d beyond the RoPE tables", i, s.start_pos + n));
    }
    for (size_t b = 0; b < s.block_ids.size(); ++b) {
      const int32_t page = s.block_ids[b];
      const bool written = static_cast<int64_t>(b + 1) * ps > s.start_pos;
      if (page == -1 && s.forward.window_override > 0 && !written) continue;  // released
      if (page < 0 || page >= m.num_pages) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "sequence %d: page %d out of range [0, %d)", i, page, m.num_pages));
      }
    }
    for (int32_t t : s.token_ids) {
      if (t < 0 || t >= m.vocab) {
        return absl::InvalidArgumentError(
            absl::StrFormat("sequence %d: token id %d out of range [0, %d)", i, t, m.vocab));
      }
    }
    num_tokens += n;
    if (s.need_logits) {
      ++num_logits;
      num_device_sampled += s.device_sampling.has_value();
    }
  }
  L.sample = num_logits > 0 && num_device_sampled == num_logits;

  // Decode group first.
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    if (InDecodeGroup(plan.seqs[i])) L.order.push_back(i);
  }
  L.nd = static_cast<int64_t>(L.order.size());
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    if (!InDecodeGroup(plan.seqs[i])) L.order.push_back(i);
  }
  L.np = static_cast<int64_t>(plan.seqs.size()) - L.nd;
  const int64_t max_rows = std::max<int64_t>(NextPow2(m.opt.max_num_seqs), m.opt.max_num_seqs);
  L.batch_padded = L.nd == 0 ? 0 : std::min(NextPow2(L.nd), max_rows);
  int64_t max_dec_len = 0;
  for (int64_t k = 0; k < L.nd; ++k) {
    max_dec_len = std::max(max_dec_len, plan.seqs[L.order[k]].start_pos + 1);
  }
  L.context_bucket = L.nd == 0 ? 0 : std::max(kMinContextBucket, NextPow2(max_dec_len));
  L.decode_stride = (L.context_bucket + ps - 1) / ps;
  L.prefill_stride = 1;
  int64_t prefill_rows = 0;
  for (int64_t k = L.nd; k < static_cast<int64_t>(L.order.size()); ++k) {
    const ScheduledSequence& s = plan.seqs[L.order[k]];
    L.prefill_stride = std::max<int64_t>(L.prefill_stride, s.block_ids.size());
    prefill_rows += static_cast<int64_t>(s.token_ids.size());
  }
  for (int64_t v = 0; v < static_cast<int64_t>(m.distinct_windows.size()); ++v) {
    int64_t total = 0;
    for (int64_t k = L.nd; k < static_cast<int64_t>(L.order.size()); ++k) {
      const ScheduledSequence& s = plan.seqs[L.order[k]];
      const int64_t n = static_cast<int64_t>(s.token_ids.size()), kv_len = s.start_pos + n;
      const int64_t window =
          s.forward.window_override >= 0 ? s.forward.window_override : m.distinct_windows[v];
      total += window > 0 ? std::min(kv_len, s.forward.sinks + window + n - 1) : kv_len;
    }
    L.prefill_total_kv = std::max(L.prefill_total_kv, total);
  }
  L.num_tokens = num_tokens;
  L.total_rows = L.batch_padded + prefill_rows;
  if (L.total_rows > m.opt.max_num_tokens + max_rows || num_tokens > m.opt.max_num_tokens) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "step has %d tokens, the runner takes at most %d", num_tokens, m.opt.max_num_tokens));
  }
  L.row0.resize(L.order.size());
  int64_t row = L.batch_padded;
  for (size_t k = 0; k < L.order.size(); ++k) {
    if (static_cast<int64_t>(k) < L.nd) {
      L.row0[k] = static_cast<int64_t>(k);
    } else {
      L.row0[k] = row;
      row += static_cast<int64_t>(plan.seqs[L.order[k]].token_ids.size());
    }
  }
  L.out_row.assign(plan.seqs.size(), -1);
  for (size_t k = 0; k < L.order.size(); ++k) {
    const ScheduledSequence& s = plan.seqs[L.order[k]];
    if (!s.need_logits) continue;
    L.out_row[L.order[k]] = static_cast<int32_t>(L.logit_src.size());
    L.logit_src.push_back(L.row0[k] + static_cast<int64_t>(s.token_ids.size()) - 1);
  }
  const int64_t r = static_cast<int64_t>(L.logit_src.size());
  const int64_t sample_rows = std::max(r, L.batch_padded);

  // Layout of the metadata: sizes only, so equal sizes give equal offsets (graphs rely on it).
  const int64_t nwin = static_cast<int64_t>(m.distinct_windows.size());
  MetaArena a;
  L.ids = a.Reserve<int32_t>(L.total_rows);
  L.slots = a.Reserve<int64_t>(L.total_rows);
  L.dec_pos = a.Reserve<int32_t>(L.batch_padded);
  L.dec_lens = a.Reserve<int32_t>(L.batch_padded);
  L.dec_tables = a.Reserve<int32_t>(L.batch_padded * L.decode_stride);
  L.pre_qstart = a.Reserve<int32_t>(L.np + 1);
  L.pre_lens = a.Reserve<int32_t>(L.np);
  L.pre_tables = a.Reserve<int32_t>(L.np * L.prefill_stride);
  L.pre_windows = a.Reserve<int32_t>(nwin * L.np);
  L.pre_sinks = a.Reserve<int32_t>(L.np);
  L.gather = a.Reserve<int32_t>(r);
  L.s_temp = a.Reserve<float>(sample_rows);
  L.s_topk = a.Reserve<int32_t>(sample_rows);
  L.s_topp = a.Reserve<float>(sample_rows);
  L.s_seed = a.Reserve<uint64_t>(sample_rows);
  L.s_counter = a.Reserve<uint64_t>(sample_rows);
  L.meta_bytes = a.used();
  RETURN_IF_ERROR(m.EnsureMeta(L.meta_bytes));
  char* h = m.meta_host;
  auto arr = [h](size_t off, auto* type_tag) { return reinterpret_cast<decltype(type_tag)>(h + off); };
  int32_t* ids = arr(L.ids, static_cast<int32_t*>(nullptr));
  int64_t* slots = arr(L.slots, static_cast<int64_t*>(nullptr));
  int32_t* dec_pos = arr(L.dec_pos, static_cast<int32_t*>(nullptr));
  int32_t* dec_lens = arr(L.dec_lens, static_cast<int32_t*>(nullptr));
  int32_t* dec_tables = arr(L.dec_tables, static_cast<int32_t*>(nullptr));
  int32_t* qstart = arr(L.pre_qstart, static_cast<int32_t*>(nullptr));
  int32_t* pre_lens = arr(L.pre_lens, static_cast<int32_t*>(nullptr));
  int32_t* pre_tables = arr(L.pre_tables, static_cast<int32_t*>(nullptr));
  int32_t* windows = arr(L.pre_windows, static_cast<int32_t*>(nullptr));
  int32_t* sinks = arr(L.pre_sinks, static_cast<int32_t*>(nullptr));
  int32_t* gather = arr(L.gather, static_cast<int32_t*>(nullptr));
  float* temp = arr(L.s_temp, static_cast<float*>(nullptr));
  int32_t* topk = arr(L.s_topk, static_cast<int32_t*>(nullptr));
  float* topp = arr(L.s_topp, static_cast<float*>(nullptr));
  uint64_t* seed = arr(L.s_seed, static_cast<uint64_t*>(nullptr));
  uint64_t* counter = arr(L.s_counter, static_cast<uint64_t*>(nullptr));

  std::fill_n(ids, L.batch_padded, 0);
  std::fill_n(slots, L.batch_padded, -1);
  std::fill_n(dec_pos, L.batch_padded, 0);
  std::fill_n(dec_lens, L.batch_padded, 0);
  std::fill_n(dec_tables, L.batch_padded * L.decode_stride, 0);
  std::fill_n(pre_tables, L.np * L.prefill_stride, 0);
  for (size_t k = 0; k < L.order.size(); ++k) {
    const ScheduledSequence& s = plan.seqs[L.order[k]];
    const int64_t n = static_cast<int64_t>(s.token_ids.size());
    for (int64_t i = 0; i < n; ++i) {
      const int64_t pos = s.start_pos + i;
      ids[L.row0[k] + i] = s.token_ids[i];
      slots[L.row0[k] + i] = static_cast<int64_t>(s.block_ids[pos / ps]) * ps + pos % ps;
    }
    const int64_t kv_len = s.start_pos + n;
    if (static_cast<int64_t>(k) < L.nd) {
      dec_pos[k] = static_cast<int32_t>(s.start_pos);
      dec_lens[k] = static_cast<int32_t>(kv_len);
      std::copy(s.block_ids.begin(), s.block_ids.end(), dec_tables + k * L.decode_stride);
    } else {
      const int64_t j = static_cast<int64_t>(k) - L.nd;
      qstart[j] = static_cast<int32_t>(L.row0[k] - L.batch_padded);
      pre_lens[j] = static_cast<int32_t>(kv_len);
      std::copy(s.block_ids.begin(), s.block_ids.end(), pre_tables + j * L.prefill_stride);
      for (int64_t v = 0; v < nwin; ++v) {
        windows[v * L.np + j] = static_cast<int32_t>(
            s.forward.window_override >= 0 ? s.forward.window_override : m.distinct_windows[v]);
      }
      sinks[j] = static_cast<int32_t>(s.forward.sinks);
    }
  }
  if (L.np > 0) qstart[L.np] = static_cast<int32_t>(L.total_rows - L.batch_padded);
  for (int64_t i = 0; i < r; ++i) gather[i] = static_cast<int32_t>(L.logit_src[i]);
  std::fill_n(temp, sample_rows, 0.f);
  std::fill_n(topk, sample_rows, 0);
  std::fill_n(topp, sample_rows, 1.f);
  std::fill_n(seed, sample_rows, 0);
  std::fill_n(counter, sample_rows, 0);
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const int32_t o = L.out_row[i];
    if (o < 0 || !plan.seqs[i].device_sampling) continue;
    const DeviceSampling& d = *plan.seqs[i].device_sampling;
    temp[o] = d.temperature;
    topk[o] = d.top_k;
    topp[o] = d.top_p;
    seed[o] = d.seed;
    counter[o] = d.counter;
  }
  return absl::OkStatus();
}

// Whether the needed logits are exactly rows 0..r-1 (a pure decode step), so the LM head can
// read the normed rows in place.
bool LogitsInPlace(const StepLayout& L) {
  if (L.np > 0) return false;
  for (size_t i = 0; i < L.logit_src.size(); ++i) {
    if (L.logit_src[i] != static_cast<int64_t>(i)) return false;
  }
  return true;
}

}  // namespace

// The forward of one laid-out step; only enqueues (capturable when L.np == 0).
static absl::Status Forward(CudaModelRunner::Impl& m, const StepLayout& L) {
  using cuda_internal::PagesView;
  const char* d = m.meta_dev;
  auto i32 = [d](size_t off) { return reinterpret_cast<const int32_t*>(d + off); };
  cuda_internal::KernelsFacade& k = *m.kernels;
  cuda::CublasLtGemm& g = *m.gemm;
  const cudaStream_t st = m.stream;
  const int64_t rows = L.total_rows;
  const int64_t prefill_rows = rows - L.batch_padded;
  RETURN_IF_ERROR(k.Gather(i32(L.ids), rows, m.w.embed, m.vocab, m.hidden, m.x, st));
  for (int64_t l = 0; l < m.num_layers; ++l) {
    const cuda_internal::DeviceLayer& lw = m.w.layers[l];
    RETURN_IF_ERROR(cuda::CudaStatus(
        cuda::FusedAddRmsNorm({.dtype = m.dt, .num_rows = rows, .hidden = m.hidden,
                               .eps = static_cast<float>(m.cfg.rms_norm_eps),
                               .x = l == 0 ? nullptr : m.proj, .residual = m.x,
                               .weight = lw.input_norm, .out = m.xn},
                              st),
        "rmsnorm"));
    RETURN_IF_ERROR(g.Run({.dtype = m.dt, .m = rows, .n = m.qkv_dim, .k = m.hidden, .x = m.xn,
                           .w = lw.qkv, .bias = lw.qkv_bias, .y = m.qkv},
                          st));
    const PagesView view{.pages = m.pages,
                         .page_stride = m.layout.PageElements(),
                         .k_offset = m.layout.Offset(l, KvLayout::kKey, 0, 0),
                         .v_offset = m.layout.Offset(l, KvLayout::kValue, 0, 0)};
    char* qkv = static_cast<char*>(m.qkv);
    RETURN_IF_ERROR(k.KvAppend(qkv + m.q_dim * 2, qkv + (m.q_dim + m.kv_dim) * 2, m.qkv_dim,
                               reinterpret_cast<const int64_t*>(d + L.slots), rows, view, st));
    if (L.batch_padded > 0) {
      RETURN_IF_ERROR(k.RotateQ(m.qkv, L.batch_padded, m.qkv_dim, i32(L.dec_pos), st));
      RETURN_IF_ERROR(k.Decode(m.layer_window[l], L.batch_padded, L.context_bucket, m.qkv,
                               m.qkv_dim, m.attn, view, i32(L.dec_tables), L.decode_stride,
                               i32(L.dec_lens), st));
    }
    if (L.np > 0) {
      RETURN_IF_ERROR(k.Prefill(
          L.np, prefill_rows, L.prefill_total_kv, m.Row(m.qkv, L.batch_padded, m.qkv_dim), m.qkv_dim,
          m.Row(m.attn, L.batch_padded, m.q_dim), view, i32(L.pre_tables), L.prefill_stride,
          i32(L.pre_qstart), i32(L.pre_lens),
          i32(L.pre_windows) + m.layer_window_index[l] * L.np, i32(L.pre_sinks), st));
    }
    RETURN_IF_ERROR(g.Run({.dtype = m.dt, .m = rows, .n = m.hidden, .k = m.q_dim, .x = m.attn,
                           .w = lw.o, .y = m.proj},
                          st));
    RETURN_IF_ERROR(cuda::CudaStatus(
        cuda::FusedAddRmsNorm({.dtype = m.dt, .num_rows = rows, .hidden = m.hidden,
                               .eps = static_cast<float>(m.cfg.rms_norm_eps), .x = m.proj,
                               .residual = m.x, .weight = lw.post_norm, .out = m.xn},
                              st),
        "rmsnorm"));
    RETURN_IF_ERROR(g.Run({.dtype = m.dt, .m = rows, .n = 2 * m.inter, .k = m.hidden, .x = m.xn,
                           .w = lw.gate_up, .y = m.gu},
                          st));
    char* gu = static_cast<char*>(m.gu);
    RETURN_IF_ERROR(cuda::CudaStatus(
        cuda::SiluMul({.dtype = m.dt, .num_rows = rows, .n = m.inter, .gate = gu,
                       .up = gu + m.inter * 2, .out = m.act, .gate_stride = 2 * m.inter,
                       .up_stride = 2 * m.inter, .out_stride = m.inter},
                      st),
        "silu_mul"));
    RETURN_IF_ERROR(g.Run({.dtype = m.dt, .m = rows, .n = m.hidden, .k = m.inter, .x = m.act,
                           .w = lw.down, .y = m.proj},
                          st));
  }
  RETURN_IF_ERROR(cuda::CudaStatus(
      cuda::FusedAddRmsNorm({.dtype = m.dt, .num_rows = rows, .hidden = m.hidden,
                             .eps = static_cast<float>(m.cfg.rms_norm_eps), .x = m.proj,
                             .residual = m.x, .weight = m.w.final_norm, .out = m.xn},
                            st),
      "rmsnorm"));
  const bool in_place = LogitsInPlace(L);
  const int64_t r = in_place ? L.batch_padded : static_cast<int64_t>(L.logit_src.size());
  if (r == 0) return absl::OkStatus();
  const void* src = m.xn;
  if (!in_place) {
    RETURN_IF_ERROR(k.Gather(i32(L.gather), r, m.xn, rows, m.hidden, m.last, st));
    src = m.last;
  }
  RETURN_IF_ERROR(g.Run({.dtype = m.dt, .m = r, .n = m.vocab, .k = m.hidden, .x = src,
                         .w = m.w.lm_head, .y = m.logits, .y_float32 = true},
                        st));
  if (L.sample) {
    const cuda_internal::KernelsFacade::SampleParams p{
        .temperature = reinterpret_cast<const float*>(d + L.s_temp),
        .top_k = i32(L.s_topk),
        .top_p = reinterpret_cast<const float*>(d + L.s_topp),
        .seed = reinterpret_cast<const uint64_t*>(d + L.s_seed),
        .counter = reinterpret_cast<const uint64_t*>(d + L.s_counter)};
    RETURN_IF_ERROR(k.Sample(m.logits, r, p, m.sampled_tokens, m.sampled_logprobs, st));
  }
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
int64_t CudaModelRunner::page_bytes() const { return impl_->layout.PageElements() * 2; }
const CudaModelRunner::Stats& CudaModelRunner::stats() const { return impl_->stats; }

absl::Status CudaModelRunner::Execute(const StepPlan& plan, StepResult& result) {
  Impl& m = *impl_;
  const int64_t page_bytes = m.layout.PageElements() * 2;
  for (const PageCopy& c : plan.copies) {
    if (c.src_page < 0 || c.src_page >= m.num_pages || c.dst_page < 0 ||
        c.dst_page >= m.num_pages) {
      return absl::InvalidArgumentError(
          absl::StrFormat("page copy %d -> %d out of range", c.src_page, c.dst_page));
    }
  }
  StepLayout L;
  RETURN_IF_ERROR(Prepare(m, plan, L));
  char* pages = static_cast<char*>(m.pages);
  for (const PageCopy& c : plan.copies) {
    RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(pages + c.dst_page * page_bytes,
                                               pages + c.src_page * page_bytes, page_bytes,
                                               cudaMemcpyDeviceToDevice, m.stream),
                               "page copy"));
  }
  RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(m.meta_dev, m.meta_host, L.meta_bytes,
                                             cudaMemcpyHostToDevice, m.stream),
                             "metadata upload"));
  const bool graph = m.opt.cuda_graphs && L.np == 0 && LogitsInPlace(L) && L.batch_padded > 0;
  if (graph) {
    const auto key = std::make_tuple(L.batch_padded, L.context_bucket, L.sample);
    auto it = m.graphs.find(key);
    if (it == m.graphs.end()) {
      // cuBLASLt picks its algorithms outside the capture: run the step once eagerly first.
      RETURN_IF_ERROR(Forward(m, L));
      cudaGraph_t g = nullptr;
      RETURN_IF_ERROR(CudaStatus(
          cudaStreamBeginCapture(m.stream, cudaStreamCaptureModeThreadLocal), "capture"));
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
  const int64_t r = static_cast<int64_t>(L.logit_src.size());
  result.vocab_size = m.vocab;
  result.logits_row.assign(L.out_row.begin(), L.out_row.end());
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
  RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(result.logits.data(), m.logits,
                                             r * m.vocab * sizeof(float), cudaMemcpyDeviceToHost,
                                             m.stream),
                             "logits download"));
  return CudaStatus(cudaStreamSynchronize(m.stream), "step");
}

}  // namespace longview
