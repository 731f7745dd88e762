// Conv2d and ConvTranspose2d on the CPU, PyTorch semantics, as im2col/col2im plus BLAS GEMMs over
// fixed chunks of the batch, run on a TaskPool's threads (parallel.h: the results do not depend
// on the thread count). Also the scratch memory they reuse from step to step.
#pragma once

#include <cstddef>
#include <vector>

#include "host/reference/parallel.h"
#include "models/ops.h"

namespace fmnist::reference {

// Per-backend scratch buffers: slot i grows on demand and never shrinks, so steady-state steps
// do not allocate. Contents are undefined between calls. Buffers are taken before a
// TaskPool::run (never inside one), sized for every thread (each uses its own slice) or task.
template <class T> class Scratch {
 public:
  static constexpr int kSlots = 4;
  T* get(int slot, std::size_t n) { return grow(buffers_[slot], n); }
  double* get_double(std::size_t n) { return grow(doubles_, n); }

 private:
  template <class U> static U* grow(std::vector<U>& buffer, std::size_t n) {
    if (buffer.size() < n) buffer.resize(n);
    return buffer.data();
  }
  std::vector<T> buffers_[kSlots];
  std::vector<double> doubles_;
};

// Precision::BF16 rounds each GEMM's operands and each pass's result to bfloat16 as
// models/precision.h defines (float only; slot 3 holds the rounded weights); FP32 computes exactly
// what it always has. TF32 is refused (std::invalid_argument): the CPU has no TF32.

// x (B,Cin,H,W), w (Cout,Cin,k,k), b (Cout) or null -> y (B,Cout,Ho,Wo)
template <class T>
void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y,
                    Scratch<T>& scratch, TaskPool& pool,
                    Precision precision = Precision::FP32);
// dy (B,Cout,Ho,Wo) -> dx (B,Cin,H,W), dw (Cout,Cin,k,k), db (Cout); null outputs are skipped.
template <class T>
void conv2d_backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dx, T* dw,
                     T* db, Scratch<T>& scratch, TaskPool& pool,
                    Precision precision = Precision::FP32);

// x (B,Cin,H,W), w (Cin,Cout,k,k), b (Cout) or null -> y (B,Cout,Ho,Wo)
template <class T>
void conv_transpose2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y,
                              Scratch<T>& scratch, TaskPool& pool,
                    Precision precision = Precision::FP32);
// dy (B,Cout,Ho,Wo) -> dx (B,Cin,H,W), dw (Cin,Cout,k,k), db (Cout); null outputs are skipped.
template <class T>
void conv_transpose2d_backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dx,
                               T* dw, T* db, Scratch<T>& scratch, TaskPool& pool,
                    Precision precision = Precision::FP32);

}  // namespace fmnist::reference
