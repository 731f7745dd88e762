// fmnist's direct convolution forward and backward-data (see direct_conv.h): one thread per item
// of models/conv_direct.h (OB output channels of one image at one pixel, OB = 1, 4 or 16), in a
// grid-stride loop over the items in that header's order, each item computed by its
// direct_conv_block (FP32 sums, then the bias) and written with the epilogue; and, one thread per
// 2 x 2 pooling window (models/conv_direct_pool.h), a Conv2d's forward with its ReLU and max pooling,
// and its input gradient with the backward of the max pooling and ReLU below it.
#include "cuda/direct_conv.h"

#include <stdexcept>
#include <string>
#include <type_traits>

#include "cuda/check.h"
#include "cuda/grid_stride.cuh"
#include "cuda/launch.cuh"

namespace fmnist::cuda {
namespace {

// out = pass P of the convolution (models/conv_direct.h's direct_conv_block, item by item, OB
// output channels an item): Forward: in = src (N,C,Hs,Ws) -> out = dst (N,K,Hd,Wd), bias (K) or
// null; BackwardData: in = ddst (N,K,Hd,Wd) -> out = dsrc (N,C,Hs,Ws), bias (C) or null. w
// (K,C,KS,KS). Then the epilogue (direct_conv.h) with elementwise.h's relu and relu_grad.
// TAPS: how each element's taps are walked (models/conv_direct.h's DirectTaps; the same bits).
template <int KS, DirectPass P, int OB, DirectTaps TAPS>
__global__ void __launch_bounds__(kThreads)
    direct_conv_kernel(ConvShape s, std::size_t items, const float* __restrict__ in, const float* __restrict__ w,
                       const float* __restrict__ bias, float* __restrict__ out, DirectEpilogue epilogue) {
  grid_dependency();
  for (std::size_t e = global_index(); e < items; e += global_stride()) {
    const DirectItem item = direct_conv_item<P>(s, OB, static_cast<unsigned>(e));
    float v[OB];
    direct_conv_block<KS, P, OB, float, TAPS>(s, item, in, w, bias, v);
#pragma unroll
    for (int o = 0; o < OB; ++o) {  // every block full (direct_conv_block_fits, checked at launch)
      const std::size_t i = direct_conv_index<P>(s, item, o);
      out[i] = v[o];
      if (epilogue.relu_out != nullptr) epilogue.relu_out[i] = elementwise::relu(v[o]);
      if (epilogue.relu_dx != nullptr) epilogue.relu_dx[i] = elementwise::relu_grad(epilogue.relu_y[i], v[o]);
    }
  }
}

// Conv2d's forward, bias, ReLU and 2 x 2 max pooling (models/conv_direct_pool.h), one thread per
// item of `tiles`: a window's 4 elements of OB channels, or an element no window covers.
template <int KS, int OB>
__global__ void __launch_bounds__(kThreads)
    direct_forward_relu_maxpool_kernel(ConvShape s, TiledPool tiles, std::size_t items, const float* __restrict__ src,
                                       const float* __restrict__ w, const float* __restrict__ bias,
                                       float* __restrict__ y, float* __restrict__ y_relu, float* __restrict__ pooled,
                                       std::int32_t* __restrict__ argmax) {
  grid_dependency();
  for (std::size_t e = global_index(); e < items; e += global_stride())
    direct_forward_relu_maxpool_item<KS, OB>(s, tiles, e, src, w, bias, y, y_relu, pooled, argmax);
}

// Conv2d's input gradient, then the backward of the 2 x 2 max pooling and the ReLU below it
// (models/conv_direct_pool.h), one thread per item of `tiles`: a window of the pooling's input for
// OB channels, or an element no window covers.
template <int KS, int OB>
__global__ void __launch_bounds__(kThreads)
    direct_backward_data_maxpool_relu_kernel(ConvShape s, TiledPool tiles, std::size_t items,
                                             const float* __restrict__ ddst, const float* __restrict__ w,
                                             float* __restrict__ dsrc, const std::int32_t* __restrict__ argmax,
                                             const float* __restrict__ relu_y, float* __restrict__ pool_dx,
                                             float* __restrict__ pool_dx_relu) {
  grid_dependency();
  for (std::size_t e = global_index(); e < items; e += global_stride())
    direct_backward_data_maxpool_relu_item<KS, OB>(s, tiles, e, ddst, w, dsrc, argmax, relu_y, pool_dx,
                                                   pool_dx_relu);
}

// f(std::integral_constant<int, OB>{}) for a channel block of kDirectConvChannelBlocks up to
// kMaxBlock (the blocks a kernel is compiled for); false for any other.
template <int kMaxBlock, class F> bool with_channel_block(int block, F&& f) {
  static_assert(sizeof(kDirectConvChannelBlocks) / sizeof(int) == 3, "with_channel_block lists 16, 4 and 1");
  if (block > kMaxBlock) return false;
  switch (block) {
    case 16: if constexpr (kMaxBlock >= 16) f(std::integral_constant<int, 16>{}); return true;
    case 4: if constexpr (kMaxBlock >= 4) f(std::integral_constant<int, 4>{}); return true;
    case 1: f(std::integral_constant<int, 1>{}); return true;
    default: return false;
  }
}

// f(ob, ks), the channel block and kernel size as std::integral_constants, for a channel block
// compiled for the kernel (up to kMaxBlock) that divides pass P's output channels and a compiled
// kernel size; std::invalid_argument, named `name`, for any other.
template <DirectPass P, int kMaxBlock = 16, class F>
void with_block_and_kernel(const char* name, const ConvShape& s, int block, F&& f) {
  bool compiled = false;
  const bool known_block = with_channel_block<kMaxBlock>(block, [&](auto ob) {
    if (!direct_conv_block_fits(s, P, decltype(ob)::value))
      throw std::invalid_argument(std::string(name) + ": a channel block of " + std::to_string(decltype(ob)::value) +
                                  " does not divide the " + std::to_string(direct_conv_output(s, P).channels) +
                                  " output channels");
    compiled = with_kernel_size(s.kernel, [&](auto ks) { f(ob, ks); });
  });
  if (!known_block)
    throw std::invalid_argument(std::string(name) + ": no kernel compiled for a channel block of " +
                                std::to_string(block));
  if (!compiled) throw std::invalid_argument(std::string(name) + ": no kernel compiled for this kernel size");
}

// Pass P after its checks: shape supported (its kernel size too), pointers non-null, a channel
// block compiled (0: direct_conv_channel_block's) that divides the output channels.
template <DirectPass P>
void launch_pass(const Context& c, const char* name, const ConvShape& s, const float* in, const float* w,
                 const float* bias, float* out, const DirectEpilogue& epilogue, int channel_block) {
  if (!direct_conv_supported(s))
    throw std::invalid_argument(std::string(name) + ": unsupported shape (kernel " + std::to_string(s.kernel) +
                                ", " + std::to_string(s.n) + " images)");
  if (in == nullptr || w == nullptr || out == nullptr)
    throw std::invalid_argument(std::string(name) + ": null input, filter or output");
  if ((epilogue.relu_dx == nullptr) != (epilogue.relu_y == nullptr))
    throw std::invalid_argument(std::string(name) + ": a ReLU gradient needs both the ReLU's output and its target");
  const int block = channel_block == 0 ? direct_conv_channel_block(s, P) : channel_block;
  with_block_and_kernel<P>(name, s, block, [&](auto ob, auto ks) {
    constexpr int kOB = decltype(ob)::value, kKS = decltype(ks)::value;
    const std::size_t items = direct_conv_items(s, P, kOB);
    // The forward without its taps' checks where none would skip a tap; the backward-data at
    // stride 2 over the taps of each element's parity alone (the same bits).
    constexpr DirectTaps kFast = P == DirectPass::Forward ? DirectTaps::Inside : DirectTaps::Stride2;
    const bool fast = P == DirectPass::Forward ? conv_taps_inside(s) : s.stride == 2;
    const auto kernel =
        fast ? direct_conv_kernel<kKS, P, kOB, kFast> : direct_conv_kernel<kKS, P, kOB, DirectTaps::Checked>;
    launch(c, kernel, c.grid_for(items, kThreads), kThreads, 0, s, items, in, w, bias, out, epilogue);
  });
}

}  // namespace

void launch_direct_forward_relu_maxpool(const Context& c, const ConvShape& s, const PoolGeometry& p,
                                        const float* src, const float* w, const float* bias, float* y,
                                        float* y_relu, float* pooled, std::int32_t* argmax, int channel_block) {
  const char* name = "direct forward with ReLU and max pooling";
  if (!direct_pool_supported(s, p))
    throw std::invalid_argument(std::string(name) + ": unsupported shapes (kernel " + std::to_string(s.kernel) +
                                ", padding " + std::to_string(s.padding) + ", pooling " +
                                std::to_string(p.kernel) + " at stride " + std::to_string(p.stride) +
                                " over " + std::to_string(p.in_h) + "x" + std::to_string(p.in_w) +
                                "; the forward's output is " + std::to_string(s.dst_h) + "x" +
                                std::to_string(s.dst_w) + ")");
  if (src == nullptr || w == nullptr || y == nullptr || y_relu == nullptr || pooled == nullptr || argmax == nullptr)
    throw std::invalid_argument(std::string(name) + ": null input, filter or output");
  const int block = channel_block == 0 ? direct_pool_channel_block(s) : channel_block;
  // Compiled for kDirectPoolChannelBlocks alone (4 and 1).
  with_block_and_kernel<DirectPass::Forward, kDirectPoolChannelBlocks[0]>(name, s, block, [&](auto ob, auto ks) {
    constexpr int kOB = decltype(ob)::value;
    const std::size_t items = direct_pool_items(s, kOB);
    launch(c, direct_forward_relu_maxpool_kernel<decltype(ks)::value, kOB>, c.grid_for(items, kThreads), kThreads,
           0, s, direct_pool_tiles(s, kOB), items, src, w, bias, y, y_relu, pooled, argmax);
  });
}

void launch_direct_backward_data_maxpool_relu(const Context& c, const ConvShape& s, const PoolGeometry& p,
                                              const float* ddst, const float* w, float* dsrc,
                                              const std::int32_t* argmax, const float* relu_y, float* pool_dx,
                                              float* pool_dx_relu, int channel_block) {
  const char* name = "direct backward-data with max pooling's and ReLU's backward";
  if (!direct_pool_backward_supported(s, p))
    throw std::invalid_argument(std::string(name) + ": unsupported shapes (pooling " + std::to_string(p.kernel) +
                                " at stride " + std::to_string(p.stride) + " of " + std::to_string(p.channels) +
                                "x" + std::to_string(p.in_h) + "x" + std::to_string(p.in_w) +
                                "; the convolution's input is " + std::to_string(s.c) + "x" +
                                std::to_string(s.src_h) + "x" + std::to_string(s.src_w) + ")");
  if (ddst == nullptr || w == nullptr || dsrc == nullptr || argmax == nullptr || relu_y == nullptr ||
      pool_dx == nullptr || pool_dx_relu == nullptr)
    throw std::invalid_argument(std::string(name) + ": null input, filter or output");
  const int block = channel_block == 0 ? direct_pool_backward_channel_block(p) : channel_block;
  with_block_and_kernel<DirectPass::BackwardData>(name, s, block, [&](auto ob, auto ks) {
    constexpr int kOB = decltype(ob)::value, kKS = decltype(ks)::value;
    const std::size_t items = direct_pool_backward_items(p, kOB);
    launch(c, direct_backward_data_maxpool_relu_kernel<kKS, kOB>, c.grid_for(items, kThreads), kThreads, 0, s,
           direct_pool_backward_tiles(p, kOB), items, ddst, w, dsrc, argmax, relu_y, pool_dx, pool_dx_relu);
  });
}

void launch_direct_backward_data(const Context& c, const ConvShape& s, const float* ddst, const float* w,
                                 const float* bias, float* dsrc, const DirectEpilogue& epilogue, int channel_block) {
  launch_pass<DirectPass::BackwardData>(c, "direct backward-data", s, ddst, w, bias, dsrc, epilogue, channel_block);
}

void launch_direct_forward(const Context& c, const ConvShape& s, const float* src, const float* w,
                           const float* bias, float* dst, const DirectEpilogue& epilogue, int channel_block) {
  launch_pass<DirectPass::Forward>(c, "direct forward", s, src, w, bias, dst, epilogue, channel_block);
}

}  // namespace fmnist::cuda
