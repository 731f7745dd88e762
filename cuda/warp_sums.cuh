// Many sums across a warp at once: each of a warp's 32 lanes holds N doubles, and the warp needs
// the N totals over its lanes, in a fixed order. N separate shuffle trees cost 5 N shuffles; this
// reduce-scatter trades halves instead, about N of them (cuda/weight_grad.cu's 40 taps: 45 for 200).
#pragma once

#include "models/elementwise.h"  // FMNIST_HD, FMNIST_UNROLL

namespace fmnist::cuda {

// Where a lane's totals are after warp_reduce_scatter<N>: acc[0, warp_scatter_kept(N)) hold the
// warp's totals of the values first .. first + kept - 1; `writes` picks one lane of those that
// hold the same totals, to write them.
struct WarpScatter {
  int first = 0;
  bool writes = true;
};

// The totals a lane keeps: at each distance 16, 8, 4, 2, 1 the values halve while n stays even.
FMNIST_HD constexpr int warp_scatter_kept(int n, int distance = 16) {
  return distance == 0 ? n : warp_scatter_kept(n % 2 == 0 ? n / 2 : n, distance / 2);
}

// The shuffles warp_reduce_scatter<N> makes: N/2 at each halving, then n at each remaining distance.
FMNIST_HD constexpr int warp_scatter_shuffles(int n, int distance = 16) {
  return distance == 0 ? 0 : n % 2 == 0 ? n / 2 + warp_scatter_shuffles(n / 2, distance / 2)
                                        : n + warp_scatter_shuffles(n, distance / 2);
}

// The N (>= 1) of the fewest shuffles among n .. n + 7: zero values padded onto the end of a
// thread's n sums can let them halve once or twice more (n = 34: 85 shuffles; padded to 40: 45).
FMNIST_HD constexpr int warp_scatter_padded(int n) {
  int best = n;
  for (int m = n + 1; m < n + 8; ++m)
    if (warp_scatter_shuffles(m) < warp_scatter_shuffles(best)) best = m;
  return best;
}

// acc (N) in every lane of a full warp (all 32 threads call it, with the same N) -> acc[0, kept)
// = the sums over the warp's lanes of the values where.first .. where.first + kept - 1, kept =
// warp_scatter_kept(N); where starts as WarpScatter{}.
// While the values halve, a lane whose `kDistance` bit is clear keeps the lower half and adds the
// partner lane's lower half to it (the partner keeps the upper halves); once they do not, each
// value is added with the partner's and both lanes hold the same total, so only one writes. Every
// total is the same tree of adds on every run: a fixed order.
template <int N, int kDistance = 16>
__device__ __forceinline__ void warp_reduce_scatter(double* acc, int lane, WarpScatter& where) {
  if constexpr (kDistance > 0) {
    const bool upper = (lane & kDistance) != 0;
    if constexpr (N % 2 == 0) {
      constexpr int kHalf = N / 2;
FMNIST_UNROLL
      for (int i = 0; i < kHalf; ++i) {
        const double keep = upper ? acc[i + kHalf] : acc[i];
        const double give = upper ? acc[i] : acc[i + kHalf];
        acc[i] = keep + __shfl_xor_sync(0xffffffffu, give, kDistance);
      }
      if (upper) where.first += kHalf;
      warp_reduce_scatter<kHalf, kDistance / 2>(acc, lane, where);
    } else {
FMNIST_UNROLL
      for (int i = 0; i < N; ++i) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], kDistance);
      if (upper) where.writes = false;
      warp_reduce_scatter<N, kDistance / 2>(acc, lane, where);
    }
  }
}

}  // namespace fmnist::cuda
