// Device helpers shared by the CUDA kernels: float conversion of bf16/fp16 and packing of
// eight 2-byte elements to and from one 16-byte vector (uint4). Include only from .cu files.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

namespace longview::cuda::detail {

__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float ToFloat(__half x) { return __half2float(x); }

template <typename T>
__device__ __forceinline__ T FromFloat(float x);
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half FromFloat<__half>(float x) {
  return __float2half_rn(x);
}

// Two packed elements (one 32-bit word) to floats.
__device__ __forceinline__ float2 Word2ToFloat2(uint32_t w, __nv_bfloat16*) {
  return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xffff0000u));
}
__device__ __forceinline__ float2 Word2ToFloat2(uint32_t w, __half*) {
  __half2 h;
  memcpy(&h, &w, 4);
  return __half22float2(h);
}
__device__ __forceinline__ uint32_t Float2ToWord2(float a, float b, __nv_bfloat16*) {
  __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
  uint32_t w;
  memcpy(&w, &h, 4);
  return w;
}
__device__ __forceinline__ uint32_t Float2ToWord2(float a, float b, __half*) {
  __half2 h = __floats2half2_rn(a, b);
  uint32_t w;
  memcpy(&w, &h, 4);
  return w;
}

// f[0..8) = the eight elements of v, in memory order.
template <typename T>
__device__ __forceinline__ void Unpack8(const uint4& v, float* f) {
  const float2 a = Word2ToFloat2(v.x, static_cast<T*>(nullptr));
  const float2 b = Word2ToFloat2(v.y, static_cast<T*>(nullptr));
  const float2 c = Word2ToFloat2(v.z, static_cast<T*>(nullptr));
  const float2 d = Word2ToFloat2(v.w, static_cast<T*>(nullptr));
  f[0] = a.x, f[1] = a.y, f[2] = b.x, f[3] = b.y, f[4] = c.x, f[5] = c.y, f[6] = d.x, f[7] = d.y;
}

template <typename T>
__device__ __forceinline__ uint4 Pack8(const float* f) {
  uint4 v;
  v.x = Float2ToWord2(f[0], f[1], static_cast<T*>(nullptr));
  v.y = Float2ToWord2(f[2], f[3], static_cast<T*>(nullptr));
  v.z = Float2ToWord2(f[4], f[5], static_cast<T*>(nullptr));
  v.w = Float2ToWord2(f[6], f[7], static_cast<T*>(nullptr));
  return v;
}

// kN consecutive elements (8 or 4: 16 or 8 bytes, aligned) as floats.
template <typename T, int kN>
__device__ __forceinline__ void LoadFloats(const T* src, float* f) {
  if constexpr (kN == 8) {
    Unpack8<T>(*reinterpret_cast<const uint4*>(src), f);
  } else {
    static_assert(kN == 4);
    const uint2 v = *reinterpret_cast<const uint2*>(src);
    const float2 a = Word2ToFloat2(v.x, static_cast<T*>(nullptr));
    const float2 b = Word2ToFloat2(v.y, static_cast<T*>(nullptr));
    f[0] = a.x, f[1] = a.y, f[2] = b.x, f[3] = b.y;
  }
}

__host__ __device__ __forceinline__ bool Aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

}  // namespace longview::cuda::detail
