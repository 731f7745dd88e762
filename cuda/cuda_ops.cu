// CudaOps (see cuda_ops.h): the host side of every GPU op. Each op checks its preconditions the
// way the CPU reference does (same messages: "<op>: <what>"), then enqueues cuDNN, cuBLAS or
// kernels.h work on the context's stream. Shapes as in models/ops.h.
#include "cuda/cuda_ops.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cuda/check.h"
#include "cuda/dense.h"
#include "cuda/kernels.h"

namespace fmnist::cuda {
namespace {

[[noreturn]] void fail(const char* op, const std::string& what) {
  throw std::invalid_argument(std::string(op) + ": " + what);
}
template <class P> void require(const char* op, const char* name, P pointer) {
  if (pointer == nullptr) fail(op, std::string(name) + " is null");
}
template <class I> void require_positive(const char* op, const char* field, I value) {
  if (value <= 0)
    fail(op, std::string(field) + " must be positive (got " + std::to_string(value) + ")");
}

// As host/reference/conv.cpp checks, plus cuDNN's 32-bit element counts.
void check_conv(const char* op, const ConvGeometry& g, bool transposed) {
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
  if (g.in_count() > static_cast<std::size_t>(INT_MAX) ||
      g.out_count() > static_cast<std::size_t>(INT_MAX) ||
      g.weight_count() > static_cast<std::size_t>(INT_MAX))
    fail(op, "tensor too large for cuDNN's 32-bit element counts");
}

void check_pool(const char* op, const PoolGeometry& g) {
  require_positive(op, "batch", g.batch);
  require_positive(op, "channels", g.channels);
  require_positive(op, "in_h", g.in_h);
  require_positive(op, "in_w", g.in_w);
  require_positive(op, "kernel", g.kernel);
  require_positive(op, "stride", g.stride);
  if (g.in_h < g.kernel || g.in_w < g.kernel) fail(op, "kernel is larger than the input");
  if (static_cast<long long>(g.in_h) * g.in_w > INT_MAX) fail(op, "plane too large for int32 argmax");
}

void check_linear(const char* op, const LinearGeometry& g) {
  require_positive(op, "batch", g.batch);
  require_positive(op, "in_features", g.in_features);
  require_positive(op, "out_features", g.out_features);
}

void check_dropout(const char* op, std::size_t n, float p) {
  require_positive(op, "n", n);
  if (!(p >= 0.0f && p < 1.0f)) fail(op, "p must be in [0, 1) (got " + std::to_string(p) + ")");
}

}  // namespace

CudaOps::CudaOps(const CudaOptions& options) : context_(options), plans_(context_) {}

std::string CudaOps::name() const {
  return "cuda:" + std::string(context_.properties().name) + (context_.options().allow_tf32 ? " (TF32)" : "");
}

// ---- memory -------------------------------------------------------------------------------------

void* CudaOps::allocate(std::size_t bytes) {
  const std::size_t rounded = std::max<std::size_t>(256, (bytes + 255) / 256 * 256);
  void* ptr = nullptr;
  CUDA_CHECK(cudaMalloc(&ptr, rounded));
  try {
    CUDA_CHECK(cudaMemsetAsync(ptr, 0, rounded, context_.stream()));
  } catch (...) {
    CUDA_LOG(cudaFree(ptr));
    throw;
  }
  return ptr;
}

void CudaOps::deallocate(void* ptr) noexcept {
  if (ptr == nullptr) return;
  // Work still queued may use the buffer; freeing happens at teardown only.
  CUDA_LOG(cudaStreamSynchronize(context_.stream()));
  CUDA_LOG(cudaFree(ptr));
}

void CudaOps::copy_to_device(void* dst, const void* host_src, std::size_t bytes) {
  if (bytes == 0) return;
  require("copy_to_device", "dst", dst);
  require("copy_to_device", "host_src", host_src);
  CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, context_.stream()));
}

void CudaOps::copy_to_host(void* host_dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  require("copy_to_host", "host_dst", host_dst);
  require("copy_to_host", "src", src);
  CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, context_.stream()));
  CUDA_CHECK(cudaStreamSynchronize(context_.stream()));
}

