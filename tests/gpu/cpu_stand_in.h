// A stand-in for the GPU backend, to run fmnist_gpu_tests on a machine without one
// (FMNIST_GPU_TESTS_ON_CPU=1): a self-test of the test code and of its tolerances. It is an
// Ops<float> on host memory that computes convolutions and Linear layers in double precision and
// rounds the results to float (so its results differ from CpuOps<float> by FP32 rounding, as
// cuDNN's and cuBLAS's summation orders do), and everything else exactly as CpuOps<float>.
// It says nothing about the CUDA backend itself.
// In BF16 mode (models/precision.h) its convolutions and Linear products read bfloat16-rounded
// operands, are summed in double and rounded to bfloat16 (through float), biases added after.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "host/reference/cpu_ops.h"
#include "models/ops.h"

namespace fmnist::gputest {

class CpuStandIn final : public Ops<float> {
 public:
  explicit CpuStandIn(Precision precision = Precision::FP32) : bf16_(precision == Precision::BF16) {}
  std::string name() const override { return bf16_ ? "cuda:cpu-stand-in (BF16)" : "cuda:cpu-stand-in"; }
  Precision precision() const override { return bf16_ ? Precision::BF16 : Precision::FP32; }

  void* allocate(std::size_t bytes) override { return f_.allocate(bytes); }
  void deallocate(void* ptr) noexcept override { f_.deallocate(ptr); }
  void copy_to_device(void* dst, const void* src, std::size_t bytes) override {
    f_.copy_to_device(dst, src, bytes);
  }
  void copy_to_host(void* dst, const void* src, std::size_t bytes) override {
    f_.copy_to_host(dst, src, bytes);
  }
  void copy(void* dst, const void* src, std::size_t bytes) override { f_.copy(dst, src, bytes); }
  void fill(float* dst, float value, std::size_t n) override { f_.fill(dst, value, n); }
  void synchronize() override {}
  void images_to_float(std::size_t n, const std::uint8_t* pixels, float* x) override {
    f_.images_to_float(n, pixels, x);
  }

  void conv2d_forward(const ConvGeometry& g, const float* x, const float* w, const float* b,
                      float* y) override {
    auto xd = op(x, g.in_count()), wd = op(w, g.weight_count()), bd = in(b, g.out_channels);
    std::vector<double> yd(g.out_count());
    d_.conv2d_forward(g, xd.data(), wd.data(), b && !bf16_ ? bd.data() : nullptr, yd.data());
    out(yd, y);
    if (bf16_ && b) add_bias(y, b, g.out_count(), g.out_channels, std::size_t(g.out_h()) * g.out_w());
  }
  void conv2d_backward(const ConvGeometry& g, const float* x, const float* w, const float* dy,
                       float* dx, float* dw, float* db) override {
    auto xd = op(x, g.in_count()), wd = op(w, g.weight_count()), dyd = op(dy, g.out_count());
    std::vector<double> dxd(g.in_count()), dwd(g.weight_count()), dbd(g.out_channels);
    d_.conv2d_backward(g, x ? xd.data() : nullptr, w ? wd.data() : nullptr, dyd.data(),
                       dx ? dxd.data() : nullptr, dw ? dwd.data() : nullptr, nullptr);
    if (db) d_.conv2d_backward(g, nullptr, nullptr, in(dy, g.out_count()).data(), nullptr, nullptr, dbd.data());
    out(dxd, dx);
    out(dwd, dw);
    exact(dbd, db);
  }
  void conv_transpose2d_forward(const ConvGeometry& g, const float* x, const float* w,
                                const float* b, float* y) override {
    auto xd = op(x, g.in_count()), wd = op(w, g.weight_count()), bd = in(b, g.out_channels);
    std::vector<double> yd(g.out_count());
    d_.conv_transpose2d_forward(g, xd.data(), wd.data(), b && !bf16_ ? bd.data() : nullptr, yd.data());
    out(yd, y);
    if (bf16_ && b) add_bias(y, b, g.out_count(), g.out_channels, std::size_t(g.out_h()) * g.out_w());
  }
  void conv_transpose2d_backward(const ConvGeometry& g, const float* x, const float* w,
                                 const float* dy, float* dx, float* dw, float* db) override {
    auto xd = op(x, g.in_count()), wd = op(w, g.weight_count()), dyd = op(dy, g.out_count());
    std::vector<double> dxd(g.in_count()), dwd(g.weight_count()), dbd(g.out_channels);
    d_.conv_transpose2d_backward(g, x ? xd.data() : nullptr, w ? wd.data() : nullptr, dyd.data(),
                                 dx ? dxd.data() : nullptr, dw ? dwd.data() : nullptr, nullptr);
    if (db)
      d_.conv_transpose2d_backward(g, nullptr, nullptr, in(dy, g.out_count()).data(), nullptr,
                                   nullptr, dbd.data());
    out(dxd, dx);
    out(dwd, dw);
    exact(dbd, db);
  }
  void maxpool2d_forward(const PoolGeometry& g, const float* x, float* y,
                         std::int32_t* argmax) override {
    f_.maxpool2d_forward(g, x, y, argmax);
  }
  void maxpool2d_backward(const PoolGeometry& g, const float* dy, const std::int32_t* argmax,
                          float* dx) override {
    f_.maxpool2d_backward(g, dy, argmax, dx);
  }
  void linear_forward(const LinearGeometry& g, const float* x, const float* w, const float* b,
                      float* y) override {
    const std::size_t nx = std::size_t(g.batch) * g.in_features, ny = std::size_t(g.batch) * g.out_features,
                      nw = std::size_t(g.out_features) * g.in_features;
    auto xd = op(x, nx), wd = op(w, nw), bd = in(b, g.out_features);
    std::vector<double> yd(ny);
    d_.linear_forward(g, xd.data(), wd.data(), b && !bf16_ ? bd.data() : nullptr, yd.data());
    out(yd, y);
    if (bf16_ && b) add_bias(y, b, ny, g.out_features, 1);
  }
  void linear_backward(const LinearGeometry& g, const float* x, const float* w, const float* dy,
                       float* dx, float* dw, float* db) override {
    const std::size_t nx = std::size_t(g.batch) * g.in_features, ny = std::size_t(g.batch) * g.out_features,
                      nw = std::size_t(g.out_features) * g.in_features;
    auto xd = op(x, nx), wd = op(w, nw), dyd = op(dy, ny);
    std::vector<double> dxd(nx), dwd(nw), dbd(g.out_features);
    d_.linear_backward(g, x ? xd.data() : nullptr, w ? wd.data() : nullptr, dyd.data(),
                       dx ? dxd.data() : nullptr, dw ? dwd.data() : nullptr, nullptr);
    if (db) d_.linear_backward(g, nullptr, nullptr, in(dy, ny).data(), nullptr, nullptr, dbd.data());
    out(dxd, dx);
    out(dwd, dw);
    exact(dbd, db);
  }

