// CpuOps: memory, pooling, Linear, activations, dropout, losses and Adam on host memory, each a
// plain loop over the elementwise.h math, cut into tasks run in parallel (parallel.h); the
// convolutions are in conv.cpp, BLAS calls in gemm.h.
#include "host/reference/cpu_ops.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "host/reference/bf16.h"
#include "host/reference/gemm.h"
#include "host/reference/parallel.h"
#include "host/reference/sum.h"
#include "models/op_checks.h"

namespace fmnist {

namespace {

namespace ew = elementwise;
using reference::TaskPool;

// Every op below cuts its work into tasks fixed by its shapes alone (parallel.h), in one of
// three ways; body(begin, end) handles one task's range.
//
// Element-wise loops: blocks of kElementsPerTask elements (128 KB of floats, a multiple of 4 for
// dropout's Philox blocks). Each element is computed on its own: the cut changes nothing but speed.
constexpr std::size_t kElementsPerTask = 32768;
template <class Body> void for_blocks(TaskPool& pool, std::size_t n, const Body& body) {
  const int tasks = static_cast<int>((n + kElementsPerTask - 1) / kElementsPerTask);
  pool.run(tasks, [&](int task, int) {
    const std::size_t begin = static_cast<std::size_t>(task) * kElementsPerTask;
    body(begin, std::min(n, begin + kElementsPerTask));
  });
}

// Pooling: the batch's B*C planes of `plane` elements, about kElementsPerTask elements per task.
template <class Body>
void for_plane_blocks(TaskPool& pool, int batch, int channels, std::size_t plane,
                      const Body& body) {
  const std::size_t planes = static_cast<std::size_t>(batch) * channels;
  const std::size_t per_task = std::max<std::size_t>(1, kElementsPerTask / plane);
  const int tasks = static_cast<int>((planes + per_task - 1) / per_task);
  pool.run(tasks, [&](int task, int) {
    const std::size_t first = static_cast<std::size_t>(task) * per_task;
    body(first, std::min(planes, first + per_task));
  });
}

// Linear's GEMMs: the columns of their result, in at most 8 blocks of at least 64 columns. Each
// block is a GEMM of its own over the full inner dimension (no partial sums to add up).
constexpr std::size_t kMinColumnsPerTask = 64;
constexpr int kMaxColumnTasks = 8;
template <class Body> void for_column_blocks(TaskPool& pool, int columns, const Body& body) {
  const int tasks = reference::parts_of(columns, kMinColumnsPerTask, kMaxColumnTasks);
  pool.run(tasks, [&](int task, int) {
    const int begin = static_cast<int>(reference::part_begin(columns, tasks, task));
    body(begin, static_cast<int>(reference::part_begin(columns, tasks, task + 1)));
  });
}

using namespace op_checks;  // fail, require, check_* (models/op_checks.h)

// Labels are in host memory here, so the CPU also checks each is below classes (CUDA's stay on
// the device, where a bad one makes the loss NaN instead).
void check_labels(const char* op, int batch, int classes, const std::uint8_t* labels) {
  for (int r = 0; r < batch; ++r)
    if (labels[r] >= classes)
      fail(op, "label " + std::to_string(labels[r]) + " of row " + std::to_string(r) +
                   " is not below classes (" + std::to_string(classes) + ")");
}

// loss[0] = sum / n, the sum taken in double in a fixed order; *loss_sum += the same mean.
template <class T> void write_mean(double sum, std::size_t n, T* loss, double* loss_sum) {
  const double mean = sum / static_cast<double>(n);
  loss[0] = static_cast<T>(mean);
  if (loss_sum != nullptr) *loss_sum += mean;
}

// One (H,W) plane of max pooling: y (Ho,Wo) and its argmax from in (H,W rows of w elements).
// One output row at a time, window elements in scan order (ky, kx), all ox at once: branch-free
// selects that the compiler vectorizes. (Sizes are parameters, not captures: the int32 stores
// cannot alias them.)
template <class T>
void maxpool_plane(const T* in, int w, int ho, int wo, int k, int s, T* y, std::int32_t* argmax) {
  for (int oy = 0; oy < ho; ++oy) {
    T* best = y + static_cast<std::size_t>(oy) * wo;
    std::int32_t* best_index = argmax + static_cast<std::size_t>(oy) * wo;
    for (int ox = 0; ox < wo; ++ox) {
      best[ox] = -std::numeric_limits<T>::infinity();
      best_index[ox] = oy * s * w + ox * s;
    }
    for (int ky = 0; ky < k; ++ky)
      for (int kx = 0; kx < k; ++kx) {
        const int first = (oy * s + ky) * w + kx;  // the element for ox = 0
        const T* row = in + first;
        for (int ox = 0; ox < wo; ++ox) {
          const T v = row[ox * s];
          const bool take = ew::pool_takes(v, best[ox]);
          best[ox] = take ? v : best[ox];
          best_index[ox] = take ? first + ox * s : best_index[ox];
        }
      }
  }
}

// The same for the paper's 2x2 windows at stride 2, the same scan order and NaN rule written out
// for the four elements of a window: about three times faster (the loop vectorizes whole).
template <class T>
void maxpool_plane_2x2(const T* in, int w, int ho, int wo, T* y, std::int32_t* argmax) {
  for (int oy = 0; oy < ho; ++oy) {
    const T* top = in + static_cast<std::size_t>(2 * oy) * w;
    const T* bottom = top + w;
    T* best_row = y + static_cast<std::size_t>(oy) * wo;
    std::int32_t* index_row = argmax + static_cast<std::size_t>(oy) * wo;
    for (int ox = 0; ox < wo; ++ox) {
      const T v0 = top[2 * ox], v1 = top[2 * ox + 1], v2 = bottom[2 * ox], v3 = bottom[2 * ox + 1];
      T best = v0;
      std::int32_t at = 0;  // the best's offset within the window: 0, 1, w or w + 1
      bool take = ew::pool_takes(v1, best);
      best = take ? v1 : best;
      at = take ? 1 : at;
      take = ew::pool_takes(v2, best);
      best = take ? v2 : best;
      at = take ? w : at;
      take = ew::pool_takes(v3, best);
      best = take ? v3 : best;
      at = take ? w + 1 : at;
      best_row[ox] = best;
      index_row[ox] = 2 * oy * w + 2 * ox + at;
    }
  }
}

// One plane of max pooling's backward: dx (in_plane) = 0, then each dy goes to its argmax
// (skipped, and false returned, when an argmax lies outside the plane).
template <class T>
bool unpool_plane(const T* dy, const std::int32_t* argmax, std::size_t out_plane,
                  std::size_t in_plane, T* dx) {
  std::fill(dx, dx + in_plane, T(0));
  bool ok = true;
  for (std::size_t o = 0; o < out_plane; ++o) {
    const std::int32_t a = argmax[o];
    if (a < 0 || static_cast<std::size_t>(a) >= in_plane) {
      ok = false;
      continue;
    }
    dx[a] += dy[o];
  }
  return ok;
}

}  // namespace

template <class T> CpuOps<T>::CpuOps(int threads, Precision precision)
    : pool_(threads > 0 ? threads : reference::default_cpu_threads()), precision_(precision) {
  if (precision == Precision::TF32)
    throw std::invalid_argument("the CPU backend has no TF32: its precision is fp32 or bf16");
  if (precision == Precision::BF16 && !std::is_same_v<T, float>)
    throw std::invalid_argument("BF16 precision is defined for the float CPU backend only");
  // Our tasks call BLAS from several threads at once; OpenBLAS's own threads would only compete
  // with them for the cores (and its results would depend on OPENBLAS_NUM_THREADS).
  openblas_set_num_threads(1);
}

// ---- memory -------------------------------------------------------------------------------------

template <class T> void* CpuOps<T>::allocate(std::size_t bytes) {
  const std::size_t rounded = std::max<std::size_t>(64, (bytes + 63) / 64 * 64);
  void* ptr = std::aligned_alloc(64, rounded);
  if (ptr == nullptr) throw std::bad_alloc();
  std::memset(ptr, 0, rounded);
  return ptr;
}

template <class T> void CpuOps<T>::deallocate(void* ptr) noexcept { std::free(ptr); }

template <class T>
void CpuOps<T>::copy_to_device(void* dst, const void* host_src, std::size_t bytes) {
  if (bytes == 0) return;
  require("copy_to_device", "dst", dst);
  require("copy_to_device", "host_src", host_src);
  std::memcpy(dst, host_src, bytes);
}

template <class T> void CpuOps<T>::copy_to_host(void* host_dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  require("copy_to_host", "host_dst", host_dst);
  require("copy_to_host", "src", src);
  std::memcpy(host_dst, src, bytes);
}

template <class T> void CpuOps<T>::copy(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  require("copy", "dst", dst);
  require("copy", "src", src);
  std::memmove(dst, src, bytes);
}

template <class T> void CpuOps<T>::fill(T* dst, T value, std::size_t n) {
  if (n == 0) return;
  require("fill", "dst", dst);
  std::fill(dst, dst + n, value);
}

// x (n) = pixels (n) / 255
template <class T>
void CpuOps<T>::images_to_float(std::size_t n, const std::uint8_t* pixels, T* x) {
  check_images_to_float("images_to_float", n, pixels, x);
  for_blocks(pool_, n, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) x[i] = ew::pixel_to_unit<T>(pixels[i]);
  });
}

