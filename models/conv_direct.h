// The forward and backward-data passes of a ConvShape convolution (conv_shape.h) as fmnist's
// direct GPU kernels compute them (cuda/direct_conv.cu), defined once for g++ and nvcc: each
// output element a sum over its taps in a fixed order, a kernel thread computing the elements of
// one item (1, 4 or 16 channels at one pixel) together. The forward is Conv2d's forward and
// ConvTranspose2d's input gradient; the backward-data is Conv2d's input gradient and
// ConvTranspose2d's forward. tests/test_conv_direct.cpp checks both against the CPU reference.
#pragma once

#include <climits>
#include <cstddef>

#include "models/conv_shape.h"
#include "models/elementwise.h"  // FMNIST_HD

namespace fmnist {

// Whether the direct passes handle `s`: a valid shape (conv_shape.h) whose counts (src, dst and the
// filter) fit an int.
inline bool direct_conv_supported(const ConvShape& s) {
  if (!direct_conv_shape_valid(s)) return false;
  const long long src = static_cast<long long>(s.n) * s.c * s.src_h * s.src_w;
  const long long dst = static_cast<long long>(s.n) * s.k * s.dst_h * s.dst_w;
  const long long filter = static_cast<long long>(s.k) * s.c * s.kernel * s.kernel;
  return src <= INT_MAX && dst <= INT_MAX && filter <= INT_MAX;
}

// How a direct kernel walks an element's taps; the same terms in the same order each way, so the
// same bits. Checked: all KS x KS, each tested against the input's bounds. Inside (the forward
// where conv_taps_inside): all, untested. Stride2 (the backward-data at stride 2): only the taps
// whose parity matches the element's, each tested: ((KS + 1) / 2)^2 candidates, 4 of the 16 taps at
// KS 4 and 4 of the 9 at KS 3.
enum class DirectTaps { Checked, Inside, Stride2 };

// The sums, over `planes` planes of `in` (the next plane in_step further) and their filter taps
// (w_step further), then u and v < NT (in that order), of in[row[u] + col[v]] * taps[o * out_step +
// tap0 + STEP * (u * KS + v)] for each of the OB outputs o, accumulated in acc[o] (Acc); a tap
// whose row[u] or col[v] is -1 is skipped (none is tested with kInside: none is -1). Tap (u, v) is
// the filter's (r, q) = (tap0 / KS + STEP * u, tap0 % KS + STEP * v): all of them in order for NT =
// KS, STEP = 1, tap0 = 0; every other one from (r0, q0) at stride 2. Each output gets the same terms
// in the same order whatever OB is: a GPU thread that computes OB outputs loads each `in` value once
// for all of them and gives the bits of OB threads computing one each. The passes below differ only
// in how they fill row, col and tap0, once per element; the taps are unrolled in device code. The
// filter's offsets are ints (direct_conv_supported), and every block holds OB channels
// (direct_conv_block_fits), so the loop tests nothing an output.
template <int KS, int NT, int STEP, int OB, bool kInside, class T, class Acc>
FMNIST_HD void sum_over_taps(const int (&row)[NT], const int (&col)[NT], int tap0, int planes, const T* in,
                             long long in_step, const T* taps, int w_step, int out_step, Acc (&acc)[OB]) {
  FMNIST_UNROLL
  for (int o = 0; o < OB; ++o) acc[o] = Acc(0);
  taps += tap0;
  for (int p = 0; p < planes; ++p, in += in_step, taps += w_step) {
    FMNIST_UNROLL
    for (int u = 0; u < NT; ++u) {
      if (!kInside && row[u] < 0) continue;
      FMNIST_UNROLL
      for (int v = 0; v < NT; ++v) {
        if (!kInside && col[v] < 0) continue;
        const Acc x = static_cast<Acc>(in[row[u] + col[v]]);
        FMNIST_UNROLL
        for (int o = 0; o < OB; ++o) acc[o] += x * static_cast<Acc>(taps[o * out_step + STEP * (u * KS + v)]);
      }
    }
  }
}

// The forward's taps at output (i, j): tap r's row offset in a src plane, tap q's column; -1:
// outside src. They depend on (i, j) alone and are worked out once, before the sum over c.
template <int KS>
FMNIST_HD void forward_taps(const ConvShape& s, int i, int j, int (&row)[KS], int (&col)[KS]) {
  const int y0 = i * s.stride - s.padding, x0 = j * s.stride - s.padding;
  FMNIST_UNROLL
  for (int t = 0; t < KS; ++t) {
    row[t] = y0 + t >= 0 && y0 + t < s.src_h ? (y0 + t) * s.src_w : -1;
    col[t] = x0 + t >= 0 && x0 + t < s.src_w ? x0 + t : -1;
  }
}

// dst[n][k][i][j] for k = k0 .. k0 + OB - 1 in acc[k - k0]: the sum over c < C,
// then r and q < KS (in that order) of
//   src[n][c][i * stride - padding + r][j * stride - padding + q] * w[k][c][r][q]
// over the taps inside src, accumulated in Acc. kInside: conv_taps_inside(s) (the taps' checks left
// out; the same terms).
template <int KS, int OB, bool kInside, class T, class Acc>
FMNIST_HD void forward_block_at(const ConvShape& s, int n, int k0, int i, int j, const T* src, const T* w,
                                Acc (&acc)[OB]) {
  int row[KS], col[KS];
  forward_taps<KS>(s, i, j, row, col);
  const long long plane = static_cast<long long>(s.src_h) * s.src_w;
  const int slice = s.c * (KS * KS);  // w[k][0] to w[k+1][0]
  sum_over_taps<KS, KS, 1, OB, kInside, T, Acc>(row, col, 0, s.c, src + static_cast<long long>(n) * s.c * plane,
                                                plane, w + static_cast<long long>(k0) * slice, KS * KS, slice, acc);
}

// The backward-data's taps at src element (y, x): tap r's row offset in a ddst plane, tap q's
// column; -1: no tap reaches (y, x) from there. Worked out once (the only divisions), before the
// sum over k. Which taps reach (y, x) depends on (y + padding, x + padding) modulo the stride.
template <int KS>
FMNIST_HD void backward_data_taps(const ConvShape& s, int y, int x, int (&row)[KS], int (&col)[KS]) {
  const int ypad = y + s.padding, xpad = x + s.padding;
  FMNIST_UNROLL
  for (int t = 0; t < KS; ++t) {
    const int i = (ypad - t) / s.stride, j = (xpad - t) / s.stride;
    row[t] = ypad - t >= 0 && i * s.stride == ypad - t && i < s.dst_h ? i * s.dst_w : -1;
    col[t] = xpad - t >= 0 && j * s.stride == xpad - t && j < s.dst_w ? j : -1;
  }
}

// The same at stride 2 for the taps of the element's parity alone: candidate u is tap row r0 + 2u
// (r0 = (y + padding) mod 2; r < KS), its offset in a ddst plane or -1 (outside ddst or the
// filter); likewise the columns; tap0 = r0 * KS + q0. Taps of the other parity never reach (y, x),
// so these are backward_data_taps's non-negative entries, in the same order.
template <int KS>
FMNIST_HD void backward_data_taps_stride2(const ConvShape& s, int y, int x, int (&row)[(KS + 1) / 2],
                                          int (&col)[(KS + 1) / 2], int& tap0) {
  const int ypad = y + s.padding, xpad = x + s.padding;
  const int r0 = ypad & 1, q0 = xpad & 1;
  FMNIST_UNROLL
  for (int u = 0; u < (KS + 1) / 2; ++u) {
    const int r = r0 + 2 * u, q = q0 + 2 * u;
    const int i = (ypad - r) / 2, j = (xpad - q) / 2;  // exact: ypad - r and xpad - q are even
    row[u] = r < KS && ypad - r >= 0 && i < s.dst_h ? i * s.dst_w : -1;
    col[u] = q < KS && xpad - q >= 0 && j < s.dst_w ? j : -1;
  }
  tap0 = r0 * KS + q0;
}

// dsrc[n][c][y][x] for c = c0 .. c0 + OB - 1 in acc[c - c0]: the sum over k < K,
// then r and q < KS (in that order) with y + padding - r = i * stride and x + padding - q =
// j * stride, 0 <= i < Hd, 0 <= j < Wd, of
//   ddst[n][k][i][j] * w[k][c][r][q]
// accumulated in Acc (rows and columns of src that no tap reaches, such as ConvTranspose2d's
// output_padding, get 0). kStride2 (s.stride == 2): only the taps of (y, x)'s parity are walked.
template <int KS, int OB, bool kStride2, class T, class Acc>
FMNIST_HD void backward_data_block_at(const ConvShape& s, int n, int c0, int y, int x, const T* ddst,
                                      const T* w, Acc (&acc)[OB]) {
  const long long plane = static_cast<long long>(s.dst_h) * s.dst_w;
  const T* in = ddst + static_cast<long long>(n) * s.k * plane;
  const T* taps = w + static_cast<long long>(c0) * (KS * KS);
  const int w_step = s.c * (KS * KS);  // w[k][c] to w[k+1][c]; KS * KS: w[k][c] to w[k][c+1]
  if constexpr (kStride2) {
    constexpr int kCandidates = (KS + 1) / 2;
    int row[kCandidates], col[kCandidates], tap0 = 0;
    backward_data_taps_stride2<KS>(s, y, x, row, col, tap0);
    sum_over_taps<KS, kCandidates, 2, OB, false, T, Acc>(row, col, tap0, s.k, in, plane, taps, w_step, KS * KS, acc);
  } else {
    int row[KS], col[KS];
    backward_data_taps<KS>(s, y, x, row, col);
    sum_over_taps<KS, KS, 1, OB, false, T, Acc>(row, col, 0, s.k, in, plane, taps, w_step, KS * KS, acc);
  }
}

// The two passes, by the tensor they write: Forward dst (N,K,Hd,Wd) from src, BackwardData
// src (N,C,Hs,Ws) from ddst.
enum class DirectPass { Forward, BackwardData };

// The tensor pass P writes, by image: its channels and plane, (K, Hd, Wd) for Forward, (C, Hs, Ws)
// for BackwardData. The one place that picks them; the functions below ask it.
struct DirectOutput {
  int channels = 0, height = 0, width = 0;
};
FMNIST_HD DirectOutput direct_conv_output(const ConvShape& s, DirectPass pass) {
  return pass == DirectPass::Forward ? DirectOutput{s.k, s.dst_h, s.dst_w} : DirectOutput{s.c, s.src_h, s.src_w};
}

// How many elements pass P writes.
inline std::size_t direct_conv_outputs(const ConvShape& s, DirectPass pass) {
  const DirectOutput out = direct_conv_output(s, pass);
  return static_cast<std::size_t>(s.n) * out.channels * out.height * out.width;
}

// A direct kernel thread's work: output channels ch0 .. ch0 + OB - 1 of pass P's output (K of them
// for Forward, C for BackwardData) for one image, at one pixel (y, x) of its output plane.
struct DirectItem {
  int image = 0, ch0 = 0, y = 0, x = 0;
};

// Whether channel blocks of `block` fit pass P's output channels whole (every block full): the
// only blocks the kernels take, so that none of their loops asks how many channels a block has.
inline bool direct_conv_block_fits(const ConvShape& s, DirectPass pass, int block) {
  return block >= 1 && direct_conv_output(s, pass).channels % block == 0;
}

// The channels a thread of the direct kernels computes at one pixel: 16 or 4 where the pass's
// output channels are a multiple of it and the outputs enough that the threads still number
// kDirectConvThreadsTarget (about 15 warps on each of an H100's SMs), else 1. A thread then loads
// each input value once for all of them (and each filter tap once for the warp); the bits do
// not depend on it (sum_over_taps), only how the work is split.
constexpr int kDirectConvChannelBlocks[] = {16, 4, 1};
constexpr long long kDirectConvThreadsTarget = 65536;
inline int direct_conv_channel_block(const ConvShape& s, DirectPass pass) {
  const int channels = direct_conv_output(s, pass).channels;
  const long long outputs = static_cast<long long>(direct_conv_outputs(s, pass));
  for (const int block : kDirectConvChannelBlocks)
    if (block == 1 || (channels % block == 0 && outputs / block >= kDirectConvThreadsTarget)) return block;
  return 1;
}

// How many items pass P has with channel blocks of `block` (direct_conv_block_fits): per image, per
// block of output channels, per pixel of the output plane.
inline std::size_t direct_conv_items(const ConvShape& s, DirectPass pass, int block) {
  const DirectOutput out = direct_conv_output(s, pass);
  const std::size_t channels = static_cast<std::size_t>(out.channels);
  const std::size_t pixels = static_cast<std::size_t>(out.height) * out.width;
  return static_cast<std::size_t>(s.n) * (channels / block) * pixels;
}

// Item `index` (< direct_conv_items(s, P, block), a block that fits), in this order: image by image, channel block by
// channel block, then the pixels of the output plane row by row; but for BackwardData at a stride
// above 1, class by class of (y mod stride, x mod stride) (the classes row by row, each class's
// pixels row by row), so that neighbouring threads share which taps reach their pixel
// (backward_data_taps) and skip the same ones together (at stride 2 a warp of mixed classes ran
// every tap of every class). 32-bit arithmetic: direct_conv_supported keeps the counts in an int.
template <DirectPass P>
FMNIST_HD DirectItem direct_conv_item(const ConvShape& s, int block, unsigned index) {
  const DirectOutput out = direct_conv_output(s, P);
  const unsigned width = out.width, height = out.height, channels = out.channels;
  const unsigned blocks = channels / block, pixels = width * height;
  unsigned pixel = index % pixels;
  const unsigned rest = index / pixels;
  DirectItem item;
  item.ch0 = static_cast<int>(rest % blocks) * block;
  item.image = static_cast<int>(rest / blocks);
  if (P == DirectPass::Forward || s.stride == 1) {
    item.y = static_cast<int>(pixel / width);
    item.x = static_cast<int>(pixel % width);
    return item;
  }
  const unsigned stride = static_cast<unsigned>(s.stride);
  for (unsigned py = 0; py < stride && py < height; ++py) {
    const unsigned rows = (height - py + stride - 1) / stride;
    for (unsigned px = 0; px < stride && px < width; ++px) {
      const unsigned cols = (width - px + stride - 1) / stride;
      if (pixel < rows * cols) {
        item.y = static_cast<int>(py + stride * (pixel / cols));
        item.x = static_cast<int>(px + stride * (pixel % cols));
        return item;
      }
      pixel -= rows * cols;
    }
  }
  return item;  // not reached: the classes hold every pixel
}

// Where output channel item.ch0 + o of `item` lies in pass P's output (memory order).
template <DirectPass P>
FMNIST_HD std::size_t direct_conv_index(const ConvShape& s, const DirectItem& item, int o) {
  const DirectOutput out = direct_conv_output(s, P);
  const std::size_t width = out.width, height = out.height, channels = out.channels;
  const std::size_t plane = static_cast<std::size_t>(item.image) * channels + item.ch0 + o;
  return (plane * height + item.y) * width + item.x;
}

// Pass P's OB outputs of `item` from `in` (src for Forward, ddst for BackwardData) and the filter
// w, in v: forward_block_at or backward_data_block_at in T, + bias[channel] when bias is non-null
// (added after the sum, as the CPU reference adds it). TAPS: how the taps are walked (DirectTaps:
// Inside for a Forward where conv_taps_inside(s), Stride2 for a BackwardData at stride 2); the
// same bits every way.
template <int KS, DirectPass P, int OB, class T, DirectTaps TAPS = DirectTaps::Checked>
FMNIST_HD void direct_conv_block(const ConvShape& s, const DirectItem& item, const T* in, const T* w, const T* bias,
                                 T (&v)[OB]) {
  static_assert(TAPS != DirectTaps::Inside || P == DirectPass::Forward, "the backward-data's taps are checked");
  static_assert(TAPS != DirectTaps::Stride2 || P == DirectPass::BackwardData, "Stride2 walks the backward-data");
  if constexpr (P == DirectPass::Forward)
    forward_block_at<KS, OB, TAPS == DirectTaps::Inside, T, T>(s, item.image, item.ch0, item.y, item.x, in, w, v);
  else
    backward_data_block_at<KS, OB, TAPS == DirectTaps::Stride2, T, T>(s, item.image, item.ch0, item.y, item.x, in,
                                                                      w, v);
  if (bias != nullptr) {
    FMNIST_UNROLL
    for (int o = 0; o < OB; ++o) v[o] += bias[item.ch0 + o];
  }
}

// Element e (in memory order, e < direct_conv_outputs(s, P)) of pass P's output alone: the item
// of one channel at its pixel (direct_conv_block with one output).
template <int KS, DirectPass P, class T>
FMNIST_HD T direct_conv_element(const ConvShape& s, std::size_t e, const T* in, const T* w, const T* bias) {
  const DirectOutput out = direct_conv_output(s, P);
  const unsigned width = out.width, height = out.height, channels = out.channels;
  const unsigned index = static_cast<unsigned>(e);  // within an int (direct_conv_supported)
  const unsigned row = index / width, plane = row / height;  // plane: image * channels + channel
  DirectItem item;
  item.x = static_cast<int>(index % width);
  item.y = static_cast<int>(row % height);
  item.ch0 = static_cast<int>(plane % channels);
  item.image = static_cast<int>(plane / channels);
  T v[1];
  direct_conv_block<KS, P, 1, T>(s, item, in, w, bias, v);
  return v[0];
}

}  // namespace fmnist
