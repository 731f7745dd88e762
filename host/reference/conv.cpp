// Conv2d and ConvTranspose2d on the CPU. The batch is cut into fixed chunks of 5 images (tasks,
// run in parallel, parallel.h); a chunk is unfolded (im2col) into one (C*k*k, images*grid)
// matrix, and forward, input gradient and weight gradient are GEMMs on it. The weight gradient is
// the sum of the chunks' partial gradients, added in chunk order: the same bits on any number of
// threads. A ConvTranspose2d is a Conv2d run backwards.
#include "conv.h"

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>

#include "bf16.h"
#include "gemm.h"
#include "models/op_checks.h"
#include "parallel.h"
#include "sum.h"

namespace fmnist::reference {
namespace {

// An image (B,C,IH,IW) seen as a grid of GH x GW patches: grid point (gy,gx) with kernel offset
// (ki,kj) touches pixel (gy*s - p + ki, gx*s - p + kj). A Conv2d reads its input this way on its
// output grid; a ConvTranspose2d writes its output this way on its input grid.
struct Patches {
  int batch, channels, image_h, image_w, grid_h, grid_w, kernel, stride, padding;
  int rows() const { return channels * kernel * kernel; }  // K
  int cols() const { return batch * grid_h * grid_w; }     // N
};

// Grid indices [lo, hi) whose pixel g*stride + offset lies inside [0, size).
void valid_range(int grid, int size, int stride, int offset, int& lo, int& hi) {
  lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  hi = offset >= size ? 0 : (size - offset + stride - 1) / stride;
  hi = std::min(hi, grid);
  lo = std::min(lo, hi);
}

// dst (rows, cols) <- src[r * row_stride + c * step], and the reverse (adding): one (c,ki,kj) row
// of col for one image when every patch of that row lies inside the image (always so without
// padding). Plain loops that the compiler vectorizes and unrolls as a whole; the per-row work of
// the general loops below costs twice as much on the paper's 11- to 26-element rows.
template <class T>
void gather_block(const T* src, int rows, int cols, std::ptrdiff_t row_stride, int step, T* dst) {
  if (step == 1) {
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) dst[r * cols + c] = src[r * row_stride + c];
  } else {
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) dst[r * cols + c] = src[r * row_stride + c * step];
  }
}
template <class T>
void scatter_add_block(const T* src, int rows, int cols, std::ptrdiff_t row_stride, int step,
                       T* dst) {
  if (step == 1) {
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) dst[r * row_stride + c] += src[r * cols + c];
  } else {
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) dst[r * row_stride + c * step] += src[r * cols + c];
  }
}

// col (C*k*k, B*GH*GW) <- image (B,C,IH,IW); pixels outside the image read as 0.
template <class T> void im2col(const Patches& p, const T* image, T* col) {
  const int gh = p.grid_h, gw = p.grid_w, iw = p.image_w, pad = p.padding;
  const int k = p.kernel, s = p.stride;
  const std::size_t plane = static_cast<std::size_t>(p.image_h) * iw;
  const std::size_t grid = static_cast<std::size_t>(gh) * gw;
  const std::size_t cols = static_cast<std::size_t>(p.cols());
  for (int c = 0; c < p.channels; ++c)
    for (int ki = 0; ki < k; ++ki)
      for (int kj = 0; kj < k; ++kj) {
        int y0, y1, x0, x1;  // the grid points whose pixel lies inside the image
        valid_range(gh, p.image_h, s, ki - pad, y0, y1);
        valid_range(gw, iw, s, kj - pad, x0, x1);
        const bool inside = y0 == 0 && y1 == gh && x0 == 0 && x1 == gw;
        T* row = col + (static_cast<std::size_t>(c * k + ki) * k + kj) * cols;
        for (int b = 0; b < p.batch; ++b) {
          const T* src = image + (static_cast<std::size_t>(b) * p.channels + c) * plane;
          T* dst = row + b * grid;
          if (inside) {  // grid point (0,0) reads pixel (ki - pad, kj - pad), both >= 0
            gather_block(src + (ki - pad) * iw + (kj - pad), gh, gw,
                         static_cast<std::ptrdiff_t>(s) * iw, s, dst);
            continue;
          }
          std::fill(dst, dst + static_cast<std::size_t>(y0) * gw, T(0));
          for (int gy = y0; gy < y1; ++gy) {
            T* out = dst + static_cast<std::size_t>(gy) * gw;
            // src[base + gx*s] is pixel (gy*s - pad + ki, gx*s - pad + kj)
            const std::ptrdiff_t base =
                static_cast<std::ptrdiff_t>(gy * s + ki - pad) * iw + kj - pad;
            for (int gx = 0; gx < x0; ++gx) out[gx] = T(0);
            for (int gx = x0; gx < x1; ++gx) out[gx] = src[base + gx * s];
            for (int gx = x1; gx < gw; ++gx) out[gx] = T(0);
          }
          std::fill(dst + static_cast<std::size_t>(y1) * gw, dst + grid, T(0));
        }
      }
}

