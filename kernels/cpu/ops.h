// CPU reference kernels for the transformer's dense operations, float32.
//
// These are the reference every CUDA kernel is checked against and the CPU backend's compute.
// Layouts are row-major; a linear layer's weight is Hugging Face's [out_features, in_features].
//
//   MatMulTransposed(x, w, y, m, n, k);   // y[m, n] = x[m, k] · w[n, k]ᵀ
//   RmsNorm(y, y, gamma, m, dim, 1e-5f);  // in place is fine
// Thread-safety: pure functions; they may use a few threads internally (ParallelFor).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace longview::cpu {

// Runs fn(begin, end) over [0, n) split across up to NumThreads() threads; small n runs inline.
void ParallelFor(int64_t n, int64_t min_chunk, const std::function<void(int64_t, int64_t)>& fn);
int NumThreads();
// Overrides the thread count (0 = hardware concurrency). Not thread-safe; call at startup.
void SetNumThreads(int n);

// y[m, n] = x[m, k] · w[n, k]ᵀ (+ bias[n] if bias != nullptr). y must not alias x or w.
void MatMulTransposed(const float* x, const float* w, const float* bias, float* y, int64_t m,
                      int64_t n, int64_t k);

// y[i, :] = x[i, :] / sqrt(mean(x[i, :]²) + eps) * gamma. y may alias x.
void RmsNorm(const float* x, const float* gamma, float* y, int64_t m, int64_t dim, float eps);

// out[i] = silu(gate[i]) * up[i]. out may alias gate or up.
void SiluMul(const float* gate, const float* up, float* out, int64_t n);

// x[i] += y[i].
void AddInPlace(float* x, const float* y, int64_t n);

// Dot product with several independent accumulators (vectorises without -ffast-math).
float Dot(const float* a, const float* b, int64_t n);

}  // namespace longview::cpu
