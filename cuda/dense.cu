// Linear layers through cuBLAS SGEMM (see dense.h). Shapes are row-major as PyTorch stores them;
// "cm" below names the column-major view cuBLAS sees of the same memory:
//   x (B,in) row-major    = x^T (in,B) cm, ld in
//   w (out,in) row-major  = w^T (in,out) cm, ld in
//   y (B,out) row-major   = y^T (out,B) cm, ld out
// BF16 mode (context options().bf16, models/precision.h): the same products through cublasGemmEx
// with both operands cast to bfloat16 (CUDA_R_16BF, in the context's BF16 scratch), FP32
// accumulation (CUBLAS_COMPUTE_32F), an FP32 result (CUDA_R_32F) that a kernel then rounds to
// bfloat16 with the shared elementwise::round_to_bf16. Not CUBLAS_COMPUTE_32F_FAST_16BF: cuBLAS
// documents it as down-converting FP32 inputs for bfloat16 tensor-core math without saying how it
// rounds (and its result would stay FP32), so the CPU reference could not be held to it.
#include "cuda/dense.h"

#include <cstdint>

#include "cuda/check.h"
#include "cuda/kernels.h"

namespace fmnist::cuda {
namespace {

std::size_t aligned_bytes(std::size_t bytes) { return (bytes + 255) / 256 * 256; }

// C (m,n) cm, ld m = op_a(A) op_b(B), with A (a_count floats, ld lda) and B (b_count, ld ldb).
// FP32: one cublasSgemm. BF16 mode: A and B cast to bfloat16, the product summed in FP32 and
// rounded to bfloat16 in place.
void gemm(Context& context, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k,
          const float* a, std::size_t a_count, int lda, const float* b, std::size_t b_count, int ldb,
          float* c) {
  const float one = 1.0f, zero = 0.0f;
  if (!context.options().bf16) {
    CUBLAS_CHECK(cublasSgemm(context.cublas(), op_a, op_b, m, n, k, &one, a, lda, b, ldb, &zero, c, m));
    return;
  }
  const std::size_t a_bytes = aligned_bytes(a_count * sizeof(std::uint16_t));
  context.reserve_bf16_scratch(a_bytes + b_count * sizeof(std::uint16_t));
  auto* a16 = static_cast<std::uint16_t*>(context.bf16_scratch());
  auto* b16 = reinterpret_cast<std::uint16_t*>(static_cast<char*>(context.bf16_scratch()) + a_bytes);
  launch_float_to_bf16(context, a_count, a, a16);
  launch_float_to_bf16(context, b_count, b, b16);
  CUBLAS_CHECK(cublasGemmEx(context.cublas(), op_a, op_b, m, n, k, &one, a16, CUDA_R_16BF, lda, b16,
                            CUDA_R_16BF, ldb, &zero, c, CUDA_R_32F, m, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
  const std::size_t c_count = static_cast<std::size_t>(m) * n;
  launch_round_to_bf16(context, c_count, c, c);
}

}  // namespace

void gemm_linear_forward(Context& context, const LinearGeometry& g, const float* x, const float* w,
                         float* y) {
  const std::size_t nx = static_cast<std::size_t>(g.batch) * g.in_features;
  const std::size_t nw = static_cast<std::size_t>(g.out_features) * g.in_features;
  // y^T (out,B) = w (out,in) x^T (in,B) = op_T(w^T cm) * (x^T cm)
  gemm(context, CUBLAS_OP_T, CUBLAS_OP_N, g.out_features, g.batch, g.in_features, w, nw, g.in_features, x,
       nx, g.in_features, y);
}

void gemm_linear_backward_data(Context& context, const LinearGeometry& g, const float* w,
                               const float* dy, float* dx) {
  const std::size_t nw = static_cast<std::size_t>(g.out_features) * g.in_features;
  const std::size_t ny = static_cast<std::size_t>(g.batch) * g.out_features;
  // dx^T (in,B) = w^T (in,out) dy^T (out,B): both operands as stored (cm views), no transpose.
  gemm(context, CUBLAS_OP_N, CUBLAS_OP_N, g.in_features, g.batch, g.out_features, w, nw, g.in_features, dy,
       ny, g.out_features, dx);
}

void gemm_linear_backward_weight(Context& context, const LinearGeometry& g, const float* x,
                                 const float* dy, float* dw) {
  const std::size_t nx = static_cast<std::size_t>(g.batch) * g.in_features;
  const std::size_t ny = static_cast<std::size_t>(g.batch) * g.out_features;
  // dw^T (in,out) = x^T (in,B) dy (B,out) = (x^T cm) * op_T(dy^T cm)
  gemm(context, CUBLAS_OP_N, CUBLAS_OP_T, g.in_features, g.out_features, g.batch, x, nx, g.in_features, dy,
       ny, g.out_features, dw);
}

}  // namespace fmnist::cuda
