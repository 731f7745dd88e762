// fmnist's direct convolution backward-filter (see weight_grad.h): block (g, slice group) sums
// image group g's contributions to the k*k taps of the group's filter slices (k0 .. k0 + SLICES -
// 1, c) (accumulate_weight_grad_taps, models/conv_weight_grad.h), each thread over a stride of
// the group's (image, i, j) positions, in FP64; the taps are reduced across the block in a fixed
// order (warp shuffles, then warps in order). With one image group the block writes dw directly;
// else it writes partials, and the last of a slice group's blocks to finish (last_block_of_row,
// ordered_sum.cuh) adds each of its taps' partials in group order, in the same launch.
#include "cuda/weight_grad.h"

#include <stdexcept>
#include <string>

#include "cuda/check.h"
#include "cuda/grid_stride.cuh"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/ordered_sum.cuh"

namespace fmnist::cuda {
namespace {

constexpr int kWarps = kThreads / 32;

// src (N,C,Hs,Ws), ddst (N,K,Hd,Wd) -> dw (K,C,KS,KS), through partials (K*C*KS*KS, groups)
// when groups > 1; counters: one per slice group (blockIdx.y), 0 between launches.
template <int KS>
__global__ void __launch_bounds__(kThreads)
    direct_weight_grad_kernel(ConvShape s, int per_group, int groups, const float* src,
                              const float* ddst, float* dw, double* partials, unsigned int* counters) {
  grid_dependency();
  constexpr int kTaps = KS * KS;
  constexpr int kSlices = kWeightGradSlices(KS);
  constexpr int kSums = kSlices * kTaps;  // a thread's accumulators: slice b's tap t at b * kTaps + t
  static_assert(kSums <= kThreads, "one thread a sum in the block's last step");
  const int g = blockIdx.x;
  const int slice_group = blockIdx.y;  // (k0 / kSlices) * C + c
  const int k0 = slice_group / s.c * kSlices, c = slice_group % s.c;
  const int count = min(kSlices, s.k - k0);
  const int first = g * per_group;
  const int images = min(s.n, first + per_group) - first;
  const int plane = s.dst_h * s.dst_w;
  const int positions = images * plane;
  double acc[kSums];
#pragma unroll
  for (int t = 0; t < kSums; ++t) acc[t] = 0.0;
  for (int e = threadIdx.x; e < positions; e += kThreads) {
    const int ij = e % plane;
    accumulate_weight_grad_taps<KS, kSlices>(s, first + e / plane, k0, count, c, ij / s.dst_w, ij % s.dst_w, src,
                                             ddst, acc);
  }
  __shared__ double warp_sums[kWarps][kSums];
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
#pragma unroll
  for (int t = 0; t < kSums; ++t) {
    double v = acc[t];
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (lane == 0) warp_sums[warp][t] = v;
  }
  __syncthreads();
  const int b = static_cast<int>(threadIdx.x) / kTaps, t = static_cast<int>(threadIdx.x) % kTaps;
  const bool writes = b < count;  // thread (b, t): tap t of slice b
  const std::size_t weight = (static_cast<std::size_t>(k0 + b) * s.c + c) * kTaps + t;
  if (writes) {
    double total = 0.0;
    for (int w = 0; w < kWarps; ++w) total += warp_sums[w][threadIdx.x];
    if (groups == 1) {
      dw[weight] = static_cast<float>(total);
    } else {
      partials[weight * groups + g] = total;
      __threadfence();
    }
  }
  if (groups == 1 || !last_block_of_row(counters, slice_group, static_cast<unsigned>(groups))) return;
  if (writes) dw[weight] = static_cast<float>(add_in_order<true>(0.0, partials + weight * groups, 1, groups));
}

std::size_t weight_count(const ConvShape& s) {
  return static_cast<std::size_t>(s.k) * s.c * s.kernel * s.kernel;
}

template <int KS>
void launch_for(const Context& c, const ConvShape& s, const float* src,
                const float* ddst, float* dw, double* partials) {
  const ImageGroups part = weight_grad_groups(s);
  const dim3 grid(static_cast<unsigned>(part.groups), static_cast<unsigned>(weight_grad_slice_groups(s)));
  static_assert(65535 <= Context::kReduceCounters, "a counter for each slice group");
  launch(c, direct_weight_grad_kernel<KS>, grid, kThreads, 0, s, part.per_group, part.groups, src, ddst,
      dw, partials, c.reduce_counters());
}

}  // namespace

std::size_t direct_weight_grad_workspace_bytes(const ConvShape& s) {
  const int groups = weight_grad_groups(s).groups;
  return groups > 1 ? weight_count(s) * static_cast<std::size_t>(groups) * sizeof(double) : 0;
}

void launch_direct_weight_grad(const Context& c, const ConvShape& s, const float* src,
                               const float* ddst, float* dw, void* workspace) {
  if (!direct_weight_grad_supported(s))
    throw std::invalid_argument("direct weight gradient: unsupported shape (kernel " +
                                std::to_string(s.kernel) + ", " + std::to_string(s.k) + "x" +
                                std::to_string(s.c) + " filter slices)");
  if (direct_weight_grad_workspace_bytes(s) > 0 && workspace == nullptr)
    throw std::invalid_argument("direct weight gradient: no workspace for the partial sums");
  auto* partials = static_cast<double*>(workspace);
  if (!with_kernel_size(s.kernel, [&](auto ks) { launch_for<decltype(ks)::value>(c, s, src, ddst, dw, partials); }))
    throw std::invalid_argument("direct weight gradient: no kernel compiled for this kernel size");
}

}  // namespace fmnist::cuda