// image (B,C,IH,IW) = sum over patches of col (C*k*k, B*GH*GW); overwrites image. Entries that
// fall outside the image are dropped; pixels no patch touches are 0.
template <class T> void col2im(const Patches& p, const T* col, T* image) {
  const int gh = p.grid_h, gw = p.grid_w, iw = p.image_w, pad = p.padding;
  const int k = p.kernel, s = p.stride;
  const std::size_t plane = static_cast<std::size_t>(p.image_h) * iw;
  const std::size_t grid = static_cast<std::size_t>(gh) * gw;
  const std::size_t cols = static_cast<std::size_t>(p.cols());
  std::fill(image, image + plane * p.batch * p.channels, T(0));
  for (int c = 0; c < p.channels; ++c)
    for (int ki = 0; ki < k; ++ki)
      for (int kj = 0; kj < k; ++kj) {
        int y0, y1, x0, x1;
        valid_range(gh, p.image_h, s, ki - pad, y0, y1);
        valid_range(gw, iw, s, kj - pad, x0, x1);
        const bool inside = y0 == 0 && y1 == gh && x0 == 0 && x1 == gw;
        const T* row = col + (static_cast<std::size_t>(c * k + ki) * k + kj) * cols;
        for (int b = 0; b < p.batch; ++b) {
          T* dst = image + (static_cast<std::size_t>(b) * p.channels + c) * plane;
          const T* src = row + b * grid;
          if (inside) {
            scatter_add_block(src, gh, gw, static_cast<std::ptrdiff_t>(s) * iw, s,
                              dst + (ki - pad) * iw + (kj - pad));
            continue;
          }
          for (int gy = y0; gy < y1; ++gy) {
            const T* line = src + static_cast<std::size_t>(gy) * gw;
            const std::ptrdiff_t base =
                static_cast<std::ptrdiff_t>(gy * s + ki - pad) * iw + kj - pad;
            for (int gx = x0; gx < x1; ++gx) dst[base + gx * s] += line[gx];
          }
        }
      }
}

// dst (C, B*HW) <- src (B,C,HW)
template <class T> void to_channel_major(int batch, int channels, int hw, const T* src, T* dst) {
  for (int b = 0; b < batch; ++b)
    for (int c = 0; c < channels; ++c)
      std::copy(src + (static_cast<std::size_t>(b) * channels + c) * hw,
                src + (static_cast<std::size_t>(b) * channels + c + 1) * hw,
                dst + (static_cast<std::size_t>(c) * batch + b) * hw);
}

// dst (B,C,HW) <- src (C, B*HW) + bias (C) (bias may be null)
template <class T>
void to_batch_major(int batch, int channels, int hw, const T* src, const T* bias, T* dst) {
  for (int b = 0; b < batch; ++b)
    for (int c = 0; c < channels; ++c) {
      const T* in = src + (static_cast<std::size_t>(c) * batch + b) * hw;
      T* out = dst + (static_cast<std::size_t>(b) * channels + c) * hw;
      const T add = bias != nullptr ? bias[c] : T(0);
      for (int i = 0; i < hw; ++i) out[i] = in[i] + add;
    }
}

// y (B,C,HW) += bias (C)
template <class T> void add_bias(int batch, int channels, int hw, const T* bias, T* y) {
  for (int b = 0; b < batch; ++b)
    for (int c = 0; c < channels; ++c) {
      T* out = y + (static_cast<std::size_t>(b) * channels + c) * hw;
      for (int i = 0; i < hw; ++i) out[i] += bias[c];
    }
}

using namespace op_checks;  // fail, require, check_* (models/op_checks.h)

