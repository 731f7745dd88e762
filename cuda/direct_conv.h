// fmnist's own convolution forward and backward-data, alternatives to cuDNN's for the small
// geometries of this study, where cuDNN took 9 to 32 us a call for a few MFLOP on the H100
// (bench/RESULTS.md). The forward serves Conv2d's forward (bias fused) and ConvTranspose2d's input
// gradient; the backward-data ConvTranspose2d's forward (bias fused) and Conv2d's input gradient.
// Each output element is a sum over its taps in a fixed order (models/conv_direct.h), a thread
// computing 1, 4 or 16 output channels at one pixel: deterministic, no atomics, no workspace,
// and the same bits whichever channel block a launch takes.
#pragma once

#include "cuda/context.h"
#include "models/conv_direct.h"
#include "models/conv_direct_pool.h"

namespace fmnist::cuda {

// What a direct kernel writes beside its output v: relu_out = ReLU(v) (a forward's ReLU), and/or
// relu_dx = relu_grad(relu_y, v) (the gradient through the ReLU whose output relu_y is, when v is
// an input gradient). Null pointers: not written.
struct DirectEpilogue {
  float* relu_out = nullptr;
  const float* relu_y = nullptr;
  float* relu_dx = nullptr;
};

// dsrc (N,C,Hs,Ws) = backward_data_block_at (models/conv_direct.h) from ddst (N,K,Hd,Wd) and the
// (K,C,k,k) filter w, + bias[c] when bias is non-null, and the epilogue's tensors (same shape).
// Enqueued on the context's stream; std::invalid_argument for an unsupported shape.
// channel_block: the output channels a thread computes (kDirectConvChannelBlocks, models/
// conv_direct.h), one that divides the output channels; 0, direct_conv_channel_block's choice for
// the shape. The tests take each.
void launch_direct_backward_data(const Context& c, const ConvShape& s, const float* ddst, const float* w,
                                 const float* bias, float* dsrc, const DirectEpilogue& epilogue = {},
                                 int channel_block = 0);

// dst (N,K,Hd,Wd) = forward_block_at (models/conv_direct.h) from src (N,C,Hs,Ws) and the (K,C,k,k)
// filter w, + bias[k] when bias is non-null, and the epilogue's tensors, as above.
void launch_direct_forward(const Context& c, const ConvShape& s, const float* src, const float* w,
                           const float* bias, float* dst, const DirectEpilogue& epilogue = {},
                           int channel_block = 0);

// A Conv2d's forward, its ReLU and the max pooling after it, in one launch: y (N,K,Hd,Wd) = the
// direct forward of src (N,C,Hs,Ws) and the (K,C,k,k) filter w, + bias[k] when bias is non-null;
// y_relu = ReLU(y); pooled and argmax (N,K,Hd/2,Wd/2) = p's max pooling of y_relu
// (models/conv_direct_pool.h). The bits of launch_direct_forward with a null epilogue, then
// launch_bias_relu_maxpool (kernels.h) without a bias. std::invalid_argument unless
// direct_pool_supported(s, p). channel_block: 4 or 1 (kDirectPoolChannelBlocks; 0:
// direct_pool_channel_block's choice).
void launch_direct_forward_relu_maxpool(const Context& c, const ConvShape& s, const PoolGeometry& p,
                                        const float* src, const float* w, const float* bias, float* y,
                                        float* y_relu, float* pooled, std::int32_t* argmax, int channel_block = 0);

// A Conv2d's input gradient, then the backward of the 2 x 2 max pooling p that made its input and of
// the ReLU before that pooling, in one launch: dsrc (N,C,Hs,Ws) = the direct backward-data of ddst
// (N,K,Hd,Wd) and the (K,C,k,k) filter w; pool_dx (N,C,H,W) = p's backward of dsrc (argmax
// (N,C,Hs,Ws) from its forward); pool_dx_relu = relu_backward(relu_y, pool_dx), relu_y the ReLU's
// output (models/conv_direct_pool.h). The bits of launch_direct_backward_data, then
// launch_maxpool_backward (kernels.h) with its ReLU. std::invalid_argument unless
// direct_pool_backward_supported(s, p). channel_block: as above (0: direct_pool_backward_channel_block's).
void launch_direct_backward_data_maxpool_relu(const Context& c, const ConvShape& s, const PoolGeometry& p,
                                              const float* ddst, const float* w, float* dsrc,
                                              const std::int32_t* argmax, const float* relu_y, float* pool_dx,
                                              float* pool_dx_relu, int channel_block = 0);

}  // namespace fmnist::cuda