  void relu_forward(std::size_t n, const float* x, float* y) override { f_.relu_forward(n, x, y); }
  void relu_backward(std::size_t n, const float* y, const float* dy, float* dx) override {
    f_.relu_backward(n, y, dy, dx);
  }
  void sigmoid_forward(std::size_t n, const float* x, float* y) override {
    f_.sigmoid_forward(n, x, y);
  }
  void sigmoid_backward(std::size_t n, const float* y, const float* dy, float* dx) override {
    f_.sigmoid_backward(n, y, dy, dx);
  }
  void dropout_forward(std::size_t n, float p, std::uint64_t seed, std::uint64_t step,
                       std::uint32_t layer, const float* x, float* y) override {
    f_.dropout_forward(n, p, seed, step, layer, x, y);
  }
  void dropout_backward(std::size_t n, float p, std::uint64_t seed, std::uint64_t step,
                        std::uint32_t layer, const float* dy, float* dx) override {
    f_.dropout_backward(n, p, seed, step, layer, dy, dx);
  }
  void l1_loss(std::size_t n, const float* pred, const float* target, float* dpred, float* loss,
               double* loss_sum) override {
    f_.l1_loss(n, pred, target, dpred, loss, loss_sum);
  }
  void mse_loss(std::size_t n, const float* pred, const float* target, float* dpred, float* loss,
                double* loss_sum) override {
    f_.mse_loss(n, pred, target, dpred, loss, loss_sum);
  }
  void softmax_cross_entropy(int batch, int classes, const float* scores,
                             const std::uint8_t* labels, float* dscores, float* loss,
                             double* loss_sum) override {
    f_.softmax_cross_entropy(batch, classes, scores, labels, dscores, loss, loss_sum);
  }
  void count_predictions(int batch, int classes, const float* scores, const std::uint8_t* labels,
                         std::int64_t* confusion) override {
    f_.count_predictions(batch, classes, scores, labels, confusion);
  }
  void adam_update(std::size_t n, float* params, const float* grads, float* m, float* v,
                   const elementwise::AdamStep<float>& step) override {
    f_.adam_update(n, params, grads, m, v, step);
  }

 private:
  static std::vector<double> in(const float* p, std::size_t n) {
    return p ? std::vector<double>(p, p + n) : std::vector<double>();
  }
  // A product's operand: as given, or rounded to bfloat16 in BF16 mode.
  std::vector<double> op(const float* p, std::size_t n) const {
    std::vector<double> v = in(p, n);
    if (bf16_)
      for (double& e : v) e = elementwise::round_to_bf16(static_cast<float>(e));
    return v;
  }
  // A product's result: to float, and to bfloat16 in BF16 mode.
  void out(const std::vector<double>& v, float* p) const {
    if (p == nullptr) return;
    for (std::size_t i = 0; i < v.size(); ++i) {
      p[i] = static_cast<float>(v[i]);
      if (bf16_) p[i] = elementwise::round_to_bf16(p[i]);
    }
  }
  // A sum that is no product (bias gradients): to float.
  static void exact(const std::vector<double>& v, float* p) {
    if (p == nullptr) return;
    for (std::size_t i = 0; i < v.size(); ++i) p[i] = static_cast<float>(v[i]);
  }
  // y (n) += b[(i / plane) % channels], in float.
  static void add_bias(float* y, const float* b, std::size_t n, int channels, std::size_t plane) {
    for (std::size_t i = 0; i < n; ++i) y[i] += b[(i / plane) % static_cast<std::size_t>(channels)];
  }

  bool bf16_ = false;
  CpuOps<float> f_;
  CpuOps<double> d_;
};

}  // namespace fmnist::gputest