// The limit BLAS adds to a convolution's checks: its matrices' 32-bit sizes.
void check_blas_sizes(const char* op, const ConvGeometry& g) {
  const long long big = std::max(static_cast<long long>(g.out_h()) * g.out_w(),
                                 static_cast<long long>(g.in_h) * g.in_w);
  const long long rows = static_cast<long long>(std::max(g.in_channels, g.out_channels)) *
                         g.kernel * g.kernel;
  if (big * g.batch > INT_MAX || rows > INT_MAX) fail(op, "too large for 32-bit BLAS sizes");
}

// Conv2d reads its input x (B,Cin,H,W) on the output grid.
Patches input_patches(const ConvGeometry& g) {
  return {g.batch, g.in_channels, g.in_h, g.in_w, g.out_h(), g.out_w(),
          g.kernel, g.stride, g.padding};
}
// ConvTranspose2d writes its output y (B,Cout,Ho,Wo) on the input grid.
Patches output_patches(const ConvGeometry& g) {
  return {g.batch, g.out_channels, g.out_h(), g.out_w(), g.in_h, g.in_w,
          g.kernel, g.stride, g.padding};
}

// The batch is cut into tasks of kImagesPerTask consecutive images, whatever the thread count.
// A task's im2col matrix (5 images of the 16->32 convolution: 144 x 605 floats, 350 KB) stays in
// its core's L2 cache, where the whole batch's (7 MB) would not, and BLAS is as fast on its 605
// columns as on the batch's 12,100.
constexpr int kImagesPerTask = 5;

struct Chunks {
  int batch;
  int tasks() const { return (batch + kImagesPerTask - 1) / kImagesPerTask; }
  int first(int task) const { return task * kImagesPerTask; }
  int count(int task) const { return std::min(kImagesPerTask, batch - first(task)); }
};

// The same patches over `count` images only.
Patches chunk_of(Patches p, int count) {
  p.batch = count;
  return p;
}

// out (n) = sum over tasks of partials (tasks, n), added in task order.
template <class T> void sum_partials(int tasks, std::size_t n, const T* partials, T* out) {
  std::copy(partials, partials + n, out);
  for (int t = 1; t < tasks; ++t)
    for (std::size_t i = 0; i < n; ++i) out[i] += partials[static_cast<std::size_t>(t) * n + i];
}

// Bias gradient in two steps, so that its summation order is fixed by the batch alone (and is
// that of one serial loop): plane_sums (B,C) = the sum of each (H,W) plane of dy, in double
// (tasks fill their own images); then db (C) = sum over the batch of plane_sums, in image order.
template <class T>
void plane_sums(int first, int count, int channels, std::size_t hw, const T* dy, double* sums) {
  for (int b = first; b < first + count; ++b)
    for (int c = 0; c < channels; ++c) {
      const std::size_t plane = static_cast<std::size_t>(b) * channels + c;
      sums[plane] = sum_in_double(dy + plane * hw, hw);
    }
}
template <class T> void bias_from_plane_sums(int batch, int channels, const double* sums, T* db) {
  for (int c = 0; c < channels; ++c) {
    double sum = 0.0;
    for (int b = 0; b < batch; ++b) sum += sums[static_cast<std::size_t>(b) * channels + c];
    db[c] = static_cast<T>(sum);
  }
}

// True in BF16 mode (models/precision.h); throws for TF32, which the CPU does not have.
bool bf16_mode(const char* op, Precision precision) {
  if (precision == Precision::TF32)
    throw std::invalid_argument(std::string(op) + ": the CPU reference has no TF32 (precision fp32 or bf16)");
  return precision == Precision::BF16;
}

// w (n) rounded to bfloat16 into scratch slot 3 in BF16 mode, else w itself.
template <class T> const T* operand_weights(bool bf16, const T* w, std::size_t n, Scratch<T>& scratch) {
  if (!bf16 || w == nullptr) return w;
  return rounded_to_bf16(w, n, scratch.get(3, n));
}