// ---- convolutions (conv.cpp) ----------------------------------------------------------------------

template <class T>
void CpuOps<T>::conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y) {
  reference::conv2d_forward(g, x, w, b, y, scratch_, pool_, precision_);
}
template <class T>
void CpuOps<T>::conv2d_backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dx,
                                T* dw, T* db) {
  reference::conv2d_backward(g, x, w, dy, dx, dw, db, scratch_, pool_, precision_);
}
template <class T>
void CpuOps<T>::conv_transpose2d_forward(const ConvGeometry& g, const T* x, const T* w,
                                         const T* b, T* y) {
  reference::conv_transpose2d_forward(g, x, w, b, y, scratch_, pool_, precision_);
}
template <class T>
void CpuOps<T>::conv_transpose2d_backward(const ConvGeometry& g, const T* x, const T* w,
                                          const T* dy, T* dx, T* dw, T* db) {
  reference::conv_transpose2d_backward(g, x, w, dy, dx, dw, db, scratch_, pool_, precision_);
}

// ---- max pooling ---------------------------------------------------------------------------------

// x (B,C,H,W) -> y (B,C,Ho,Wo), argmax = index in the (H,W) plane; as PyTorch: the first maximum
// in scan order wins, and a NaN counts as a maximum. Tasks take whole planes.
template <class T>
void CpuOps<T>::maxpool2d_forward(const PoolGeometry& g, const T* x, T* y, std::int32_t* argmax) {
  check_maxpool_forward("maxpool2d_forward", g, x, y, argmax);
  const int ho = g.out_h(), wo = g.out_w();
  const std::size_t in_plane = static_cast<std::size_t>(g.in_h) * g.in_w;
  const std::size_t out_plane = static_cast<std::size_t>(ho) * wo;
  for_plane_blocks(pool_, g.batch, g.channels, in_plane, [&](std::size_t first, std::size_t end) {
    for (std::size_t plane = first; plane < end; ++plane) {
      const T* in = x + plane * in_plane;
      if (g.kernel == 2 && g.stride == 2)
        maxpool_plane_2x2(in, g.in_w, ho, wo, y + plane * out_plane, argmax + plane * out_plane);
      else
        maxpool_plane(in, g.in_w, ho, wo, g.kernel, g.stride, y + plane * out_plane,
                      argmax + plane * out_plane);
    }
  });
}

