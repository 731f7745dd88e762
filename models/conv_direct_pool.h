// A Conv2d's direct forward with its bias, ReLU and max pooling in one pass, as cuda/direct_conv.cu's
// fused kernel computes it, defined once for g++ and nvcc: the items of a TiledPool (pool_tiles.h)
// over planes of OB output channels, each output element the direct forward's (conv_direct.h), so
// the bits of the direct forward followed by the bias-ReLU-pooling kernel. tests/test_conv_direct.cpp
// checks it on the CPU, tests/kernel_emu/test_conv_kernels.cpp the kernel.
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

// The channels a thread of the fused pass computes: as direct_conv_channel_block, 16 or 4 where the
// output channels are a multiple of it and the items still number kDirectConvThreadsTarget, else 1.
inline int direct_pool_channel_block(const ConvShape& s) {
  for (const int block : kDirectConvChannelBlocks)
    if (block == 1 || (s.k % block == 0 && static_cast<long long>(direct_pool_items(s, block)) >=
                                               kDirectConvThreadsTarget))
      return block;
  return 1;
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

}  // namespace fmnist