// The parameter gradients of a backward pass, summed in a fixed order whatever the threads: each
// task's dw (tasks, weights) in scratch slot 2 and each image's bias plane sums (batch, channels);
// finish() adds the tasks' dw in task order (rounded once in BF16 mode) and the planes into db.
template <class T> struct ParamGradSums {
  ParamGradSums(Scratch<T>& scratch, int tasks, std::size_t weights, int batch, int channels, T* dw, T* db)
      : tasks(tasks), weights(weights), batch(batch), channels(channels), dw(dw), db(db) {
    if (dw != nullptr) dw_tasks = scratch.get(2, static_cast<std::size_t>(tasks) * weights);
    if (db != nullptr) sums = scratch.get_double(static_cast<std::size_t>(batch) * channels);
  }
  T* dw_of(int task) const { return dw_tasks + static_cast<std::size_t>(task) * weights; }
  void finish(bool bf16) const {
    if (db != nullptr) bias_from_plane_sums(batch, channels, sums, db);
    if (dw != nullptr) {
      sum_partials(tasks, weights, dw_tasks, dw);
      if (bf16) round_to_bf16_in_place(dw, weights);
    }
  }
  int tasks;
  std::size_t weights;
  int batch, channels;
  T *dw, *db;
  T* dw_tasks = nullptr;
  double* sums = nullptr;
};

// What both convolution backward passes set up, per task of `chunks`: on each pool thread a patch
// matrix (K, max_n) and a channel-major matrix (channels, max_n), max_n = kImagesPerTask * hw the
// columns of a task; the per-task parameter-gradient sums over the weights, channels * K of them
// (the weight tensor's size in both passes); the weights as the input gradient's
// GEMM operand (BF16: rounded), when there is an input gradient.
template <class T> struct BackwardBuffers {
  BackwardBuffers(const char* op, const ConvGeometry& g, int K, int channels, int hw, const T* w, T* dx,
                  T* dw, T* db, Scratch<T>& scratch, TaskPool& pool, Precision precision)
      : K(K), channels(channels), max_n(static_cast<std::size_t>(kImagesPerTask) * hw),
        weights(static_cast<std::size_t>(channels) * K),
        chunks{g.batch}, patches(scratch.get(0, pool.threads() * K * max_n)),
        channel_major(scratch.get(1, pool.threads() * channels * max_n)),
        grads(scratch, chunks.tasks(), weights, g.batch, g.out_channels, dw, db),
        bf16(bf16_mode(op, precision)),
        weights_operand(dx != nullptr ? operand_weights(bf16, w, weights, scratch) : w) {}
  T* patch_matrix(int thread) const { return patches + thread * K * max_n; }
  T* channel_major_matrix(int thread) const { return channel_major + thread * channels * max_n; }
  int K, channels;
  std::size_t max_n, weights;
  Chunks chunks;
  T *patches, *channel_major;
  ParamGradSums<T> grads;
  bool bf16;
  const T* weights_operand;
};

}  // namespace

// Per task: col (Cin*k*k, n) = im2col(x); then per image y (Cout, Ho*Wo) = b (the GEMM's
// starting value, beta 1) + w col[:, the image's columns], written in place in (B,Cout,Ho,Wo).
template <class T>
void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y,
                    Scratch<T>& scratch, TaskPool& pool, Precision precision) {
  const char* op = "conv2d_forward";
  check_conv_forward(op, g, false, x, w, y);
  check_blas_sizes(op, g);
  const Patches p = input_patches(g);
  const Chunks chunks{g.batch};
  const int K = p.rows(), Cout = g.out_channels, hw = g.out_h() * g.out_w();
  const std::size_t in_image = static_cast<std::size_t>(g.in_channels) * g.in_h * g.in_w;
  const std::size_t out_image = static_cast<std::size_t>(Cout) * hw;
  const std::size_t max_n = static_cast<std::size_t>(kImagesPerTask) * hw;  // columns of a task
  const int threads = pool.threads();  // any thread may run any task: a slice for each
  T* cols = scratch.get(0, threads * K * max_n);
  const bool bf16 = bf16_mode(op, precision);
  const T* wk = operand_weights(bf16, w, g.weight_count(), scratch);
  pool.run(chunks.tasks(), [&](int task, int thread) {
    const int first = chunks.first(task), count = chunks.count(task), n = count * hw;
    T* col = cols + thread * K * max_n;
    im2col(chunk_of(p, count), x + first * in_image, col);
    if (bf16) {  // y = bf16(w col) + b: the product rounded, then the bias added
      round_to_bf16_in_place(col, static_cast<std::size_t>(K) * n);
      for (int i = 0; i < count; ++i) {
        T* out = y + (first + i) * out_image;
        gemm(false, false, Cout, hw, K, T(1), wk, K, col + i * hw, n, T(0), out, hw);
        round_to_bf16_in_place(out, out_image);
        if (b != nullptr) add_bias(1, Cout, hw, b, out);
      }
      return;
    }
    for (int i = 0; i < count; ++i) {
      T* out = y + (first + i) * out_image;
      for (int c = 0; c < Cout; ++c)
        std::fill(out + c * hw, out + (c + 1) * hw, b != nullptr ? b[c] : T(0));
      gemm(false, false, Cout, hw, K, T(1), w, K, col + i * hw, n, T(1), out, hw);
    }
  });
}