// dy (B,C,Ho,Wo) -> dx (B,C,H,W): each dy goes to its argmax, every other dx is 0. Plane by plane
// (zeroed, then written while it is in cache), whole planes per task.
template <class T>
void CpuOps<T>::maxpool2d_backward(const PoolGeometry& g, const T* dy, const std::int32_t* argmax,
                                   T* dx) {
  const char* op = "maxpool2d_backward";
  check_maxpool_backward(op, g, dy, argmax);
  if (dx == nullptr) return;
  const std::size_t in_plane = static_cast<std::size_t>(g.in_h) * g.in_w;
  const std::size_t out_plane = static_cast<std::size_t>(g.out_h()) * g.out_w();
  std::atomic<bool> bad_argmax{false};  // a task cannot throw: it flags, the op throws after
  for_plane_blocks(pool_, g.batch, g.channels, in_plane, [&](std::size_t first, std::size_t end) {
    for (std::size_t plane = first; plane < end; ++plane)
      if (!unpool_plane(dy + plane * out_plane, argmax + plane * out_plane, out_plane, in_plane,
                        dx + plane * in_plane))
        bad_argmax = true;
  });
  if (bad_argmax) fail(op, "argmax out of its plane");
}

// ---- Linear --------------------------------------------------------------------------------------

