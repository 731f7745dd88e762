// The fixed-order sums of fmnist's deterministic GPU reductions (kernels.cu, weight_grad.cu):
// add_in_order, and the last-block handshake that lets a two-pass reduction add its partials in
// the launch that wrote them, so that the second pass costs no launch of its own.
#pragma once

#include <cstddef>

namespace fmnist::cuda {

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

}  // namespace fmnist::cuda
