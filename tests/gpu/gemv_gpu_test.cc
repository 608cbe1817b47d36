// GEMV (kernels/cuda/gemv) against a double reference: m = 1..8 rows, odd n, k multiples of 8
// (one vector short of a full unrolled sweep, and the decode shapes), bias, float32 output and a
// y row stride, both dtypes; outputs poisoned first. Bad arguments are refused.
#include <random>
#include <vector>

#include "kernels/cuda/gemv/gemv.h"
#include "tests/gpu/gpu_test_util.h"

namespace longview::cuda {
namespace {

TEST(GemvGpu, MatchesDouble) {
  std::mt19937_64 rng(Seed() + 31);
  const struct {
    int m;
    int64_t n, k;
  } sizes[] = {{1, 17, 8}, {1, 97, 1016}, {3, 54, 1024}, {8, 33, 4096}, {1, 4096, 4096},
               {2, 129, 14336}, {5, 7, 264}};
  for (DType t : kDTypes) {
    for (auto [m, n, k] : sizes) {
      for (bool bias : {false, true}) {
        for (bool f32 : {false, true}) {
          const int64_t ldy = n + (f32 ? 3 : 8);
          auto x = RandomBits(static_cast<size_t>(m) * k, t, rng, 1.0);
          auto w = RandomBits(static_cast<size_t>(n) * k, t, rng, 1.0 / std::sqrt(double(k)));
          auto b = RandomBits(n, t, rng, 0.5);
          const size_t y_elems = static_cast<size_t>(m) * ldy;
          DeviceBuffer dx(x.size() * 2), dw(w.size() * 2), db(b.size() * 2), dy(y_elems * 4);
          ASSERT_TRUE(dx.ok() && dw.ok() && db.ok() && dy.ok());
          CUDA_OK(Upload(dx, x));
          CUDA_OK(Upload(dw, w));
          CUDA_OK(Upload(db, b));
          CUDA_OK(cudaMemset(dy.get(), 0xFF, y_elems * 4));  // NaN in every format
          GemvArgs a{.dtype = t, .m = m, .n = n, .k = k, .x = dx.get(), .w = dw.get(),
                     .bias = bias ? db.get() : nullptr, .y = dy.get(), .y_float32 = f32,
                     .ldy = ldy};
          CUDA_OK(Gemv(a, nullptr));
          CUDA_OK(cudaDeviceSynchronize());
          std::vector<double> ref(static_cast<size_t>(m) * n);
          std::vector<double> got(ref.size());
          std::vector<float> yf(y_elems);
          std::vector<uint16_t> yb(y_elems);
          if (f32) {
            CUDA_OK(Download(yf, dy));
          } else {
            CUDA_OK(Download(yb, dy));
          }
          for (int i = 0; i < m; ++i) {
            for (int64_t j = 0; j < n; ++j) {
              double s = bias ? FromBits(b[j], t) : 0.0;
              for (int64_t e = 0; e < k; ++e) {
                s += static_cast<double>(FromBits(x[i * k + e], t)) * FromBits(w[j * k + e], t);
              }
              ref[i * n + j] = s;
              got[i * n + j] = f32 ? yf[i * ldy + j] : FromBits(yb[i * ldy + j], t);
            }
          }
          // float32 outputs: accumulation error only; element-type outputs: one rounding too.
          const Tolerance tol = f32 ? Tolerance{1e-4, 1e-4, 1e-9} : TolFor(t);
          Comparison c;
          double err2 = 0, ref2 = 0;
          for (size_t i = 0; i < ref.size(); ++i) {
            const double err = std::fabs(got[i] - ref[i]);
            if (!(err <= tol.atol + tol.rtol * std::fabs(ref[i]))) ++c.num_bad;
            if (std::isfinite(err)) c.max_abs_err = std::max(c.max_abs_err, err);
            err2 += std::isfinite(err) ? err * err : INFINITY;
            ref2 += ref[i] * ref[i];
          }
          c.nmse = err2 / std::max(ref2, 1e-30);
          std::printf("[gemv] %s m=%d n=%lld k=%lld bias=%d f32=%d %s\n", DTypeName(t), m,
                      static_cast<long long>(n), static_cast<long long>(k), bias, f32,
                      Verdict(c, tol).c_str());
          EXPECT_TRUE(c.Pass(tol));
        }
      }
    }
  }
}

TEST(GemvGpu, RefusesUnsupportedArguments) {
  DeviceBuffer d(1 << 16);
  char* p = d.as<char>();
  GemvArgs ok{.m = 1, .n = 4, .k = 16, .x = p, .w = p + 256, .y = p + 1024};
  EXPECT_TRUE(GemvSupports(ok));
  GemvArgs bad = ok;
  bad.m = 9;
  EXPECT_EQ(Gemv(bad, nullptr), cudaErrorInvalidValue);
  bad = ok;
  bad.k = 12;
  EXPECT_EQ(Gemv(bad, nullptr), cudaErrorInvalidValue);
  bad = ok;
  bad.w = p + 2;  // not 16-byte aligned
  EXPECT_EQ(Gemv(bad, nullptr), cudaErrorInvalidValue);
  std::printf("[gemv] bad m, k and alignment refused PASS\n");
}

}  // namespace
}  // namespace longview::cuda