// y (B,out) = x (B,in) w^T (w is (out,in)) + b (out)
template <class T>
void CpuOps<T>::linear_forward(const LinearGeometry& g, const T* x, const T* w, const T* b, T* y) {
  check_linear_forward("linear_forward", g, x, w, y);
  const int in = g.in_features, out = g.out_features;
  if (precision_ == Precision::BF16) {
    // y[:, j0:j1] = bf16(bf16(x) bf16(w[j0:j1, :])^T) + b[j0:j1] (models/precision.h)
    const std::size_t nx = static_cast<std::size_t>(g.batch) * in;
    const std::size_t nw = static_cast<std::size_t>(out) * in;
    const T* xr = reference::rounded_to_bf16(x, nx, scratch_.get(1, nx));
    const T* wr = reference::rounded_to_bf16(w, nw, scratch_.get(2, nw));
    for_column_blocks(pool_, out, [&](int j0, int j1) {
      reference::gemm(false, true, g.batch, j1 - j0, in, T(1), xr, in,
                      wr + static_cast<std::size_t>(j0) * in, in, T(0), y + j0, out);
      reference::round_block_to_bf16(y + j0, g.batch, j1 - j0, out);
      if (b != nullptr)
        for (int r = 0; r < g.batch; ++r)
          for (int j = j0; j < j1; ++j) y[static_cast<std::size_t>(r) * out + j] += b[j];
    });
    return;
  }
  // Output columns [j0, j1) per task: y[:, j0:j1] = b[j0:j1] (the GEMM's starting value, beta 1)
  // + x w[j0:j1, :]^T.
  for_column_blocks(pool_, out, [&](int j0, int j1) {
    if (b != nullptr)
      for (int r = 0; r < g.batch; ++r)
        std::copy(b + j0, b + j1, y + static_cast<std::size_t>(r) * out + j0);
    reference::gemm(false, true, g.batch, j1 - j0, in, T(1), x, in,
                    w + static_cast<std::size_t>(j0) * in, in, b != nullptr ? T(1) : T(0), y + j0,
                    out);
  });
}

// dx (B,in) = dy (B,out) w;  dw (out,in) = dy^T x;  db (out) = column sums of dy (in double)
template <class T>
void CpuOps<T>::linear_backward(const LinearGeometry& g, const T* x, const T* w, const T* dy, T* dx,
                                T* dw, T* db) {
  check_linear_backward("linear_backward", g, x, w, dy, dx, dw);
  const int in = g.in_features, out = g.out_features;
  // BF16 (models/precision.h): the GEMMs read dy, w and x rounded to bfloat16 (scratch copies)
  // and their results are rounded; db sums the unrounded dy.
  const bool bf16 = precision_ == Precision::BF16 && (dx != nullptr || dw != nullptr);
  const T* dyk = dy;
  const T* wk = w;
  const T* xk = x;
  if (bf16) {
    const std::size_t ny = static_cast<std::size_t>(g.batch) * out;
    const std::size_t nw = static_cast<std::size_t>(out) * in;
    const std::size_t nx = static_cast<std::size_t>(g.batch) * in;
    dyk = reference::rounded_to_bf16(dy, ny, scratch_.get(0, ny));
    if (dx != nullptr) wk = reference::rounded_to_bf16(w, nw, scratch_.get(1, nw));
    if (dw != nullptr) xk = reference::rounded_to_bf16(x, nx, scratch_.get(2, nx));
  }
  // Both products are cut along the input features: dx[:, i0:i1] = dy w[:, i0:i1] and
  // dw[:, i0:i1] = dy^T x[:, i0:i1], each over the whole batch.
  for_column_blocks(pool_, in, [&](int i0, int i1) {
    if (dx != nullptr) {
      reference::gemm(false, false, g.batch, i1 - i0, out, T(1), dyk, out, wk + i0, in, T(0),
                      dx + i0, in);
      if (bf16) reference::round_block_to_bf16(dx + i0, g.batch, i1 - i0, in);
    }
    if (dw != nullptr) {
      reference::gemm(true, false, out, i1 - i0, g.batch, T(1), dyk, out, xk + i0, in, T(0),
                      dw + i0, in);
      if (bf16) reference::round_block_to_bf16(dw + i0, out, i1 - i0, in);
    }
  });
  if (db != nullptr) {
    double* sums = scratch_.get_double(out);  // row by row, so each column sums in row order
    std::fill(sums, sums + out, 0.0);
    for (int r = 0; r < g.batch; ++r)
      for (int j = 0; j < out; ++j) sums[j] += static_cast<double>(dy[static_cast<std::size_t>(r) * out + j]);
    for (int j = 0; j < out; ++j) db[j] = static_cast<T>(sums[j]);
  }
}

