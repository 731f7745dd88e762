// fmnist's direct convolution backward-filter (see weight_grad.h): block (g, slice group) sums
// image group g's contributions to the k*k taps of the group's filter slices (k0 .. k0 + SLICES -
// 1, c) (accumulate_weight_grad_taps, models/conv_weight_grad.h), each thread over a stride of
// the group's (image, i, j) positions, in FP64; the taps are reduced across the block in a fixed
// order (a reduce-scatter across each warp, cuda/warp_sums.cuh, then the warps in order). With one image group the block writes dw directly;
// else it writes partials, and the last of a slice group's blocks to finish (last_block_of_row,
// ordered_sum.cuh) adds each of its taps' partials in group order, in the same launch. A bias
// gradient can come with it: a Conv2d's from the blocks of channel 0, which also sum their slices'
// ddst values; a ConvTranspose2d's (over src's channels) from one more row of blocks per channel,
// after the slice groups' rows, each summing its image group's src planes of that channel.
#include "cuda/weight_grad.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "cuda/check.h"
#include "cuda/grid_stride.cuh"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/ordered_sum.cuh"
#include "cuda/warp_sums.cuh"

namespace fmnist::cuda {
namespace {

constexpr int kWarps = kThreads / 32;

// Thread threadIdx.x's sums over the image group's positions [first image, + positions): the taps
// of slices k0 .. k0 + count - 1 of channel c in acc[0, kSums), and with kBias their bias sums in
// acc[kSums, kSums + SLICES) (accumulate_weight_grad_taps; kInside: no tap bounds checks).
template <int KS, int SLICES, bool kBias, bool kInside>
__device__ __forceinline__ void accumulate_positions(const ConvShape& s, int first, int positions, int k0, int count,
                                                     int c, const float* src, const float* ddst, double* acc) {
  PositionWalk at(s, static_cast<int>(threadIdx.x), kThreads);
  for (int e = threadIdx.x; e < positions; e += kThreads, at.advance())
    accumulate_weight_grad_taps<KS, SLICES, kBias, kInside>(s, first + at.image, k0, count, c, at.i, at.j, src,
                                                            ddst, acc);
}

// src (N,C,Hs,Ws), ddst (N,K,Hd,Wd) -> dw (K,C,KS,KS), through partials (K*C*KS*KS, groups)
// when groups > 1; counters: one per row of blocks (blockIdx.y), 0 between launches. The first
// weight_rows rows are the slice groups'. With db non-null: bias_of_src false (a Conv2d, ddst =
// dy), db (K) = the sums of ddst's planes, by the blocks of c = 0 (through bias_partials (K,
// groups) when groups > 1), in the same order as the taps' sums; bias_of_src true (a
// ConvTranspose2d, src = dy), db (C) by the C rows after them (sum_channel_planes, the
// partition's image groups, the bias partials (C, groups) and counters after the slice groups').
// kInside: conv_taps_inside(s), so the taps need no bounds checks.
template <int KS, bool kInside>
__global__ void __launch_bounds__(kThreads)
    direct_weight_grad_kernel(ConvShape s, int per_group, int groups, int weight_rows, const float* src,
                              const float* ddst, float* dw, float* db, bool bias_of_src, double* partials,
                              double* bias_partials, unsigned int* counters) {
  grid_dependency();
  if (static_cast<int>(blockIdx.y) >= weight_rows) {  // the same for the whole block: channel c's bias
    sum_channel_planes(src, s.n, s.c, s.src_h * s.src_w, static_cast<int>(blockIdx.y) - weight_rows, per_group,
                       groups, bias_partials, counters + weight_rows, db);
    return;
  }
  constexpr int kTaps = KS * KS;
  constexpr int kSlices = kWeightGradSlices(KS);
  constexpr int kSums = kSlices * kTaps;  // a thread's tap sums: slice b's tap t at b * kTaps + t
  constexpr int kAllSums = kSums + kSlices;  // then the slices' bias sums
  static_assert(kAllSums <= kThreads, "one thread a sum in the block's last step");
  // The sums a warp reduces, padded with zeros to the count of fewest shuffles (warp_sums.cuh).
  constexpr int kTapsReduced = warp_scatter_padded(kSums), kAllReduced = warp_scatter_padded(kAllSums);
  constexpr int kHeld = kTapsReduced > kAllReduced ? kTapsReduced : kAllReduced;
  constexpr int kTapsKept = warp_scatter_kept(kTapsReduced), kAllKept = warp_scatter_kept(kAllReduced);
  constexpr int kMostKept = kTapsKept > kAllKept ? kTapsKept : kAllKept;
  const int g = blockIdx.x;
  const int slice_group = blockIdx.y;  // (k0 / kSlices) * C + c
  const int k0 = slice_group / s.c * kSlices, c = slice_group % s.c;
  const int count = min(kSlices, s.k - k0);
  const int first = g * per_group;
  const int images = min(s.n, first + per_group) - first;
  const int positions = images * s.dst_h * s.dst_w;
  const bool bias = db != nullptr && !bias_of_src && c == 0;  // the same for the whole block
  double acc[kHeld];
#pragma unroll
  for (int t = 0; t < kHeld; ++t) acc[t] = 0.0;
  if (bias)
    accumulate_positions<KS, kSlices, true, kInside>(s, first, positions, k0, count, c, src, ddst, acc);
  else
    accumulate_positions<KS, kSlices, false, kInside>(s, first, positions, k0, count, c, src, ddst, acc);
  const int sums = bias ? kAllSums : kSums;
  __shared__ double warp_sums[kWarps][kHeld];
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  WarpScatter where;  // the same branch for the whole block
  if (kTapsReduced == kAllReduced || bias)
    warp_reduce_scatter<kAllReduced>(acc, lane, where);
  else
    warp_reduce_scatter<kTapsReduced>(acc, lane, where);
  const int kept = bias ? kAllKept : kTapsKept;
  if (where.writes) {
#pragma unroll
    for (int t = 0; t < kMostKept; ++t)
      if (t < kept && where.first + t < sums) warp_sums[warp][where.first + t] = acc[t];
  }
  __syncthreads();
  // Thread u < kSums: tap u % kTaps of slice u / kTaps; kSums <= u < kAllSums: slice u - kSums's bias.
  const int u = static_cast<int>(threadIdx.x);
  const int b = u < kSums ? u / kTaps : u - kSums;
  const bool writes = b < count && u < sums;
  float* out = u < kSums ? dw : db;
  const std::size_t index = u < kSums ? (static_cast<std::size_t>(k0 + b) * s.c + c) * kTaps + u % kTaps
                                      : static_cast<std::size_t>(k0 + b);
  // The sum's partials, one per image group (groups > 1 and writes only: the buffers may be null).
  const auto row = [&] { return (u < kSums ? partials : bias_partials) + index * groups; };
  if (writes) {
    double total = 0.0;
    for (int w = 0; w < kWarps; ++w) total += warp_sums[w][u];
    if (groups == 1) {
      out[index] = static_cast<float>(total);
    } else {
      row()[g] = total;
      __threadfence();
    }
  }
  if (groups == 1 || !last_block_of_row(counters, slice_group, static_cast<unsigned>(groups))) return;
  if (writes) out[index] = static_cast<float>(add_in_order<true>(0.0, row(), 1, groups));
}

std::size_t weight_count(const ConvShape& s) {
  return static_cast<std::size_t>(s.k) * s.c * s.kernel * s.kernel;
}

template <int KS>
void launch_for(const Context& c, const ConvShape& s, const float* src, const float* ddst, float* dw,
                float* db, BiasOf bias_of, double* partials) {
  const ImageGroups part = weight_grad_groups(s);
  const int weight_rows = weight_grad_slice_groups(s);
  const bool bias_of_src = db != nullptr && bias_of == BiasOf::Src;
  const int rows = weight_rows + (bias_of_src ? s.c : 0);  // within 65,535 (checked by the caller)
  const dim3 grid(static_cast<unsigned>(part.groups), static_cast<unsigned>(rows));
  static_assert(65535 <= Context::kReduceCounters, "a counter for each row of blocks");
  // The bias partials (K or C, groups) follow the weights' (K*C*KS*KS, groups) in the workspace.
  double* bias_partials = partials != nullptr ? partials + weight_count(s) * part.groups : nullptr;
  const auto kernel = conv_taps_inside(s) ? direct_weight_grad_kernel<KS, true> : direct_weight_grad_kernel<KS, false>;
  launch(c, kernel, grid, kThreads, 0, s, part.per_group, part.groups, weight_rows, src, ddst, dw, db, bias_of_src,
      partials, bias_partials, c.reduce_counters());
}

}  // namespace

std::size_t direct_weight_grad_workspace_bytes(const ConvShape& s) {
  const int groups = weight_grad_groups(s).groups;
  // The taps', then a bias's: K sums (a Conv2d's) or C (a ConvTranspose2d's), whichever is more.
  const std::size_t sums = weight_count(s) + static_cast<std::size_t>(std::max(s.k, s.c));
  return groups > 1 ? sums * static_cast<std::size_t>(groups) * sizeof(double) : 0;
}

void launch_direct_weight_grad(const Context& c, const ConvShape& s, const float* src,
                               const float* ddst, float* dw, void* workspace, float* db, BiasOf bias_of) {
  if (!direct_weight_grad_supported(s))
    throw std::invalid_argument("direct weight gradient: unsupported shape (kernel " +
                                std::to_string(s.kernel) + ", " + std::to_string(s.k) + "x" +
                                std::to_string(s.c) + " filter slices)");
  if (db != nullptr && bias_of == BiasOf::Src && !direct_weight_grad_fuses_src_bias(s))
    throw std::invalid_argument("direct weight gradient: no room for the bias over src's " + std::to_string(s.c) +
                                " channels (grid rows, or a src plane past an int)");
  if (direct_weight_grad_workspace_bytes(s) > 0 && workspace == nullptr)
    throw std::invalid_argument("direct weight gradient: no workspace for the partial sums");
  auto* partials = static_cast<double*>(workspace);
  if (!with_kernel_size(s.kernel, [&](auto ks) { launch_for<decltype(ks)::value>(c, s, src, ddst, dw, db, bias_of, partials); }))
    throw std::invalid_argument("direct weight gradient: no kernel compiled for this kernel size");
}

}  // namespace fmnist::cuda