// Per task: dy_cm (Cout, n) = dy in channel-major order; dw_task = dy_cm im2col(x)^T;
// dcol = w^T dy_cm, dx = col2im(dcol). dw = the sum of the tasks' dw_task, in task order.
template <class T>
void conv2d_backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dx, T* dw,
                     T* db, Scratch<T>& scratch, TaskPool& pool, Precision precision) {
  const char* op = "conv2d_backward";
  check_conv_backward(op, g, false, x, w, dy, dx, dw);
  check_blas_sizes(op, g);
  const Patches p = input_patches(g);
  const int K = p.rows(), Cout = g.out_channels, hw = g.out_h() * g.out_w();
  const std::size_t in_image = static_cast<std::size_t>(g.in_channels) * g.in_h * g.in_w;
  const std::size_t out_image = static_cast<std::size_t>(Cout) * hw;
  // BF16: dy, x (through col) and w rounded; dx rounded per chunk, dw once summed (db unrounded).
  const BackwardBuffers<T> buffers(op, g, K, Cout, hw, w, dx, dw, db, scratch, pool, precision);
  const auto& grads = buffers.grads;
  const bool bf16 = buffers.bf16;
  pool.run(buffers.chunks.tasks(), [&](int task, int thread) {
    const int first = buffers.chunks.first(task), count = buffers.chunks.count(task), n = count * hw;
    if (db != nullptr) plane_sums(first, count, Cout, hw, dy, grads.sums);
    if (dw == nullptr && dx == nullptr) return;
    T* col = buffers.patch_matrix(thread);
    T* dy_cm = buffers.channel_major_matrix(thread);  // (Cout, n)
    to_channel_major(count, Cout, hw, dy + first * out_image, dy_cm);
    if (bf16) round_to_bf16_in_place(dy_cm, static_cast<std::size_t>(Cout) * n);
    if (dw != nullptr) {
      im2col(chunk_of(p, count), x + first * in_image, col);
      if (bf16) round_to_bf16_in_place(col, static_cast<std::size_t>(K) * n);
      gemm(false, true, Cout, K, n, T(1), dy_cm, n, col, n, T(0), grads.dw_of(task), K);
    }
    if (dx != nullptr) {
      gemm(true, false, K, n, Cout, T(1), buffers.weights_operand, K, dy_cm, n, T(0), col, n);  // dcol = w^T dy_cm
      col2im(chunk_of(p, count), col, dx + first * in_image);
      if (bf16) round_to_bf16_in_place(dx + first * in_image, count * in_image);
    }
  });
  grads.finish(bf16);
}

// Per task: x_cm (Cin, n) = x in channel-major order; col (Cout*k*k, n) = w^T x_cm;
// y = col2im(col) + b.
template <class T>
void conv_transpose2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y,
                              Scratch<T>& scratch, TaskPool& pool, Precision precision) {
  const char* op = "conv_transpose2d_forward";
  check_conv_forward(op, g, true, x, w, y);
  check_blas_sizes(op, g);
  const Patches p = output_patches(g);
  const Chunks chunks{g.batch};
  const int K = p.rows(), Cin = g.in_channels, hw = g.in_h * g.in_w;
  const int out_hw = g.out_h() * g.out_w();
  const std::size_t in_image = static_cast<std::size_t>(Cin) * hw;
  const std::size_t out_image = static_cast<std::size_t>(g.out_channels) * out_hw;
  const std::size_t max_n = static_cast<std::size_t>(kImagesPerTask) * hw;
  const int threads = pool.threads();  // any thread may run any task: a slice for each
  T* cols = scratch.get(0, threads * K * max_n);
  T* x_cms = scratch.get(1, threads * Cin * max_n);
  const bool bf16 = bf16_mode(op, precision);  // BF16: x and w rounded, y = bf16(col2im) + b
  const T* wk = operand_weights(bf16, w, g.weight_count(), scratch);
  pool.run(chunks.tasks(), [&](int task, int thread) {
    const int first = chunks.first(task), count = chunks.count(task), n = count * hw;
    T* col = cols + thread * K * max_n;
    T* x_cm = x_cms + thread * Cin * max_n;  // (Cin, n)
    to_channel_major(count, Cin, hw, x + first * in_image, x_cm);
    if (bf16) round_to_bf16_in_place(x_cm, static_cast<std::size_t>(Cin) * n);
    gemm(true, false, K, n, Cin, T(1), wk, K, x_cm, n, T(0), col, n);  // col = w^T x_cm
    T* out = y + first * out_image;
    col2im(chunk_of(p, count), col, out);  // output_padding rows/cols receive nothing but the bias
    if (bf16) round_to_bf16_in_place(out, count * out_image);
    if (b != nullptr) add_bias(count, g.out_channels, out_hw, b, out);
  });
}

