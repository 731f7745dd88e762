// Which implementation computes each GPU convolution pass: cuDNN's (the default) or fmnist's direct
// kernels (FMNIST_CONV_FWD, FMNIST_CONV_DGRAD, FMNIST_CONV_WGRAD). They sum in different orders, so
// a run's bits depend on the choice: config.json records it and `--resume` keeps it.
#pragma once

#include <optional>
#include <string>

namespace fmnist {

struct ConvKernels {
  bool direct_forward = false;        // Conv2d forward, ConvTranspose2d input gradient
  bool direct_backward_data = false;  // Conv2d input gradient, ConvTranspose2d forward
  bool direct_weight_grad = false;    // both layers' backward-filter
  bool operator==(const ConvKernels& o) const {
    return direct_forward == o.direct_forward && direct_backward_data == o.direct_backward_data &&
           direct_weight_grad == o.direct_weight_grad;
  }
};

// A pass's implementation by name, as the environment variables and config.json spell it.
inline const char* conv_kernel_name(bool direct) { return direct ? "fmnist" : "cudnn"; }

// The three variables as this process's environment sets them: unset or empty (nullopt), cudnn
// (false) or fmnist (true). Throws std::invalid_argument naming the variable for any other value.
struct ConvKernelRequest {
  std::optional<bool> forward, backward_data, weight_grad;
};
ConvKernelRequest conv_kernels_requested();

// The kernels a run computes with: those `recorded` in its config.json when it is resumed (a
// variable set to the other implementation is refused: std::invalid_argument naming the variable,
// the recorded choice and `run_dir`/config.json), else those requested (cuDNN where unset).
ConvKernels conv_kernels_for_run(const ConvKernelRequest& requested, const std::optional<ConvKernels>& recorded,
                                 const std::string& run_dir);

}  // namespace fmnist
