// Chooses the backend a command runs on: --device cpu | cuda | auto, at --precision fp32 | tf32 |
// bf16 (models/precision.h).
#pragma once

#include <memory>
#include <string>

#include "host/gpu_kernels.h"
#include "models/ops.h"

namespace fmnist {

struct BackendChoice {
  std::unique_ptr<Ops<float>> ops;
  std::string note;  // why this backend was chosen, e.g. "no CUDA device found; using the CPU"
};

// Throws std::runtime_error with one line when the device cannot be had ("cuda" without a GPU,
// or a build without CUDA), std::invalid_argument for a name that is not cpu, cuda or auto, and
// std::invalid_argument for TF32 on the CPU backend ("cpu", or "auto" without a GPU): the CPU has
// no TF32, and a run that asked for it is not silently run in FP32. BF16 runs on both backends.
// The convolution kernels (host/gpu_kernels.h) are the environment's (gpu_kernels_requested),
// or `kernels`; they matter on a GPU only.
BackendChoice select_backend(const std::string& device, Precision precision = Precision::FP32);
BackendChoice select_backend(const std::string& device, Precision precision, const GpuKernels& kernels);

}  // namespace fmnist
