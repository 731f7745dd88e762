// The convolution gradients as fmnist's deterministic GPU reductions compute them, defined once
// for g++ and nvcc: the partition of a batch's images into groups that both the bias gradient
// (cuda/kernels.cu) and the direct weight gradient (cuda/weight_grad.h) use, which shapes the
// direct path handles, and one output position's contribution to the k*k taps of a filter slice.
// tests/test_conv_weight_grad.cpp sums these contributions on the CPU in the kernel's order and
// compares them with the CPU reference's weight gradient.
#pragma once

#include <algorithm>
#include <climits>
#include <cstddef>
#include <limits>

#include "models/conv_shape.h"
#include "models/elementwise.h"  // FMNIST_HD, multiply_add

namespace fmnist {

// The weight gradient of the convolution of a ConvShape (conv_shape.h):
//   dw[k][c][r][s] = sum over n, i < Hd, j < Wd of
//                    ddst[n][k][i][j] * src[n][c][i*stride - padding + r][j*stride - padding + s]
// (terms outside src are zero).

// Blocks a two-pass GPU reduction aims at (a few per SM of an H100); a constant, so that the
// partition, and with it the order of the sums, is the same on any card. With more than one
// group, slices * groups < 2 * kReductionTargetBlocks partials.
constexpr int kReductionTargetBlocks = 512;

// `images` split into `groups` consecutive groups of `per_group` (the last one may be shorter),
// enough that slices * groups reaches the target, at most one group per image. Block (g, slice)
// of a reduction sums group g of its slice; then each slice's groups are added in order (on the GPU
// by the slice's last block to finish, cuda/ordered_sum.cuh).
struct ImageGroups {
  int per_group = 1, groups = 1;
};
inline ImageGroups split_into_image_groups(int images, int slices) {
  const int wanted = std::max(1, std::min(images, (kReductionTargetBlocks + slices - 1) / slices));
  ImageGroups g;
  g.per_group = (images + wanted - 1) / wanted;
  g.groups = (images + g.per_group - 1) / g.per_group;
  return g;
}

// How far below INT_MAX a count that a GPU block walks with an int index must stay, so that the
// index plus one block's stride (at most 1,024 threads) still fits an int.
constexpr long long kIntIndexHeadroom = 1024;

// Whether the direct path handles `s`: a valid shape (conv_shape.h), counts that fit an int with
// kIntIndexHeadroom to spare, at most 65,535 filter slices (more than the grid's y extent needs: it
// counts slice groups).
inline bool direct_weight_grad_supported(const ConvShape& s) {
  if (!direct_conv_shape_valid(s)) return false;
  const long long positions = static_cast<long long>(s.n) * s.dst_h * s.dst_w;
  const long long slices = static_cast<long long>(s.k) * s.c;
  const long long src_plane = static_cast<long long>(s.src_h) * s.src_w;
  return positions <= INT_MAX - kIntIndexHeadroom && slices <= 65535 && src_plane <= INT_MAX;
}

// Filter slices (k, c) a GPU block sums together: kWeightGradSlices(KS) consecutive k of one c,
// so that each src value is loaded and widened to double once for all of them (on an H100 a
// float-to-double conversion issues at a quarter of a double FMA's rate, and one slice a block
// needed ten conversions for nine FMAs at KS = 3). Fewer for larger kernels: the block's
// accumulators, slices * KS * KS doubles a thread, must stay in registers.
FMNIST_HD constexpr int kWeightGradSlices(int ks) { return ks <= 3 ? 4 : ks == 4 ? 2 : 1; }

// The GPU blocks' slice groups: (k0, c) with k0 = kb * slices, kb < ceil(K / slices); the last
// group of each c may hold fewer slices.
inline int weight_grad_slice_groups(const ConvShape& s) {
  const int slices = kWeightGradSlices(s.kernel);
  return (s.k + slices - 1) / slices * s.c;
}

// Output positions an image group should hold at least, where the batch has them: two for each
// of a GPU block's 256 threads. Below it threads idle while the block still pays a whole
// reduction (the last ConvTranspose2d at batch 100 had one 13x13 plane a block: 169 positions).
constexpr long long kWeightGradMinPositions = 512;

// The weight gradient's partition: image groups for its slice groups, each of enough images to
// reach kWeightGradMinPositions positions (at most the batch).
inline ImageGroups weight_grad_groups(const ConvShape& s) {
  ImageGroups g = split_into_image_groups(s.n, weight_grad_slice_groups(s));
  const long long plane = std::max(1LL, static_cast<long long>(s.dst_h) * s.dst_w);
  const int min_images = static_cast<int>(std::min<long long>(s.n, (kWeightGradMinPositions + plane - 1) / plane));
  if (g.per_group < min_images) {
    g.per_group = min_images;
    g.groups = (s.n + min_images - 1) / min_images;
  }
  return g;
}

// Whether the direct kernel can also sum src's planes per channel (a ConvTranspose2d's bias
// gradient: src = dy there) in rows of blocks after the slice groups': a supported shape, one
// more grid row (and reduction counter) per channel within 65,535, and a src plane within an int
// with kIntIndexHeadroom to spare (cuda/ordered_sum.cuh's sum_channel_planes walks it by int).
inline bool direct_weight_grad_fuses_src_bias(const ConvShape& s) {
  if (!direct_weight_grad_supported(s)) return false;
  const long long rows = static_cast<long long>(weight_grad_slice_groups(s)) + s.c;
  const long long plane = static_cast<long long>(s.src_h) * s.src_w;
  return rows <= 65535 && plane <= INT_MAX - kIntIndexHeadroom;
}

// Output position e of an image group (e < images * Hd * Wd, image by image, rows in order) as
// (image, i, j), stepped by a fixed `step` without divisions (a GPU thread walks e, e + step,
// e + 2 step, ...: four integer divisions a position cost it more issue slots than its FP64
// multiply-adds): the step is added in the radix (Hd, Wd) with one carry at most per digit.
// Divisions only in the constructor.
struct PositionWalk {
  int image = 0, i = 0, j = 0;
  FMNIST_HD PositionWalk(const ConvShape& s, int e, int step) : h_(s.dst_h), w_(s.dst_w) {
    const int plane = s.dst_h * s.dst_w;
    image = e / plane;
    i = e % plane / s.dst_w;
    j = e % s.dst_w;
    step_image_ = step / plane;
    step_i_ = step % plane / s.dst_w;
    step_j_ = step % s.dst_w;
  }
  FMNIST_HD void advance() {
    j += step_j_;
    i += step_i_;
    image += step_image_;
    if (j >= w_) {
      j -= w_;
      ++i;
    }
    if (i >= h_) {
      i -= h_;
      ++image;
    }
  }

