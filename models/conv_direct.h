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

// The sum, over `planes` planes of `in` (the next plane in_step further) and their filter taps
// (w_step further), then r and q < KS (in that order), of in[row[r] + col[q]] * taps[r * KS + q],
// accumulated in Acc; a tap whose row[r] or col[q] is -1 is skipped. The two passes below differ
// only in how they fill row and col, once per element; the taps are unrolled in device code.
template <int KS, class T, class Acc>
FMNIST_HD Acc sum_over_taps(const int (&row)[KS], const int (&col)[KS], int planes, const T* in,
                            long long in_step, const T* taps, long long w_step) {
  Acc acc = Acc(0);
  for (int p = 0; p < planes; ++p, in += in_step, taps += w_step) {
    FMNIST_UNROLL
    for (int r = 0; r < KS; ++r) {
      if (row[r] < 0) continue;
      FMNIST_UNROLL
      for (int q = 0; q < KS; ++q) {
        if (col[q] < 0) continue;
        acc += static_cast<Acc>(in[row[r] + col[q]]) * static_cast<Acc>(taps[r * KS + q]);
      }
    }
  }
  return acc;
}

// dst[n][k][i][j] = the sum over c < C, then r and q < KS (in that order) of
//   src[n][c][i * stride - padding + r][j * stride - padding + q] * w[k][c][r][q]
// over the taps inside src, accumulated in Acc. Which taps lie inside src, and where, depends on
// (i, j) alone: it is worked out once, before the sum over c.
template <int KS, class T, class Acc>
FMNIST_HD Acc forward_at(const ConvShape& s, int n, int k, int i, int j, const T* src, const T* w) {
  const int y0 = i * s.stride - s.padding, x0 = j * s.stride - s.padding;
  int row[KS], col[KS];  // tap r's row offset in a src plane, tap q's column; -1: outside src
  FMNIST_UNROLL
  for (int t = 0; t < KS; ++t) {
    row[t] = y0 + t >= 0 && y0 + t < s.src_h ? (y0 + t) * s.src_w : -1;
    col[t] = x0 + t >= 0 && x0 + t < s.src_w ? x0 + t : -1;
  }
  const long long plane = static_cast<long long>(s.src_h) * s.src_w;
  return sum_over_taps<KS, T, Acc>(row, col, s.c, src + static_cast<long long>(n) * s.c * plane, plane,
                                   w + static_cast<long long>(k) * s.c * (KS * KS), KS * KS);
}

// dsrc[n][c][y][x] = the sum over k < K, then r and q < KS (in that order) with
// y + padding - r = i * stride and x + padding - q = j * stride, 0 <= i < Hd, 0 <= j < Wd, of
//   ddst[n][k][i][j] * w[k][c][r][q]
// accumulated in Acc (rows and columns of src that no tap reaches, such as ConvTranspose2d's
// output_padding, get 0). Which taps reach (y, x), and from where, is worked out once (the only
// divisions), before the sum over k.
template <int KS, class T, class Acc>
FMNIST_HD Acc backward_data_at(const ConvShape& s, int n, int c, int y, int x, const T* ddst, const T* w) {
  const int ypad = y + s.padding, xpad = x + s.padding;
  int row[KS], col[KS];  // tap r's row offset in a ddst plane, tap q's column; -1: no tap
  FMNIST_UNROLL
  for (int t = 0; t < KS; ++t) {
    const int i = (ypad - t) / s.stride, j = (xpad - t) / s.stride;
    row[t] = ypad - t >= 0 && i * s.stride == ypad - t && i < s.dst_h ? i * s.dst_w : -1;
    col[t] = xpad - t >= 0 && j * s.stride == xpad - t && j < s.dst_w ? j : -1;
  }
  const long long plane = static_cast<long long>(s.dst_h) * s.dst_w;
  return sum_over_taps<KS, T, Acc>(row, col, s.k, ddst + static_cast<long long>(n) * s.k * plane, plane,
                                   w + static_cast<long long>(c) * (KS * KS),
                                   static_cast<long long>(s.c) * (KS * KS));  // w[k][c] to w[k+1][c]
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
