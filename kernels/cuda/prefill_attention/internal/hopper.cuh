// Hopper (sm_90a) primitives of the wgmma prefill kernel: mbarriers, 1-D bulk copies into shared
// memory, warpgroup MMA (wgmma.mma_async m64n128k16, f32 accumulators) and its shared-memory
// descriptors. Include only from .cu files compiled for sm_90a.
//
// Shared-memory operand layout used throughout ("K-major, 128-byte swizzle"): a matrix of R rows
// by 64 16-bit elements is R rows of 128 bytes; 16-byte chunk c of row r is stored at chunk
// c ^ (r & 7); the block starts 1024-byte aligned. A 128-wide operand is two such blocks (columns
// 0-63, then 64-127). The descriptor: start address, leading offset 1 (unused when swizzled),
// stride 1024 bytes between 8-row groups, swizzle mode 1 (128 B); a k-step of 16 elements inside
// a block advances the start address by 32 bytes.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace longview::cuda::prefill {

__device__ __forceinline__ uint32_t SmemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void MbarInit(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void FenceBarrierInit() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void MbarArrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void MbarArriveExpectTx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void MbarWait(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (done == 0);
}

// Copies `bytes` (multiple of 16; both addresses 16-byte aligned) from global to shared memory;
// completion is counted as transaction bytes on mbarrier `bar`.
__device__ __forceinline__ void BulkCopyG2S(uint32_t dst, const void* src, uint32_t bytes,
                                            uint32_t bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::
          "r"(dst),
      "l"(src), "r"(bytes), "r"(bar)
      : "memory");
}

// Orders this thread's ordinary shared-memory stores before later async-proxy (wgmma) reads.
__device__ __forceinline__ void FenceProxyAsync() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
__device__ __forceinline__ void NamedBarrier(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

template <int kRegs>
__device__ __forceinline__ void SetMaxRegsInc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}
template <int kRegs>
__device__ __forceinline__ void SetMaxRegsDec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}

__device__ __forceinline__ void WgmmaFence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void WgmmaCommit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int kPending>
__device__ __forceinline__ void WgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
// Keeps the compiler from moving accesses of `x` across an asynchronous MMA's issue or wait.
__device__ __forceinline__ void FenceReg(float& x) { asm volatile("" : "+f"(x)::"memory"); }
__device__ __forceinline__ void FenceReg(uint32_t& x) { asm volatile("" : "+r"(x)::"memory"); }

// Descriptor of a K-major, 128-byte-swizzled operand starting at shared address `addr`.
__device__ __forceinline__ uint64_t SwizzledDesc(uint32_t addr) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (uint64_t{1} << 16) |
         (uint64_t{1024 >> 4} << 32) | (uint64_t{1} << 62);
}

#define LV_WG_D_REGS                         \
  "%0, %1, %2, %3, %4, %5, %6, %7, "         \
  "%8, %9, %10, %11, %12, %13, %14, %15, "   \
  "%16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, " \
  "%40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, " \
  "%56, %57, %58, %59, %60, %61, %62, %63"

#define LV_WG_D_OUTS                                                                              \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),    \
      "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]),  \
      "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]),  \
      "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),  \
      "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]),  \
      "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]),  \
      "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),  \
      "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])

#define LV_WG_SS(TY)                                                             \
  asm volatile(                                                                  \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                               \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " {" LV_WG_D_REGS \
      "}, %64, %65, p, 1, 1, 0, 0;\n}\n"                                         \
      : LV_WG_D_OUTS                                                             \
      : "l"(a_desc), "l"(b_desc), "r"(accumulate))
#define LV_WG_RS(TY)                                                             \
  asm volatile(                                                                  \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                               \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " {" LV_WG_D_REGS \
      "}, {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"                           \
      : LV_WG_D_OUTS                                                             \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "n"(1))

// d (64 x 128 per warpgroup, accumulator layout) = (accumulate ? d : 0) + A B^T, A 64 x 16 and
// B 128 x 16 both from shared memory (descriptors).
__device__ __forceinline__ void WgmmaSS(float* d, uint64_t a_desc, uint64_t b_desc, int accumulate,
                                        __nv_bfloat16*) {
  LV_WG_SS("bf16");
}
__device__ __forceinline__ void WgmmaSS(float* d, uint64_t a_desc, uint64_t b_desc, int accumulate,
                                        __half*) {
  LV_WG_SS("f16");
}
// d += A B^T, A 64 x 16 from registers (mma.sync A-fragment layout per warp), B from shared.
__device__ __forceinline__ void WgmmaRS(float* d, const uint32_t* a, uint64_t b_desc,
                                        __nv_bfloat16*) {
  LV_WG_RS("bf16");
}
__device__ __forceinline__ void WgmmaRS(float* d, const uint32_t* a, uint64_t b_desc, __half*) {
  LV_WG_RS("f16");
}

#undef LV_WG_SS
#undef LV_WG_RS
#undef LV_WG_D_OUTS
#undef LV_WG_D_REGS

}  // namespace longview::cuda::prefill
