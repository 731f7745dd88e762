// Linear layers through cuBLAS SGEMM (see dense.h). Shapes are row-major as PyTorch stores them;
// "cm" below names the column-major view cuBLAS sees of the same memory:
//   x (B,in) row-major    = x^T (in,B) cm, ld in
//   w (out,in) row-major  = w^T (in,out) cm, ld in
//   y (B,out) row-major   = y^T (out,B) cm, ld out
#include "cuda/dense.h"

#include "cuda/check.h"

namespace fmnist::cuda {

void gemm_linear_forward(Context& context, const LinearGeometry& g, const float* x, const float* w,
                         float* y) {
  const float one = 1.0f, zero = 0.0f;
  // y^T (out,B) = w (out,in) x^T (in,B) = op_T(w^T cm) * (x^T cm)
  CUBLAS_CHECK(cublasSgemm(context.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, g.out_features, g.batch,
                           g.in_features, &one, w, g.in_features, x, g.in_features, &zero, y,
                           g.out_features));
}

void gemm_linear_backward_data(Context& context, const LinearGeometry& g, const float* w,
                               const float* dy, float* dx) {
  const float one = 1.0f, zero = 0.0f;
  // dx^T (in,B) = w^T (in,out) dy^T (out,B): both operands as stored (cm views), no transpose.
  CUBLAS_CHECK(cublasSgemm(context.cublas(), CUBLAS_OP_N, CUBLAS_OP_N, g.in_features, g.batch,
                           g.out_features, &one, w, g.in_features, dy, g.out_features, &zero, dx,
                           g.in_features));
}

void gemm_linear_backward_weight(Context& context, const LinearGeometry& g, const float* x,
                                 const float* dy, float* dw) {
  const float one = 1.0f, zero = 0.0f;
  // dw^T (in,out) = x^T (in,B) dy (B,out) = (x^T cm) * op_T(dy^T cm)
  CUBLAS_CHECK(cublasSgemm(context.cublas(), CUBLAS_OP_N, CUBLAS_OP_T, g.in_features,
                           g.out_features, g.batch, &one, x, g.in_features, dy, g.out_features,
                           &zero, dw, g.in_features));
}

}  // namespace fmnist::cuda
