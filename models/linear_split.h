// A Linear layer's forward, y (B,out) = x (B,in) w^T + b, as fmnist's split-K GPU kernel computes it
// (cuda/linear_forward.cu), defined once for g++ and nvcc: the in_features are cut into slices, each
// slice's dot product is one FMA chain in ascending order, the slices' sums are added in slice order,
// then the bias. tests/test_linear_split.cpp checks it against the CPU reference's Linear.
#pragma once

#include <climits>
#include <cmath>

#include "models/elementwise.h"  // FMNIST_HD
#include "models/ops.h"          // LinearGeometry

namespace fmnist {

// The kernel's tile: kLinearTileRows batch rows by kLinearTileCols outputs a block, the products
// staged kLinearTileDepth in_features at a time; a slice is a whole number of stages.
inline constexpr int kLinearTileRows = 32;
inline constexpr int kLinearTileCols = 64;
inline constexpr int kLinearTileDepth = 32;
// About this many blocks a launch (tiles x slices): enough for the 132 SMs of an H100 at the paper's
// batch of 100. A constant, not the card's SM count, so that a shape's bits are the same on any card.
inline constexpr int kLinearTargetBlocks = 128;

// How a shape's in_features are cut: `slices` slices of `slice_length` (a multiple of
// kLinearTileDepth; the last one shorter when in_features is not a multiple), over `tiles` tiles.
struct LinearSplit {
  int tiles = 0, slices = 0, slice_length = 0;
};

inline int linear_tile_count(const LinearGeometry& g) {
  return ((g.batch + kLinearTileRows - 1) / kLinearTileRows) * ((g.out_features + kLinearTileCols - 1) / kLinearTileCols);
}

// Whether the split kernel handles g: positive sizes whose products fit an int.
inline bool linear_split_supported(const LinearGeometry& g) {
  if (g.batch <= 0 || g.in_features <= 0 || g.out_features <= 0) return false;
  const long long x = static_cast<long long>(g.batch) * g.in_features;
  const long long w = static_cast<long long>(g.out_features) * g.in_features;
  const long long y = static_cast<long long>(g.batch) * g.out_features;
  return x <= INT_MAX && w <= INT_MAX && y <= INT_MAX;
}

// The cut of g (linear_split_supported): as many slices as bring tiles x slices to about
// kLinearTargetBlocks (so at most that many), each of whole stages. Depends on the shape alone.
inline LinearSplit linear_split(const LinearGeometry& g) {
  LinearSplit s;
  s.tiles = linear_tile_count(g);
  const int stages = (g.in_features + kLinearTileDepth - 1) / kLinearTileDepth;
  int wanted = (kLinearTargetBlocks + s.tiles - 1) / s.tiles;
  if (wanted > stages) wanted = stages;
  if (wanted < 1) wanted = 1;
  const int stages_per_slice = (stages + wanted - 1) / wanted;
  s.slice_length = stages_per_slice * kLinearTileDepth;
  s.slices = (g.in_features + s.slice_length - 1) / s.slice_length;
  return s;
}

// a * b + c rounded once (the build's --fmad=false leaves this explicit FMA alone).
template <class T> FMNIST_HD T multiply_add(T a, T b, T c) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == sizeof(float))
    return __fmaf_rn(a, b, c);
  else
    return __fma_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// acc = x[0] w[0] + x[1] w[1] + ... + x[n-1] w[n-1], one multiply_add a term in that order, from
// acc = 0. The kernel's threads run this chain over a slice, stage by stage.
template <class T> FMNIST_HD T linear_slice_sum(const T* x, const T* w, int n) {
  T acc = T(0);
  for (int k = 0; k < n; ++k) acc = multiply_add(x[k], w[k], acc);
  return acc;
}

// The output from its slices' sums: ((partial(0) + partial(1)) + ...) + bias[output] (bias null:
// none); partial(s) gives slice s's sum (the kernel loads it from the launch's partials).
template <class T, class Partial>
FMNIST_HD T linear_split_total(Partial partial, int slices, const T* bias, int output) {
  T total = partial(0);
  for (int s = 1; s < slices; ++s) total += partial(s);
  if (bias != nullptr) total += bias[output];
  return total;
}

// y[row][output] exactly as the kernel computes it, for the CPU checks: x (B,in), w (out,in).
template <class T> T linear_split_element(const LinearGeometry& g, const LinearSplit& s, const T* x, const T* w,
                                          const T* bias, int row, int output) {
  T partial[kLinearTargetBlocks] = {};
  for (int slice = 0; slice < s.slices; ++slice) {
    const int k0 = slice * s.slice_length;
    const int n = g.in_features - k0 < s.slice_length ? g.in_features - k0 : s.slice_length;
    partial[slice] = linear_slice_sum(x + static_cast<long long>(row) * g.in_features + k0,
                                      w + static_cast<long long>(output) * g.in_features + k0, n);
  }
  return linear_split_total<T>([&](int slice) { return partial[slice]; }, s.slices, bias, output);
}

}  // namespace fmnist
