// Chooses the backend a command runs on: --device cpu | cuda | auto, at a precision.
#include "backend_select.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "cuda/backend.h"  // CudaOptions; its functions are called only where CUDA is built in
#include "host/reference/cpu_ops.h"

namespace fmnist {

namespace {

// The CPU backend at `precision`, chosen for `why`; TF32 refused in one line.
BackendChoice cpu_backend(Precision precision, const std::string& why) {
  if (precision == Precision::TF32)
    throw std::invalid_argument("--precision tf32 needs a GPU: the CPU backend has no TF32 (" + why +
                                "); use --precision fp32 or bf16 there");
  return {make_cpu_ops(precision), why};
}

// FMNIST_CONV_WGRAD, FMNIST_CONV_DGRAD and FMNIST_CONV_FWD: the GPU's convolution backward-filter
// (cuda/weight_grad.h), backward-data and forward (cuda/direct_conv.h), cudnn (the default) or
// fmnist. Anything else stops the command in one line.
bool fmnist_kernel_requested(const char* variable) {
  const char* v = std::getenv(variable);
  if (v == nullptr || *v == '\0' || std::string(v) == "cudnn") return false;
  if (std::string(v) == "fmnist") return true;
  throw std::invalid_argument(std::string(variable) + " must be cudnn or fmnist, got '" + v + "'");
}

// FMNIST_PDL: 1 launches fmnist's kernels with Programmatic Dependent Launch
// (CudaOptions::programmatic_launch), 0 or unset does not. Anything else stops the command in one line.
bool programmatic_launch_requested() {
  const char* v = std::getenv("FMNIST_PDL");
  if (v == nullptr || *v == '\0' || std::string(v) == "0") return false;
  if (std::string(v) == "1") return true;
  throw std::invalid_argument(std::string("FMNIST_PDL must be 0 or 1, got '") + v + "'");
}

// FMNIST_BACKWARD_STREAMS: the streams a GPU backward pass runs on, 1 (the default) to
// kMaxBackwardStreams (CudaOptions::backward_streams). Anything else stops the command in one line.
int backward_streams_requested() {
  const char* v = std::getenv("FMNIST_BACKWARD_STREAMS");
  if (v == nullptr || *v == '\0') return 1;
  for (int n = 1; n <= kMaxBackwardStreams; ++n)
    if (std::string(v) == std::to_string(n)) return n;
  throw std::invalid_argument("FMNIST_BACKWARD_STREAMS must be 1 to " + std::to_string(kMaxBackwardStreams) +
                              ", got '" + v + "'");
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
  const bool direct_weight_grad = fmnist_kernel_requested("FMNIST_CONV_WGRAD");  // checked on every device
  const bool direct_backward_data = fmnist_kernel_requested("FMNIST_CONV_DGRAD");
  const bool direct_forward = fmnist_kernel_requested("FMNIST_CONV_FWD");
  const int backward_streams = backward_streams_requested();
  const bool programmatic_launch = programmatic_launch_requested();
  if (device == "cpu") return cpu_backend(precision, "CPU backend (--device cpu)");
#if defined(FMNIST_HAVE_CUDA)
  const bool have_gpu = !list_cuda_devices().empty();
  if (have_gpu) {
    CudaOptions options;
    options.allow_tf32 = precision == Precision::TF32;
    options.bf16 = precision == Precision::BF16;
    options.direct_weight_grad = direct_weight_grad;
    options.direct_backward_data = direct_backward_data;
    options.direct_forward = direct_forward;
    options.backward_streams = backward_streams;
    options.programmatic_launch = programmatic_launch;
    std::string why = "CUDA backend";
    if (direct_weight_grad) why += ", fmnist's direct conv backward-filter";
    if (direct_backward_data) why += ", fmnist's direct conv backward-data";
    if (direct_forward) why += ", fmnist's direct conv forward";
    if (backward_streams > 1 && !options.bf16)
      why += ", parameter gradients on " + std::to_string(backward_streams - 1) + " side stream" +
             (backward_streams > 2 ? "s" : "");
    if (programmatic_launch) why += ", programmatic dependent launch";
    return {make_cuda_ops(options), why};
  }
  if (device == "cuda")
    throw std::runtime_error("--device cuda: no CUDA device found (" + cuda_runtime_summary() + ")");
  return cpu_backend(precision, "no CUDA device found; running on the CPU backend");
#else
  (void)direct_weight_grad;
  (void)direct_backward_data;
  (void)direct_forward;
  (void)backward_streams;
  (void)programmatic_launch;
  if (device == "cuda")
    throw std::runtime_error("--device cuda: this fmnist was built without the CUDA backend "
                             "(configure with -DFMNIST_CUDA=ON on a machine with nvcc)");
  return cpu_backend(precision, "built without CUDA; running on the CPU backend");
#endif
}

}  // namespace fmnist
