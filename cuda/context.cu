// The CUDA context: device selection and checks, the stream, the cuDNN and cuBLAS handles and the
// workspaces (see context.h).
#include "cuda/context.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "cuda/check.h"
#include "cuda/kernels.h"

namespace fmnist::cuda {
namespace {

// cuBLAS asks for 32 MiB on Hopper (4 MiB elsewhere); a user workspace makes its choice of
// kernels fixed (deterministic) and keeps it from allocating while a CUDA graph is captured.
constexpr std::size_t kCublasWorkspaceBytes = 32u << 20;
// No convolution algorithm may ask for more than this (nor for more than a quarter of free memory).
constexpr std::size_t kMaxConvWorkspaceBytes = std::size_t(1) << 30;

std::string capability(const cudaDeviceProp& p) {
  return std::to_string(p.major) + "." + std::to_string(p.minor);
}

}  // namespace

Context::Context(const CudaOptions& options) : options_(options) {
  if (options.bf16 && options.allow_tf32)
    throw std::invalid_argument("CUDA options: bf16 and allow_tf32 exclude each other (one precision)");
  int count = 0;
  const cudaError_t count_status = cudaGetDeviceCount(&count);
  if (count_status != cudaSuccess) {
    (void)cudaGetLastError();
    throw std::runtime_error("no usable CUDA device: " + std::string(cudaGetErrorString(count_status)));
  }
  if (count == 0) throw std::runtime_error("no CUDA device found");
  if (options.device < 0 || options.device >= count)
    throw std::runtime_error("CUDA device " + std::to_string(options.device) +
                             " does not exist (this machine has " + std::to_string(count) +
                             " device" + (count == 1 ? "" : "s") + ", indices 0.." +
                             std::to_string(count - 1) + ")");
  CUDA_CHECK(cudaGetDeviceProperties(&properties_, options.device));
  if (properties_.major < kMinComputeMajor ||
      (properties_.major == kMinComputeMajor && properties_.minor < kMinComputeMinor))
    throw std::runtime_error("CUDA device " + std::to_string(options.device) + " (" +
                             properties_.name + ") has compute capability " +
                             capability(properties_) + "; fmnist (CUDA 13) needs " +
                             std::to_string(kMinComputeMajor) + "." + std::to_string(kMinComputeMinor) +
                             " or newer");
  if (options.bf16 && properties_.major < 8)
    throw std::runtime_error("CUDA device " + std::to_string(options.device) + " (" +
                             properties_.name + ") has compute capability " +
                             capability(properties_) + "; BF16 precision needs 8.0 or newer");
  CUDA_CHECK(cudaSetDevice(options.device));
  // The build must hold code the device can run (SASS for it, or PTX the driver can compile).
  const std::string missing = kernel_image_problem();
  if (!missing.empty())
    throw std::runtime_error("CUDA device " + std::to_string(options.device) + " (" +
                             properties_.name + ", compute capability " + capability(properties_) +
                             ") cannot run this build (built for " + compiled_architectures() +
                             "): " + missing +
                             "; reconfigure with -DCMAKE_CUDA_ARCHITECTURES=" +
                             std::to_string(properties_.major) + std::to_string(properties_.minor));
  try {
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDNN_CHECK(cudnnCreate(&cudnn_));
    CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
    CUBLAS_CHECK(cublasCreate(&cublas_));
    // cublasSetStream resets the workspace to the default pool: set the stream first.
    CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    CUBLAS_CHECK(cublasSetMathMode(cublas_, options.allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                : CUBLAS_DEFAULT_MATH));
    CUBLAS_CHECK(cublasSetAtomicsMode(cublas_, CUBLAS_ATOMICS_NOT_ALLOWED));
    CUBLAS_CHECK(cublasSetPointerMode(cublas_, CUBLAS_POINTER_MODE_HOST));
    CUDA_CHECK(cudaMalloc(&cublas_workspace_, kCublasWorkspaceBytes));
    CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_workspace_, kCublasWorkspaceBytes));
    CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&reduce_partials_),
                          sizeof(double) * kReducePartials));
    // Zeroed once, on the stream (ahead of any use): no library kernel or reduction can ever read
    // memory nothing wrote (compute-sanitizer --tool initcheck).
    CUDA_CHECK(cudaMemsetAsync(cublas_workspace_, 0, kCublasWorkspaceBytes, stream_));
    CUDA_CHECK(cudaMemsetAsync(reduce_partials_, 0, sizeof(double) * kReducePartials, stream_));
    std::size_t free_bytes = 0, total_bytes = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    workspace_limit_ = std::min(kMaxConvWorkspaceBytes, free_bytes / 4);
  } catch (...) {
    release();
    throw;
  }
}

