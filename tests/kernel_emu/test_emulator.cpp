// The kernel emulator itself: indices, barriers, shuffles, and the launches a GPU would refuse.
#include <cuda_runtime.h>

#include <catch2/catch.hpp>

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "emulator.h"

namespace {

using namespace fmnist::kernel_emu;

// visits (grid, block linear index) += 1; every thread also checks its indices are in range.
__global__ void visit_kernel(int* visits) {
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  visits[block * (blockDim.x * blockDim.y * blockDim.z) + thread] += 1;
}

// sums (gridDim.x) = per block, sum over its threads of (threadIdx.x + 1), by a shared-memory tree
// that needs every barrier it has.
__global__ void block_sum_kernel(long* sums) {
  __shared__ long partial[256];
  partial[threadIdx.x] = threadIdx.x + 1;
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) sums[blockIdx.x] = partial[0];
}

// out (blockDim.x) = each lane's value after one shuffle down by `delta`.
__global__ void shuffle_kernel(unsigned delta, double* out) {
  const double v = 1000.0 * (threadIdx.x / 32) + (threadIdx.x % 32);
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, v, delta);
}

// out (blockDim.x) = each lane's value after one xor shuffle with `lane_mask`.
__global__ void shuffle_xor_kernel(int lane_mask, double* out) {
  const double v = 1000.0 * (threadIdx.x / 32) + (threadIdx.x % 32);
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, v, lane_mask);
}

// Thread 0 waits at a barrier the others never reach (they shuffle instead).
__global__ void divergent_kernel(double* out) {
  if (threadIdx.x == 0)
    __syncthreads();
  else
    out[threadIdx.x] = __shfl_down_sync(0xffffffffu, 1.0, 1);
}

}  // namespace

TEST_CASE("the emulator runs every thread of a 3-D grid of 3-D blocks once", "[emulator]") {
  const dim3 grid(3, 2, 2), block(4, 3, 2);
  std::vector<int> visits(3 * 2 * 2 * 4 * 3 * 2, 0);
  for (const Schedule& s : {Schedule{BlockOrder::Forward, false, 1}, Schedule{BlockOrder::Shuffled, true, 5}}) {
    set_schedule(s);
    std::fill(visits.begin(), visits.end(), 0);
    int* p = visits.data();
    run_grid(grid, block, [p] { visit_kernel(p); });
    for (int v : visits) REQUIRE(v == 1);
  }
  set_schedule(Schedule{});
  CHECK(launch_log().last_grid.z == 2);
}

TEST_CASE("the emulator's barriers hold a block's threads together in any thread order", "[emulator]") {
  for (bool reversed : {false, true}) {
    set_schedule(Schedule{BlockOrder::Reverse, reversed, 1});
    std::vector<long> sums(5, -1);
    long* p = sums.data();
    run_grid(dim3(5), dim3(256), [p] { block_sum_kernel(p); });
    for (long s : sums) CHECK(s == 256 * 257 / 2);
  }
  set_schedule(Schedule{});
}

TEST_CASE("the emulator's shuffles exchange within each warp", "[emulator]") {
  for (unsigned delta : {1u, 5u, 16u}) {
    std::vector<double> out(64, -1.0);
    double* p = out.data();
    run_grid(dim3(1), dim3(64), [p, delta] { shuffle_kernel(delta, p); });
    for (unsigned t = 0; t < 64; ++t) {
      const unsigned lane = t % 32, source = lane + delta < 32 ? lane + delta : lane;
      CHECK(out[t] == 1000.0 * (t / 32) + source);
    }
  }
  for (int lane_mask : {1, 6, 16, 31}) {
    std::vector<double> out(64, -1.0);
    double* p = out.data();
    run_grid(dim3(1), dim3(64), [p, lane_mask] { shuffle_xor_kernel(lane_mask, p); });
    for (unsigned t = 0; t < 64; ++t) CHECK(out[t] == 1000.0 * (t / 32) + ((t % 32) ^ static_cast<unsigned>(lane_mask)));
  }
}

TEST_CASE("the emulator refuses what a GPU refuses", "[emulator]") {
  std::vector<double> out(64);
  double* p = out.data();
  CHECK_THROWS_AS(run_grid(dim3(1), dim3(2048), [] {}), std::runtime_error);
  CHECK_THROWS_AS(run_grid(dim3(1, 70000), dim3(32), [] {}), std::runtime_error);
  CHECK_THROWS_AS(run_grid(dim3(0), dim3(32), [] {}), std::runtime_error);
  // Threads that wait at different barriers never go on.
  CHECK_THROWS_WITH(run_grid(dim3(1), dim3(64), [p] { divergent_kernel(p); }),
                    Catch::Contains("cannot go on"));
  // A full-mask shuffle needs a full warp.
  CHECK_THROWS_WITH(run_grid(dim3(1), dim3(40), [p] { shuffle_kernel(1, p); }),
                    Catch::Contains("fewer than 32"));
  // A xor lane mask past the warp's 32 lanes is not emulated.
  CHECK_THROWS_WITH(run_grid(dim3(1), dim3(32), [p] { shuffle_xor_kernel(32, p); }),
                    Catch::Contains("lane mask of 32"));
  // An exception inside a kernel ends the launch and names the block; the next launch runs.
  CHECK_THROWS_WITH(run_grid(dim3(2), dim3(32), [] {
                      if (blockIdx.x == 1 && threadIdx.x == 7) throw std::invalid_argument("thread 7");
                    }),
                    Catch::Contains("block (1,0,0)") && Catch::Contains("thread 7"));
  std::vector<long> sums(1, -1);
  long* s = sums.data();
  run_grid(dim3(1), dim3(256), [s] { block_sum_kernel(s); });
  CHECK(sums[0] == 256 * 257 / 2);
}
