// The launch geometry every fmnist kernel shares, in plain C++ so that both the CUDA context
// (context.cu) and the CPU kernel emulator (tests/kernel_emu) size grids and scratch from it:
// the block count of a grid-stride launch, and the deterministic reductions' scratch sizes.
#pragma once

#include <algorithm>
#include <cstddef>

namespace fmnist::cuda {

// Blocks for a grid-stride loop over n elements with `threads` threads a block: enough for one
// element a thread, at most 32 blocks per multiprocessor, at least one.
inline int grid_stride_blocks(std::size_t n, int threads, int multiprocessors) {
  const std::size_t wanted = (n + static_cast<std::size_t>(threads) - 1) / static_cast<std::size_t>(threads);
  const std::size_t cap = static_cast<std::size_t>(std::max(1, multiprocessors)) * 32;
  return static_cast<int>(std::max<std::size_t>(1, std::min(wanted, cap)));
}

// Scratch of the two-pass reductions, per lane: partial sums (doubles) and counters of finished
// blocks (ordered_sum.cuh's last_block_of_row), both zeroed once and left zeroed by every kernel.
constexpr int kReducePartialCount = 1024;
constexpr int kReduceCounterCount = 65536;

}  // namespace fmnist::cuda
