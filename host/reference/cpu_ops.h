// The CPU reference backend: every op of models/ops.h on host memory, in float or double.
// Convolutions and Linear go through BLAS (see conv.h, gemm.h); per-element math is elementwise.h's.
#pragma once

#include <memory>
#include <vector>

#include "host/reference/conv.h"
#include "host/reference/parallel.h"
#include "models/ops.h"

namespace fmnist {

// Results are bitwise deterministic run to run, and the same on any number of threads: work is
// cut into tasks fixed by the shapes alone and partial sums are added in task order (parallel.h);
// BLAS runs single-threaded inside the tasks. Loss values and bias gradients are summed in double
// (fixed order, sum.h); a loss is that sum divided by the count.
// A null bias b in a forward op means "no bias". Not thread-safe: one object per thread.
template <class T> class CpuOps final : public Ops<T> {
 public:
  // threads: how many threads the ops run on; 0 means reference::default_cpu_threads()
  // (FMNIST_CPU_THREADS, else the CPUs this process may use, at most 8). Also sets OpenBLAS to
  // one thread for the whole process: the ops parallelise around their BLAS calls.
  // precision: FP32 (the default) or BF16, the products rounded as models/precision.h defines
  // (CpuOps<float> only; bitwise deterministic alike). TF32, which the CPU does not have, and BF16
  // for CpuOps<double> throw std::invalid_argument.
  explicit CpuOps(int threads = 0, Precision precision = Precision::FP32);
  int threads() const { return pool_.threads(); }

  std::string name() const override {
    return precision_ == Precision::BF16 ? "cpu (BF16)" : "cpu";
  }
  std::string software() const override;  // OpenBLAS's build: the kernels it picks for this CPU
  Precision precision() const override { return precision_; }
  bool computes_on_host() const override { return true; }

  void* allocate(std::size_t bytes) override;  // zeroed, 64-byte aligned; never null
  void deallocate(void* ptr) noexcept override;
  void copy_to_device(void* dst, const void* host_src, std::size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, std::size_t bytes) override;
  void copy(void* dst, const void* src, std::size_t bytes) override;
  void fill(T* dst, T value, std::size_t n) override;
  void synchronize() override {}

  void images_to_float(std::size_t n, const std::uint8_t* pixels, T* x) override;

  void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y) override;
  void conv2d_backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dx, T* dw,
                       T* db) override;
  void conv_transpose2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* b,
                                T* y) override;
  void conv_transpose2d_backward(const ConvGeometry& g, const T* x, const T* w, const T* dy,
                                 T* dx, T* dw, T* db) override;
  void maxpool2d_forward(const PoolGeometry& g, const T* x, T* y, std::int32_t* argmax) override;
  void maxpool2d_backward(const PoolGeometry& g, const T* dy, const std::int32_t* argmax,
                          T* dx) override;
  void linear_forward(const LinearGeometry& g, const T* x, const T* w, const T* b, T* y) override;
  void linear_backward(const LinearGeometry& g, const T* x, const T* w, const T* dy, T* dx, T* dw,
                       T* db) override;

  void relu_forward(std::size_t n, const T* x, T* y) override;
  void relu_backward(std::size_t n, const T* y, const T* dy, T* dx) override;
  void sigmoid_forward(std::size_t n, const T* x, T* y) override;
  void sigmoid_backward(std::size_t n, const T* y, const T* dy, T* dx) override;
  void dropout_forward(std::size_t n, float p, std::uint64_t seed, std::uint64_t step,
                       std::uint32_t layer, const T* x, T* y) override;
  void dropout_backward(std::size_t n, float p, std::uint64_t seed, std::uint64_t step,
                        std::uint32_t layer, const T* dy, T* dx) override;

  void l1_loss(std::size_t n, const T* pred, const T* target, T* dpred, T* loss,
               double* loss_sum) override;
  void mse_loss(std::size_t n, const T* pred, const T* target, T* dpred, T* loss,
                double* loss_sum) override;
  void softmax_cross_entropy(int batch, int classes, const T* scores, const std::uint8_t* labels,
                             T* dscores, T* loss, double* loss_sum) override;
  void count_predictions(int batch, int classes, const T* scores, const std::uint8_t* labels,
                         std::int64_t* confusion) override;

  void adam_update(std::size_t n, T* params, const T* grads, T* m, T* v,
                   const elementwise::AdamStep<T>& step) override;

 private:
  reference::TaskPool pool_;
  Precision precision_ = Precision::FP32;
  reference::Scratch<T> scratch_;  // im2col buffers, partial sums and loss terms, grown on demand
};

extern template class CpuOps<float>;
extern template class CpuOps<double>;

// The float CPU backend, as the executor takes it (precision: FP32 or BF16, see CpuOps).
std::unique_ptr<Ops<float>> make_cpu_ops(Precision precision = Precision::FP32);

}  // namespace fmnist