// Per task: dcol (Cout*k*k, n) = im2col(dy); dw_task = x_cm dcol^T; dx = w dcol in (B,Cin,H,W).
template <class T>
void conv_transpose2d_backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dx,
                               T* dw, T* db, Scratch<T>& scratch, TaskPool& pool,
                               Precision precision) {
  const char* op = "conv_transpose2d_backward";
  check_conv_backward(op, g, true, x, w, dy, dx, dw);
  check_blas_sizes(op, g);
  const Patches p = output_patches(g);
  const int K = p.rows(), Cin = g.in_channels, Cout = g.out_channels, hw = g.in_h * g.in_w;
  const int out_hw = g.out_h() * g.out_w();
  const std::size_t in_image = static_cast<std::size_t>(Cin) * hw;
  const std::size_t out_image = static_cast<std::size_t>(Cout) * out_hw;
  // BF16: dy (through dcol), x and w rounded; dx rounded per chunk, dw once summed.
  const BackwardBuffers<T> buffers(op, g, K, Cin, hw, w, dx, dw, db, scratch, pool, precision);
  const auto& grads = buffers.grads;
  const bool bf16 = buffers.bf16;
  pool.run(buffers.chunks.tasks(), [&](int task, int thread) {
    const int first = buffers.chunks.first(task), count = buffers.chunks.count(task), n = count * hw;
    if (db != nullptr) plane_sums(first, count, Cout, out_hw, dy, grads.sums);
    if (dw == nullptr && dx == nullptr) return;
    T* dcol = buffers.patch_matrix(thread);       // (Cout*k*k, n)
    T* buf = buffers.channel_major_matrix(thread);  // (Cin, n)
    im2col(chunk_of(p, count), dy + first * out_image, dcol);
    if (bf16) round_to_bf16_in_place(dcol, static_cast<std::size_t>(K) * n);
    if (dw != nullptr) {
      to_channel_major(count, Cin, hw, x + first * in_image, buf);
      if (bf16) round_to_bf16_in_place(buf, static_cast<std::size_t>(Cin) * n);
      gemm(false, true, Cin, K, n, T(1), buf, n, dcol, n, T(0), grads.dw_of(task), K);
    }
    if (dx != nullptr) {
      gemm(false, false, Cin, n, K, T(1), buffers.weights_operand, K, dcol, n, T(0), buf, n);  // dx_cm = w dcol
      if (bf16) round_to_bf16_in_place(buf, static_cast<std::size_t>(Cin) * n);
      to_batch_major(count, Cin, hw, buf, static_cast<const T*>(nullptr), dx + first * in_image);
    }
  });
  grads.finish(bf16);
}

#define FMNIST_INSTANTIATE_CONV(T)                                                                \
  template void conv2d_forward<T>(const ConvGeometry&, const T*, const T*, const T*, T*,          \
                                  Scratch<T>&, TaskPool&, Precision);                             \
  template void conv2d_backward<T>(const ConvGeometry&, const T*, const T*, const T*, T*, T*, T*, \
                                   Scratch<T>&, TaskPool&, Precision);                            \
  template void conv_transpose2d_forward<T>(const ConvGeometry&, const T*, const T*, const T*,    \
                                            T*, Scratch<T>&, TaskPool&, Precision);               \
  template void conv_transpose2d_backward<T>(const ConvGeometry&, const T*, const T*, const T*,   \
                                             T*, T*, T*, Scratch<T>&, TaskPool&, Precision);
FMNIST_INSTANTIATE_CONV(float)
FMNIST_INSTANTIATE_CONV(double)
#undef FMNIST_INSTANTIATE_CONV

}  // namespace fmnist::reference
