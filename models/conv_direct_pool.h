// A Conv2d's direct forward with its bias, ReLU and max pooling in one pass, and its direct
// backward-data with the backward of the max pooling and ReLU below it in one pass, as
// cuda/direct_conv.cu's fused kernels compute them, defined once for g++ and nvcc: the items of a
// TiledPool (pool_tiles.h) over planes of OB channels, each convolution element the direct pass's
// (conv_direct.h), so the bits of the direct pass followed by the pooling kernel.
// tests/test_conv_direct_pool.cpp checks them on the CPU, tests/kernel_emu/test_conv_kernels.cpp the
// kernels.
#pragma once

#include <cstddef>
#include <cstdint>

#include "models/conv_direct.h"
#include "models/ops.h"
#include "models/pool_tiles.h"

namespace fmnist {

// The pooling windows the fused pass takes: 2 x 2 at stride 2, the paper's MaxPool2d(2).
constexpr int kDirectPoolKernel = 2;

// Whether the fused pass computes Conv2d `s` followed by its ReLU and pooling `p`: a shape the
// direct passes handle whose taps all lie inside src (conv_taps_inside: no padding), and p pools
// that forward's output (same batch, channels and plane) with kDirectPoolKernel windows at their
// own stride.
inline bool direct_pool_supported(const ConvShape& s, const PoolGeometry& p) {
  return direct_conv_supported(s) && conv_taps_inside(s) && p.kernel == kDirectPoolKernel &&
         p.stride == kDirectPoolKernel && p.batch == s.n && p.channels == s.k && p.in_h == s.dst_h &&
         p.in_w == s.dst_w && p.in_h >= p.kernel && p.in_w >= p.kernel;
}

// The fused pass's items with channel blocks of `block` (direct_conv_block_fits for the forward):
// TiledPool over the n * k / block planes of blocks.
inline TiledPool direct_pool_tiles(const ConvShape& s, int block) {
  return tiled_pool(static_cast<std::size_t>(s.n) * (s.k / block), s.dst_h, s.dst_w, kDirectPoolKernel);
}
inline std::size_t direct_pool_items(const ConvShape& s, int block) {
  return direct_pool_tiles(s, block).items(static_cast<std::size_t>(s.n) * (s.k / block));
}

// The channel blocks the fused pass is compiled for: a window's thread computes 4 elements of each
// channel, so 4 channels give it the 16 outputs of the unfused kernel's largest block.
constexpr int kDirectPoolChannelBlocks[] = {4, 1};

// The first of `blocks` (largest first) that divides `channels` and still leaves items(block)
// threads of at least kDirectConvThreadsTarget, as direct_conv_channel_block chooses; else 1.
template <std::size_t N, class Items>
int pool_channel_block(const int (&blocks)[N], int channels, Items items) {
  for (const int block : blocks)
    if (block == 1 || (channels % block == 0 && static_cast<long long>(items(block)) >= kDirectConvThreadsTarget))
      return block;
  return 1;
}

// The channels a thread of the fused pass computes: 4 (of kDirectPoolChannelBlocks) or 1.
inline int direct_pool_channel_block(const ConvShape& s) {
  return pool_channel_block(kDirectPoolChannelBlocks, s.k, [&](int block) { return direct_pool_items(s, block); });
}

// Item e of the fused pass (e < direct_pool_items(s, OB)), tiles = direct_pool_tiles(s, OB). A
// window: its 2 x 2 elements of the OB channels (direct_conv_block, bias included) into y (N,K,Hd,Wd),
// their ReLU into y_relu, and each channel's maximum of those ReLUs and its flat index in the plane
// into pooled and argmax (N,K,Hd/2,Wd/2), by pool_window's scan. An uncovered element: y and y_relu
// of its OB channels. Every element of y and y_relu is written by one item, every pooled one by one.
template <int KS, int OB>
FMNIST_HD void direct_forward_relu_maxpool_item(const ConvShape& s, const TiledPool& tiles, std::size_t e,
                                                const float* src, const float* w, const float* bias, float* y,
                                                float* y_relu, float* pooled, std::int32_t* argmax) {
  constexpr int kTaps = kDirectPoolKernel * kDirectPoolKernel;
  const int blocks = s.k / OB;
  const std::size_t block_plane = tiles.plane(e);  // image * blocks + channel block
  DirectItem item;
  item.image = static_cast<int>(block_plane / blocks);
  item.ch0 = static_cast<int>(block_plane % blocks) * OB;
  const std::size_t first_plane = static_cast<std::size_t>(item.image) * s.k + item.ch0;  // of y and pooled
  if (!tiles.is_window(e)) {
    const int at = tiles.uncovered_in_plane(e);
    item.y = at / s.dst_w;
    item.x = at % s.dst_w;
    float v[OB];
    direct_conv_block<KS, DirectPass::Forward, OB, float, DirectTaps::Inside>(s, item, src, w, bias, v);
    FMNIST_UNROLL
    for (int o = 0; o < OB; ++o) {
      const std::size_t i = (first_plane + o) * tiles.in_plane + at;
      y[i] = v[o];
      y_relu[i] = elementwise::relu(v[o]);
    }
    return;
  }
  const int window = tiles.window_in_plane(e);
  const int oy = window / tiles.out_w, ox = window % tiles.out_w;
  float v[kTaps][OB];
  FMNIST_UNROLL
  for (int t = 0; t < kTaps; ++t) {
    item.y = oy * kDirectPoolKernel + t / kDirectPoolKernel;
    item.x = ox * kDirectPoolKernel + t % kDirectPoolKernel;
    direct_conv_block<KS, DirectPass::Forward, OB, float, DirectTaps::Inside>(s, item, src, w, bias, v[t]);
  }
  FMNIST_UNROLL
  for (int o = 0; o < OB; ++o) {
    const std::size_t plane = first_plane + o;
    float* y_plane = y + plane * tiles.in_plane;
    float* relu_plane = y_relu + plane * tiles.in_plane;
    const auto store = [&](int i, int t) {
      const float a = elementwise::relu(v[t][o]);
      y_plane[i] = v[t][o];
      relu_plane[i] = a;
      return a;
    };
    int best = 0;
    const std::size_t out = plane * tiles.out_plane + window;
    pooled[out] = pool_window(s.dst_w, oy, ox, kDirectPoolKernel, kDirectPoolKernel, store, best);
    argmax[out] = best;
  }
}

// ---- backward: Conv2d's input gradient, then the MaxPool2d and the ReLU below it --------------------

// Whether the fused backward computes Conv2d `s`'s input gradient and then the backward of pooling
// `p` that made its input, through that pooling's input ReLU: a shape the direct passes handle, and
// p pooling (same batch and channels) kDirectPoolKernel windows at their own stride into s's input
// plane.
inline bool direct_pool_backward_supported(const ConvShape& s, const PoolGeometry& p) {
  return direct_conv_supported(s) && p.kernel == kDirectPoolKernel && p.stride == kDirectPoolKernel &&
         p.batch == s.n && p.channels == s.c && p.in_h >= p.kernel && p.in_w >= p.kernel && p.out_h() == s.src_h &&
         p.out_w() == s.src_w;
}

// The fused backward's items with channel blocks of `block` (direct_conv_block_fits for the
// backward-data): TiledPool over the n * c / block planes of blocks of the pooling's input.
inline TiledPool direct_pool_backward_tiles(const PoolGeometry& p, int block) {
  return tiled_pool(static_cast<std::size_t>(p.batch) * (p.channels / block), p.in_h, p.in_w, kDirectPoolKernel);
}
inline std::size_t direct_pool_backward_items(const PoolGeometry& p, int block) {
  return direct_pool_backward_tiles(p, block).items(static_cast<std::size_t>(p.batch) * (p.channels / block));
}

// Its channels a thread: 16, 4 (of kDirectConvChannelBlocks) or 1.
inline int direct_pool_backward_channel_block(const PoolGeometry& p) {
  return pool_channel_block(kDirectConvChannelBlocks, p.channels,
                            [&](int block) { return direct_pool_backward_items(p, block); });
}

// Item e of the fused backward (e < direct_pool_backward_items(p, OB)), tiles =
// direct_pool_backward_tiles(p, OB). A window: the Conv2d's input gradient dsrc (N,C,Hs,Ws) at its
// pixel (the pooled pixel it made) for OB channels (direct_conv_block from ddst (N,K,Hd,Wd) and w
// (K,C,k,k)), then what the window hands back to its 2 x 2 elements of the pooling's input
// (pool_window_backward, argmax (N,C,Hs,Ws) naming the chosen one) into pool_dx (N,C,H,W), and
// through the ReLU whose output relu_y is into pool_dx_relu. An uncovered element: 0 and its ReLU
// gradient of 0. Every tap is checked (DirectTaps::Checked): the paper's Conv2d layers have stride
// 1, and the stride-2 walk, which gives the same bits, stays the unfused kernel's.
template <int KS, int OB>
FMNIST_HD void direct_backward_data_maxpool_relu_item(const ConvShape& s, const TiledPool& tiles, std::size_t e,
                                                      const float* ddst, const float* w, float* dsrc,
                                                      const std::int32_t* argmax, const float* relu_y,
                                                      float* pool_dx, float* pool_dx_relu) {
  const int blocks = s.c / OB;
  const std::size_t block_plane = tiles.plane(e);  // image * blocks + channel block
  DirectItem item;
  item.image = static_cast<int>(block_plane / blocks);
  item.ch0 = static_cast<int>(block_plane % blocks) * OB;
  const std::size_t first_plane = static_cast<std::size_t>(item.image) * s.c + item.ch0;
  if (!tiles.is_window(e)) {
    const int at = tiles.uncovered_in_plane(e);
    FMNIST_UNROLL
    for (int o = 0; o < OB; ++o) {
      const std::size_t i = (first_plane + o) * tiles.in_plane + at;
      pool_dx[i] = 0.0f;
      pool_dx_relu[i] = elementwise::relu_grad(relu_y[i], 0.0f);
    }
    return;
  }
  const int window = tiles.window_in_plane(e);
  item.y = window / tiles.out_w;
  item.x = window % tiles.out_w;
  float v[OB];
  direct_conv_block<KS, DirectPass::BackwardData, OB, float>(s, item, ddst, w, nullptr, v);
  FMNIST_UNROLL
  for (int o = 0; o < OB; ++o) {
    const std::size_t plane = first_plane + o;
    const std::size_t pooled_at = plane * tiles.out_plane + window;
    dsrc[pooled_at] = v[o];
    const std::size_t in_first = plane * tiles.in_plane;
    pool_window_backward(tiles.in_w, item.y, item.x, kDirectPoolKernel, argmax[pooled_at], v[o], [&](int i, float g) {
      pool_dx[in_first + i] = g;
      pool_dx_relu[in_first + i] = elementwise::relu_grad(relu_y[in_first + i], g);
    });
  }
}

}  // namespace fmnist