// ---- element-wise (in place allowed) ------------------------------------------------------------

template <class T> std::string CpuOps<T>::software() const {
  return openblas_get_config();  // "OpenBLAS 0.3.21 ... Haswell ...": its version, build and the CPU's kernels
}

template <class T> void CpuOps<T>::relu_forward(std::size_t n, const T* x, T* y) {
  check_activation_forward("relu_forward", n, x, y);
  for_blocks(pool_, n, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) y[i] = ew::relu(x[i]);
  });
}

template <class T> void CpuOps<T>::relu_backward(std::size_t n, const T* y, const T* dy, T* dx) {
  check_activation_backward("relu_backward", n, y, dy, dx);
  for_blocks(pool_, n, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) dx[i] = ew::relu_grad(y[i], dy[i]);
  });
}

template <class T> void CpuOps<T>::sigmoid_forward(std::size_t n, const T* x, T* y) {
  check_activation_forward("sigmoid_forward", n, x, y);
  for_blocks(pool_, n, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) y[i] = ew::sigmoid(x[i]);
  });
}

template <class T> void CpuOps<T>::sigmoid_backward(std::size_t n, const T* y, const T* dy, T* dx) {
  check_activation_backward("sigmoid_backward", n, y, dy, dx);
  for_blocks(pool_, n, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) dx[i] = ew::sigmoid_grad(y[i], dy[i]);
  });
}

// out [begin, end) = in * dropout factor of element i; one Philox block gives the factors of four
// consecutive elements (the same values elementwise::dropout_factor gives one at a time).
// begin is a multiple of 4.
namespace {
template <class T>
void scale_by_dropout_mask(std::size_t begin, std::size_t end, float p, std::uint64_t seed,
                           std::uint64_t step, std::uint32_t layer, const T* in, T* out) {
  for (std::size_t first = begin; first < end; first += 4) {
    const ew::Philox4x32 bits = ew::dropout_block(seed, step, layer, first / 4);
    for (std::size_t k = 0; k < 4 && first + k < end; ++k)
      out[first + k] = in[first + k] * ew::dropout_factor_of<T>(ew::dropout_uniform_from_bits(bits.v[k]), p);
  }
}
}  // namespace

// y = x * factor, factor = 0 or 1/(1-p) from the counter-based mask of (seed, step, layer, i).
template <class T>
void CpuOps<T>::dropout_forward(std::size_t n, float p, std::uint64_t seed, std::uint64_t step,
                                std::uint32_t layer, const T* x, T* y) {
  check_dropout_forward("dropout_forward", n, p, x, y);
  for_blocks(pool_, n, [&](std::size_t begin, std::size_t end) {
    scale_by_dropout_mask(begin, end, p, seed, step, layer, x, y);
  });
}

// dx = dy * the same factor as the forward.
template <class T>
void CpuOps<T>::dropout_backward(std::size_t n, float p, std::uint64_t seed, std::uint64_t step,
                                 std::uint32_t layer, const T* dy, T* dx) {
  check_dropout_backward("dropout_backward", n, p, dy, dx);
  for_blocks(pool_, n, [&](std::size_t begin, std::size_t end) {
    scale_by_dropout_mask(begin, end, p, seed, step, layer, dy, dx);
  });
}

// ---- losses and metrics ----------------------------------------------------------------------

