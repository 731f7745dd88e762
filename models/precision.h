// The precision of the products of a run: `--precision fp32|tf32|bf16` (fp32 the default).
//
// FP32: every convolution and Linear product in IEEE single precision, as the CPU reference
//   computes it (the GPU only sums in another order).
// TF32 (GPU only; the CPU has no TF32): cuDNN and cuBLAS may round the operands of convolutions
//   and Linear products to TF32 (10-bit mantissa) on tensor cores. Defined by NVIDIA's libraries,
//   not here; the CPU reference cannot reproduce it.
// BF16, defined HERE, once, for both backends (the CPU reference checks the GPU with it):
//   - Every convolution pass (forward, backward-data, backward-filter; Conv2d and ConvTranspose2d)
//     and every Linear product (forward y = x w^T, backward dx = dy w and dw = dy^T x) reads its
//     two operands rounded to bfloat16 (elementwise::round_to_bf16: round to nearest, ties to
//     even; NaN stays NaN), multiplies and accumulates in FP32 (a product of two bfloat16 values
//     is exact in FP32), and rounds its result to bfloat16. A convolution's result is the whole
//     sum: a ConvTranspose2d's overlapping patches, and a weight gradient's sum over the batch,
//     are part of the FP32 accumulation, rounded once at the end.
//   - Biases are added in FP32 after that rounding (y = bf16(x * w) + b); bias gradients are
//     column sums of the unrounded dy in double, as in FP32 mode.
//   - Everything else stays FP32: the weights (FP32 master weights: Adam updates them in FP32),
//     the gradients written to the FP32 gradient buffers, Adam's moments, activations, pooling,
//     dropout, losses and their gradients. Tensors between layers are FP32 buffers; only a
//     product's inputs and result pass through bfloat16.
//   The CPU reference (host/reference) rounds operands into scratch buffers before each BLAS
//   call and rounds the results; the GPU (cuda/) casts operands to bfloat16 buffers for cuDNN
//   (CUDNN_DATA_BFLOAT16, FP32 compute) and cuBLAS (cublasGemmEx, CUDA_R_16BF operands,
//   CUBLAS_COMPUTE_32F). Both accumulate in FP32 in their own order, so a result may differ by
//   one bfloat16 rounding step where the exact sum lies near a rounding boundary.
#pragma once

#include <string>

namespace fmnist {

enum class Precision { FP32, TF32, BF16 };

// "fp32", "tf32", "bf16": the names `--precision` takes and run records hold.
inline const char* precision_name(Precision p) {
  switch (p) {
    case Precision::TF32: return "tf32";
    case Precision::BF16: return "bf16";
    default: return "fp32";
  }
}

// The Precision `name` names (as precision_name writes it); false for any other text.
inline bool parse_precision(const std::string& name, Precision& out) {
  for (Precision p : {Precision::FP32, Precision::TF32, Precision::BF16})
    if (name == precision_name(p)) {
      out = p;
      return true;
    }
  return false;
}

}  // namespace fmnist