void CudaOps::copy(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0 || dst == src) return;
  require("copy", "dst", dst);
  require("copy", "src", src);
  const auto d = reinterpret_cast<std::uintptr_t>(dst), s = reinterpret_cast<std::uintptr_t>(src);
  if (d < s + bytes && s < d + bytes) fail("copy", "source and destination overlap");
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, context_.stream()));
}

void CudaOps::fill(float* dst, float value, std::size_t n) {
  if (n == 0) return;
  require("fill", "dst", dst);
  launch_fill(context_, n, value, dst);
}

void CudaOps::synchronize() { CUDA_CHECK(cudaStreamSynchronize(context_.stream())); }

// x (n) = pixels (n) / 255
void CudaOps::images_to_float(std::size_t n, const std::uint8_t* pixels, float* x) {
  require_positive("images_to_float", "n", n);
  require("images_to_float", "pixels", pixels);
  require("images_to_float", "x", x);
  launch_images_to_float(context_, n, pixels, x);
}

// ---- convolutions ---------------------------------------------------------------------------------

// The geometry has been checked by the caller. Planning a new geometry allocates and waits, which
// a graph capture cannot hold: a captured step must have run once before (see graph.h).
ConvPlan& CudaOps::plan(const ConvGeometry& g) {
  if (capturing_ && !plans_.contains(g))
    throw std::logic_error("CUDA graph capture met a convolution geometry (batch " +
                           std::to_string(g.batch) + ") that has no plan yet: run the step once "
                           "un-captured first");
  return plans_.get(g);
}

// x (B,Cin,H,W), w (Cout,Cin,k,k), b (Cout) or null -> y (B,Cout,Ho,Wo)
void CudaOps::conv2d_forward(const ConvGeometry& g, const float* x, const float* w, const float* b,
                             float* y) {
  const char* op = "conv2d_forward";
  check_conv(op, g, false);
  require(op, "x", x);
  require(op, "w", w);
  require(op, "y", y);
  plan(g).forward(x, w, y);
  if (b != nullptr)
    launch_add_channel_bias(context_, g.batch, g.out_channels,
                            static_cast<std::size_t>(g.out_h()) * g.out_w(), b, y);
}

// dy (B,Cout,Ho,Wo) -> dx (B,Cin,H,W), dw (Cout,Cin,k,k), db (Cout); null outputs skipped.
void CudaOps::conv2d_backward(const ConvGeometry& g, const float* x, const float* w,
                              const float* dy, float* dx, float* dw, float* db) {
  const char* op = "conv2d_backward";
  check_conv(op, g, false);
  require(op, "dy", dy);
  if (dw != nullptr) require(op, "x (needed for dw)", x);
  if (dx != nullptr) require(op, "w (needed for dx)", w);
  if (db != nullptr)
    launch_channel_bias_grad(context_, g.batch, g.out_channels,
                             static_cast<std::size_t>(g.out_h()) * g.out_w(), dy, db);
  if (dx == nullptr && dw == nullptr) return;
  ConvPlan& p = plan(g);
  if (dw != nullptr) p.backward_filter(x, dy, dw);
  if (dx != nullptr) p.backward_data(w, dy, dx);
}

// x (B,Cin,H,W), w (Cin,Cout,k,k), b (Cout) or null -> y (B,Cout,Ho,Wo)
void CudaOps::conv_transpose2d_forward(const ConvGeometry& g, const float* x, const float* w,
                                       const float* b, float* y) {
  const char* op = "conv_transpose2d_forward";
  check_conv(op, g, true);
  require(op, "x", x);
  require(op, "w", w);
  require(op, "y", y);
  plan(g).forward(x, w, y);
  if (b != nullptr)
    launch_add_channel_bias(context_, g.batch, g.out_channels,
                            static_cast<std::size_t>(g.out_h()) * g.out_w(), b, y);
}

