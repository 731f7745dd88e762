// The backward-data pass of a ConvShape convolution (conv_shape.h) as fmnist's direct GPU kernel
// computes it (cuda/backward_data.cu), defined once for g++ and nvcc: one src element as a sum
// over the filter taps and output channels that reach it. It is Conv2d's input gradient and
// ConvTranspose2d's forward. tests/test_conv_backward_data.cpp checks it against the CPU reference.
#pragma once

#include <climits>

#include "models/conv_shape.h"
#include "models/elementwise.h"  // FMNIST_HD

namespace fmnist {

constexpr int kDirectBackwardDataMaxKernel = 5;  // the kernel sizes the direct GPU path handles

// Whether the direct path handles `s`: positive sizes, kernel 1..5, counts that fit an int.
inline bool direct_backward_data_supported(const ConvShape& s) {
  if (s.n < 1 || s.k < 1 || s.c < 1 || s.src_h < 1 || s.src_w < 1 || s.dst_h < 1 || s.dst_w < 1)
    return false;
  if (s.kernel < 1 || s.kernel > kDirectBackwardDataMaxKernel || s.stride < 1 || s.padding < 0)
    return false;
  const long long src = static_cast<long long>(s.n) * s.c * s.src_h * s.src_w;
  const long long dst = static_cast<long long>(s.n) * s.k * s.dst_h * s.dst_w;
  return src <= INT_MAX && dst <= INT_MAX;
}

// dsrc[n][c][y][x] = the sum over k < K, then r and q < KS (in that order) with
// y + padding - r = i * stride and x + padding - q = j * stride, 0 <= i < Hd, 0 <= j < Wd, of
//   ddst[n][k][i][j] * w[k][c][r][q]
// accumulated in Acc (rows and columns of src that no tap reaches, such as ConvTranspose2d's
// output_padding, get 0).
template <int KS, class T, class Acc>
FMNIST_HD Acc backward_data_at(const ConvShape& s, int n, int c, int y, int x, const T* ddst, const T* w) {
  // The taps that reach row y: r = (y + padding) mod stride, then every stride-th up to KS - 1.
  const int ypad = y + s.padding, xpad = x + s.padding;
  const int r0 = ypad % s.stride, q0 = xpad % s.stride;
  const long long plane = static_cast<long long>(s.dst_h) * s.dst_w;
  const T* g = ddst + static_cast<long long>(n) * s.k * plane;
  Acc acc = Acc(0);
  for (int k = 0; k < s.k; ++k, g += plane) {
    const T* wk = w + (static_cast<long long>(k) * s.c + c) * (KS * KS);
    for (int r = r0; r < KS; r += s.stride) {
      const int i = (ypad - r) / s.stride;
      if (ypad < r || i >= s.dst_h) continue;
      for (int q = q0; q < KS; q += s.stride) {
        const int j = (xpad - q) / s.stride;
        if (xpad < q || j >= s.dst_w) continue;
        acc += static_cast<Acc>(g[i * s.dst_w + j]) * static_cast<Acc>(wk[r * KS + q]);
      }
    }
  }
  return acc;
}

}  // namespace fmnist
