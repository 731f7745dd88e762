// CudaOps (see cuda_ops.h): the host side of every GPU op. Each op checks its preconditions
// (models/op_checks.h, as the CPU reference does), then enqueues cuDNN, cuBLAS or kernels.h work
// on the context's stream. Shapes as in models/ops.h.
#include "cuda/cuda_ops.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cuda/backend.h"
#include "cuda/check.h"
#include "cuda/device_gate.h"
#include "cuda/dense.h"
#include "cuda/kernels.h"
#include "cuda/linear_split.h"
#include "models/op_checks.h"

namespace fmnist::cuda {
namespace {

using namespace op_checks;  // fail, require, check_* (models/op_checks.h)

// The limit cuDNN adds to a convolution's checks: 32-bit element counts.
void check_cudnn_counts(const char* op, const ConvGeometry& g) {
  if (g.in_count() > static_cast<std::size_t>(INT_MAX) ||
      g.out_count() > static_cast<std::size_t>(INT_MAX) ||
      g.weight_count() > static_cast<std::size_t>(INT_MAX))
    fail(op, "tensor too large for cuDNN's 32-bit element counts");
}

// l1_loss_relu and mse_loss_relu (op): the loss kernel also writes the ReLU's gradient, one launch
// for the two ops.
void point_loss_relu(const Context& c, const char* op, PointLoss kind, std::size_t n, const float* pred,
                     const float* target, float* dpred, float* dpred_relu, float* loss, double* loss_sum) {
  check_point_loss(op, n, pred, target, loss);
  require(op, "dpred", dpred);
  require(op, "dpred_relu", dpred_relu);
  launch_point_loss(c, kind, n, pred, target, dpred, loss, loss_sum, dpred_relu);
}

}  // namespace

CudaOps::CudaOps(const CudaOptions& options) : context_(options), plans_(context_) {}

std::string CudaOps::name() const {
  const Precision p = precision();
  return "cuda:" + std::string(context_.properties().name) +
         (p == Precision::TF32 ? " (TF32)" : p == Precision::BF16 ? " (BF16)" : "");
}

std::string CudaOps::software() const { return cuda_runtime_summary(); }

Precision CudaOps::precision() const {
  const CudaOptions& o = context_.options();
  return o.bf16 ? Precision::BF16 : o.allow_tf32 ? Precision::TF32 : Precision::FP32;
}

// ---- memory -------------------------------------------------------------------------------------

void* CudaOps::allocate(std::size_t bytes) {
  const std::size_t rounded = std::max<std::size_t>(256, (bytes + 255) / 256 * 256);
  void* ptr = nullptr;
  const cudaError_t status = cudaMalloc(&ptr, rounded);  // no device-wide sync: no gate (device_gate.h)
  if (status == cudaErrorMemoryAllocation) {
    // Not a sticky error: cleared here, the backend and everything allocated so far stay usable.
    (void)cudaGetLastError();
    std::size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) (void)cudaGetLastError();
    throw std::runtime_error("out of GPU memory: cannot allocate " + std::to_string(rounded >> 20) +
                             " MiB on CUDA device " + std::to_string(context_.device()) + " (" +
                             context_.properties().name + "), which has " +
                             std::to_string(free_bytes >> 20) + " MiB free of " +
                             std::to_string(total_bytes >> 20) + " MiB");
  }
  if (status != cudaSuccess) throw_cuda(status, "cudaMalloc(&ptr, rounded)", __FILE__, __LINE__);
  try {
    CUDA_CHECK(cudaMemsetAsync(ptr, 0, rounded, main_lane().stream()));
  } catch (...) {
    DeviceWideSync sync;
    CUDA_LOG(cudaFree(ptr));
    throw;
  }
  return ptr;
}

void CudaOps::deallocate(void* ptr) noexcept {
  if (ptr == nullptr) return;
  // Work still queued on either lane may use the buffer; freeing happens at teardown only.
  DeviceWideSync sync;
  context_.wait_for_lanes();
  CUDA_LOG(cudaFree(ptr));
}

