// Chooses the backend a command runs on: --device cpu | cuda | auto.
#pragma once

#include <memory>
#include <string>

#include "models/ops.h"

namespace fmnist {

struct BackendChoice {
  std::unique_ptr<Ops<float>> ops;
  std::string note;  // why this backend was chosen, e.g. "no CUDA device found; using the CPU"
};

// Throws std::runtime_error with one line when the device cannot be had ("cuda" without a GPU,
// or a build without CUDA) and std::invalid_argument for a name that is not cpu, cuda or auto.
BackendChoice select_backend(const std::string& device, bool allow_tf32 = false);

// True when this build has the CUDA backend compiled in.
bool cuda_compiled_in();

}  // namespace fmnist
