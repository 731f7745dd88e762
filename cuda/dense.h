// Linear layers through cuBLAS, on row-major tensors in PyTorch's layout. cuBLAS is column-major:
// a row-major (r,c) matrix is the column-major (c,r) matrix, its transpose, so each product below
// is computed as the transposed product with the operands swapped. No TF32 unless the context's
// options allow it (CUBLAS_DEFAULT_MATH: FP32 FMA); deterministic (fixed user workspace, no
// atomics); no allocation, except BF16 mode's scratch on a shape's first use (dense.cu).
#pragma once

#include "cuda/context.h"
#include "models/ops.h"

namespace fmnist::cuda {

// y (B,out) = x (B,in) w^T, w (out,in); no bias.
void gemm_linear_forward(Context& context, const LinearGeometry& g, const float* x, const float* w,
                         float* y);
// dx (B,in) = dy (B,out) w (out,in)
void gemm_linear_backward_data(Context& context, const LinearGeometry& g, const float* w,
                               const float* dy, float* dx);
// dw (out,in) = dy^T (out,B) x (B,in)
void gemm_linear_backward_weight(Context& context, const LinearGeometry& g, const float* x,
                                 const float* dy, float* dw);

}  // namespace fmnist::cuda
