// Timing of the CUDA kernel benchmarks (ANCHORS "How to compare"): `warmup` untimed calls, then
// `iters` calls each between two CUDA events on `stream`; launch(i) gets the iteration so inputs
// can rotate (caches must not flatter). Fills `ms` with per-call milliseconds.
//
//   std::vector<float> ms;
//   BENCH_CHECK(TimeLaunches([&](int i) { return RunX(args_for(i % 4), stream); },
//                            warmup, iters, stream, &ms));
#pragma once

#include <cuda_runtime.h>

#include <vector>

namespace longview::bench {

template <typename Launch>
cudaError_t TimeLaunches(Launch launch, int warmup, int iters, cudaStream_t stream,
                         std::vector<float>* ms) {
  for (int i = 0; i < warmup; ++i) {
    if (cudaError_t e = launch(i); e != cudaSuccess) return e;
  }
  if (cudaError_t e = cudaStreamSynchronize(stream); e != cudaSuccess) return e;
  cudaEvent_t start = nullptr, stop = nullptr;
  cudaError_t e = cudaEventCreate(&start);
  if (e == cudaSuccess) e = cudaEventCreate(&stop);
  ms->assign(iters, 0.f);
  for (int i = 0; i < iters && e == cudaSuccess; ++i) {
    e = cudaEventRecord(start, stream);
    if (e == cudaSuccess) e = launch(i);
    if (e == cudaSuccess) e = cudaEventRecord(stop, stream);
    if (e == cudaSuccess) e = cudaEventSynchronize(stop);
    if (e == cudaSuccess) e = cudaEventElapsedTime(&(*ms)[i], start, stop);
  }
  if (start != nullptr) (void)cudaEventDestroy(start);
  if (stop != nullptr) (void)cudaEventDestroy(stop);
  if (e != cudaSuccess) return e;
  return cudaGetLastError();
}

}  // namespace longview::bench
