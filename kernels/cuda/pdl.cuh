// Programmatic dependent launch (PDL) for the small kernels of a decode step: each is launched
// with the programmatic-stream-serialization attribute, so the GPU may start its blocks while
// the previous kernel finishes; the kernel's first act is griddepcontrol.wait (returns once the
// previous grid completed and its writes are visible), then it lets the next kernel launch.
// Nothing is read or written before the wait, so the stream's order of effects is unchanged; a
// kernel launched without the attribute (or after a non-PDL kernel) just passes the wait.
// Capturable in CUDA graphs. Device-side header: include only from .cu files.
//
//   __global__ void K(...) { PdlWaitThenRelease(); ... }
//   LV_CUDA_RETURN_IF_ERROR(LaunchPdl(K, grid, block, smem, stream, args...));
#pragma once

#include <cuda_runtime.h>

namespace longview::cuda::detail {

__device__ __forceinline__ void PdlWaitThenRelease() {
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
}

template <typename... KernelArgs, typename... Args>
cudaError_t LaunchPdl(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem,
                      cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  return cudaLaunchKernelEx(&cfg, kernel, static_cast<KernelArgs>(args)...);
}

}  // namespace longview::cuda::detail
