// Which implementation computes each GPU convolution pass, cuDNN's or fmnist's direct kernels
// (FMNIST_CONV_FWD, FMNIST_CONV_DGRAD, FMNIST_CONV_WGRAD), and the Linear layers' forward, cuBLAS's
// or fmnist's split-K kernel (FMNIST_LINEAR_FWD, _DGRAD, _WGRAD); default_gpu_kernels() where unset. They sum in
// different orders, so a run's bits depend on the choice: config.json records it and `--resume`
// keeps it.
#pragma once

#include <optional>
#include <string>

namespace fmnist {

struct GpuKernels {
  bool direct_forward = false;        // Conv2d forward, ConvTranspose2d input gradient
  bool direct_backward_data = false;  // Conv2d input gradient, ConvTranspose2d forward
  bool direct_weight_grad = false;    // both layers' backward-filter
  bool direct_linear_forward = false;        // Linear forward (with its bias and ReLU), FP32 only
  bool direct_linear_backward_data = false;  // Linear input gradient, FP32 only
  bool direct_linear_weight_grad = false;    // Linear weight gradient, FP32 only
  bool operator==(const GpuKernels& o) const {
    return direct_forward == o.direct_forward && direct_backward_data == o.direct_backward_data &&
           direct_weight_grad == o.direct_weight_grad && direct_linear_forward == o.direct_linear_forward &&
           direct_linear_backward_data == o.direct_linear_backward_data &&
           direct_linear_weight_grad == o.direct_linear_weight_grad;
  }
};

// What a new run computes with where no variable says otherwise: fmnist's direct backward-filter
// (2.30x cuDNN's defaults for an AE(256) training step on the H100, on two sessions; the GPU tests
// and the reproduction pass on it: bench/RESULTS.md), cuDNN's forward and backward-data (fmnist's
// direct ones were 0.94x-0.96x there), and cuBLAS's Linear products (fmnist's are not timed yet).
// GpuKernels{} (cuDNN and cuBLAS for every pass) is what a GPU run of an fmnist that recorded no
// kernels computed with.
inline GpuKernels default_gpu_kernels() { return GpuKernels{false, false, true, false, false, false}; }

// A pass's implementation by name, as the environment variables and config.json spell it.
inline const char* conv_kernel_name(bool direct) { return direct ? "fmnist" : "cudnn"; }
inline const char* linear_kernel_name(bool direct) { return direct ? "fmnist" : "cublas"; }

// The six variables as this process's environment sets them: unset or empty (nullopt), cudnn or
// cublas (false), fmnist (true). Throws std::invalid_argument naming the variable for any other
// value.
struct GpuKernelRequest {
  std::optional<bool> forward, backward_data, weight_grad, linear_forward, linear_backward_data, linear_weight_grad;
};
GpuKernelRequest gpu_kernels_requested();

// The kernels a run computes with: those `recorded` in its config.json when it is resumed (a
// variable set to the other implementation is refused: std::invalid_argument naming the variable,
// the recorded choice and `run_dir`/config.json), else those requested (default_gpu_kernels()
// where unset).
GpuKernels gpu_kernels_for_run(const GpuKernelRequest& requested, const std::optional<GpuKernels>& recorded,
                               const std::string& run_dir);

}  // namespace fmnist