// dy (B,Cout,Ho,Wo) -> dx (B,Cin,H,W), dw (Cin,Cout,k,k), db (Cout); null outputs skipped.
void CudaOps::conv_transpose2d_backward(const ConvGeometry& g, const float* x, const float* w,
                                        const float* dy, float* dx, float* dw, float* db) {
  const char* op = "conv_transpose2d_backward";
  check_conv(op, g, true);
  require(op, "dy", dy);
  if (dw != nullptr) require(op, "x (needed for dw)", x);
  if (dx != nullptr) require(op, "w (needed for dx)", w);
  if (db != nullptr)
    launch_channel_bias_grad(context_, g.batch, g.out_channels,
                             static_cast<std::size_t>(g.out_h()) * g.out_w(), dy, db);
  if (dx == nullptr && dw == nullptr) return;
  ConvPlan& p = plan(g);
  if (dw != nullptr) p.backward_filter(x, dy, dw);
  if (dx != nullptr) p.backward_data(w, dy, dx);
}

// ---- max pooling ---------------------------------------------------------------------------------

// x (B,C,H,W) -> y (B,C,Ho,Wo), argmax (B,C,Ho,Wo)
void CudaOps::maxpool2d_forward(const PoolGeometry& g, const float* x, float* y,
                                std::int32_t* argmax) {
  const char* op = "maxpool2d_forward";
  check_pool(op, g);
  require(op, "x", x);
  require(op, "y", y);
  require(op, "argmax", argmax);
  launch_maxpool_forward(context_, g, x, y, argmax);
}

// dy (B,C,Ho,Wo), argmax -> dx (B,C,H,W)
void CudaOps::maxpool2d_backward(const PoolGeometry& g, const float* dy,
                                 const std::int32_t* argmax, float* dx) {
  const char* op = "maxpool2d_backward";
  check_pool(op, g);
  require(op, "dy", dy);
  require(op, "argmax", argmax);
  if (dx == nullptr) return;
  launch_maxpool_backward(context_, g, dy, argmax, dx);
}

// ---- Linear --------------------------------------------------------------------------------------

// y (B,out) = x (B,in) w^T (w is (out,in)) + b (out)
void CudaOps::linear_forward(const LinearGeometry& g, const float* x, const float* w,
                             const float* b, float* y) {
  const char* op = "linear_forward";
  check_linear(op, g);
  require(op, "x", x);
  require(op, "w", w);
  require(op, "y", y);
  gemm_linear_forward(context_, g, x, w, y);
  if (b != nullptr) launch_add_channel_bias(context_, g.batch, g.out_features, 1, b, y);
}

// dx (B,in) = dy w;  dw (out,in) = dy^T x;  db (out) = column sums of dy (in double)
void CudaOps::linear_backward(const LinearGeometry& g, const float* x, const float* w,
                              const float* dy, float* dx, float* dw, float* db) {
  const char* op = "linear_backward";
  check_linear(op, g);
  require(op, "dy", dy);
  if (dw != nullptr) require(op, "x (needed for dw)", x);
  if (dx != nullptr) require(op, "w (needed for dx)", w);
  if (dx != nullptr) gemm_linear_backward_data(context_, g, w, dy, dx);
  if (dw != nullptr) gemm_linear_backward_weight(context_, g, x, dy, dw);
  if (db != nullptr) launch_channel_bias_grad(context_, g.batch, g.out_features, 1, dy, db);
}

// ---- element-wise ---------------------------------------------------------------------------------

void CudaOps::relu_forward(std::size_t n, const float* x, float* y) {
  require_positive("relu_forward", "n", n);
  require("relu_forward", "x", x);
  require("relu_forward", "y", y);
  launch_relu_forward(context_, n, x, y);
}

void CudaOps::relu_backward(std::size_t n, const float* y, const float* dy, float* dx) {
  require_positive("relu_backward", "n", n);
  require("relu_backward", "y", y);
  require("relu_backward", "dy", dy);
  require("relu_backward", "dx", dx);
  launch_relu_backward(context_, n, y, dy, dx);
}

