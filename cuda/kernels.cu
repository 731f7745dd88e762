// fmnist's own CUDA kernels (launchers declared in kernels.h): data scaling, biases, max pooling,
// activations, dropout, losses and metrics. Every per-element formula is a call into
// models/elementwise.h, shared with the CPU reference. Element-wise kernels use grid-stride loops
// whose results do not depend on the launch geometry; reductions run in double with a fixed shape
// that depends only on the problem size and no floating-point atomics, so every result is
// reproducible bit for bit. This file is compiled with --fmad=false (see cuda/CMakeLists.txt) so
// a*b+c rounds twice, as on the CPU.
#include "cuda/kernels.h"

#include <math_constants.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <stdexcept>
#include <string>

#include "cuda/check.h"
#include "cuda/grid_stride.cuh"
#include "cuda/launch.cuh"
#include "cuda/ordered_sum.cuh"
#include "models/conv_weight_grad.h"
#include "models/pool_tiles.h"

#ifndef FMNIST_CUDA_ARCHITECTURES
#define FMNIST_CUDA_ARCHITECTURES "unknown"
#endif

namespace fmnist::cuda {
namespace {

namespace ew = elementwise;

// ---- memory and data ------------------------------------------------------------------------------

// dst (n) = value
__global__ void fill_kernel(std::size_t n, float value, float* dst) {
  grid_dependency();
  for (std::size_t i = global_index(); i < n; i += global_stride()) dst[i] = value;
}

// x (n) = pixel_to_unit(pixels (n))
__global__ void images_to_float_kernel(std::size_t n, const std::uint8_t* pixels, float* x) {
  grid_dependency();
  for (std::size_t i = global_index(); i < n; i += global_stride())
    x[i] = ew::pixel_to_unit<float>(pixels[i]);
}

// ---- biases ----------------------------------------------------------------------------------------

// Element i of a layer's output: y[i] += *bias (when bias is non-null: adding 0 would turn -0
// into +0), then y_act[i] = act(y[i]) (when y_act is non-null); returns act(y[i]). The one
// definition of the bias-and-activation epilogue after cuDNN's and cuBLAS's products.
__device__ __forceinline__ float add_bias_activate(float* y, float* y_act, std::size_t i, const float* bias,
                                                   ew::Activation act = ew::Activation::ReLU) {
  float v = y[i];
  if (bias != nullptr) {
    v += *bias;
    y[i] = v;
  }
  const float a = ew::activate(act, v);
  if (y_act != nullptr) y_act[i] = a;
  return a;
}

// The bias of element i of a (B,C,HW) tensor: bias + its channel, or null when bias is.
__device__ __forceinline__ const float* channel_bias_of(const float* bias, std::size_t i, std::size_t hw,
                                                        int channels) {
  return bias != nullptr ? bias + (i / hw) % static_cast<std::size_t>(channels) : nullptr;
}

// y (B,C,HW) += bias (C) when bias is non-null; then, when y_act is non-null, y_act = act(y).
__global__ void add_channel_bias_kernel(std::size_t n, int channels, std::size_t hw, const float* bias, float* y,
                                        float* y_act, ew::Activation act) {
  grid_dependency();
  for (std::size_t i = global_index(); i < n; i += global_stride())
    add_bias_activate(y, y_act, i, channel_bias_of(bias, i, hw, channels), act);
}

// Element i of a loss's prediction: with the output layer's epilogue (e.y non-null), computed and
// written here from the product (add_bias_activate), else read from pred.
__device__ __forceinline__ float prediction(const OutputEpilogue& e, const float* pred, std::size_t i,
                                            ew::Activation act) {
  if (e.y == nullptr) return pred[i];
  return add_bias_activate(e.y, e.y_act, i, channel_bias_of(e.bias, i, e.hw, e.channels), act);
}

// Bias gradient of a convolution, db (C) = the sum of dy (B,C,HW) over the batch and the plane, in
// two passes over a partition that depends on the shapes alone (deterministic on any card), in
// one launch: block (g, c) sums image group g's planes of channel c (sum_channel_planes,
// ordered_sum.cuh, shared with the direct backward-filter's bias rows).
__global__ void channel_bias_grad_kernel(int batch, int channels, int hw, int per_group, int groups,
                                         const float* dy, double* partials, unsigned int* counters,
                                         float* db) {
  grid_dependency();
  sum_channel_planes(dy, batch, channels, hw, static_cast<int>(blockIdx.y), per_group, groups, partials, counters, db);
}

// db (F) = column sums of dy (B,F), a Linear layer's bias gradient. A block sums kColumnSumColumns
// adjacent columns with kColumnSumLanes row lanes: lane r adds rows r, r + lanes, r + 2 lanes, ...
// of its column in row order (a warp reads 32 adjacent floats of a row), then lane 0 adds the
// lanes' sums in lane order. The order depends on the shapes alone; a thread waits on batch / 8
// loads instead of batch (one thread per column ran at 0.1 % of an H100's SMs, bench/RESULTS.md).
// With kThroughRelu, dy is first relu_backward(relu_y, dy_in), written as it is summed (the same
// rows in the same order, so the same sums).
constexpr int kColumnSumColumns = 32;
constexpr int kColumnSumLanes = kThreads / kColumnSumColumns;
template <bool kThroughRelu>
__global__ void column_sum_kernel(int batch, int features, const float* dy_in, float* db, const float* relu_y,
                                  float* dy) {
  grid_dependency();
  __shared__ double lane_sums[kColumnSumLanes][kColumnSumColumns];
  const int column = static_cast<int>(threadIdx.x) % kColumnSumColumns;
  const int lane = static_cast<int>(threadIdx.x) / kColumnSumColumns;
  const int j = static_cast<int>(blockIdx.x) * kColumnSumColumns + column;
  double sum = 0.0;
  if (j < features && lane < batch) {
    const int rows = (batch - lane + kColumnSumLanes - 1) / kColumnSumLanes;
    const std::size_t first = static_cast<std::size_t>(lane) * features + j;
    const std::size_t stride = static_cast<std::size_t>(kColumnSumLanes) * features;
    if constexpr (kThroughRelu) {
      for (int r = 0; r < rows; ++r) {
        const std::size_t i = first + static_cast<std::size_t>(r) * stride;
        const float g = ew::relu_grad(relu_y[i], dy_in[i]);
        dy[i] = g;
        sum += static_cast<double>(g);
      }
    } else {
      sum = add_in_order(0.0, dy_in + first, stride, rows);
    }
  }
  lane_sums[lane][column] = sum;
  __syncthreads();
  if (lane == 0 && j < features) {
    double total = 0.0;
    for (int l = 0; l < kColumnSumLanes; ++l) total += lane_sums[l][column];
    db[j] = static_cast<float>(total);
  }
}
static_assert(kThreads % kColumnSumColumns == 0, "whole row lanes");

// ---- pooling --------------------------------------------------------------------------------------

// x (B,C,H,W) -> y, argmax (B,C,Ho,Wo); one thread per output.
__global__ void maxpool_forward_kernel(std::size_t n, int in_h, int in_w, int out_h, int out_w,
                                       int kernel, int stride, const float* x, float* y,
                                       std::int32_t* argmax) {
  grid_dependency();
  const std::size_t in_plane = static_cast<std::size_t>(in_h) * in_w;
  const std::size_t out_plane = static_cast<std::size_t>(out_h) * out_w;
  for (std::size_t o = global_index(); o < n; o += global_stride()) {
    const int r = static_cast<int>(o % out_plane);
    const float* in = x + o / out_plane * in_plane;
    int best_index = 0;
    y[o] = pool_window(in_w, r / out_w, r % out_w, kernel, stride, [&](int i, int) { return in[i]; }, best_index);
    argmax[o] = best_index;
  }
}

// y (B,C,H,W), a convolution's output -> y += bias, y_relu = ReLU(y), pooled and argmax (B,C,Ho,Wo)
// = max pooling of y_relu, windows of kernel x kernel at stride kernel. Items [0, windows): one
// thread per window, which adds the bias to its elements, takes their ReLU and pools them as it
// scans them; the other items (TiledPool), the elements no window covers: bias and ReLU only.
// Each element is read and written once, with add_channel_bias_kernel's float operations and
// maxpool_forward_kernel's scan, so the bits of the two kernels.
__global__ void bias_relu_maxpool_kernel(std::size_t windows, std::size_t rest, int channels, int in_h, int in_w,
                                         int out_h, int out_w, int kernel, const float* bias, float* y,
                                         float* y_relu, float* pooled, std::int32_t* argmax) {
  grid_dependency();
  const TiledPool pool(windows, in_h, in_w, out_h, out_w, kernel);
  for (std::size_t e = global_index(); e < windows + rest; e += global_stride()) {
    const std::size_t plane = pool.plane(e);
    float* in = y + plane * pool.in_plane;
    float* out = y_relu + plane * pool.in_plane;
    const float* b = bias != nullptr ? bias + plane % static_cast<std::size_t>(channels) : nullptr;
    const auto bias_relu = [&](int i, int) { return add_bias_activate(in, out, static_cast<std::size_t>(i), b); };
    if (pool.is_window(e)) {
      const int r = pool.window_in_plane(e);
      int best_index = 0;
      pooled[e] = pool_window(in_w, r / out_w, r % out_w, kernel, kernel, bias_relu, best_index);
      argmax[e] = best_index;
    } else {
      bias_relu(pool.uncovered_in_plane(e), 0);
    }
  }
}

// dy, argmax (B,C,Ho,Wo) -> dx (B,C,H,W); one thread per input element gathers, in window order,
// the gradients of the windows that cover it and chose it: no races, every dx written. With
// dx_relu, also dx_relu = relu_grad(x, dx): the gradient through the ReLU whose output x is.
__global__ void maxpool_backward_kernel(std::size_t n, int in_h, int in_w, int out_h, int out_w,
                                        int kernel, int stride, const float* dy,
                                        const std::int32_t* argmax, float* dx, const float* x,
                                        float* dx_relu) {
  grid_dependency();
  const std::size_t in_plane = static_cast<std::size_t>(in_h) * in_w;
  const std::size_t out_plane = static_cast<std::size_t>(out_h) * out_w;
  for (std::size_t i = global_index(); i < n; i += global_stride()) {
    const std::size_t plane = i / in_plane;
    const int r = static_cast<int>(i % in_plane);
    const int h = r / in_w, w = r % in_w;
    // Windows oy with oy*stride <= h < oy*stride + kernel, inside the output.
    const int oy_lo = h < kernel ? 0 : (h - kernel) / stride + 1;
    const int oy_hi = min(h / stride, out_h - 1);
    const int ox_lo = w < kernel ? 0 : (w - kernel) / stride + 1;
    const int ox_hi = min(w / stride, out_w - 1);
    float sum = 0.0f;
    for (int oy = oy_lo; oy <= oy_hi; ++oy)
      for (int ox = ox_lo; ox <= ox_hi; ++ox) {
        const std::size_t o = plane * out_plane + static_cast<std::size_t>(oy) * out_w + ox;
        if (argmax[o] == r) sum += dy[o];
      }
    dx[i] = sum;
    if (dx_relu != nullptr) dx_relu[i] = ew::relu_grad(x[i], sum);
  }
}

// The same for windows of kernel x kernel at stride kernel (the paper's), which neither overlap nor
// leave gaps: items [0, windows), one thread per window, which writes its kernel x kernel elements
// (the one it chose 0.0f + dy, the others 0.0f); items [windows, windows + rest), the elements no
// window covers (TiledPool's order), 0.0f. The values the general kernel's sums give, with a
// quarter of its threads for 2x2 windows and no window search.
__global__ void maxpool_backward_tiled_kernel(std::size_t windows, std::size_t rest, int in_h, int in_w, int out_h,
                                              int out_w, int kernel, const float* dy, const std::int32_t* argmax,
                                              float* dx, const float* x, float* dx_relu) {
  grid_dependency();
  const TiledPool pool(windows, in_h, in_w, out_h, out_w, kernel);
  for (std::size_t e = global_index(); e < windows + rest; e += global_stride()) {
    const std::size_t plane = pool.plane(e) * pool.in_plane;
    const auto put = [&](int i, float g) {
      const std::size_t at = plane + static_cast<std::size_t>(i);
      dx[at] = g;
      if (dx_relu != nullptr) dx_relu[at] = ew::relu_grad(x[at], g);
    };
    if (pool.is_window(e)) {
      const int r = pool.window_in_plane(e);
      pool_window_backward(in_w, r / out_w, r % out_w, kernel, argmax[e], dy[e], put);
    } else {
      put(pool.uncovered_in_plane(e), 0.0f);
    }
  }
}

// ---- element-wise ---------------------------------------------------------------------------------

__global__ void relu_forward_kernel(std::size_t n, const float* x, float* y) {
  grid_dependency();
  for (std::size_t i = global_index(); i < n; i += global_stride()) y[i] = ew::relu(x[i]);
}
__global__ void relu_backward_kernel(std::size_t n, const float* y, const float* dy, float* dx) {
  grid_dependency();
  for (std::size_t i = global_index(); i < n; i += global_stride()) dx[i] = ew::relu_grad(y[i], dy[i]);
}
__global__ void sigmoid_forward_kernel(std::size_t n, const float* x, float* y) {
  grid_dependency();
  for (std::size_t i = global_index(); i < n; i += global_stride()) y[i] = ew::sigmoid(x[i]);
}
__global__ void sigmoid_backward_kernel(std::size_t n, const float* y, const float* dy, float* dx) {
  grid_dependency();
  for (std::size_t i = global_index(); i < n; i += global_stride())
    dx[i] = ew::sigmoid_grad(y[i], dy[i]);
}
// out (n) = in (n) * factor(i): the mask depends on (seed, step, layer, i) only.
__global__ void dropout_kernel(std::size_t n, float p, std::uint64_t seed, std::uint64_t step,
                               std::uint32_t layer, const float* in, float* out) {
  grid_dependency();
  for (std::size_t i = global_index(); i < n; i += global_stride())
    out[i] = in[i] * ew::dropout_factor<float>(seed, step, layer, i, p);
}

// ---- losses and metrics ---------------------------------------------------------------------------

// dpred (n) (when non-null; and dpred_relu, when non-null, = relu_grad(pred, dpred)) and the mean
// of the terms, in one launch and two passes: each block writes the double sum of its terms to
// partials[block]; the last block to finish (last_block_of_row, counters[0]) sums the partials in
// a fixed order: loss[0] = their sum / count, *loss_sum (when non-null) += the same mean.
// With epilogue.y, pred (= epilogue.y_act) is first computed from the product (prediction()).
template <PointLoss Kind>
__global__ void point_loss_kernel(std::size_t n, const float* pred, const float* target, float* dpred,
                                  float inv_n, double* partials, unsigned int* counters, double count,
                                  float* loss, double* loss_sum, float* dpred_relu, OutputEpilogue epilogue) {
  grid_dependency();
  double sum = 0.0;
  for (std::size_t i = global_index(); i < n; i += global_stride()) {
    const float p = prediction(epilogue, pred, i, ew::Activation::ReLU), t = target[i];
    float g;
    if (Kind == PointLoss::L1) {
      sum += static_cast<double>(ew::l1_term(p, t));
      g = ew::l1_grad(p, t, inv_n);
    } else {
      sum += static_cast<double>(ew::mse_term(p, t));
      g = ew::mse_grad(p, t, inv_n);
    }
    if (dpred != nullptr) dpred[i] = g;
    if (dpred_relu != nullptr) dpred_relu[i] = ew::relu_grad(p, g);
  }
  const double block_total = block_sum(sum);
  if (threadIdx.x == 0) {
    partials[blockIdx.x] = block_total;
    __threadfence();
  }
  // Its barriers also free block_sum's shared array for the second sum.
  if (!last_block_of_row(counters, 0, gridDim.x)) return;
  double parts_sum = 0.0;
  for (int i = threadIdx.x; i < static_cast<int>(gridDim.x); i += kThreads) parts_sum += __ldcg(partials + i);
  const double total = block_sum(parts_sum);
  if (threadIdx.x == 0) {
    const double mean = total / count;
    loss[0] = static_cast<float>(mean);
    if (loss_sum != nullptr) *loss_sum += mean;
  }
}

// One block: scores (B,classes), labels (B) -> dscores (B,classes), loss[0] = mean row loss; with
// dscores_sigmoid, also the gradient through the Sigmoid whose output the scores are. With
// epilogue.y, the thread of a row first computes its scores (= epilogue.y_act) from the product.
__global__ void softmax_cross_entropy_kernel(int batch, int classes, const float* scores,
                                             const std::uint8_t* labels, float* dscores,
                                             float scale, float* loss, double* loss_sum, float* dscores_sigmoid,
                                             OutputEpilogue epilogue) {
  grid_dependency();
  double sum = 0.0;
  for (int r = threadIdx.x; r < batch; r += kThreads) {
    const std::size_t row = static_cast<std::size_t>(r) * classes;
    if (epilogue.y != nullptr)
      for (int c = 0; c < classes; ++c) prediction(epilogue, scores, row + c, ew::Activation::Sigmoid);
    float* grad = dscores != nullptr ? dscores + row : nullptr;
    const int label = labels[r];
    if (label >= classes) {  // the CPU throws; here the loss becomes NaN
      sum += static_cast<double>(CUDART_NAN_F);
      if (grad != nullptr)
        for (int c = 0; c < classes; ++c) grad[c] = CUDART_NAN_F;
    } else {
      sum += static_cast<double>(ew::softmax_cross_entropy_row(scores + row, classes, label, scale, grad));
    }
    if (grad != nullptr && dscores_sigmoid != nullptr)
      for (int c = 0; c < classes; ++c)
        dscores_sigmoid[row + c] = ew::sigmoid_grad(scores[row + c], grad[c]);
  }
  const double total = block_sum(sum);
  if (threadIdx.x == 0) {
    const double mean = total / static_cast<double>(batch);
    loss[0] = static_cast<float>(mean);
    if (loss_sum != nullptr) *loss_sum += mean;
  }
}

// confusion (classes,classes)[label][argmax(scores row)] += 1; integer atomics are exact.
__global__ void count_predictions_kernel(int batch, int classes, const float* scores,
                                         const std::uint8_t* labels, std::int64_t* confusion) {
  grid_dependency();
  for (std::size_t r = global_index(); r < static_cast<std::size_t>(batch); r += global_stride()) {
    const int label = labels[r];
    if (label >= classes) continue;
    const int predicted = ew::argmax_row(scores + r * classes, classes);
    atomicAdd(reinterpret_cast<unsigned long long*>(confusion + static_cast<std::size_t>(label) * classes + predicted),
              1ull);
  }
}

// column_sum_kernel<kThroughRelu> over dy_in (batch, features), its preconditions checked first;
// `what` names the caller's pass in the error.
template <bool kThroughRelu>
void launch_column_sum(const Context& c, const char* what, int batch, int features, const float* dy_in, float* db,
                       const float* relu_y, float* dy) {
  if (batch < 1 || features < 1 || features > INT_MAX - kColumnSumColumns)
    throw std::invalid_argument(std::string(what) + ": batch and features must be positive, features at most "
                                "INT_MAX - 32");
  const unsigned blocks = static_cast<unsigned>((features + kColumnSumColumns - 1) / kColumnSumColumns);
  launch(c, column_sum_kernel<kThroughRelu>, dim3(blocks), kThreads, 0, batch, features, dy_in, db, relu_y, dy);
}

// The elements of a batch's planes that windows of kernel x kernel at stride kernel leave
// uncovered (floor mode's last rows and columns).
std::size_t uncovered_count(const PoolGeometry& g) {
  const std::size_t covered = static_cast<std::size_t>(g.out_h()) * g.kernel * g.out_w() * g.kernel;
  return static_cast<std::size_t>(g.batch) * g.channels * (static_cast<std::size_t>(g.in_h) * g.in_w - covered);
}

}  // namespace

std::string kernel_image_problem() {
  cudaFuncAttributes attributes{};
  const cudaError_t status = cudaFuncGetAttributes(&attributes, fill_kernel);
  if (status == cudaSuccess) return {};
  (void)cudaGetLastError();
  return std::string(cudaGetErrorName(status)) + " (" + cudaGetErrorString(status) + ")";
}

std::string compiled_architectures() { return FMNIST_CUDA_ARCHITECTURES; }

int kernel_virtual_architecture() {
  cudaFuncAttributes attributes{};
  CUDA_CHECK(cudaFuncGetAttributes(&attributes, fill_kernel));
  return attributes.ptxVersion;
}

void launch_fill(const Context& c, std::size_t n, float value, float* dst) {
  launch(c, fill_kernel, c.grid_for(n, kThreads), kThreads, 0, n, value, dst);
}

void launch_images_to_float(const Context& c, std::size_t n, const std::uint8_t* pixels, float* x) {
  launch(c, images_to_float_kernel, c.grid_for(n, kThreads), kThreads, 0, n, pixels, x);
}

void launch_add_channel_bias(const Context& c, int batch, int channels, std::size_t hw, const float* bias,
                             float* y, float* y_act, elementwise::Activation act) {
  const std::size_t n = static_cast<std::size_t>(batch) * channels * hw;
  launch(c, add_channel_bias_kernel, c.grid_for(n, kThreads), kThreads, 0, n, channels, hw, bias, y, y_act, act);
}

// With more than one group a partition holds under 2 * kReductionTargetBlocks partials.
static_assert(2 * kReductionTargetBlocks <= Context::kReducePartials,
              "the bias gradient's partials must fit Context::reduce_partials()");

void launch_channel_bias_grad(const Context& c, int batch, int channels, std::size_t hw,
                              const float* dy, float* db) {
  if (hw == 1) {  // a Linear layer's: dy is (B,F)
    launch_column_sum<false>(c, "linear bias gradient", batch, channels, dy, db, nullptr, nullptr);
    return;
  }
  if (batch < 1 || channels < 1 || channels > 65535 || hw > static_cast<std::size_t>(INT_MAX - kIntIndexHeadroom))
    throw std::invalid_argument("channel bias gradient: batch and channels must be positive, channels at most "
                                "65,535 and a plane at most INT_MAX - 1,024 elements");
  // The weight gradient's partition, one slice per channel: AE(256) at batch 100 runs 100 to 480
  // blocks per layer instead of 1 to 32. Its partials fit Context's reduce partials (static_assert).
  const ImageGroups part = split_into_image_groups(batch, channels);
  static_assert(65535 <= Context::kReduceCounters, "a counter for each channel");
  const dim3 grid(static_cast<unsigned>(part.groups), static_cast<unsigned>(channels));
  launch(c, channel_bias_grad_kernel, grid, kThreads, 0, batch, channels, static_cast<int>(hw), part.per_group,
      part.groups, dy, c.reduce_partials(), c.reduce_counters(), db);
}

void launch_linear_bias_grad_through_relu(const Context& c, int batch, int features, const float* y_relu,
                                          const float* dy_relu, float* dy, float* db) {
  launch_column_sum<true>(c, "linear bias gradient through a ReLU", batch, features, dy_relu, db, y_relu, dy);
}

void launch_maxpool_forward(const Context& c, const PoolGeometry& g, const float* x, float* y,
                            std::int32_t* argmax) {
  const std::size_t n = g.out_count();
  launch(c, maxpool_forward_kernel, c.grid_for(n, kThreads), kThreads, 0, n, g.in_h, g.in_w, g.out_h(),
      g.out_w(), g.kernel, g.stride, x, y, argmax);
}

void launch_bias_relu_maxpool(const Context& c, const PoolGeometry& g, const float* bias, float* y, float* y_relu,
                              float* pooled, std::int32_t* argmax) {
  if (g.kernel != g.stride)
    throw std::invalid_argument("bias, ReLU and max pooling in one pass: kernel " + std::to_string(g.kernel) +
                                " and stride " + std::to_string(g.stride) + " differ (windows would overlap or leave gaps)");
  const std::size_t windows = g.out_count();
  const std::size_t rest = uncovered_count(g);
  launch(c, bias_relu_maxpool_kernel, c.grid_for(windows + rest, kThreads), kThreads, 0, windows, rest, g.channels,
      g.in_h, g.in_w, g.out_h(), g.out_w(), g.kernel, bias, y, y_relu, pooled, argmax);
}

void launch_maxpool_backward(const Context& c, const PoolGeometry& g, const float* dy,
                             const std::int32_t* argmax, float* dx, const float* x, float* dx_relu) {
  if (g.kernel == g.stride) {
    const std::size_t windows = g.out_count(), rest = uncovered_count(g);
    launch(c, maxpool_backward_tiled_kernel, c.grid_for(windows + rest, kThreads), kThreads, 0, windows, rest, g.in_h,
        g.in_w, g.out_h(), g.out_w(), g.kernel, dy, argmax, dx, x, dx_relu);
    return;
  }
  const std::size_t n = g.in_count();
  launch(c, maxpool_backward_kernel, c.grid_for(n, kThreads), kThreads, 0, n, g.in_h, g.in_w, g.out_h(),
      g.out_w(), g.kernel, g.stride, dy, argmax, dx, x, dx_relu);
}

void launch_relu_forward(const Context& c, std::size_t n, const float* x, float* y) {
  launch(c, relu_forward_kernel, c.grid_for(n, kThreads), kThreads, 0, n, x, y);
}
void launch_relu_backward(const Context& c, std::size_t n, const float* y, const float* dy,
                          float* dx) {
  launch(c, relu_backward_kernel, c.grid_for(n, kThreads), kThreads, 0, n, y, dy, dx);
}
void launch_sigmoid_forward(const Context& c, std::size_t n, const float* x, float* y) {
  launch(c, sigmoid_forward_kernel, c.grid_for(n, kThreads), kThreads, 0, n, x, y);
}
void launch_sigmoid_backward(const Context& c, std::size_t n, const float* y, const float* dy,
                             float* dx) {
  launch(c, sigmoid_backward_kernel, c.grid_for(n, kThreads), kThreads, 0, n, y, dy, dx);
}
void launch_dropout(const Context& c, std::size_t n, float p, std::uint64_t seed,
                    std::uint64_t step, std::uint32_t layer, const float* in, float* out) {
  launch(c, dropout_kernel, c.grid_for(n, kThreads), kThreads, 0, n, p, seed, step, layer, in, out);
}

void launch_point_loss(const Context& c, PointLoss kind, std::size_t n, const float* pred,
                       const float* target, float* dpred, float* loss, double* loss_sum, float* dpred_relu,
                       const OutputEpilogue& epilogue) {
  // The grid depends on n alone (never on the device), so the summation order is fixed. Two
  // items a thread: an AE batch (78,400 values) runs 154 blocks, more than an H100 has SMs; at 8
  // a thread it ran 39, each thread waiting on 8 loads in turn (1.3 % of the SMs under ncu,
  // bench/RESULTS.md). Only the loss's last bits depend on it: the gradients are per element.
  constexpr std::size_t kItemsPerThread = 2;
  const std::size_t wanted = (n + kThreads * kItemsPerThread - 1) / (kThreads * kItemsPerThread);
  const int parts = static_cast<int>(
      std::max<std::size_t>(1, std::min<std::size_t>(wanted, Context::kReducePartials)));
  const float inv_n = 1.0f / static_cast<float>(n);  // as the CPU: T(1) / static_cast<T>(n)
  double* partials = c.reduce_partials();
  const double count = static_cast<double>(n);
  if (kind == PointLoss::L1)
    launch(c, point_loss_kernel<PointLoss::L1>, parts, kThreads, 0, n, pred, target, dpred, inv_n,
        partials, c.reduce_counters(), count, loss, loss_sum, dpred_relu, epilogue);
  else
    launch(c, point_loss_kernel<PointLoss::MSE>, parts, kThreads, 0, n, pred, target, dpred, inv_n,
        partials, c.reduce_counters(), count, loss, loss_sum, dpred_relu, epilogue);
}

void launch_softmax_cross_entropy(const Context& c, int batch, int classes, const float* scores,
                                  const std::uint8_t* labels, float* dscores, float* loss,
                                  double* loss_sum, float* dscores_sigmoid, const OutputEpilogue& epilogue) {
  const float scale = 1.0f / static_cast<float>(batch);  // as the CPU: T(1) / static_cast<T>(batch)
  launch(c, softmax_cross_entropy_kernel, 1, kThreads, 0, batch, classes, scores, labels, dscores, scale,
      loss, loss_sum, dscores_sigmoid, epilogue);
}

void launch_count_predictions(const Context& c, int batch, int classes, const float* scores,
                              const std::uint8_t* labels, std::int64_t* confusion) {
  launch(c, count_predictions_kernel, c.grid_for(static_cast<std::size_t>(batch), kThreads), kThreads, 0,
      batch, classes, scores, labels, confusion);
}

}  // namespace fmnist::cuda
