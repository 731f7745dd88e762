// Max pooling's window scan, and the items of a pass over planes whose windows tile them (kernel ==
// stride), defined once for g++ and nvcc: cuda/kernels.cu's pooling kernels and cuda/direct_conv.cu's
// forward fused with its ReLU and pooling walk them; tests/test_pool_tiles.cpp checks them on the CPU.
#pragma once

#include <cmath>
#include <cstddef>

#include "models/elementwise.h"

namespace fmnist {

// One window of max pooling at output (oy, ox) of a plane whose rows are in_w long, scanned row by
// row: value(index, tap) gives the element at flat index `index`, the window's tap-th (ky * kernel +
// kx), and is called once for each, in that order. As PyTorch: the first maximum in scan order wins
// and a NaN counts as a maximum (elementwise::pool_takes). Returns the maximum; best_index = its
// flat index.
template <class Value>
FMNIST_HD float pool_window(int in_w, int oy, int ox, int kernel, int stride, Value value, int& best_index) {
  best_index = oy * stride * in_w + ox * stride;
  float best = -INFINITY;
  for (int ky = 0; ky < kernel; ++ky)
    for (int kx = 0; kx < kernel; ++kx) {
      const int index = (oy * stride + ky) * in_w + ox * stride + kx;
      const float v = value(index, ky * kernel + kx);
      if (elementwise::pool_takes(v, best)) {
        best = v;
        best_index = index;
      }
    }
  return best;
}

// What one window of kernel x kernel at stride kernel (windows that neither overlap nor leave gaps)
// hands back to its elements from the gradient dy at its output (oy, ox): put(index, value) for each
// element, in scan order, with its flat index in the plane (rows in_w long): 0.0f + dy for the one
// it chose (flat index `chosen`; the sum from 0 that overlapping windows take, so -0 becomes +0),
// 0.0f for the others.
template <class Put>
FMNIST_HD void pool_window_backward(int in_w, int oy, int ox, int kernel, int chosen, float dy, Put put) {
  const int first = oy * kernel * in_w + ox * kernel;
  const float g = 0.0f + dy;
  for (int ky = 0; ky < kernel; ++ky)
    for (int kx = 0; kx < kernel; ++kx) {
      const int index = first + ky * in_w + kx;
      put(index, index == chosen ? g : 0.0f);
    }
}

// The items of a pass over planes (in_h, in_w) pooled by windows of kernel x kernel at stride kernel,
// which neither overlap nor leave gaps: items [0, windows) are the windows, plane by plane, each
// plane's in the pooled output's order; items [windows, windows + rest) the elements no window
// covers (floor mode's last rows and columns: per plane, row by row, the elements right of the
// windows in the rows they span, then the rows below). windows = planes * out_h * out_w.
struct TiledPool {
  std::size_t windows = 0, in_plane = 0, out_plane = 0, rest_per_plane = 0;
  int in_w = 0, out_w = 0, kernel = 0, covered_h = 0, covered_w = 0;

  TiledPool() = default;
  FMNIST_HD TiledPool(std::size_t windows_, int in_h, int in_w_, int out_h, int out_w_, int kernel_)
      : windows(windows_), in_plane(static_cast<std::size_t>(in_h) * in_w_),
        out_plane(static_cast<std::size_t>(out_h) * out_w_), in_w(in_w_), out_w(out_w_), kernel(kernel_),
        covered_h(out_h * kernel_), covered_w(out_w_ * kernel_) {
    rest_per_plane = in_plane - static_cast<std::size_t>(covered_h) * covered_w;
  }
  // How many items `planes` planes have: their windows, then their uncovered elements.
  FMNIST_HD std::size_t items(std::size_t planes) const { return windows + planes * rest_per_plane; }
  FMNIST_HD bool is_window(std::size_t e) const { return e < windows; }
  // The plane item e lies in.
  FMNIST_HD std::size_t plane(std::size_t e) const {
    return is_window(e) ? e / out_plane : (e - windows) / rest_per_plane;
  }
  // A window's flat index in its pooled plane.
  FMNIST_HD int window_in_plane(std::size_t e) const { return static_cast<int>(e % out_plane); }
  // An uncovered element's flat index in its plane.
  FMNIST_HD int uncovered_in_plane(std::size_t e) const {
    int q = static_cast<int>((e - windows) % rest_per_plane);
    const int right = in_w - covered_w;
    if (q < covered_h * right) return q / right * in_w + covered_w + q % right;
    q -= covered_h * right;
    return (covered_h + q / in_w) * in_w + q % in_w;
  }
};

// The TiledPool of `planes` planes (in_h, in_w) under windows of kernel x kernel at stride kernel.
inline TiledPool tiled_pool(std::size_t planes, int in_h, int in_w, int kernel) {
  const int out_h = (in_h - kernel) / kernel + 1, out_w = (in_w - kernel) / kernel + 1;
  return TiledPool(planes * static_cast<std::size_t>(out_h) * out_w, in_h, in_w, out_h, out_w, kernel);
}

}  // namespace fmnist