void CudaOps::sigmoid_forward(std::size_t n, const float* x, float* y) {
  require_positive("sigmoid_forward", "n", n);
  require("sigmoid_forward", "x", x);
  require("sigmoid_forward", "y", y);
  launch_sigmoid_forward(context_, n, x, y);
}

void CudaOps::sigmoid_backward(std::size_t n, const float* y, const float* dy, float* dx) {
  require_positive("sigmoid_backward", "n", n);
  require("sigmoid_backward", "y", y);
  require("sigmoid_backward", "dy", dy);
  require("sigmoid_backward", "dx", dx);
  launch_sigmoid_backward(context_, n, y, dy, dx);
}

void CudaOps::dropout_forward(std::size_t n, float p, std::uint64_t seed, std::uint64_t step,
                              std::uint32_t layer, const float* x, float* y) {
  check_dropout("dropout_forward", n, p);
  require("dropout_forward", "x", x);
  require("dropout_forward", "y", y);
  launch_dropout(context_, n, p, seed, step, layer, x, y);
}

void CudaOps::dropout_backward(std::size_t n, float p, std::uint64_t seed, std::uint64_t step,
                               std::uint32_t layer, const float* dy, float* dx) {
  check_dropout("dropout_backward", n, p);
  require("dropout_backward", "dy", dy);
  require("dropout_backward", "dx", dx);
  launch_dropout(context_, n, p, seed, step, layer, dy, dx);
}

// ---- losses and metrics ----------------------------------------------------------------------

void CudaOps::l1_loss(std::size_t n, const float* pred, const float* target, float* dpred,
                      float* loss, double* loss_sum) {
  const char* op = "l1_loss";
  require_positive(op, "n", n);
  require(op, "pred", pred);
  require(op, "target", target);
  require(op, "loss", loss);
  launch_point_loss(context_, PointLoss::L1, n, pred, target, dpred, loss, loss_sum);
}

void CudaOps::mse_loss(std::size_t n, const float* pred, const float* target, float* dpred,
                       float* loss, double* loss_sum) {
  const char* op = "mse_loss";
  require_positive(op, "n", n);
  require(op, "pred", pred);
  require(op, "target", target);
  require(op, "loss", loss);
  launch_point_loss(context_, PointLoss::MSE, n, pred, target, dpred, loss, loss_sum);
}

// scores (B,classes), labels (B) -> loss[0], dscores (B,classes). Labels stay on the device, so a
// label >= classes cannot be reported here: it makes the loss NaN (the CPU reference throws).
void CudaOps::softmax_cross_entropy(int batch, int classes, const float* scores,
                                    const std::uint8_t* labels, float* dscores, float* loss,
                                    double* loss_sum) {
  const char* op = "softmax_cross_entropy";
  require_positive(op, "batch", batch);
  require_positive(op, "classes", classes);
  require(op, "scores", scores);
  require(op, "labels", labels);
  require(op, "loss", loss);
  launch_softmax_cross_entropy(context_, batch, classes, scores, labels, dscores, loss, loss_sum);
}

// confusion (classes,classes)[label][argmax(scores)] += 1; rows with a label >= classes are skipped.
void CudaOps::count_predictions(int batch, int classes, const float* scores,
                                const std::uint8_t* labels, std::int64_t* confusion) {
  const char* op = "count_predictions";
  require_positive(op, "batch", batch);
  require_positive(op, "classes", classes);
  require(op, "scores", scores);
  require(op, "labels", labels);
  require(op, "confusion", confusion);
  launch_count_predictions(context_, batch, classes, scores, labels, confusion);
}

// ---- optimizer -----------------------------------------------------------------------------------

void CudaOps::adam_update(std::size_t n, float* params, const float* grads, float* m, float* v,
                          const elementwise::AdamStep<float>& step) {
  const char* op = "adam_update";
  require_positive(op, "n", n);
  require(op, "params", params);
  require(op, "grads", grads);
  require(op, "m", m);
  require(op, "v", v);
  launch_adam(context_, n, params, grads, m, v, step);
}

}  // namespace fmnist::cuda
