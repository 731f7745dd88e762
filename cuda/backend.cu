// cuda/backend.h: device listing, the version summary and the factory of CudaOps, and their table,
// the module's one exported symbol. The listing and the summary never throw and never need a
// device, so host code may call them anywhere.
#include "cuda/backend.h"

#include <stdexcept>
#include <string>

#include "cuda/check.h"
#include "cuda/cuda_ops.h"
#include "cuda/kernels.h"

namespace fmnist {

std::vector<CudaDeviceInfo> list_cuda_devices() {
  std::vector<CudaDeviceInfo> devices;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no device: an empty list
    return devices;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
      (void)cudaGetLastError();
      continue;
    }
    CudaDeviceInfo info;
    info.index = i;
    info.name = p.name;
    info.major = p.major;
    info.minor = p.minor;
    info.memory_bytes = p.totalGlobalMem;
    info.multiprocessors = p.multiProcessorCount;
    devices.push_back(info);
  }
  return devices;
}

namespace {

// 13000 -> "13.0" (the CUDA runtime/driver encoding 1000 * major + 10 * minor)
std::string cuda_version_text(int v) {
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}
// 91900 -> "9.19.0" (cuDNN 9: 10000 * major + 100 * minor + patch)
std::string cudnn_version_text(std::size_t v) {
  return std::to_string(v / 10000) + "." + std::to_string((v % 10000) / 100) + "." +
         std::to_string(v % 100);
}

}  // namespace

std::string cuda_runtime_summary() {
  std::string text = "CUDA runtime ";
  int runtime = 0;
  if (cudaRuntimeGetVersion(&runtime) == cudaSuccess)
    text += cuda_version_text(runtime);
  else
    text += "unknown";
  int driver = 0;
  if (cudaDriverGetVersion(&driver) == cudaSuccess && driver > 0)
    text += ", driver " + cuda_version_text(driver);
  else
    text += ", driver none";
  (void)cudaGetLastError();
  text += ", cuDNN " + cudnn_version_text(cudnnGetVersion());
  if (cudnnGetVersion() != static_cast<std::size_t>(CUDNN_VERSION))
    text += " (built with " + cudnn_version_text(CUDNN_VERSION) + ")";
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS)
    text += ", cuBLAS " + std::to_string(major) + "." + std::to_string(minor) + "." +
            std::to_string(patch);
  else
    text += ", cuBLAS unknown";
  return text;
}

std::unique_ptr<Ops<float>> make_cuda_ops(const CudaOptions& options) {
  return std::make_unique<cuda::CudaOps>(options);
}

std::uint64_t cuda_bf16_rounding_mismatches(int device) {
  CudaOptions options;
  options.device = device;
  cuda::Context context(options);
  return cuda::count_bf16_rounding_mismatches(context);
}

}  // namespace fmnist

// The shared module (cuda/CMakeLists.txt: its version script) exports this symbol alone.
extern "C" __attribute__((visibility("default"))) const fmnist::CudaBackend* fmnist_cuda_backend() {
  static const fmnist::CudaBackend backend{fmnist::list_cuda_devices, fmnist::cuda_runtime_summary,
                                           fmnist::make_cuda_ops, fmnist::cuda_bf16_rounding_mismatches};
  return &backend;
}
