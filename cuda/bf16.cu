// BF16 mode's casts (kernels.h; the semantics are models/precision.h's): float to bfloat16 bits,
// back, and float rounded to a bfloat16 value kept in a float. Every rounding is
// elementwise::bf16_bits, the function the CPU reference rounds with, so both backends feed
// cuDNN and cuBLAS the same bfloat16 operands; count_bf16_rounding_mismatches checks that it
// agrees with CUDA's own __float2bfloat16_rn over every float.
#include <cuda_bf16.h>

#include "cuda/check.h"
#include "cuda/device_gate.h"
#include "cuda/grid_stride.cuh"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace fmnist::cuda {
namespace {

namespace ew = elementwise;

__global__ void float_to_bf16_kernel(std::size_t n, const float* src, std::uint16_t* dst) {
  grid_dependency();
  for (std::size_t i = global_index(); i < n; i += global_stride()) dst[i] = ew::bf16_bits(src[i]);
}

__global__ void bf16_to_float_kernel(std::size_t n, const std::uint16_t* src, float* dst) {
  grid_dependency();
  for (std::size_t i = global_index(); i < n; i += global_stride())
    dst[i] = ew::bf16_bits_to_float(src[i]);
}

__global__ void round_to_bf16_kernel(std::size_t n, const float* src, float* dst) {
  grid_dependency();
  for (std::size_t i = global_index(); i < n; i += global_stride()) dst[i] = ew::round_to_bf16(src[i]);
}

// Float bit patterns [first, first + count): *mismatches += how many round differently.
__global__ void bf16_agreement_kernel(std::uint64_t first, std::uint64_t count,
                                      unsigned long long* mismatches) {
  grid_dependency();
  unsigned long long local = 0;
  for (std::uint64_t i = global_index(); i < count; i += global_stride()) {
    const float x = __uint_as_float(static_cast<unsigned int>(first + i));
    const __nv_bfloat16 cuda = __float2bfloat16_rn(x);
    const __nv_bfloat16_raw raw = cuda;
    local += raw.x != ew::bf16_bits(x) ? 1u : 0u;
  }
  if (local != 0) atomicAdd(mismatches, local);  // an integer count: order does not matter
}

}  // namespace

void launch_float_to_bf16(const Context& c, std::size_t n, const float* src, std::uint16_t* dst) {
  launch(c, float_to_bf16_kernel, c.grid_for(n, kThreads), kThreads, 0, n, src, dst);
}

void launch_bf16_to_float(const Context& c, std::size_t n, const std::uint16_t* src, float* dst) {
  launch(c, bf16_to_float_kernel, c.grid_for(n, kThreads), kThreads, 0, n, src, dst);
}

void launch_round_to_bf16(const Context& c, std::size_t n, const float* src, float* dst) {
  launch(c, round_to_bf16_kernel, c.grid_for(n, kThreads), kThreads, 0, n, src, dst);
}

std::uint64_t count_bf16_rounding_mismatches(const Context& c) {
  unsigned long long* counter = nullptr;
  DeviceWideSync sync;
  CUDA_CHECK(cudaMalloc(&counter, sizeof *counter));
  unsigned long long host = 0;
  try {
    CUDA_CHECK(cudaMemsetAsync(counter, 0, sizeof *counter, c.stream()));
    const std::uint64_t total = std::uint64_t(1) << 32, chunk = std::uint64_t(1) << 28;
    for (std::uint64_t first = 0; first < total; first += chunk) {
      launch(c, bf16_agreement_kernel, c.grid_for(chunk, kThreads), kThreads, 0, first, chunk, counter);
    }
    CUDA_CHECK(cudaMemcpyAsync(&host, counter, sizeof host, cudaMemcpyDeviceToHost, c.stream()));
    CUDA_CHECK(cudaStreamSynchronize(c.stream()));
  } catch (...) {
    CUDA_LOG(cudaFree(counter));
    throw;
  }
  CUDA_CHECK(cudaFree(counter));
  return host;
}

}  // namespace fmnist::cuda
