// A Linear layer's forward, y (B,out) = x (B,in) w^T + b, its input gradient, dx (B,in) = dy (B,out)
// w, and its weight gradient, dw (out,in) = dy^T x, as fmnist's split-K GPU kernel computes them
// (cuda/linear_split.cu), defined once for g++ and nvcc: the summed dimension is cut into slices,
// each slice's dot product is one FMA chain in ascending order, the slices' sums are added in slice
// order, then the bias.
// tests/test_linear_split.cpp checks it against the CPU reference's Linear.
#pragma once

#include <climits>
#include <cmath>

#include "models/elementwise.h"  // FMNIST_HD
#include "models/ops.h"          // LinearGeometry

namespace fmnist {

// The kernel's tile: kLinearTileRows batch rows by kLinearTileCols outputs a block, the products
// staged kLinearTileDepth summed terms at a time; a slice is a whole number of stages.
inline constexpr int kLinearTileRows = 32;
inline constexpr int kLinearTileCols = 64;
inline constexpr int kLinearTileDepth = 32;
// About this many blocks a launch (tiles x slices): enough for the 132 SMs of an H100 at the paper's
// batch of 100. A constant, not the card's SM count, so that a shape's bits are the same on any card.
inline constexpr int kLinearTargetBlocks = 128;

enum class LinearPass { Forward, BackwardData, WeightGrad };

// The product a pass computes: out (rows, outputs) = A (rows, depth) W (depth, outputs), A's
// element (r, d) at a[r * a_row_step + d * a_depth_step], W's (d, o) at w[o * w_output_step +
// d * w_depth_step]:
// - Forward, y = x w^T: A = x (B, in), W = the weight (out,in) read as (in, out);
// - BackwardData, dx = dy w: A = dy (B, out), W = the weight (out, in);
// - WeightGrad, dw = dy^T x: A = dy (B, out) read as (out, B), W = x (B, in).
struct LinearProduct {
  int rows = 0, depth = 0, outputs = 0;
  int a_row_step = 0, a_depth_step = 0;
  int w_output_step = 0, w_depth_step = 0;
};
inline LinearProduct linear_product(const LinearGeometry& g, LinearPass pass) {
  switch (pass) {
    case LinearPass::Forward: return {g.batch, g.in_features, g.out_features, g.in_features, 1, g.in_features, 1};
    case LinearPass::BackwardData: return {g.batch, g.out_features, g.in_features, g.out_features, 1, 1, g.in_features};
    case LinearPass::WeightGrad: break;
  }
  return {g.out_features, g.batch, g.in_features, 1, g.out_features, 1, g.in_features};
}

// How a product's depth is cut: `slices` slices of `slice_length` (a multiple of
// kLinearTileDepth; the last one shorter when the depth is not a multiple), over `tiles` tiles.
struct LinearSplit {
  int tiles = 0, slices = 0, slice_length = 0;
};

inline int linear_tile_count(const LinearProduct& p) {
  return ((p.rows + kLinearTileRows - 1) / kLinearTileRows) * ((p.outputs + kLinearTileCols - 1) / kLinearTileCols);
}

// Whether the split kernel handles g: positive sizes whose products fit an int.
inline bool linear_split_supported(const LinearGeometry& g) {
  if (g.batch <= 0 || g.in_features <= 0 || g.out_features <= 0) return false;
  const long long x = static_cast<long long>(g.batch) * g.in_features;
  const long long w = static_cast<long long>(g.out_features) * g.in_features;
  const long long y = static_cast<long long>(g.batch) * g.out_features;
  return x <= INT_MAX && w <= INT_MAX && y <= INT_MAX;
}

// The cut of a product (of a linear_split_supported geometry): as many slices as bring tiles x
// slices to about kLinearTargetBlocks (so at most that many), each of whole stages. Depends on the
// shape alone.
inline LinearSplit linear_split(const LinearProduct& p) {
  LinearSplit s;
  s.tiles = linear_tile_count(p);
  const int stages = (p.depth + kLinearTileDepth - 1) / kLinearTileDepth;
  int wanted = (kLinearTargetBlocks + s.tiles - 1) / s.tiles;
  if (wanted > stages) wanted = stages;
  if (wanted < 1) wanted = 1;
  const int stages_per_slice = (stages + wanted - 1) / wanted;
  s.slice_length = stages_per_slice * kLinearTileDepth;
  s.slices = (p.depth + s.slice_length - 1) / s.slice_length;
  return s;
}

// acc = a[0] w[0] + a[a_step] w[w_step] + ... + a[(n-1) a_step] w[(n-1) w_step], one multiply_add a
// term in that order, from acc = 0. The kernel's threads run this chain over a slice, stage by stage.
template <class T>
FMNIST_HD T linear_slice_sum(const T* a, long long a_step, const T* w, long long w_step, int n) {
  T acc = T(0);
  for (int k = 0; k < n; ++k) acc = elementwise::multiply_add(a[k * a_step], w[k * w_step], acc);
  return acc;
}

// The output from its slices' sums: ((partial(0) + partial(1)) + ...) + bias[output] (bias null:
// none); partial(s) gives slice s's sum (the kernel loads it from the launch's partials). The
// sums are fetched kLinearSumsAhead at a time before they are added, so that a GPU thread waits
// for memory once per group rather than once per slice; the order of the adds is the plain loop's.
inline constexpr int kLinearSumsAhead = 4;
template <class T, class Partial>
FMNIST_HD T linear_split_total(Partial partial, int slices, const T* bias, int output) {
  T total = T(0);
  for (int s0 = 0; s0 < slices; s0 += kLinearSumsAhead) {
    T v[kLinearSumsAhead];
    FMNIST_UNROLL
    for (int u = 0; u < kLinearSumsAhead; ++u) v[u] = s0 + u < slices ? partial(s0 + u) : T(0);
    FMNIST_UNROLL
    for (int u = 0; u < kLinearSumsAhead; ++u)
      if (s0 + u < slices) total = s0 + u == 0 ? v[u] : total + v[u];
  }
  if (bias != nullptr) total += bias[output];
  return total;
}

// out[row][output] exactly as the kernel computes it, for the CPU checks: a and w as the product
// reads them (linear_product), bias (outputs) or null.
template <class T> T linear_split_element(const LinearProduct& p, const LinearSplit& s, const T* a, const T* w,
                                          const T* bias, int row, int output) {
  T partial[kLinearTargetBlocks] = {};
  for (int slice = 0; slice < s.slices; ++slice) {
    const int k0 = slice * s.slice_length;
    const int n = p.depth - k0 < s.slice_length ? p.depth - k0 : s.slice_length;
    partial[slice] = linear_slice_sum(
        a + static_cast<long long>(row) * p.a_row_step + static_cast<long long>(k0) * p.a_depth_step, p.a_depth_step,
        w + static_cast<long long>(output) * p.w_output_step + static_cast<long long>(k0) * p.w_depth_step,
        p.w_depth_step, n);
  }
  return linear_split_total<T>([&](int slice) { return partial[slice]; }, s.slices, bias, output);
}

}  // namespace fmnist
