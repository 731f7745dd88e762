// Conv2d and ConvTranspose2d on the CPU, PyTorch semantics, as im2col/col2im plus one BLAS GEMM
// over the whole batch. Also the scratch memory they reuse from step to step.
#pragma once

#include <cstddef>
#include <vector>

#include "models/ops.h"

namespace fmnist::reference {

// Per-backend scratch buffers: slot i grows on demand and never shrinks, so steady-state steps
// do not allocate. Contents are undefined between calls.
template <class T> class Scratch {
 public:
  static constexpr int kSlots = 2;
  T* get(int slot, std::size_t n) {
    std::vector<T>& buffer = buffers_[slot];
    if (buffer.size() < n) buffer.resize(n);
    return buffer.data();
  }

 private:
  std::vector<T> buffers_[kSlots];
};

// x (B,Cin,H,W), w (Cout,Cin,k,k), b (Cout) or null -> y (B,Cout,Ho,Wo)
template <class T>
void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y,
                    Scratch<T>& scratch);
// dy (B,Cout,Ho,Wo) -> dx (B,Cin,H,W), dw (Cout,Cin,k,k), db (Cout); null outputs are skipped.
template <class T>
void conv2d_backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dx, T* dw,
                     T* db, Scratch<T>& scratch);

// x (B,Cin,H,W), w (Cin,Cout,k,k), b (Cout) or null -> y (B,Cout,Ho,Wo)
template <class T>
void conv_transpose2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y,
                              Scratch<T>& scratch);
// dy (B,Cout,Ho,Wo) -> dx (B,Cin,H,W), dw (Cin,Cout,k,k), db (Cout); null outputs are skipped.
template <class T>
void conv_transpose2d_backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dx,
                               T* dw, T* db, Scratch<T>& scratch);

}  // namespace fmnist::reference
