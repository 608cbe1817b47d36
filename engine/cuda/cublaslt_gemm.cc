#include "engine/cuda/cublaslt_gemm.h"

#include <cublasLt.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "kernels/cuda/gemv/gemv.h"
#include "kernels/cuda/status.h"

namespace longview::cuda {
namespace {

absl::Status LtStatus(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrFormat("cuBLASLt %s: %s", what, cublasLtGetStatusString(s)));
}

#define LT_RETURN_IF_ERROR(expr, what) RETURN_IF_ERROR(LtStatus((expr), what))

cudaDataType_t CudaType(DType t) { return t == DType::kBF16 ? CUDA_R_16BF : CUDA_R_16F; }

GemvArgs GemvArgsOf(const GemmArgs& g) {
  return GemvArgs{.dtype = g.dtype, .m = static_cast<int>(std::min<int64_t>(g.m, kGemvMaxM + 1)),
                  .n = g.n, .k = g.k, .x = g.x, .w = g.w, .bias = g.bias, .y = g.y,
                  .y_float32 = g.y_float32, .ldy = g.ldy};
}

}  // namespace

// Column-major view: Y row-major [m][n] is Yᵀ column-major (n x m, ld = ldy); W row-major
// [n][k] is a column-major k x n matrix used transposed; X row-major [m][k] a column-major
// k x m matrix. So Yᵀ = op(W) · Xᵀ with op = transpose: D(n x m) = Aᵀ(n x k) · B(k x m).
struct CublasLtGemm::Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool gemv = false;  // the project's GEMV kernel was faster for this shape
  ~Plan() {
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

absl::StatusOr<std::unique_ptr<CublasLtGemm>> CublasLtGemm::Create(size_t workspace_bytes) {
  cublasLtHandle_t handle = nullptr;
  LT_RETURN_IF_ERROR(cublasLtCreate(&handle), "create");
  void* ws = nullptr;
  if (workspace_bytes > 0) {
    if (absl::Status st = CudaStatus(cudaMalloc(&ws, workspace_bytes), "GEMM workspace");
        !st.ok()) {
      cublasLtDestroy(handle);
      return st;
    }
  }
  return std::unique_ptr<CublasLtGemm>(new CublasLtGemm(handle, ws, workspace_bytes));
}

CublasLtGemm::CublasLtGemm(cublasLtHandle_t handle, void* workspace, size_t workspace_bytes)
    : handle_(handle), workspace_(workspace), workspace_bytes_(workspace_bytes) {}

CublasLtGemm::~CublasLtGemm() {
  plans_.clear();
  if (workspace_ != nullptr) (void)cudaFree(workspace_);
  cublasLtDestroy(handle_);
}

template <typename F>
absl::StatusOr<float> CublasLtGemm::Time(F launch, cudaStream_t stream) {
  constexpr int kRuns = 5;
  if (!launch()) return -1.f;  // this candidate does not run here
  cudaEvent_t start = nullptr, stop = nullptr;
  RETURN_IF_ERROR(CudaStatus(cudaEventCreate(&start), "event"));
  if (absl::Status st = CudaStatus(cudaEventCreate(&stop), "event"); !st.ok()) {
    (void)cudaEventDestroy(start);
    return st;
  }
  (void)cudaEventRecord(start, stream);
  for (int r = 0; r < kRuns; ++r) (void)launch();
  (void)cudaEventRecord(stop, stream);
  absl::Status status = CudaStatus(cudaEventSynchronize(stop), "GEMM tuning");
  float ms = -1.f;
  if (status.ok() && cudaEventElapsedTime(&ms, start, stop) != cudaSuccess) ms = -1.f;
  (void)cudaEventDestroy(start);
  (void)cudaEventDestroy(stop);
  RETURN_IF_ERROR(status);
  return ms;
}

absl::StatusOr<std::pair<cublasLtMatmulAlgo_t, float>> CublasLtGemm::Fastest(
    const Plan& p, const GemmArgs& g, const cublasLtMatmulHeuristicResult_t* candidates,
    int num_candidates, cudaStream_t stream) {
  const float alpha = 1.f, beta = 0.f;
  float best_ms = -1.f;
  int best = 0;
  for (int c = 0; c < num_candidates; ++c) {
    ASSIGN_OR_RETURN(const float ms, Time(
                                         [&] {
                                           return cublasLtMatmul(
                                                      handle_, p.op, &alpha, g.w, p.a, g.x, p.b,
                                                      &beta, g.y, p.d, g.y, p.d,
                                                      &candidates[c].algo, workspace_,
                                                      workspace_bytes_, stream) ==
                                                  CUBLAS_STATUS_SUCCESS;
                                         },
                                         stream));
    if (ms >= 0 && (best_ms < 0 || ms < best_ms)) {
      best_ms = ms;
      best = c;
    }
  }
  return std::make_pair(candidates[best].algo, best_ms);
}

absl::StatusOr<const CublasLtGemm::Plan*> CublasLtGemm::PlanFor(const GemmArgs& g,
                                                                cudaStream_t stream) {
  const int64_t ldy = g.ldy > 0 ? g.ldy : g.n;
  const auto key = std::make_tuple(g.m, g.n, g.k, static_cast<int>(g.dtype), g.y_float32,
                                   g.bias != nullptr, ldy);
  if (auto it = plans_.find(key); it != plans_.end()) return it->second.get();
  auto p = std::make_unique<Plan>();
  const cudaDataType_t in = CudaType(g.dtype);
  const cudaDataType_t out = g.y_float32 ? CUDA_R_32F : in;
  LT_RETURN_IF_ERROR(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "desc");
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  LT_RETURN_IF_ERROR(
      cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), "transa");
  LT_RETURN_IF_ERROR(
      cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), "transb");
  if (g.bias != nullptr) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    LT_RETURN_IF_ERROR(
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)),
        "epilogue");
    const cudaDataType_t bias_type = in;
    LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                      &bias_type, sizeof(bias_type)),
                       "bias type");
    LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                      &g.bias, sizeof(g.bias)),
                       "bias pointer");
  }
  LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&p->a, in, g.k, g.n, g.k), "layout A");
  LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&p->b, in, g.k, g.m, g.k), "layout B");
  LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&p->d, out, g.n, g.m, ldy), "layout D");

  cublasLtMatmulPreference_t pref = nullptr;
  LT_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&pref), "preference");
  size_t ws = workspace_bytes_;
  cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  constexpr int kCandidates = 8;
  cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
  int found = 0;
  if (s == CUBLAS_STATUS_SUCCESS) {
    s = cublasLtMatmulAlgoGetHeuristic(handle_, p->op, p->a, p->b, p->d, p->d, pref, kCandidates,
                                       results, &found);
  }
  cublasLtMatmulPreferenceDestroy(pref);
  LT_RETURN_IF_ERROR(s, "heuristic");
  if (found == 0) {
    return absl::InternalError(absl::StrFormat(
        "cuBLASLt has no algorithm for m=%d n=%d k=%d %s", g.m, g.n, g.k, DTypeName(g.dtype)));
  }
  p->algo = results[0].algo;
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  RETURN_IF_ERROR(CudaStatus(cudaStreamIsCapturing(stream, &capturing), "capture status"));
  if (g.m <= kTuneMaxM && capturing == cudaStreamCaptureStatusNone) {
    ASSIGN_OR_RETURN(const auto best, Fastest(*p, g, results, found, stream));
    p->algo = best.first;
    const GemvArgs gv = GemvArgsOf(g);
    if (GemvSupports(gv)) {
      ASSIGN_OR_RETURN(const float gemv_ms,
                       Time([&] { return Gemv(gv, stream) == cudaSuccess; }, stream));
      p->gemv = gemv_ms >= 0 && (best.second < 0 || gemv_ms < best.second);
    }
  }
  const Plan* raw = p.get();
  plans_.emplace(key, std::move(p));
  return raw;
}