Context::~Context() { release(); }

void Context::release() noexcept {
  if (stream_ != nullptr) CUDA_LOG(cudaStreamSynchronize(stream_));
  // The handles first: they hold the workspaces' addresses (cuBLAS its user workspace).
  if (cublas_ != nullptr) CUBLAS_LOG(cublasDestroy(cublas_));
  if (cudnn_ != nullptr) CUDNN_LOG(cudnnDestroy(cudnn_));
  cublas_ = nullptr;
  cudnn_ = nullptr;
  if (workspace_ != nullptr) CUDA_LOG(cudaFree(workspace_));
  for (void* retired : retired_workspaces_) CUDA_LOG(cudaFree(retired));
  retired_workspaces_.clear();
  if (bf16_scratch_ != nullptr) CUDA_LOG(cudaFree(bf16_scratch_));
  bf16_scratch_ = nullptr;
  bf16_scratch_bytes_ = 0;
  if (cublas_workspace_ != nullptr) CUDA_LOG(cudaFree(cublas_workspace_));
  if (reduce_partials_ != nullptr) CUDA_LOG(cudaFree(reduce_partials_));
  if (stream_ != nullptr) CUDA_LOG(cudaStreamDestroy(stream_));
  workspace_ = cublas_workspace_ = nullptr;
  reduce_partials_ = nullptr;
  cublas_ = nullptr;
  cudnn_ = nullptr;
  stream_ = nullptr;
  workspace_bytes_ = 0;
}

void Context::grow_buffer(void*& buffer, std::size_t& buffer_bytes, std::size_t bytes, const char* what) {
  if (bytes <= buffer_bytes) return;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream_, &capture));
  if (capture != cudaStreamCaptureStatusNone)
    throw std::logic_error(std::string("CUDA graph capture needs a larger ") + what + " (" +
                           std::to_string(bytes) + " bytes) than any step before: run the step "
                           "once un-captured first");
  // Work already queued may still use the old buffer.
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (buffer != nullptr) {
    retired_workspaces_.push_back(buffer);  // a captured graph may still use it
    buffer = nullptr;
    buffer_bytes = 0;
  }
  // Round up to 1 MiB so a few slightly larger geometries do not each grow it.
  const std::size_t rounded = (bytes + (std::size_t(1) << 20) - 1) & ~((std::size_t(1) << 20) - 1);
  CUDA_CHECK(cudaMalloc(&buffer, rounded));
  buffer_bytes = rounded;
  // Zeroed (stream-ordered, before any kernel uses it): initcheck then never sees a cuDNN or cast
  // kernel read bytes that no kernel wrote.
  CUDA_CHECK(cudaMemsetAsync(buffer, 0, rounded, stream_));
}

void Context::reserve_workspace(std::size_t bytes) {
  grow_buffer(workspace_, workspace_bytes_, bytes, "cuDNN workspace");
}

void Context::reserve_bf16_scratch(std::size_t bytes) {
  grow_buffer(bf16_scratch_, bf16_scratch_bytes_, bytes, "BF16 scratch");
}

int Context::grid_for(std::size_t n, int threads) const {
  const std::size_t wanted = (n + static_cast<std::size_t>(threads) - 1) / threads;
  const std::size_t cap = static_cast<std::size_t>(std::max(1, properties_.multiProcessorCount)) * 32;
  return static_cast<int>(std::max<std::size_t>(1, std::min(wanted, cap)));
}

}  // namespace fmnist::cuda
