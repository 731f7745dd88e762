// Chooses the backend a command runs on: --device cpu | cuda | auto.
#include "backend_select.h"

#include <stdexcept>

#include "host/reference/cpu_ops.h"
#if defined(FMNIST_HAVE_CUDA)
#include "cuda/backend.h"
#endif

namespace fmnist {

bool cuda_compiled_in() {
#if defined(FMNIST_HAVE_CUDA)
  return true;
#else
  return false;
#endif
}

BackendChoice select_backend(const std::string& device, bool allow_tf32) {
  if (device != "cpu" && device != "cuda" && device != "auto")
    throw std::invalid_argument("--device must be cpu, cuda or auto, got '" + device + "'");
  if (device == "cpu") return {make_cpu_ops(), "CPU backend (--device cpu)"};
#if defined(FMNIST_HAVE_CUDA)
  const bool have_gpu = !list_cuda_devices().empty();
  if (have_gpu) {
    CudaOptions options;
    options.allow_tf32 = allow_tf32;
    return {make_cuda_ops(options), "CUDA backend"};
  }
  if (device == "cuda")
    throw std::runtime_error("--device cuda: no CUDA device found (" + cuda_runtime_summary() + ")");
  return {make_cpu_ops(), "no CUDA device found; running on the CPU backend"};
#else
  (void)allow_tf32;  // only the GPU has TF32
  if (device == "cuda")
    throw std::runtime_error("--device cuda: this fmnist was built without the CUDA backend "
                             "(configure with -DFMNIST_CUDA=ON on a machine with nvcc)");
  return {make_cpu_ops(), "built without CUDA; running on the CPU backend"};
#endif
}

}  // namespace fmnist
