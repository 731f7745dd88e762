// cuda/context.h for the CPU kernel emulator (tests/kernel_emu): what the kernels' launchers read
// of a Context. Grids are sized by the real rule (launch_geometry.h) for a chosen number of
// multiprocessors (132 is an H100's); the reduction scratch is host memory of the real sizes,
// zeroed, which the tests check is left zeroed after every launch, as the real kernels promise.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <vector>

#include "cuda/backend.h"
#include "cuda/launch_geometry.h"

namespace fmnist::cuda {

class Context {
 public:
  explicit Context(int multiprocessors = 132, CudaOptions options = {})
      : multiprocessors_(multiprocessors),
        options_(options),
        partials_(kReducePartials, 0.0),
        counters_(kReduceCounters, 0u) {}

  const CudaOptions& options() const { return options_; }
  cudaStream_t stream() const { return nullptr; }
  int grid_for(std::size_t n, int threads) const { return grid_stride_blocks(n, threads, multiprocessors_); }

  static constexpr int kReducePartials = kReducePartialCount;
  static constexpr int kReduceCounters = kReduceCounterCount;
  double* reduce_partials() const { return partials_.data(); }
  unsigned int* reduce_counters() const { return counters_.data(); }
  // Whether every counter of finished blocks is back at 0.
  bool counters_clear() const {
    for (unsigned int v : counters_)
      if (v != 0) return false;
    return true;
  }

 private:
  int multiprocessors_;
  CudaOptions options_;
  mutable std::vector<double> partials_;
  mutable std::vector<unsigned int> counters_;
};

}  // namespace fmnist::cuda
