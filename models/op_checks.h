// The preconditions of the ops of ops.h, defined once for every backend (the CPU reference and
// CUDA check them on the host before any work): each throws std::invalid_argument "<op>: <what>".
// A backend adds only its own limits (cuDNN's or BLAS's 32-bit sizes) after these.
#pragma once

#include <climits>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "ops.h"

namespace fmnist::op_checks {

// ---- building blocks ------------------------------------------------------------------------------

[[noreturn]] inline void fail(const char* op, const std::string& what) {
  throw std::invalid_argument(std::string(op) + ": " + what);
}
inline void require(const char* op, const char* name, const void* pointer) {
  if (pointer == nullptr) fail(op, std::string(name) + " is null");
}
template <class I> void require_positive(const char* op, const char* field, I value) {
  if (value <= 0)
    fail(op, std::string(field) + " must be positive (got " + std::to_string(value) + ")");
}

// ---- geometries -------------------------------------------------------------------------------------

// conv2d_* (transposed false) and conv_transpose2d_* (transposed true).
inline void check_conv(const char* op, const ConvGeometry& g, bool transposed) {
  if (g.transposed != transposed)
    fail(op, transposed ? "geometry is not marked transposed" : "geometry is marked transposed");
  require_positive(op, "batch", g.batch);
  require_positive(op, "in_channels", g.in_channels);
  require_positive(op, "in_h", g.in_h);
  require_positive(op, "in_w", g.in_w);
  require_positive(op, "out_channels", g.out_channels);
  require_positive(op, "kernel", g.kernel);
  require_positive(op, "stride", g.stride);
  if (g.padding < 0) fail(op, "padding is negative");
  if (g.output_padding < 0) fail(op, "output_padding is negative");
  if (!transposed && g.output_padding != 0) fail(op, "output_padding applies to transposed only");
  if (transposed && g.output_padding >= g.stride) fail(op, "output_padding must be below stride");
  if (!transposed && (g.in_h + 2 * g.padding < g.kernel || g.in_w + 2 * g.padding < g.kernel))
    fail(op, "kernel is larger than the padded input");
  if (g.out_h() <= 0 || g.out_w() <= 0) fail(op, "output size is not positive");
}

// maxpool2d_*: argmax holds an int32 index within an (H,W) plane.
inline void check_pool(const char* op, const PoolGeometry& g) {
  require_positive(op, "batch", g.batch);
  require_positive(op, "channels", g.channels);
  require_positive(op, "in_h", g.in_h);
  require_positive(op, "in_w", g.in_w);
  require_positive(op, "kernel", g.kernel);
  require_positive(op, "stride", g.stride);
  if (g.in_h < g.kernel || g.in_w < g.kernel) fail(op, "kernel is larger than the input");
  if (static_cast<long long>(g.in_h) * g.in_w > INT_MAX) fail(op, "plane too large for int32 argmax");
}

inline void check_linear(const char* op, const LinearGeometry& g) {
  require_positive(op, "batch", g.batch);
  require_positive(op, "in_features", g.in_features);
  require_positive(op, "out_features", g.out_features);
}

inline void check_dropout(const char* op, std::size_t n, float p) {
  require_positive(op, "n", n);
  if (!(p >= 0.0f && p < 1.0f)) fail(op, "p must be in [0, 1) (got " + std::to_string(p) + ")");
}

// ---- layers: the geometry and the operands --------------------------------------------------------

// A layer's forward needs x, w and y (the bias b may be null).
inline void check_layer_operands(const char* op, const void* x, const void* w, const void* y) {
  require(op, "x", x);
  require(op, "w", w);
  require(op, "y", y);
}
// A layer's backward needs dy; x when dw is wanted, w when dx is wanted (null outputs are skipped).
inline void check_layer_gradient_operands(const char* op, const void* x, const void* w,
                                          const void* dy, const void* dx, const void* dw) {
  require(op, "dy", dy);
  if (dw != nullptr) require(op, "x (needed for dw)", x);
  if (dx != nullptr) require(op, "w (needed for dx)", w);
}

inline void check_conv_forward(const char* op, const ConvGeometry& g, bool transposed,
                               const void* x, const void* w, const void* y) {
  check_conv(op, g, transposed);
  check_layer_operands(op, x, w, y);
}
inline void check_conv_backward(const char* op, const ConvGeometry& g, bool transposed,
                                const void* x, const void* w, const void* dy, const void* dx,
                                const void* dw) {
  check_conv(op, g, transposed);
  check_layer_gradient_operands(op, x, w, dy, dx, dw);
}

inline void check_linear_forward(const char* op, const LinearGeometry& g, const void* x,
                                 const void* w, const void* y) {
  check_linear(op, g);
  check_layer_operands(op, x, w, y);
}
inline void check_linear_backward(const char* op, const LinearGeometry& g, const void* x,
                                  const void* w, const void* dy, const void* dx, const void* dw) {
  check_linear(op, g);
  check_layer_gradient_operands(op, x, w, dy, dx, dw);
}

inline void check_maxpool_forward(const char* op, const PoolGeometry& g, const void* x,
                                  const void* y, const void* argmax) {
  check_pool(op, g);
  require(op, "x", x);
  require(op, "y", y);
  require(op, "argmax", argmax);
}
// conv2d_forward_relu_maxpool: the pool's input is the convolution's output.
inline void check_pool_of_conv(const char* op, const ConvGeometry& g, const PoolGeometry& p) {
  if (p.batch != g.batch || p.channels != g.out_channels || p.in_h != g.out_h() || p.in_w != g.out_w())
    fail(op, "the pool's input (batch " + std::to_string(p.batch) + ", " + std::to_string(p.channels) + "x" +
                 std::to_string(p.in_h) + "x" + std::to_string(p.in_w) + ") is not the convolution's output (batch " +
                 std::to_string(g.batch) + ", " + std::to_string(g.out_channels) + "x" + std::to_string(g.out_h()) +
                 "x" + std::to_string(g.out_w()) + ")");
}
// conv2d_backward_maxpool_relu: the pool's output is the convolution's input.
inline void check_conv_of_pool(const char* op, const ConvGeometry& g, const PoolGeometry& p) {
  if (p.batch != g.batch || p.channels != g.in_channels || p.out_h() != g.in_h || p.out_w() != g.in_w)
    fail(op, "the pool's output (batch " + std::to_string(p.batch) + ", " + std::to_string(p.channels) + "x" +
                 std::to_string(p.out_h()) + "x" + std::to_string(p.out_w()) +
                 ") is not the convolution's input (batch " + std::to_string(g.batch) + ", " +
                 std::to_string(g.in_channels) + "x" + std::to_string(g.in_h) + "x" + std::to_string(g.in_w) + ")");
}
// dx may be null (nothing to do).
inline void check_maxpool_backward(const char* op, const PoolGeometry& g, const void* dy,
                                   const void* argmax) {
  check_pool(op, g);
  require(op, "dy", dy);
  require(op, "argmax", argmax);
}

// ---- element-wise ops -------------------------------------------------------------------------------

inline void check_images_to_float(const char* op, std::size_t n, const void* pixels,
                                  const void* x) {
  require_positive(op, "n", n);
  require(op, "pixels", pixels);
  require(op, "x", x);
}

// relu_forward, sigmoid_forward: y = f(x).
inline void check_activation_forward(const char* op, std::size_t n, const void* x, const void* y) {
  require_positive(op, "n", n);
  require(op, "x", x);
  require(op, "y", y);
}
// relu_backward, sigmoid_backward: dx = f'(y) dy.
inline void check_activation_backward(const char* op, std::size_t n, const void* y,
                                      const void* dy, const void* dx) {
  require_positive(op, "n", n);
  require(op, "y", y);
  require(op, "dy", dy);
  require(op, "dx", dx);
}

inline void check_dropout_forward(const char* op, std::size_t n, float p, const void* x,
                                  const void* y) {
  check_dropout(op, n, p);
  require(op, "x", x);
  require(op, "y", y);
}
inline void check_dropout_backward(const char* op, std::size_t n, float p, const void* dy,
                                   const void* dx) {
  check_dropout(op, n, p);
  require(op, "dy", dy);
  require(op, "dx", dx);
}

// ---- losses, metrics, optimizer ---------------------------------------------------------------------

// l1_loss, mse_loss (dpred may be null).
inline void check_point_loss(const char* op, std::size_t n, const void* pred, const void* target,
                             const void* loss) {
  require_positive(op, "n", n);
  require(op, "pred", pred);
  require(op, "target", target);
  require(op, "loss", loss);
}

// scores (batch,classes) and their labels (batch), as softmax_cross_entropy and count_predictions
// read them.
inline void check_scores(const char* op, int batch, int classes, const void* scores,
                         const void* labels) {
  require_positive(op, "batch", batch);
  require_positive(op, "classes", classes);
  require(op, "scores", scores);
  require(op, "labels", labels);
}
// dscores may be null.
inline void check_softmax_cross_entropy(const char* op, int batch, int classes, const void* scores,
                                        const void* labels, const void* loss) {
  check_scores(op, batch, classes, scores, labels);
  require(op, "loss", loss);
}
inline void check_count_predictions(const char* op, int batch, int classes, const void* scores,
                                    const void* labels, const void* confusion) {
  check_scores(op, batch, classes, scores, labels);
  require(op, "confusion", confusion);
}

inline void check_adam_update(const char* op, std::size_t n, const void* params, const void* grads,
                              const void* m, const void* v) {
  require_positive(op, "n", n);
  require(op, "params", params);
  require(op, "grads", grads);
  require(op, "m", m);
  require(op, "v", v);
}

}  // namespace fmnist::op_checks
