// The launch shape every fmnist kernel uses: blocks of kThreads threads walking the n elements in a
// grid-stride loop (`for (i = global_index(); i < n; i += global_stride())`), so any grid size
// covers any n. Device-only; included by the .cu files.
#pragma once

#include <cstddef>

namespace fmnist::cuda {

constexpr int kThreads = 256;  // threads per block of every kernel

__device__ __forceinline__ std::size_t global_index() {
  return static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ std::size_t global_stride() {
  return static_cast<std::size_t>(gridDim.x) * blockDim.x;
}

}  // namespace fmnist::cuda
