// The loop of both Adam kernels (adam.cu by value, step_kernels.cu from the step table): every
// element of params, grads, m and v (each (n), flat) through elementwise::adam_update, four at a
// time with 16-byte loads and stores when all four buffers are 16-byte aligned (cudaMalloc's are;
// an offset into one may not be), then the tail one at a time. Each element is computed alone,
// the same way, so the bits are those of the one-at-a-time loop and of the CPU reference.
// Device-only; included by the .cu files.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>  // __device__, float4 (grid_stride.cuh needs them first)

#include "cuda/grid_stride.cuh"
#include "models/elementwise.h"

namespace fmnist::cuda {

// The threads adam_elements needs for n elements: one per four (any grid is correct: the loops
// stride over the grid).
inline std::size_t adam_threads(std::size_t n) { return (n + 3) / 4; }

__device__ __forceinline__ void adam_elements(std::size_t n, float* params, const float* grads, float* m, float* v,
                                              const elementwise::AdamStep<float>& step) {
  const std::uintptr_t addresses = reinterpret_cast<std::uintptr_t>(params) | reinterpret_cast<std::uintptr_t>(grads) |
                                   reinterpret_cast<std::uintptr_t>(m) | reinterpret_cast<std::uintptr_t>(v);
  std::size_t vectorised = 0;
  if (addresses % alignof(float4) == 0) {
    vectorised = n / 4 * 4;
    float4* p4 = reinterpret_cast<float4*>(params);
    const float4* g4 = reinterpret_cast<const float4*>(grads);
    float4* m4 = reinterpret_cast<float4*>(m);
    float4* v4 = reinterpret_cast<float4*>(v);
    for (std::size_t q = global_index(); q < n / 4; q += global_stride()) {
      float4 p = p4[q], mq = m4[q], vq = v4[q];
      const float4 g = g4[q];
      elementwise::adam_update(p.x, g.x, mq.x, vq.x, step);
      elementwise::adam_update(p.y, g.y, mq.y, vq.y, step);
      elementwise::adam_update(p.z, g.z, mq.z, vq.z, step);
      elementwise::adam_update(p.w, g.w, mq.w, vq.w, step);
      p4[q] = p;
      m4[q] = mq;
      v4[q] = vq;
    }
  }
  for (std::size_t i = vectorised + global_index(); i < n; i += global_stride())
    elementwise::adam_update(params[i], grads[i], m[i], v[i], step);
}

}  // namespace fmnist::cuda
