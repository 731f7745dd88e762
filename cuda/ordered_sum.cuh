// The fixed-order sums of fmnist's deterministic GPU reductions (kernels.cu, weight_grad.cu):
// block_sum, add_in_order, the last-block handshake that lets a two-pass reduction add its
// partials in the launch that wrote them (so that the second pass costs no launch of its own), and
// the per-channel plane sums built on them.
#pragma once

#include <cstddef>

#include "cuda/grid_stride.cuh"

namespace fmnist::cuda {

// Sum of v over the block (blockDim.x == kThreads), in a fixed tree order; every thread gets it.
// A second call in the same kernel needs a __syncthreads() between the two (the shared array is
// reused without a trailing barrier).
__device__ inline double block_sum(double v) {
  __shared__ double partial[kThreads];
  partial[threadIdx.x] = v;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
    if (static_cast<int>(threadIdx.x) < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  return partial[0];
}


// sum + x[0] + x[stride] + ... + x[(count - 1) * stride], added in that order in double. The adds
// wait on one another, the loads need not: they are issued kSumLoadsAhead at a time before their
// adds, so a thread waits for memory count / kSumLoadsAhead times rather than about count / 4
// (what nvcc's unrolling of a plain loop with a runtime count gave). The order, and so every bit
// of the result, is that of the plain loop. kFromL2: load through L2 (ld.global.cg), for values
// that other blocks of the same launch wrote (an SM's L1 is not coherent with theirs).
constexpr int kSumLoadsAhead = 16;
template <bool kFromL2, class T>
__device__ T load_value(const T* p) {
  if constexpr (kFromL2)
    return __ldcg(p);
  else
    return *p;
}
template <bool kFromL2 = false, class T>
__device__ double add_in_order(double sum, const T* x, std::size_t stride, int count) {
  int i = 0;
  for (; i + kSumLoadsAhead <= count; i += kSumLoadsAhead) {
    T v[kSumLoadsAhead];
#pragma unroll
    for (int u = 0; u < kSumLoadsAhead; ++u) v[u] = load_value<kFromL2>(x + static_cast<std::size_t>(i + u) * stride);
#pragma unroll
    for (int u = 0; u < kSumLoadsAhead; ++u) sum += static_cast<double>(v[u]);
  }
  for (; i < count; ++i) sum += static_cast<double>(load_value<kFromL2>(x + static_cast<std::size_t>(i) * stride));
  return sum;
}

// The handshake, for a launch in which `blocks` blocks each write partials of row `row` (rows
// being, say, channels): call it from every thread of the block once the block's partials are
// written, each writing thread having run __threadfence() after its writes. It counts the block
// done on counters[row] and returns, in every thread, whether the block was the row's last to
// finish; that block then sees every partial of the row (read them with add_in_order<true>) and
// has put the counter back to 0 for the next launch (kernels of one stream run in order, so they
// may share the counters). Which block is last varies from run to run; what it sums does not.
// Begins and ends with __syncthreads().
__device__ inline bool last_block_of_row(unsigned int* counters, int row, unsigned int blocks) {
  __shared__ bool last;
  __syncthreads();  // the block's partials are written and fenced
  if (threadIdx.x == 0) {
    last = atomicAdd(counters + row, 1u) == blocks - 1;
    if (last) {
      counters[row] = 0;
      __threadfence();  // the other blocks' partials, fenced before their counts, are read after ours
    }
  }
  __syncthreads();
  return last;
}

// Block (blockIdx.x = g, any y) of channel c's `groups` blocks: out[c] = the sum of x (B,C,HW)'s
// planes of channel c over all B images, the block summing image group g (images g * per_group
// on, per_group of them, the last group shorter): each thread plane by plane over its elements
// threadIdx.x, + kThreads, ..., then block_sum; with one group the block writes out[c], else its
// partial (C, groups) in partials, and the channel's last block to finish (counters[c]) adds the
// partials in group order. The order depends on the shapes alone. Every thread of the block calls it.
__device__ inline void sum_channel_planes(const float* x, int batch, int channels, int hw, int c, int per_group,
                                          int groups, double* partials, unsigned int* counters, float* out) {
  const int g = static_cast<int>(blockIdx.x);
  const int first = g * per_group, end = min(batch, first + per_group);
  double sum = 0.0;
  for (int b = first; b < end; ++b) {
    const float* plane = x + (static_cast<std::size_t>(b) * channels + c) * hw;
    for (int j = static_cast<int>(threadIdx.x); j < hw; j += kThreads) sum += static_cast<double>(plane[j]);
  }
  const double total = block_sum(sum);
  double* row = partials + static_cast<std::size_t>(c) * groups;
  if (groups == 1) {
    if (threadIdx.x == 0) out[c] = static_cast<float>(total);
    return;
  }
  if (threadIdx.x == 0) {
    row[g] = total;
    __threadfence();
  }
  if (!last_block_of_row(counters, c, static_cast<unsigned>(groups))) return;
  if (threadIdx.x == 0) out[c] = static_cast<float>(add_in_order<true>(0.0, row, 1, groups));
}

}  // namespace fmnist::cuda
