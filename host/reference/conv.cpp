// Conv2d and ConvTranspose2d on the CPU. The whole batch is unfolded (im2col) into one
// (C*k*k, B*grid) matrix, so each of forward, input gradient and weight gradient is ONE GEMM:
// deterministic, with no per-thread partial sums. A ConvTranspose2d is a Conv2d run backwards.
#include "conv.h"

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>

#include "gemm.h"
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

// col (C*k*k, B*GH*GW) <- image (B,C,IH,IW); pixels outside the image read as 0.
template <class T> void im2col(const Patches& p, const T* image, T* col) {
  const std::size_t plane = static_cast<std::size_t>(p.image_h) * p.image_w;
  const std::size_t grid = static_cast<std::size_t>(p.grid_h) * p.grid_w;
  const int k = p.kernel, s = p.stride;
  for (int c = 0; c < p.channels; ++c)
    for (int ki = 0; ki < k; ++ki)
      for (int kj = 0; kj < k; ++kj) {
        int y0, y1, x0, x1;
        valid_range(p.grid_h, p.image_h, s, ki - p.padding, y0, y1);
        valid_range(p.grid_w, p.image_w, s, kj - p.padding, x0, x1);
        T* row = col + (static_cast<std::size_t>(c * k + ki) * k + kj) * p.cols();
        for (int b = 0; b < p.batch; ++b) {
          const T* src = image + (static_cast<std::size_t>(b) * p.channels + c) * plane;
          T* dst = row + b * grid;
          for (int gy = 0; gy < p.grid_h; ++gy, dst += p.grid_w) {
            if (gy < y0 || gy >= y1) {
              std::fill(dst, dst + p.grid_w, T(0));
              continue;
            }
            // src[base + gx*s] is pixel (gy*s - p + ki, gx*s - p + kj)
            const std::ptrdiff_t base =
                static_cast<std::ptrdiff_t>(gy * s + ki - p.padding) * p.image_w + kj - p.padding;
            for (int gx = 0; gx < x0; ++gx) dst[gx] = T(0);
            if (s == 1)  // contiguous: a loop the compiler vectorizes
              for (int gx = x0; gx < x1; ++gx) dst[gx] = src[base + gx];
            else
              for (int gx = x0; gx < x1; ++gx) dst[gx] = src[base + gx * s];
            for (int gx = x1; gx < p.grid_w; ++gx) dst[gx] = T(0);
          }
        }
      }
}