absl::Status CublasLtGemm::Run(const GemmArgs& g, cudaStream_t stream) {
  if (g.m < 0 || g.n < 1 || g.k < 1 || (g.ldy != 0 && g.ldy < g.n)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("GEMM sizes m=%d n=%d k=%d ldy=%d", g.m, g.n, g.k, g.ldy));
  }
  if (g.m == 0) return absl::OkStatus();
  if (g.x == nullptr || g.w == nullptr || g.y == nullptr) {
    return absl::InvalidArgumentError("GEMM: null operand");
  }
  ASSIGN_OR_RETURN(const Plan* p, PlanFor(g, stream));
  if (p->gemv && GemvSupports(GemvArgsOf(g))) return CudaStatus(Gemv(GemvArgsOf(g), stream), "gemv");
  if (g.bias != nullptr) {
    LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                      &g.bias, sizeof(g.bias)),
                       "bias pointer");
  }
  const float alpha = 1.f, beta = 0.f;
  LT_RETURN_IF_ERROR(cublasLtMatmul(handle_, p->op, &alpha, g.w, p->a, g.x, p->b, &beta, g.y,
                                    p->d, g.y, p->d, &p->algo, workspace_, workspace_bytes_,
                                    stream),
                     "matmul");
  return absl::OkStatus();
}

}  // namespace longview::cuda
