// Status checks for the CUDA runtime, cuDNN and cuBLAS. Every call into those libraries goes
// through one of these macros, which name the call, the file and the line:
//   CUDA_CHECK(call), CUDNN_CHECK(call), CUBLAS_CHECK(call)  throw std::runtime_error (library code)
//   CUDA_CHECK_LAUNCH()                                       after every kernel launch
//   CUDA_LOG(call), CUDNN_LOG(call), CUBLAS_LOG(call)         log to stderr only (destructors)
// Only .cu files and other CUDA-side headers include this; host code sees cuda/backend.h alone.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstdio>
#include <stdexcept>
#include <string>

namespace fmnist::cuda {

inline std::string where(const char* call, const char* file, int line) {
  return std::string(call) + " at " + file + ":" + std::to_string(line);
}

[[noreturn]] inline void throw_cuda(cudaError_t status, const char* call, const char* file,
                                    int line) {
  // Clear a non-sticky error so that later calls do not report it again.
  (void)cudaGetLastError();
  std::string message = "CUDA error " + std::string(cudaGetErrorName(status)) + " (" +
                        cudaGetErrorString(status) + ") in " + where(call, file, line);
  if (status == cudaErrorMemoryAllocation) message += " [out of GPU memory]";
  if (status == cudaErrorNoKernelImageForDevice || status == cudaErrorInvalidDeviceFunction)
    message += " [this build has no code for the device: rebuild with CMAKE_CUDA_ARCHITECTURES "
               "set to the device's compute capability]";
  throw std::runtime_error(message);
}

[[noreturn]] inline void throw_cudnn(cudnnStatus_t status, const char* call, const char* file,
                                     int line) {
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof detail);
  std::string message = "cuDNN error " + std::string(cudnnGetErrorString(status)) + " in " +
                        where(call, file, line);
  if (detail[0] != '\0') message += ": " + std::string(detail);
  throw std::runtime_error(message);
}

[[noreturn]] inline void throw_cublas(cublasStatus_t status, const char* call, const char* file,
                                      int line) {
  throw std::runtime_error("cuBLAS error " + std::string(cublasGetStatusName(status)) + " (" +
                           cublasGetStatusString(status) + ") in " + where(call, file, line));
}

}  // namespace fmnist::cuda

#define CUDA_CHECK(call)                                                        \
  do {                                                                          \
    const cudaError_t fmnist_status_ = (call);                                  \
    if (fmnist_status_ != cudaSuccess)                                          \
      ::fmnist::cuda::throw_cuda(fmnist_status_, #call, __FILE__, __LINE__);    \
  } while (0)

#define CUDNN_CHECK(call)                                                       \
  do {                                                                          \
    const cudnnStatus_t fmnist_status_ = (call);                                \
    if (fmnist_status_ != CUDNN_STATUS_SUCCESS)                                 \
      ::fmnist::cuda::throw_cudnn(fmnist_status_, #call, __FILE__, __LINE__);   \
  } while (0)

#define CUBLAS_CHECK(call)                                                      \
  do {                                                                          \
    const cublasStatus_t fmnist_status_ = (call);                               \
    if (fmnist_status_ != CUBLAS_STATUS_SUCCESS)                                \
      ::fmnist::cuda::throw_cublas(fmnist_status_, #call, __FILE__, __LINE__);  \
  } while (0)

// After every kernel launch: a bad configuration or a missing kernel image shows here.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

// Logging variants for destructors and other noexcept paths: report, never throw.
#define CUDA_LOG(call)                                                                        \
  do {                                                                                        \
    const cudaError_t fmnist_status_ = (call);                                                \
    if (fmnist_status_ != cudaSuccess)                                                        \
      std::fprintf(stderr, "fmnist: CUDA error %s in %s at %s:%d (ignored)\n",                \
                   cudaGetErrorName(fmnist_status_), #call, __FILE__, __LINE__);              \
  } while (0)

#define CUDNN_LOG(call)                                                                       \
  do {                                                                                        \
    const cudnnStatus_t fmnist_status_ = (call);                                              \
    if (fmnist_status_ != CUDNN_STATUS_SUCCESS)                                               \
      std::fprintf(stderr, "fmnist: cuDNN error %s in %s at %s:%d (ignored)\n",               \
                   cudnnGetErrorString(fmnist_status_), #call, __FILE__, __LINE__);           \
  } while (0)

#define CUBLAS_LOG(call)                                                                      \
  do {                                                                                        \
    const cublasStatus_t fmnist_status_ = (call);                                             \
    if (fmnist_status_ != CUBLAS_STATUS_SUCCESS)                                              \
      std::fprintf(stderr, "fmnist: cuBLAS error %s in %s at %s:%d (ignored)\n",              \
                   cublasGetStatusName(fmnist_status_), #call, __FILE__, __LINE__);           \
  } while (0)