// image (B,C,IH,IW) = sum over patches of col (C*k*k, B*GH*GW); overwrites image. Entries that
// fall outside the image are dropped; pixels no patch touches are 0.
template <class T> void col2im(const Patches& p, const T* col, T* image) {
  const std::size_t plane = static_cast<std::size_t>(p.image_h) * p.image_w;
  const std::size_t grid = static_cast<std::size_t>(p.grid_h) * p.grid_w;
  const int k = p.kernel, s = p.stride;
  std::fill(image, image + plane * p.batch * p.channels, T(0));
  for (int c = 0; c < p.channels; ++c)
    for (int ki = 0; ki < k; ++ki)
      for (int kj = 0; kj < k; ++kj) {
        int y0, y1, x0, x1;
        valid_range(p.grid_h, p.image_h, s, ki - p.padding, y0, y1);
        valid_range(p.grid_w, p.image_w, s, kj - p.padding, x0, x1);
        const T* row = col + (static_cast<std::size_t>(c * k + ki) * k + kj) * p.cols();
        for (int b = 0; b < p.batch; ++b) {
          T* dst = image + (static_cast<std::size_t>(b) * p.channels + c) * plane;
          const T* src = row + b * grid;
          for (int gy = y0; gy < y1; ++gy) {
            const T* line = src + static_cast<std::size_t>(gy) * p.grid_w;
            const std::ptrdiff_t base =
                static_cast<std::ptrdiff_t>(gy * s + ki - p.padding) * p.image_w + kj - p.padding;
            if (s == 1)
              for (int gx = x0; gx < x1; ++gx) dst[base + gx] += line[gx];
            else
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

// db (C) = sum over batch and plane of dy (B,C,HW), summed in double in a fixed order.
template <class T> void bias_grad(int batch, int channels, int hw, const T* dy, T* db) {
  for (int c = 0; c < channels; ++c) {
    double sum = 0.0;
    for (int b = 0; b < batch; ++b)
      sum += sum_in_double(dy + (static_cast<std::size_t>(b) * channels + c) * hw, hw);
    db[c] = static_cast<T>(sum);
  }
}

[[noreturn]] void fail(const char* op, const std::string& what) {
  throw std::invalid_argument(std::string(op) + ": " + what);
}

void require_positive(const char* op, const char* field, int value) {
  if (value <= 0) fail(op, std::string(field) + " must be positive (got " + std::to_string(value) + ")");
}

template <class P> void require(const char* op, const char* name, P pointer) {
  if (pointer == nullptr) fail(op, std::string(name) + " is null");
}

void check_geometry(const char* op, const ConvGeometry& g, bool transposed) {
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

}  // namespace

template <class T>
void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y,
                    Scratch<T>& scratch) {
  const char* op = "conv2d_forward";
  check_geometry(op, g, false);
  require(op, "x", x);
  require(op, "w", w);
  require(op, "y", y);
  const Patches p = input_patches(g);
  const int K = p.rows(), N = p.cols(), Cout = g.out_channels;
  T* col = scratch.get(0, static_cast<std::size_t>(K) * N);  // (Cin*k*k, B*Ho*Wo)
  im2col(p, x, col);
  T* out = scratch.get(1, static_cast<std::size_t>(Cout) * N);  // (Cout, B*Ho*Wo)
  gemm(false, false, Cout, N, K, T(1), w, K, col, N, T(0), out, N);
  to_batch_major(g.batch, Cout, g.out_h() * g.out_w(), out, b, y);
}

template <class T>
void conv2d_backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dx, T* dw,
                     T* db, Scratch<T>& scratch) {
  const char* op = "conv2d_backward";
  check_geometry(op, g, false);
  require(op, "dy", dy);
  if (dw != nullptr) require(op, "x (needed for dw)", x);
  if (dx != nullptr) require(op, "w (needed for dx)", w);
  const Patches p = input_patches(g);
  const int K = p.rows(), N = p.cols(), Cout = g.out_channels, hw = g.out_h() * g.out_w();
  if (db != nullptr) bias_grad(g.batch, Cout, hw, dy, db);
  if (dw == nullptr && dx == nullptr) return;
  T* dy_cm = scratch.get(1, static_cast<std::size_t>(Cout) * N);  // (Cout, B*Ho*Wo)
  to_channel_major(g.batch, Cout, hw, dy, dy_cm);
  T* col = scratch.get(0, static_cast<std::size_t>(K) * N);  // (Cin*k*k, B*Ho*Wo)
  if (dw != nullptr) {
    im2col(p, x, col);
    gemm(false, true, Cout, K, N, T(1), dy_cm, N, col, N, T(0), dw, K);  // dw = dy_cm col^T
  }
  if (dx != nullptr) {
    gemm(true, false, K, N, Cout, T(1), w, K, dy_cm, N, T(0), col, N);  // dcol = w^T dy_cm
    col2im(p, col, dx);
  }
}

template <class T>
void conv_transpose2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y,
                              Scratch<T>& scratch) {
  const char* op = "conv_transpose2d_forward";
  check_geometry(op, g, true);
  require(op, "x", x);
  require(op, "w", w);
  require(op, "y", y);
  const Patches p = output_patches(g);
  const int K = p.rows(), N = p.cols(), Cin = g.in_channels;
  T* x_cm = scratch.get(1, static_cast<std::size_t>(Cin) * N);  // (Cin, B*H*W)
  to_channel_major(g.batch, Cin, g.in_h * g.in_w, x, x_cm);
  T* col = scratch.get(0, static_cast<std::size_t>(K) * N);  // (Cout*k*k, B*H*W)
  gemm(true, false, K, N, Cin, T(1), w, K, x_cm, N, T(0), col, N);  // col = w^T x_cm
  col2im(p, col, y);  // output_padding rows/cols receive nothing but the bias
  if (b != nullptr) add_bias(g.batch, g.out_channels, g.out_h() * g.out_w(), b, y);
}

template <class T>
void conv_transpose2d_backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dx,
                               T* dw, T* db, Scratch<T>& scratch) {
  const char* op = "conv_transpose2d_backward";
  check_geometry(op, g, true);
  require(op, "dy", dy);
  if (dw != nullptr) require(op, "x (needed for dw)", x);
  if (dx != nullptr) require(op, "w (needed for dx)", w);
  const Patches p = output_patches(g);
  const int K = p.rows(), N = p.cols(), Cin = g.in_channels, hw = g.in_h * g.in_w;
  if (db != nullptr) bias_grad(g.batch, g.out_channels, g.out_h() * g.out_w(), dy, db);
  if (dw == nullptr && dx == nullptr) return;
  T* dcol = scratch.get(0, static_cast<std::size_t>(K) * N);  // (Cout*k*k, B*H*W)
  im2col(p, dy, dcol);
  T* buf = scratch.get(1, static_cast<std::size_t>(Cin) * N);  // (Cin, B*H*W)
  if (dw != nullptr) {
    to_channel_major(g.batch, Cin, hw, x, buf);
    gemm(false, true, Cin, K, N, T(1), buf, N, dcol, N, T(0), dw, K);  // dw = x_cm dcol^T
  }
  if (dx != nullptr) {
    gemm(false, false, Cin, N, K, T(1), w, K, dcol, N, T(0), buf, N);  // dx_cm = w dcol
    to_batch_major(g.batch, Cin, hw, buf, static_cast<const T*>(nullptr), dx);
  }
}

#define FMNIST_INSTANTIATE_CONV(T)                                                               \
  template void conv2d_forward<T>(const ConvGeometry&, const T*, const T*, const T*, T*,         \
                                  Scratch<T>&);                                                  \
  template void conv2d_backward<T>(const ConvGeometry&, const T*, const T*, const T*, T*, T*, T*, \
                                   Scratch<T>&);                                                 \
  template void conv_transpose2d_forward<T>(const ConvGeometry&, const T*, const T*, const T*,   \
                                            T*, Scratch<T>&);                                    \
  template void conv_transpose2d_backward<T>(const ConvGeometry&, const T*, const T*, const T*,  \
                                             T*, T*, T*, Scratch<T>&);
FMNIST_INSTANTIATE_CONV(float)
FMNIST_INSTANTIATE_CONV(double)
#undef FMNIST_INSTANTIATE_CONV

}  // namespace fmnist::reference
