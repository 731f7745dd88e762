// fmnist's own CUDA kernels, as host-side launchers: each enqueues its kernel(s) on the context's
// stream, checks the launch, and never waits. Preconditions (sizes, null pointers) are checked by
// the caller (cuda_ops.cu) before any launch. The per-element math is models/elementwise.h's,
// the same functions the CPU reference calls. Implemented in kernels.cu and adam.cu.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "cuda/context.h"
#include "models/elementwise.h"
#include "models/ops.h"

namespace fmnist::cuda {

// The oldest compute capability fmnist runs on: CUDA 13 (nvcc, the runtime, cuDNN 9 for CUDA 13)
// supports 7.5 (Turing) and newer; the build's own list may be narrower. Compared as (major, minor).
constexpr int kMinComputeMajor = 7;
constexpr int kMinComputeMinor = 5;
// Empty when this build holds code the current device can run, else why not.
std::string kernel_image_problem();
// The architectures this library was compiled for, e.g. "90-real;80-virtual".
std::string compiled_architectures();
// The virtual architecture (PTX target, e.g. 90 or 80) of the code the current device runs: its
// SASS's, or the PTX the driver compiles for a newer device. Call after kernel_image_problem().
int kernel_virtual_architecture();

// ---- memory and data ------------------------------------------------------------------------------
void launch_fill(const Context& c, std::size_t n, float value, float* dst);
// x (n) = pixels (n) / 255
void launch_images_to_float(const Context& c, std::size_t n, const std::uint8_t* pixels, float* x);

// ---- biases ----------------------------------------------------------------------------------------
// y (B,C,HW) += bias (C) (skipped when bias is null); with y_act, also y_act = act(y) in the same
// pass (the float operations of the bias add and relu_forward or sigmoid_forward, so the same
// bits). A Linear output (B,out) is (B,out,1).
void launch_add_channel_bias(const Context& c, int batch, int channels, std::size_t hw, const float* bias,
                             float* y, float* y_act = nullptr,
                             elementwise::Activation act = elementwise::Activation::ReLU);
// db (C) = sum over b and the plane of dy (B,C,HW), in double, in a fixed order.
void launch_channel_bias_grad(const Context& c, int batch, int channels, std::size_t hw,
                              const float* dy, float* db);
// A Linear layer's dy (B,F) = relu_backward(y_relu, dy_relu) (the ReLU after it), and its bias
// gradient db (F) = the column sums of that dy, in one pass: the bits of launch_relu_backward then
// launch_channel_bias_grad (hw 1).
void launch_linear_bias_grad_through_relu(const Context& c, int batch, int features, const float* y_relu,
                                          const float* dy_relu, float* dy, float* db);

// ---- pooling --------------------------------------------------------------------------------------
// x (B,C,H,W) -> y (B,C,Ho,Wo), argmax (B,C,Ho,Wo) = flat index in the (H,W) plane.
void launch_maxpool_forward(const Context& c, const PoolGeometry& g, const float* x, float* y,
                            std::int32_t* argmax);
// y (B,C,H,W), a convolution's output -> y += bias (C) (skipped when bias is null), y_relu =
// ReLU(y), and pooled, argmax (B,C,Ho,Wo) = the max pooling of y_relu, in one pass: the bits of
// launch_add_channel_bias and then launch_maxpool_forward. Needs kernel == stride (windows that
// neither overlap nor leave gaps; std::invalid_argument otherwise).
void launch_bias_relu_maxpool(const Context& c, const PoolGeometry& g, const float* bias, float* y, float* y_relu,
                              float* pooled, std::int32_t* argmax);
// dy (B,C,Ho,Wo), argmax -> dx (B,C,H,W), every element written; with dx_relu (and x, the pool's
// input, a ReLU's output), also dx_relu = relu_backward(x, dx) in the same pass. With kernel ==
// stride one thread a window writes the window (a tiled kernel), else one thread an element
// gathers the windows that chose it; both give the same bits.
void launch_maxpool_backward(const Context& c, const PoolGeometry& g, const float* dy,
                             const std::int32_t* argmax, float* dx, const float* x = nullptr,
                             float* dx_relu = nullptr);

// ---- element-wise ---------------------------------------------------------------------------------
void launch_relu_forward(const Context& c, std::size_t n, const float* x, float* y);
void launch_relu_backward(const Context& c, std::size_t n, const float* y, const float* dy,
                          float* dx);
void launch_sigmoid_forward(const Context& c, std::size_t n, const float* x, float* y);
void launch_sigmoid_backward(const Context& c, std::size_t n, const float* y, const float* dy,
                             float* dx);
// out (n) = in (n) * dropout_factor(seed, step, layer, i, p): forward (x -> y) and backward
// (dy -> dx) alike.
void launch_dropout(const Context& c, std::size_t n, float p, std::uint64_t seed,
                    std::uint64_t step, std::uint32_t layer, const float* in, float* out);

// ---- losses and metrics ---------------------------------------------------------------------------
// The output layer's bias and activation, which a loss kernel can take on first (the float
// operations of launch_add_channel_bias, so the bits of that kernel then the loss's): the product
// y (B,C,HW) += bias (C) (skipped when bias is null), then y_act = act(y), the loss's prediction.
struct OutputEpilogue {
  float* y = nullptr;  // null: no epilogue, the prediction is read as it is
  const float* bias = nullptr;
  float* y_act = nullptr;
  int channels = 1;
  std::size_t hw = 1;
};
// loss[0] = mean over n of the term; *loss_sum += that mean (double) when non-null; dpred (n)
// when non-null, and with it dpred_relu (n) = relu_grad(pred, dpred) when that is non-null (pred
// being a ReLU's output). Deterministic: fixed-shape two-pass reduction in double. With
// epilogue.y, pred is epilogue.y_act, written first from the product (its act is ReLU).
void launch_point_loss(const Context& c, PointLoss kind, std::size_t n, const float* pred,
                       const float* target, float* dpred, float* loss, double* loss_sum,
                       float* dpred_relu = nullptr, const OutputEpilogue& epilogue = {});
// scores (B,classes), labels (B) -> loss[0] = mean softmax cross-entropy, dscores (B,classes),
// and with it dscores_sigmoid (B,classes) = sigmoid_grad(scores, dscores) when that is non-null
// (scores being a Sigmoid's output). A label >= classes makes the loss (and its row's gradients)
// NaN. With epilogue.y, scores is epilogue.y_act, written first from the product (its act is
// Sigmoid; channels = classes, hw = 1).
void launch_softmax_cross_entropy(const Context& c, int batch, int classes, const float* scores,
                                  const std::uint8_t* labels, float* dscores, float* loss,
                                  double* loss_sum, float* dscores_sigmoid = nullptr,
                                  const OutputEpilogue& epilogue = {});
// confusion (classes,classes)[label][argmax] += 1 per row (rows with a bad label are skipped).
void launch_count_predictions(const Context& c, int batch, int classes, const float* scores,
                              const std::uint8_t* labels, std::int64_t* confusion);

// ---- BF16 mode (bf16.cu; models/precision.h) -------------------------------------------------------
// bfloat16 tensors are held as their raw bits (std::uint16_t), which is what cuDNN's
// CUDNN_DATA_BFLOAT16 and cuBLAS's CUDA_R_16BF read and write.
// dst (n) = elementwise::bf16_bits(src (n)): round to nearest, ties to even (as __float2bfloat16_rn).
void launch_float_to_bf16(const Context& c, std::size_t n, const float* src, std::uint16_t* dst);
// dst (n) = the bfloat16 values src (n) as floats (exact).
void launch_bf16_to_float(const Context& c, std::size_t n, const std::uint16_t* src, float* dst);
// dst (n) = elementwise::round_to_bf16(src (n)), float to float; dst may alias src.
void launch_round_to_bf16(const Context& c, std::size_t n, const float* src, float* dst);
// How many of the 2^32 float bit patterns elementwise::bf16_bits and __float2bfloat16_rn round
// differently (waits for the stream).
std::uint64_t count_bf16_rounding_mismatches(const Context& c);

// ---- optimizer (adam.cu) ----------------------------------------------------------------------------
// One launch: params, grads, m, v (n each, contiguous) updated by elementwise::adam_update.
void launch_adam(const Context& c, std::size_t n, float* params, const float* grads, float* m,
                 float* v, const elementwise::AdamStep<float>& step);

}  // namespace fmnist::cuda
