// Chooses the backend a command runs on: --device cpu | cuda | auto, at a precision.
#include "backend_select.h"

#include <stdexcept>

#include "host/reference/cpu_ops.h"
#if defined(FMNIST_HAVE_CUDA)
#include "cuda/backend.h"
#endif

namespace fmnist {

namespace {

// The CPU backend at `precision`, chosen for `why`; TF32 refused in one line.
BackendChoice cpu_backend(Precision precision, const std::string& why) {
  if (precision == Precision::TF32)
    throw std::invalid_argument("--precision tf32 needs a GPU: the CPU backend has no TF32 (" + why +
                                "); use --precision fp32 or bf16 there");
  return {make_cpu_ops(precision), why};
}

}  // namespace

bool cuda_compiled_in() {
#if defined(FMNIST_HAVE_CUDA)
  return true;
#else
  return false;
#endif
}

BackendChoice select_backend(const std::string& device, Precision precision) {
  if (device != "cpu" && device != "cuda" && device != "auto")
    throw std::invalid_argument("--device must be cpu, cuda or auto, got '" + device + "'");
  if (device == "cpu") return cpu_backend(precision, "CPU backend (--device cpu)");
#if defined(FMNIST_HAVE_CUDA)
  const bool have_gpu = !list_cuda_devices().empty();
  if (have_gpu) {
    CudaOptions options;
    options.allow_tf32 = precision == Precision::TF32;
    options.bf16 = precision == Precision::BF16;
    return {make_cuda_ops(options), "CUDA backend"};
  }
  if (device == "cuda")
    throw std::runtime_error("--device cuda: no CUDA device found (" + cuda_runtime_summary() + ")");
  return cpu_backend(precision, "no CUDA device found; running on the CPU backend");
#else
  if (device == "cuda")
    throw std::runtime_error("--device cuda: this fmnist was built without the CUDA backend "
                             "(configure with -DFMNIST_CUDA=ON on a machine with nvcc)");
  return cpu_backend(precision, "built without CUDA; running on the CPU backend");
#endif
}

}  // namespace fmnist
