// The one place the CPU reference backend calls BLAS: row-major C = alpha op(A) op(B) + beta C,
// as an overload for float (cblas_sgemm) and double (cblas_dgemm).
#pragma once

#include <cblas.h>

namespace fmnist::reference {

// A is (m,k) after op, B is (k,n) after op, C is (m,n); lda/ldb/ldc are row strides as stored.
inline void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                 int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

inline void gemm(bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double* a,
                 int lda, const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace fmnist::reference