void CudaOps::copy_to_device(void* dst, const void* host_src, std::size_t bytes) {
  if (bytes == 0) return;
  require("copy_to_device", "dst", dst);
  require("copy_to_device", "host_src", host_src);
  CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, main_lane().stream()));
}

void CudaOps::copy_to_host(void* host_dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  require("copy_to_host", "host_dst", host_dst);
  require("copy_to_host", "src", src);
  CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, main_lane().stream()));
  CUDA_CHECK(cudaStreamSynchronize(context_.main_stream()));
}

void CudaOps::copy(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0 || dst == src) return;
  require("copy", "dst", dst);
  require("copy", "src", src);
  const auto d = reinterpret_cast<std::uintptr_t>(dst), s = reinterpret_cast<std::uintptr_t>(src);
  if (d < s + bytes && s < d + bytes) fail("copy", "source and destination overlap");
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, main_lane().stream()));
}

void CudaOps::fill(float* dst, float value, std::size_t n) {
  if (n == 0) return;
  require("fill", "dst", dst);
  launch_fill(main_lane(), n, value, dst);
}

void CudaOps::synchronize() { CUDA_CHECK(cudaStreamSynchronize(main_lane().stream())); }

// x (n) = pixels (n) / 255
void CudaOps::images_to_float(std::size_t n, const std::uint8_t* pixels, float* x) {
  check_images_to_float("images_to_float", n, pixels, x);
  launch_images_to_float(main_lane(), n, pixels, x);
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

// Conv2d and ConvTranspose2d alike (the plan knows which g is): y = the plan's forward + b, with
// y_relu, y_relu = ReLU(y), and with pool, its max pooling of y_relu (ConvPlan::forward fuses them).
void CudaOps::conv_forward(const char* op, bool transposed, const ConvGeometry& g, const float* x,
                           const float* w, const float* b, float* y, float* y_relu, const PoolOutput* pool,
                           OutputEpilogue* deferred) {
  check_conv_forward(op, g, transposed, x, w, y);
  check_cudnn_counts(op, g);
  if (y_relu != nullptr) check_activation_forward(op, g.out_count(), y, y_relu);
  if (pool != nullptr) {
    check_maxpool_forward(op, pool->geometry, y_relu, pool->pooled, pool->argmax);
    check_pool_of_conv(op, g, pool->geometry);
  }
  context_.join_side_lane();  // as main_lane(): the plan's forward and its epilogue run on the main lane
  plan(g).forward(x, w, b, y, y_relu, pool, deferred);
}

// db = the sums of dy's planes (in the backward-filter's kernel where the plan fuses them); dw and
// dx from the plan's backward passes. db and dw go to the side lane when there is one (Context,
// options().backward_streams == 2), dx stays on the main one.
void CudaOps::conv_backward(const char* op, bool transposed, const ConvGeometry& g,
                            const float* x, const float* w, const float* dy, float* dx, float* dw,
                            float* db, float* dx_relu, const PoolGradient* pool) {
  check_conv_backward(op, g, transposed, x, w, dy, dx, dw);
  check_cudnn_counts(op, g);
  if (dx_relu != nullptr && dx == nullptr) fail(op, "the ReLU's gradient needs dx");
  if (pool != nullptr) {
    require(op, "dx", dx);
    check_maxpool_backward(op, pool->geometry, dx, pool->argmax);
    check_conv_of_pool(op, g, pool->geometry);
    require(op, "pool_x", pool->relu_y);
    require(op, "pool_dx", pool->dx);
    require(op, "pool_dx_relu", pool->dx_relu);
  }
  // Planned first, on the main lane (a new geometry allocates and waits).
  ConvPlan* p = dx != nullptr || dw != nullptr ? &plan(g) : nullptr;
  {
    SideLane parameter_gradients(context_);  // beside the input gradient, with two backward streams
    // On the direct backward-filter db comes from the same kernel as dw (ConvPlan::fuses_bias_grad).
    const bool fused_db = db != nullptr && dw != nullptr && p->fuses_bias_grad();
    if (db != nullptr && !fused_db)
      launch_channel_bias_grad(context_, g.batch, g.out_channels,
                               static_cast<std::size_t>(g.out_h()) * g.out_w(), dy, db);
    if (dw != nullptr) p->backward_filter(x, dy, dw, fused_db ? db : nullptr);
  }
  if (pool != nullptr) {
    p->backward_data_maxpool_relu(w, dy, dx, *pool);
    return;
  }
  // x is the output of the ReLU before the layer: its mask for dx_relu.
  if (dx != nullptr) p->backward_data(w, dy, dx, dx_relu != nullptr ? x : nullptr, dx_relu);
}

// x (B,Cin,H,W), w (Cout,Cin,k,k), b (Cout) or null -> y (B,Cout,Ho,Wo)
void CudaOps::conv2d_forward(const ConvGeometry& g, const float* x, const float* w, const float* b,
                             float* y) {
  conv_forward("conv2d_forward", false, g, x, w, b, y);
}

// dy (B,Cout,Ho,Wo) -> dx (B,Cin,H,W), dw (Cout,Cin,k,k), db (Cout); null outputs skipped.
void CudaOps::conv2d_backward(const ConvGeometry& g, const float* x, const float* w,
                              const float* dy, float* dx, float* dw, float* db) {
  conv_backward("conv2d_backward", false, g, x, w, dy, dx, dw, db);
}

void CudaOps::conv2d_forward_relu(const ConvGeometry& g, const float* x, const float* w, const float* b,
                                  float* y, float* y_relu) {
  conv_forward("conv2d_forward_relu", false, g, x, w, b, y, y_relu);
}

// conv2d_forward_relu, then (pooled, argmax) = maxpool2d_forward(p, y_relu): after cuDNN's forward,
// the bias, the ReLU and the pooling in one kernel (ConvPlan::forward).
void CudaOps::conv2d_forward_relu_maxpool(const ConvGeometry& g, const PoolGeometry& p, const float* x,
                                          const float* w, const float* b, float* y, float* y_relu, float* pooled,
                                          std::int32_t* argmax) {
  require("conv2d_forward_relu_maxpool", "y_relu", y_relu);
  const PoolOutput pool{p, pooled, argmax};
  conv_forward("conv2d_forward_relu_maxpool", false, g, x, w, b, y, y_relu, &pool);
}

void CudaOps::conv2d_backward_relu(const ConvGeometry& g, const float* x, const float* w, const float* dy,
                                   float* dx, float* dw, float* db, float* dx_relu) {
  conv_backward("conv2d_backward_relu", false, g, x, w, dy, dx, dw, db, dx_relu);
}

// x (B,Cin,H,W), w (Cin,Cout,k,k), b (Cout) or null -> y (B,Cout,Ho,Wo)
void CudaOps::conv_transpose2d_forward(const ConvGeometry& g, const float* x, const float* w,
                                       const float* b, float* y) {
  conv_forward("conv_transpose2d_forward", true, g, x, w, b, y);
}

void CudaOps::conv_transpose2d_forward_relu(const ConvGeometry& g, const float* x, const float* w,
                                            const float* b, float* y, float* y_relu) {
  conv_forward("conv_transpose2d_forward_relu", true, g, x, w, b, y, y_relu);
}

// dy (B,Cout,Ho,Wo) -> dx (B,Cin,H,W), dw (Cin,Cout,k,k), db (Cout); null outputs skipped.
void CudaOps::conv_transpose2d_backward(const ConvGeometry& g, const float* x, const float* w,
                                        const float* dy, float* dx, float* dw, float* db) {
  conv_backward("conv_transpose2d_backward", true, g, x, w, dy, dx, dw, db);
}

void CudaOps::conv_transpose2d_backward_relu(const ConvGeometry& g, const float* x, const float* w,
                                             const float* dy, float* dx, float* dw, float* db, float* dx_relu) {
  conv_backward("conv_transpose2d_backward_relu", true, g, x, w, dy, dx, dw, db, dx_relu);
}

// ---- max pooling ---------------------------------------------------------------------------------

// x (B,C,H,W) -> y (B,C,Ho,Wo), argmax (B,C,Ho,Wo)
void CudaOps::maxpool2d_forward(const PoolGeometry& g, const float* x, float* y,
                                std::int32_t* argmax) {
  check_maxpool_forward("maxpool2d_forward", g, x, y, argmax);
  launch_maxpool_forward(main_lane(), g, x, y, argmax);
}

// dy (B,C,Ho,Wo), argmax -> dx (B,C,H,W)
void CudaOps::maxpool2d_backward(const PoolGeometry& g, const float* dy,
                                 const std::int32_t* argmax, float* dx) {
  check_maxpool_backward("maxpool2d_backward", g, dy, argmax);
  if (dx == nullptr) return;
  launch_maxpool_backward(context_, g, dy, argmax, dx);
}

// The same, and dx_relu = relu_backward(x, dx) in the same kernel (x: the pool's input).
void CudaOps::maxpool2d_backward_relu(const PoolGeometry& g, const float* x, const float* dy,
                                      const std::int32_t* argmax, float* dx, float* dx_relu) {
  const char* op = "maxpool2d_backward_relu";
  check_maxpool_backward(op, g, dy, argmax);
  require(op, "x", x);
  require(op, "dx", dx);
  require(op, "dx_relu", dx_relu);
  launch_maxpool_backward(context_, g, dy, argmax, dx, x, dx_relu);
}

// conv2d_backward, then maxpool2d_backward_relu of its dx (ConvPlan::backward_data_maxpool_relu:
// one kernel on the direct backward-data).
void CudaOps::conv2d_backward_maxpool_relu(const ConvGeometry& g, const PoolGeometry& p, const float* x,
                                           const float* w, const float* dy, float* dx, float* dw, float* db,
                                           const float* pool_x, const std::int32_t* argmax, float* pool_dx,
                                           float* pool_dx_relu) {
  const PoolGradient pool{p, argmax, pool_x, pool_dx, pool_dx_relu};
  conv_backward("conv2d_backward_maxpool_relu", false, g, x, w, dy, dx, dw, db, nullptr, &pool);
}

// ---- Linear --------------------------------------------------------------------------------------

// y (B,out) = x (B,in) w^T (w is (out,in)) + b (out); with y_act, y_act = act(y), ReLU or Sigmoid
// (the bias then added by the same kernel as the activation). In FP32 mode with options().direct_linear_forward, all of
// it in fmnist's split-K kernel (its slices' sums in the lane's workspace), else cuBLAS's product
// and a bias kernel.
void CudaOps::linear_forward_impl(const char* op, const LinearGeometry& g, const float* x, const float* w,
                                  const float* b, float* y, float* y_act, elementwise::Activation act,
                                  OutputEpilogue* deferred) {
  check_linear_forward(op, g, x, w, y);
  if (y_act != nullptr) check_activation_forward(op, static_cast<std::size_t>(g.batch) * g.out_features, y, y_act);
  Context& context = main_lane();
  if (splits_linear(context.options().direct_linear_forward, g)) {
    launch_linear_split_forward(context, g, x, w, b, y, y_act, split_workspace(g, LinearPass::Forward), act);
    return;
  }
  gemm_linear_forward(context, g, x, w, y);
  if (deferred != nullptr)
    *deferred = OutputEpilogue{y, b, y_act, g.out_features, 1};
  else if (b != nullptr || y_act != nullptr)
    launch_add_channel_bias(context, g.batch, g.out_features, 1, b, y, y_act, act);
}

void CudaOps::linear_forward(const LinearGeometry& g, const float* x, const float* w, const float* b, float* y) {
  linear_forward_impl("linear_forward", g, x, w, b, y, nullptr, elementwise::Activation::ReLU);
}

void CudaOps::linear_forward_relu(const LinearGeometry& g, const float* x, const float* w, const float* b,
                                  float* y, float* y_relu) {
  linear_forward_impl("linear_forward_relu", g, x, w, b, y, y_relu, elementwise::Activation::ReLU);
}

void CudaOps::linear_forward_sigmoid(const LinearGeometry& g, const float* x, const float* w, const float* b,
                                     float* y, float* y_sigmoid) {
  require("linear_forward_sigmoid", "y_sigmoid", y_sigmoid);
  linear_forward_impl("linear_forward_sigmoid", g, x, w, b, y, y_sigmoid, elementwise::Activation::Sigmoid);
}

// dx (B,in) = dy w;  dw (out,in) = dy^T x;  db (out) = column sums of dy (in double)
void CudaOps::linear_backward(const LinearGeometry& g, const float* x, const float* w,
                              const float* dy, float* dx, float* dw, float* db) {
  check_linear_backward("linear_backward", g, x, w, dy, dx, dw);
  linear_backward_passes(g, x, w, dy, dx, dw, db);
}

// Whether the current mode takes fmnist's split-K kernel for a Linear product that `asked` for it:
// FP32 only, and a shape the kernel handles.
bool CudaOps::splits_linear(bool asked, const LinearGeometry& g) const {
  const CudaOptions& o = context_.options();
  return asked && !o.bf16 && !o.allow_tf32 && linear_split_kernel_supported(g);
}

// The current lane's workspace, large enough for the slices' sums of pass `pass` of g (grown only
// at a shape's first, un-captured step: Context::reserve_workspace).
void* CudaOps::split_workspace(const LinearGeometry& g, LinearPass pass) {
  context_.reserve_workspace(linear_split_workspace_bytes(g, pass));
  return context_.workspace();
}

// dw (out,in) = dy^T x on the current lane: fmnist's split-K kernel with
// options().direct_linear_weight_grad, else cuBLAS's.
void CudaOps::linear_weight_grad(const LinearGeometry& g, const float* x, const float* dy, float* dw) {
  if (splits_linear(context_.options().direct_linear_weight_grad, g))
    launch_linear_split_weight_grad(context_, g, x, dy, dw, split_workspace(g, LinearPass::WeightGrad));
  else
    gemm_linear_backward_weight(context_, g, x, dy, dw);
}

// The passes of linear_backward, checked by the caller: dw and db (null: skipped) on the side lane
// when there is one, dx on the main lane (by fmnist's split-K kernel in FP32 mode with
// options().direct_linear_backward_data, else cuBLAS's).
void CudaOps::linear_backward_passes(const LinearGeometry& g, const float* x, const float* w, const float* dy,
                                     float* dx, float* dw, float* db) {
  {
    SideLane parameter_gradients(context_);  // beside the input gradient, with two backward streams
    if (dw != nullptr) linear_weight_grad(g, x, dy, dw);
    if (db != nullptr) launch_channel_bias_grad(context_, g.batch, g.out_features, 1, dy, db);
  }
  if (dx == nullptr) return;
  if (splits_linear(context_.options().direct_linear_backward_data, g))
    launch_linear_split_backward_data(context_, g, w, dy, dx, split_workspace(g, LinearPass::BackwardData));
  else
    gemm_linear_backward_data(context_, g, w, dy, dx);
}

// dy = relu_backward(y_relu, dy_relu), then linear_backward: the mask is applied by the kernel that
// sums db, on the main lane before dw's and dx's products read dy.
void CudaOps::relu_linear_backward(const LinearGeometry& g, const float* x, const float* w, const float* y_relu,
                                   const float* dy_relu, float* dy, float* dx, float* dw, float* db) {
  const char* op = "relu_linear_backward";
  check_linear_backward(op, g, x, w, dy, dx, dw);
  check_activation_backward(op, static_cast<std::size_t>(g.batch) * g.out_features, y_relu, dy_relu, dy);
  if (db != nullptr)
    launch_linear_bias_grad_through_relu(context_, g.batch, g.out_features, y_relu, dy_relu, dy, db);
  else
    launch_relu_backward(context_, static_cast<std::size_t>(g.batch) * g.out_features, y_relu, dy_relu, dy);
  linear_backward_passes(g, x, w, dy, dx, dw, nullptr);  // db is done
}

// ---- element-wise ---------------------------------------------------------------------------------

void CudaOps::relu_forward(std::size_t n, const float* x, float* y) {
  check_activation_forward("relu_forward", n, x, y);
  launch_relu_forward(main_lane(), n, x, y);
}

void CudaOps::relu_backward(std::size_t n, const float* y, const float* dy, float* dx) {
  check_activation_backward("relu_backward", n, y, dy, dx);
  launch_relu_backward(context_, n, y, dy, dx);
}

void CudaOps::sigmoid_forward(std::size_t n, const float* x, float* y) {
  check_activation_forward("sigmoid_forward", n, x, y);
  launch_sigmoid_forward(main_lane(), n, x, y);
}

void CudaOps::sigmoid_backward(std::size_t n, const float* y, const float* dy, float* dx) {
  check_activation_backward("sigmoid_backward", n, y, dy, dx);
  launch_sigmoid_backward(context_, n, y, dy, dx);
}

void CudaOps::dropout_forward(std::size_t n, float p, std::uint64_t seed, std::uint64_t step,
                              std::uint32_t layer, const float* x, float* y) {
  check_dropout_forward("dropout_forward", n, p, x, y);
  launch_dropout(main_lane(), n, p, seed, step, layer, x, y);
}

void CudaOps::dropout_backward(std::size_t n, float p, std::uint64_t seed, std::uint64_t step,
                               std::uint32_t layer, const float* dy, float* dx) {
  check_dropout_backward("dropout_backward", n, p, dy, dx);
  launch_dropout(context_, n, p, seed, step, layer, dy, dx);
}

// ---- losses and metrics ----------------------------------------------------------------------

void CudaOps::l1_loss(std::size_t n, const float* pred, const float* target, float* dpred,
                      float* loss, double* loss_sum) {
  check_point_loss("l1_loss", n, pred, target, loss);
  launch_point_loss(main_lane(), PointLoss::L1, n, pred, target, dpred, loss, loss_sum);
}

void CudaOps::mse_loss(std::size_t n, const float* pred, const float* target, float* dpred,
                       float* loss, double* loss_sum) {
  check_point_loss("mse_loss", n, pred, target, loss);
  launch_point_loss(main_lane(), PointLoss::MSE, n, pred, target, dpred, loss, loss_sum);
}

void CudaOps::l1_loss_relu(std::size_t n, const float* pred, const float* target, float* dpred,
                           float* dpred_relu, float* loss, double* loss_sum) {
  point_loss_relu(main_lane(), "l1_loss_relu", PointLoss::L1, n, pred, target, dpred, dpred_relu, loss, loss_sum);
}

void CudaOps::mse_loss_relu(std::size_t n, const float* pred, const float* target, float* dpred,
                            float* dpred_relu, float* loss, double* loss_sum) {
  point_loss_relu(main_lane(), "mse_loss_relu", PointLoss::MSE, n, pred, target, dpred, dpred_relu, loss,
                  loss_sum);
}

// scores (B,classes), labels (B) -> loss[0], dscores (B,classes). Labels stay on the device, so a
// label >= classes cannot be reported here: it makes the loss NaN (the CPU reference throws).
void CudaOps::softmax_cross_entropy(int batch, int classes, const float* scores,
                                    const std::uint8_t* labels, float* dscores, float* loss,
                                    double* loss_sum) {
  check_softmax_cross_entropy("softmax_cross_entropy", batch, classes, scores, labels, loss);
  launch_softmax_cross_entropy(main_lane(), batch, classes, scores, labels, dscores, loss, loss_sum);
}

// The same, and dscores_sigmoid = sigmoid_backward(scores, dscores) in the same kernel.
void CudaOps::softmax_cross_entropy_sigmoid(int batch, int classes, const float* scores,
                                            const std::uint8_t* labels, float* dscores, float* dscores_sigmoid,
                                            float* loss, double* loss_sum) {
  const char* op = "softmax_cross_entropy_sigmoid";
  check_softmax_cross_entropy(op, batch, classes, scores, labels, loss);
  require(op, "dscores", dscores);
  require(op, "dscores_sigmoid", dscores_sigmoid);
  launch_softmax_cross_entropy(main_lane(), batch, classes, scores, labels, dscores, loss, loss_sum,
                               dscores_sigmoid);
}

// y = conv^T(x) + b, y_relu = ReLU(y), then the point loss of y_relu with its gradients: after
// cuDNN's product, the bias and the ReLU in the loss's kernel (one launch fewer, and y read once);
// fmnist's direct kernels take them with the product.
void CudaOps::conv_transpose2d_forward_relu_loss(const ConvGeometry& g, const float* x, const float* w,
                                                 const float* b, float* y, float* y_relu, PointLoss kind,
                                                 const float* target, float* dpred, float* dpred_relu, float* loss,
                                                 double* loss_sum) {
  const char* op = "conv_transpose2d_forward_relu_loss";
  require(op, "y_relu", y_relu);
  check_point_loss(op, g.out_count(), y_relu, target, loss);
  require(op, "dpred", dpred);
  require(op, "dpred_relu", dpred_relu);
  OutputEpilogue epilogue;
  conv_forward(op, true, g, x, w, b, y, y_relu, nullptr, &epilogue);
  launch_point_loss(main_lane(), kind, g.out_count(), y_relu, target, dpred, loss, loss_sum, dpred_relu, epilogue);
}

// y = x w^T + b, y_sigmoid = Sigmoid(y), then the softmax cross-entropy of y_sigmoid with its
// gradients: after cuBLAS's product, the bias and the Sigmoid in the loss's kernel; fmnist's
// split-K forward takes them with the product.
void CudaOps::linear_forward_sigmoid_cross_entropy(const LinearGeometry& g, const float* x, const float* w,
                                                   const float* b, float* y, float* y_sigmoid,
                                                   const std::uint8_t* labels, float* dscores,
                                                   float* dscores_sigmoid, float* loss, double* loss_sum) {
  const char* op = "linear_forward_sigmoid_cross_entropy";
  require(op, "y_sigmoid", y_sigmoid);
  check_softmax_cross_entropy(op, g.batch, g.out_features, y_sigmoid, labels, loss);
  require(op, "dscores", dscores);
  require(op, "dscores_sigmoid", dscores_sigmoid);
  OutputEpilogue epilogue;
  linear_forward_impl(op, g, x, w, b, y, y_sigmoid, elementwise::Activation::Sigmoid, &epilogue);
  launch_softmax_cross_entropy(main_lane(), g.batch, g.out_features, y_sigmoid, labels, dscores, loss, loss_sum,
                               dscores_sigmoid, epilogue);
}

// confusion (classes,classes)[label][argmax(scores)] += 1; rows with a label >= classes are skipped.
void CudaOps::count_predictions(int batch, int classes, const float* scores,
                                const std::uint8_t* labels, std::int64_t* confusion) {
  check_count_predictions("count_predictions", batch, classes, scores, labels, confusion);
  launch_count_predictions(main_lane(), batch, classes, scores, labels, confusion);
}

// ---- optimizer -----------------------------------------------------------------------------------

void CudaOps::adam_update(std::size_t n, float* params, const float* grads, float* m, float* v,
                          const elementwise::AdamStep<float>& step) {
  check_adam_update("adam_update", n, params, grads, m, v);
  launch_adam(main_lane(), n, params, grads, m, v, step);
}

}  // namespace fmnist::cuda
