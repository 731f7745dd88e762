// Chooses the backend a command runs on: --device cpu | cuda | auto, at a precision.
#include "backend_select.h"

#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>

#include "host/cuda_backend.h"
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

// FMNIST_CONV_WGRAD, _DGRAD, _FWD, FMNIST_LINEAR_FWD, _DGRAD or _WGRAD (host/gpu_kernels.h):
// unset or empty, `library` (false: cudnn, or cublas for the Linear) or fmnist (true). Anything
// else stops the command in one line.
std::optional<bool> fmnist_kernel_requested(const char* variable, const char* library) {
  const char* v = std::getenv(variable);
  if (v == nullptr || *v == '\0') return std::nullopt;
  if (std::string(v) == library) return false;
  if (std::string(v) == "fmnist") return true;
  throw std::invalid_argument(std::string(variable) + " must be " + library + " or fmnist, got '" + v + "'");
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

GpuKernelRequest gpu_kernels_requested() {
  GpuKernelRequest r;
  r.weight_grad = fmnist_kernel_requested("FMNIST_CONV_WGRAD", conv_kernel_name(false));
  r.backward_data = fmnist_kernel_requested("FMNIST_CONV_DGRAD", conv_kernel_name(false));
  r.forward = fmnist_kernel_requested("FMNIST_CONV_FWD", conv_kernel_name(false));
  r.linear_forward = fmnist_kernel_requested("FMNIST_LINEAR_FWD", linear_kernel_name(false));
  r.linear_backward_data = fmnist_kernel_requested("FMNIST_LINEAR_DGRAD", linear_kernel_name(false));
  r.linear_weight_grad = fmnist_kernel_requested("FMNIST_LINEAR_WGRAD", linear_kernel_name(false));
  return r;
}

GpuKernels gpu_kernels_for_run(const GpuKernelRequest& requested, const std::optional<GpuKernels>& recorded,
                               const std::string& run_dir) {
  // One pass: the recorded choice when the run has one (its variable set to the other is refused),
  // else the request, else the default (a new run's `r` below holds the defaults).
  auto choose = [&](const char* variable, const char* pass, std::optional<bool> asked, bool recorded_direct,
                    const char* (*kernel_name)(bool) = conv_kernel_name) {
    if (!recorded) return asked.value_or(recorded_direct);
    if (asked && *asked != recorded_direct)
      throw std::invalid_argument(std::string(variable) + "=" + kernel_name(*asked) +
                                  " disagrees with the run being resumed: its " + pass + " is " +
                                  kernel_name(recorded_direct) + " there (" + run_dir +
                                  "/config.json); a resumed run keeps its kernels: unset " + variable +
                                  ", or start a new run with --out");
    return recorded_direct;
  };
  const GpuKernels r = recorded.value_or(default_gpu_kernels());
  GpuKernels k;
  k.direct_forward = choose("FMNIST_CONV_FWD", "convolution forward", requested.forward, r.direct_forward);
  k.direct_backward_data =
      choose("FMNIST_CONV_DGRAD", "convolution backward-data", requested.backward_data, r.direct_backward_data);
  k.direct_weight_grad =
      choose("FMNIST_CONV_WGRAD", "convolution backward-filter", requested.weight_grad, r.direct_weight_grad);
  k.direct_linear_forward = choose("FMNIST_LINEAR_FWD", "Linear forward", requested.linear_forward,
                                   r.direct_linear_forward, linear_kernel_name);
  k.direct_linear_backward_data = choose("FMNIST_LINEAR_DGRAD", "Linear backward-data", requested.linear_backward_data,
                                         r.direct_linear_backward_data, linear_kernel_name);
  k.direct_linear_weight_grad = choose("FMNIST_LINEAR_WGRAD", "Linear backward-filter", requested.linear_weight_grad,
                                       r.direct_linear_weight_grad, linear_kernel_name);
  return k;
}

BackendChoice select_backend(const std::string& device, Precision precision) {
  return select_backend(device, precision, gpu_kernels_for_run(gpu_kernels_requested(), std::nullopt, ""));
}

BackendChoice select_backend(const std::string& device, Precision precision, const GpuKernels& kernels) {
  if (device != "cpu" && device != "cuda" && device != "auto")
    throw std::invalid_argument("--device must be cpu, cuda or auto, got '" + device + "'");
  const int backward_streams = backward_streams_requested();
  const bool programmatic_launch = programmatic_launch_requested();
  if (device == "cpu") return cpu_backend(precision, "CPU backend (--device cpu)");
  std::string why_no_cuda;
  const CudaBackend* cuda = cuda_backend(&why_no_cuda);
  if (cuda == nullptr) {
    if (device == "cuda") throw std::runtime_error("--device cuda: the CUDA backend is " + why_no_cuda);
    return cpu_backend(precision, "CUDA backend " + why_no_cuda + "; running on the CPU backend");
  }
  if (cuda->list_devices().empty()) {
    if (device == "cuda")
      throw std::runtime_error("--device cuda: no CUDA device found (" + cuda->runtime_summary() + ")");
    return cpu_backend(precision, "no CUDA device found; running on the CPU backend");
  }
  CudaOptions options;
  options.allow_tf32 = precision == Precision::TF32;
  options.bf16 = precision == Precision::BF16;
  options.direct_weight_grad = kernels.direct_weight_grad;
  options.direct_backward_data = kernels.direct_backward_data;
  options.direct_forward = kernels.direct_forward;
  options.direct_linear_forward = kernels.direct_linear_forward;
  options.direct_linear_backward_data = kernels.direct_linear_backward_data;
  options.direct_linear_weight_grad = kernels.direct_linear_weight_grad;
  options.backward_streams = backward_streams;
  options.programmatic_launch = programmatic_launch;
  std::string why = "CUDA backend";
  if (kernels.direct_weight_grad) why += ", fmnist's direct conv backward-filter";
  if (kernels.direct_backward_data) why += ", fmnist's direct conv backward-data";
  if (kernels.direct_forward) why += ", fmnist's direct conv forward";
  if (kernels.direct_linear_forward && precision == Precision::FP32) why += ", fmnist's split-K Linear forward";
  if (kernels.direct_linear_backward_data && precision == Precision::FP32)
    why += ", fmnist's split-K Linear backward-data";
  if (kernels.direct_linear_weight_grad && precision == Precision::FP32)
    why += ", fmnist's split-K Linear backward-filter";
  if (backward_streams > 1 && !options.bf16)
    why += ", parameter gradients on " + std::to_string(backward_streams - 1) + " side stream" +
           (backward_streams > 2 ? "s" : "");
  if (programmatic_launch) why += ", programmatic dependent launch";
  return {cuda->make_ops(options), why};
}

}  // namespace fmnist