// l1_loss and mse_loss: loss = the mean over n of term(pred, target) (write_mean), and dpred =
// grad(pred, target, 1/n) when non-null. The terms are computed apart into scratch slot 0
// (vectorized, no branches), then summed in order. term and grad are lambdas, inlined.
namespace {
template <class T, class Term, class Grad>
void mean_point_loss(TaskPool& pool, reference::Scratch<T>& scratch, std::size_t n, const T* pred,
                     const T* target, T* dpred, T* loss, double* loss_sum, Term term, Grad grad) {
  const T inv_n = T(1) / static_cast<T>(n);
  T* terms = scratch.get(0, n);
  for_blocks(pool, n, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) terms[i] = term(pred[i], target[i]);
    if (dpred != nullptr)  // a loop of its own, so that it vectorizes
      for (std::size_t i = begin; i < end; ++i) dpred[i] = grad(pred[i], target[i], inv_n);
  });
  write_mean(reference::sum_in_double(terms, n), n, loss, loss_sum);
}
}  // namespace

template <class T>
void CpuOps<T>::l1_loss(std::size_t n, const T* pred, const T* target, T* dpred, T* loss,
                        double* loss_sum) {
  check_point_loss("l1_loss", n, pred, target, loss);
  mean_point_loss(pool_, scratch_, n, pred, target, dpred, loss, loss_sum,
                  [](T p, T t) { return ew::l1_term(p, t); },
                  [](T p, T t, T inv_n) { return ew::l1_grad(p, t, inv_n); });
}

template <class T>
void CpuOps<T>::mse_loss(std::size_t n, const T* pred, const T* target, T* dpred, T* loss,
                         double* loss_sum) {
  check_point_loss("mse_loss", n, pred, target, loss);
  mean_point_loss(pool_, scratch_, n, pred, target, dpred, loss, loss_sum,
                  [](T p, T t) { return ew::mse_term(p, t); },
                  [](T p, T t, T inv_n) { return ew::mse_grad(p, t, inv_n); });
}

// scores (B,classes), labels (B): loss = mean over rows; dscores (B,classes) includes the 1/B.
template <class T>
void CpuOps<T>::softmax_cross_entropy(int batch, int classes, const T* scores,
                                      const std::uint8_t* labels, T* dscores, T* loss,
                                      double* loss_sum) {
  const char* op = "softmax_cross_entropy";
  check_softmax_cross_entropy(op, batch, classes, scores, labels, loss);
  check_labels(op, batch, classes, labels);
  const T scale = T(1) / static_cast<T>(batch);
  double sum = 0.0;
  for (int r = 0; r < batch; ++r) {
    const std::size_t row = static_cast<std::size_t>(r) * classes;
    sum += static_cast<double>(ew::softmax_cross_entropy_row(
        scores + row, classes, labels[r], scale, dscores != nullptr ? dscores + row : nullptr));
  }
  write_mean(sum, static_cast<std::size_t>(batch), loss, loss_sum);
}

// confusion (classes,classes)[label][argmax(scores)] += 1 for each row.
template <class T>
void CpuOps<T>::count_predictions(int batch, int classes, const T* scores,
                                  const std::uint8_t* labels, std::int64_t* confusion) {
  const char* op = "count_predictions";
  check_count_predictions(op, batch, classes, scores, labels, confusion);
  check_labels(op, batch, classes, labels);
  for (int r = 0; r < batch; ++r) {
    const int predicted = ew::argmax_row(scores + static_cast<std::size_t>(r) * classes, classes);
    confusion[static_cast<std::size_t>(labels[r]) * classes + predicted] += 1;
  }
}

// ---- optimizer -----------------------------------------------------------------------------------

template <class T>
void CpuOps<T>::adam_update(std::size_t n, T* params, const T* grads, T* m, T* v,
                            const elementwise::AdamStep<T>& step) {
  check_adam_update("adam_update", n, params, grads, m, v);
  const elementwise::AdamStep<T> s = step;  // a local copy: stores to params cannot alias it
  for_blocks(pool_, n, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) ew::adam_update(params[i], grads[i], m[i], v[i], s);
  });
}

template class CpuOps<float>;
template class CpuOps<double>;

std::unique_ptr<Ops<float>> make_cpu_ops(Precision precision) {
  return std::make_unique<CpuOps<float>>(0, precision);
}

}  // namespace fmnist