 private:
  int h_, w_, step_image_ = 0, step_i_ = 0, step_j_ = 0;
};

// For the `count` (<= SLICES) slices (k0 + b, c):
//   acc[b*KS*KS + r*KS + q] += ddst[n][k0 + b][i][j] * src[n][c][i*stride - padding + r][j*stride - padding + q]
// for every tap inside src (kInside: the caller knows every tap is, conv_taps_inside, and the
// checks are left out). The product of two floats is exact in Acc (double), so one multiply_add
// gives the bits of a multiply then an add, in one FP64 instruction instead of two. Each
// accumulator gets the same terms in the same order whatever SLICES is. With kBiasToo, also
//   acc[SLICES*KS*KS + b] += ddst[n][k0 + b][i][j]
// which, summed over every (n, i, j), is a Conv2d's bias gradient db[k0 + b] (ddst = dy); the GPU
// kernel adds it in the blocks of c = 0, from the values the taps load anyway.
template <int KS, int SLICES, bool kBiasToo = false, bool kInside = false, class T, class Acc>
FMNIST_HD void accumulate_weight_grad_taps(const ConvShape& s, int n, int k0, int count, int c, int i, int j,
                                           const T* src, const T* ddst, Acc* acc) {
  static_assert(std::numeric_limits<Acc>::digits >= 2 * std::numeric_limits<T>::digits,
                "a product of two T must be exact in Acc, for multiply_add to round as an add");
  const std::size_t plane = static_cast<std::size_t>(s.dst_h) * s.dst_w;
  const T* gk = ddst + (static_cast<std::size_t>(n) * s.k + k0) * plane + static_cast<std::size_t>(i) * s.dst_w + j;
  Acc g[SLICES];
  std::size_t offset = 0;  // slice b's value at gk[b * plane], stepped by an add rather than a product
  FMNIST_UNROLL
  for (int b = 0; b < SLICES; ++b, offset += plane) g[b] = b < count ? static_cast<Acc>(gk[offset]) : Acc(0);
  if constexpr (kBiasToo) {
    FMNIST_UNROLL
    for (int b = 0; b < SLICES; ++b) acc[SLICES * KS * KS + b] += g[b];
  }
  const T* x = src + (static_cast<std::size_t>(n) * s.c + c) * (static_cast<std::size_t>(s.src_h) * s.src_w);
  const int y0 = i * s.stride - s.padding, x0 = j * s.stride - s.padding;
  FMNIST_UNROLL
  for (int r = 0; r < KS; ++r) {
    const int y = y0 + r;
    if (!kInside && (y < 0 || y >= s.src_h)) continue;
    FMNIST_UNROLL
    for (int q = 0; q < KS; ++q) {
      const int xx = x0 + q;
      if (!kInside && (xx < 0 || xx >= s.src_w)) continue;
      const Acc v = static_cast<Acc>(x[y * s.src_w + xx]);
      FMNIST_UNROLL
      for (int b = 0; b < SLICES; ++b) {
        Acc& sum = acc[b * KS * KS + r * KS + q];
        sum = elementwise::multiply_add(g[b], v, sum);
      }
    }
  }
}

}  // namespace fmnist
