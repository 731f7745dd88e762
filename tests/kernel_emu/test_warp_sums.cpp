// cuda/warp_sums.cuh on the kernel emulator: the warp reduce-scatter that cuda/weight_grad.cu
// reduces its taps with gives, for every count of values, each value's sum over the warp's 32
// lanes, written by exactly one lane, with the same bits in any thread order; and its shuffle
// counts are the ones its padding is chosen by.
#include <cuda_runtime.h>

#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "cuda/warp_sums.cuh"
#include "emulator.h"
#include "models/rng.h"

namespace {

using namespace fmnist::kernel_emu;
using fmnist::cuda::WarpScatter;

// in (warps * 32, N): lane values, one row per thread -> out (warps, N): each warp's totals;
// writes (warps, N): how many lanes wrote each total.
template <int N>
__global__ void reduce_scatter_kernel(const double* in, double* out, int* writes) {
  const int thread = static_cast<int>(threadIdx.x), lane = thread & 31, warp = thread >> 5;
  double acc[N];
  for (int i = 0; i < N; ++i) acc[i] = in[thread * N + i];
  WarpScatter where;
  fmnist::cuda::warp_reduce_scatter<N>(acc, lane, where);
  if (!where.writes) return;
  for (int t = 0; t < fmnist::cuda::warp_scatter_kept(N); ++t) {
    out[warp * N + where.first + t] = acc[t];
    writes[warp * N + where.first + t] += 1;
  }
}

// One launch of 2 warps on values `in`, in schedule s: the totals and their write counts.
template <int N>
void reduce(const Schedule& s, const std::vector<double>& in, std::vector<double>& out, std::vector<int>& writes) {
  out.assign(2 * N, -1.0);
  writes.assign(2 * N, 0);
  set_schedule(s);
  const double* pin = in.data();
  double* pout = out.data();
  int* pw = writes.data();
  run_grid(dim3(1), dim3(64), [=] { reduce_scatter_kernel<N>(pin, pout, pw); });
  set_schedule(Schedule{});
}

template <int N>
void check_counts() {
  INFO("N = " << N);
  // Small integers: every total is exact, whatever the order of its adds.
  std::vector<double> in(64 * N);
  for (int t = 0; t < 64; ++t)
    for (int i = 0; i < N; ++i) in[t * N + i] = 1000.0 * (t + 1) + 7.0 * i;
  std::vector<double> out, first;
  std::vector<int> writes;
  reduce<N>(Schedule{}, in, out, writes);
  for (int w = 0; w < 2; ++w)
    for (int i = 0; i < N; ++i) {
      double expected = 0;
      for (int lane = 0; lane < 32; ++lane) expected += in[(w * 32 + lane) * N + i];
      INFO("warp " << w << ", value " << i);
      CHECK(writes[w * N + i] == 1);
      CHECK(out[w * N + i] == expected);
    }
  // Random doubles: the order of the adds shows in the bits, which no thread order may change.
  fmnist::SplitMix64 rng(20261206 + N);
  for (double& v : in) v = rng.uniform() - 0.5;
  reduce<N>(Schedule{BlockOrder::Forward, false, 1}, in, first, writes);
  reduce<N>(Schedule{BlockOrder::Shuffled, true, 7}, in, out, writes);
  CHECK(out == first);
  for (int w = 0; w < 2; ++w)
    for (int i = 0; i < N; ++i) {
      double expected = 0;
      for (int lane = 0; lane < 32; ++lane) expected += in[(w * 32 + lane) * N + i];
      CHECK(out[w * N + i] == Approx(expected).margin(1e-13));
    }
}

}  // namespace

TEST_CASE("the warp reduce-scatter sums each value over the warp, written once, in a fixed order",
          "[warp_sums]") {
  check_counts<1>();
  check_counts<2>();
  check_counts<5>();
  check_counts<9>();
  check_counts<26>();
  check_counts<32>();
  check_counts<34>();
  check_counts<36>();
  check_counts<40>();
  check_counts<64>();
}

TEST_CASE("the warp reduce-scatter's shuffle counts and the padding they choose", "[warp_sums]") {
  using fmnist::cuda::warp_scatter_kept;
  using fmnist::cuda::warp_scatter_padded;
  using fmnist::cuda::warp_scatter_shuffles;
  // 40 values (weight_grad.cu's 4 slices of 9 taps and their 4 bias sums): halved 3 times, then 5
  // values through the last 2 distances: 20 + 10 + 5 + 5 + 5, against 5 * 40 for separate trees.
  CHECK(warp_scatter_shuffles(40) == 45);
  CHECK(warp_scatter_kept(40) == 5);
  CHECK(warp_scatter_shuffles(32) == 31);
  CHECK(warp_scatter_kept(32) == 1);
  CHECK(warp_scatter_shuffles(1) == 5);
  CHECK(warp_scatter_shuffles(34) == 85);
  // Padding: the taps alone (36) and with the bias (40) both reduce as 40; 2 slices of 16 taps
  // (32) stay 32, with their 2 bias sums (34) become 40; 25 and 26 become 32.
  CHECK(warp_scatter_padded(36) == 40);
  CHECK(warp_scatter_padded(40) == 40);
  CHECK(warp_scatter_padded(32) == 32);
  CHECK(warp_scatter_padded(34) == 40);
  CHECK(warp_scatter_padded(25) == 32);
  CHECK(warp_scatter_padded(26) == 32);
  for (int n = 1; n <= 64; ++n) {
    INFO("n = " << n);
    CHECK(warp_scatter_padded(n) >= n);
    CHECK(warp_scatter_shuffles(warp_scatter_padded(n)) <= 5 * n);
  }
}
