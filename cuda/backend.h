// The CUDA backend as host code sees it: device listing, a version summary and the factory of the
// GPU Ops<float>, gathered in one table (CudaBackend). A plain C++ header (no CUDA types), so
// g++-compiled code can include it. Host code reaches the table through host/cuda_backend.h, which
// loads the backend's shared module (libfmnist_cuda.so, with cuBLAS and cuDNN) on first use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/ops.h"

namespace fmnist {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  int major = 0, minor = 0;        // compute capability
  std::size_t memory_bytes = 0;    // total global memory
  int multiprocessors = 0;
};

// Every visible CUDA device. Empty, never an exception, when there is no driver or no device, so
// it is safe to call on any machine.
std::vector<CudaDeviceInfo> list_cuda_devices();

// "CUDA runtime 13.0, driver 13.0, cuDNN 9.19.0, cuBLAS 13.0.0" ("driver none" without a driver).
std::string cuda_runtime_summary();

// The most streams a backward pass may run on (CudaOptions::backward_streams).
inline constexpr int kMaxBackwardStreams = 4;

struct CudaOptions {
  int device = 0;
  // TF32 tensor-core math in cuDNN and cuBLAS (faster, ~1e-3 relative error). Off: FP32 FMA math
  // only, and only GEMM-family/direct convolution algorithms, so results match the CPU reference.
  bool allow_tf32 = false;
  // BF16 products (models/precision.h): every convolution through cuDNN on bfloat16 tensors
  // (CUDNN_DATA_BFLOAT16, FP32 compute) and every Linear product through cublasGemmEx on bfloat16
  // operands (CUBLAS_COMPUTE_32F), results rounded to bfloat16 and kept in FP32 buffers; weights,
  // gradient buffers, Adam and every other op stay FP32. Excludes allow_tf32; needs compute
  // capability 8.0 or newer. Off: the FP32 (or TF32) path, untouched.
  bool bf16 = false;
  // Deterministic cuDNN algorithms only (bitwise equal results run to run). Every fmnist kernel is
  // deterministic either way (no floating-point atomics).
  bool deterministic = true;
  // Convolution backward-filter by fmnist's own direct kernel (cuda/weight_grad.h; deterministic,
  // FP64 sums) instead of cuDNN's, in FP32 and TF32 modes (BF16 keeps cuDNN's). Off in these
  // defaults (the library's, and the GPU tests' default path, which so keep cuDNN's covered); on
  // in fmnist's commands (host/gpu_kernels.h, default_gpu_kernels: 2.30x on the H100) unless
  // FMNIST_CONV_WGRAD=cudnn.
  bool direct_weight_grad = false;
  // Convolution backward-data (ConvTranspose2d's forward, its bias fused, and Conv2d's input
  // gradient) by fmnist's own direct kernel (cuda/direct_conv.h; deterministic, FP32 sums in a
  // fixed order) instead of cuDNN's, in FP32 and TF32 modes (BF16 keeps cuDNN's). Off by default
  // until an H100 run has timed it; FMNIST_CONV_DGRAD=fmnist turns it on for a command.
  bool direct_backward_data = false;
  // Convolution forward (Conv2d's, its bias fused, and ConvTranspose2d's input gradient) by
  // fmnist's direct kernel (cuda/direct_conv.h), as above; FMNIST_CONV_FWD=fmnist.
  bool direct_forward = false;
  // Linear forward (its bias and ReLU fused) by fmnist's split-K kernel (cuda/linear_split.h;
  // deterministic, FMA chains in a fixed order) instead of cuBLAS's SGEMM and a bias kernel, in FP32
  // mode only (TF32 keeps cuBLAS's tensor cores, BF16 its bfloat16 products). Off by default until
  // an H100 run has timed it; FMNIST_LINEAR_FWD=fmnist turns it on for a command.
  bool direct_linear_forward = false;
  // A Linear layer's input gradient and weight gradient by the same split-K kernel
  // (cuda/linear_split.h) instead of cuBLAS's SGEMMs, in FP32 mode only; FMNIST_LINEAR_DGRAD=fmnist
  // and FMNIST_LINEAR_WGRAD=fmnist.
  bool direct_linear_backward_data = false;
  bool direct_linear_weight_grad = false;
  // Streams a backward pass runs on: 1 (the default) to kMaxBackwardStreams. With more than one,
  // each layer's parameter gradients (weight and bias) go to a side stream, the layers taking the
  // side streams in turn (with 4, the AE's six layers use each side stream twice), beside the
  // chain of input gradients on the first; all join before the next op that is not a backward op
  // (Adam, in a train step), and a captured step holds them as branches of one graph. The same
  // kernels compute the same sums, so the results are bitwise those of one stream. BF16 mode keeps
  // one stream (its operand casts share one scratch buffer). Off by default until an H100 run has
  // timed it; FMNIST_BACKWARD_STREAMS=N turns it on for a command.
  int backward_streams = 1;
  // Programmatic Dependent Launch (cuda/launch.cuh): each fmnist kernel's grid is launched while
  // the kernel before it finishes, and waits on the device for that kernel's results; the same
  // kernels, the same results. Compute capability 9.0 or newer. Off by default until an H100 run
  // has timed it; FMNIST_PDL=1 turns it on for a command.
  bool programmatic_launch = false;
};

// The GPU backend on options.device. Throws std::runtime_error with a one-line message when there
// is no such device, no driver, or the device's compute capability is not supported by this build.
std::unique_ptr<Ops<float>> make_cuda_ops(const CudaOptions& options);

// For tests/gpu: runs elementwise::bf16_bits (the shared rounding of models/elementwise.h) and
// CUDA's __float2bfloat16_rn on `device` over every one of the 2^32 float bit patterns and returns
// how many disagree (0 expected: the BF16 casts of the GPU backend use the shared function, and
// must mean what cuDNN and cuBLAS mean by bfloat16).
std::uint64_t cuda_bf16_rounding_mismatches(int device = 0);

// The four functions above as one table: what the module exports, under the one name
// kCudaBackendSymbol, and what host code calls (host/cuda_backend.h).
struct CudaBackend {
  std::vector<CudaDeviceInfo> (*list_devices)();
  std::string (*runtime_summary)();
  std::unique_ptr<Ops<float>> (*make_ops)(const CudaOptions&);
  std::uint64_t (*bf16_rounding_mismatches)(int device);
};
inline constexpr const char* kCudaBackendSymbol = "fmnist_cuda_backend";

}  // namespace fmnist

// This build's table (cuda/backend.cu): the module's one exported symbol.
extern "C" const fmnist::CudaBackend* fmnist_cuda_backend();
