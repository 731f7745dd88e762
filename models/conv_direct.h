// The forward and backward-data passes of a ConvShape convolution (conv_shape.h) as fmnist's
// direct GPU kernels compute them (cuda/direct_conv.cu), defined once for g++ and nvcc: one
// output element as a sum over its taps in a fixed order. The forward is Conv2d's forward and
// ConvTranspose2d's input gradient; the backward-data is Conv2d's input gradient and
// ConvTranspose2d's forward. tests/test_conv_direct.cpp checks both against the CPU reference.
#pragma once

#include <climits>
#include <cstddef>

#include "models/conv_shape.h"
#include "models/elementwise.h"  // FMNIST_HD

namespace fmnist {

// Whether the direct passes handle `s`: a valid shape (conv_shape.h) whose counts fit an int.
inline bool direct_conv_supported(const ConvShape& s) {
  if (!direct_conv_shape_valid(s)) return false;
  const long long src = static_cast<long long>(s.n) * s.c * s.src_h * s.src_w;
  const long long dst = static_cast<long long>(s.n) * s.k * s.dst_h * s.dst_w;
  return src <= INT_MAX && dst <= INT_MAX;
}

// dst[n][k][i][j] = the sum over c < C, then r and q < KS (in that order) of
//   src[n][c][i * stride - padding + r][j * stride - padding + q] * w[k][c][r][q]
// over the taps inside src, accumulated in Acc.
template <int KS, class T, class Acc>
FMNIST_HD Acc forward_at(const ConvShape& s, int n, int k, int i, int j, const T* src, const T* w) {
  const int y0 = i * s.stride - s.padding, x0 = j * s.stride - s.padding;
  // The rows and columns of the window inside src: r in [r_lo, r_hi), q in [q_lo, q_hi).
  const int r_lo = y0 < 0 ? -y0 : 0, q_lo = x0 < 0 ? -x0 : 0;
  const int r_hi = s.src_h - y0 < KS ? s.src_h - y0 : KS, q_hi = s.src_w - x0 < KS ? s.src_w - x0 : KS;
  const long long plane = static_cast<long long>(s.src_h) * s.src_w;
  const T* x = src + static_cast<long long>(n) * s.c * plane;
  const T* wk = w + static_cast<long long>(k) * s.c * (KS * KS);
  Acc acc = Acc(0);
  for (int c = 0; c < s.c; ++c, x += plane, wk += KS * KS)
    for (int r = r_lo; r < r_hi; ++r)
      for (int q = q_lo; q < q_hi; ++q)
        acc += static_cast<Acc>(x[(y0 + r) * s.src_w + x0 + q]) * static_cast<Acc>(wk[r * KS + q]);
  return acc;
}

// dsrc[n][c][y][x] = the sum over k < K, then r and q < KS (in that order) with
// y + padding - r = i * stride and x + padding - q = j * stride, 0 <= i < Hd, 0 <= j < Wd, of
//   ddst[n][k][i][j] * w[k][c][r][q]
// accumulated in Acc (rows and columns of src that no tap reaches, such as ConvTranspose2d's
// output_padding, get 0).
template <int KS, class T, class Acc>
FMNIST_HD Acc backward_data_at(const ConvShape& s, int n, int c, int y, int x, const T* ddst, const T* w) {
  // The taps that reach row y: r = (y + padding) mod stride, then every stride-th up to KS - 1,
  // tap r from row i = (y + padding - r) / stride, one row fewer per tap, while i >= 0; the same
  // for columns. No division inside the loops.
  const int ypad = y + s.padding, xpad = x + s.padding;
  const int r0 = ypad % s.stride, q0 = xpad % s.stride;
  const int i0 = (ypad - r0) / s.stride, j0 = (xpad - q0) / s.stride;
  const long long plane = static_cast<long long>(s.dst_h) * s.dst_w;
  const T* g = ddst + static_cast<long long>(n) * s.k * plane;
  Acc acc = Acc(0);
  for (int k = 0; k < s.k; ++k, g += plane) {
    const T* wk = w + (static_cast<long long>(k) * s.c + c) * (KS * KS);
    for (int r = r0, i = i0; r < KS && i >= 0; r += s.stride, --i) {
      if (i >= s.dst_h) continue;
      for (int q = q0, j = j0; q < KS && j >= 0; q += s.stride, --j) {
        if (j >= s.dst_w) continue;
        acc += static_cast<Acc>(g[i * s.dst_w + j]) * static_cast<Acc>(wk[r * KS + q]);
      }
    }
  }
  return acc;
}

// The two passes, by the tensor they write: Forward dst (N,K,Hd,Wd) from src, BackwardData
// src (N,C,Hs,Ws) from ddst.
enum class DirectPass { Forward, BackwardData };

// How many elements pass P writes.
inline std::size_t direct_conv_outputs(const ConvShape& s, DirectPass pass) {
  return pass == DirectPass::Forward ? static_cast<std::size_t>(s.n) * s.k * s.dst_h * s.dst_w
                                     : static_cast<std::size_t>(s.n) * s.c * s.src_h * s.src_w;
}

// Element e (in memory order, e < direct_conv_outputs(s, P)) of pass P's output from `in` (src for Forward, ddst for
// BackwardData) and the filter w: forward_at or backward_data_at in T, + bias[channel] when bias
// is non-null (added after the sum, as the CPU reference adds it).
template <int KS, DirectPass P, class T>
FMNIST_HD T direct_conv_element(const ConvShape& s, std::size_t e, const T* in, const T* w, const T* bias) {
  const bool forward = P == DirectPass::Forward;
  const unsigned width = forward ? s.dst_w : s.src_w, height = forward ? s.dst_h : s.src_h;
  const unsigned channels = forward ? s.k : s.c;
  // 32-bit index arithmetic: direct_conv_supported keeps every count within INT_MAX.
  const unsigned index = static_cast<unsigned>(e);
  const int col = static_cast<int>(index % width);
  const unsigned row = index / width;
  const int line = static_cast<int>(row % height);
  const unsigned plane = row / height;  // image * channels + channel
  const int channel = static_cast<int>(plane % channels), image = static_cast<int>(plane / channels);
  T v = forward ? forward_at<KS, T, T>(s, image, channel, line, col, in, w)
                : backward_data_at<KS, T, T>(s, image, channel, line, col, in, w);
  if (bias != nullptr) v += bias[channel];
  return v;
}

}  // namespace fmnist
