// The CUDA context of one CudaOps: the device, one stream, one cuDNN and one cuBLAS handle bound to
// that stream, the cuDNN workspace (one buffer shared by every convolution, grown only while a new
// convolution geometry is being planned), cuBLAS's own fixed workspace, and a small scratch area
// for deterministic reductions. Everything here is created once; nothing is allocated per step.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <string>
#include <vector>

#include "cuda/backend.h"

namespace fmnist::cuda {

class Context {
 public:
  // Selects options.device and creates everything. Throws std::runtime_error with one line when
  // the device is missing or its compute capability is not supported by this build.
  explicit Context(const CudaOptions& options);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const CudaOptions& options() const { return options_; }
  int device() const { return options_.device; }
  const cudaDeviceProp& properties() const { return properties_; }
  cudaStream_t stream() const { return stream_; }
  cudnnHandle_t cudnn() const { return cudnn_; }
  cublasHandle_t cublas() const { return cublas_; }

  // The shared cuDNN workspace, at least `bytes` large. Growing it (only ever while a new
  // convolution plan is made, never in a steady-state step) waits for the stream first. The
  // smaller buffer it replaces is kept until teardown: a CUDA graph captured earlier holds its
  // address (cuda/graph.h).
  void reserve_workspace(std::size_t bytes);
  void* workspace() const { return workspace_; }
  std::size_t workspace_bytes() const { return workspace_bytes_; }
  // The largest workspace a convolution algorithm may ask for.
  std::size_t workspace_limit() const { return workspace_limit_; }

  // BF16 mode's scratch (options().bf16, models/precision.h): the bfloat16 copies of a product's
  // operands and, for cuDNN, its bfloat16 result. At least `bytes` after the call; grown only
  // when a convolution is planned or a Linear shape is first met, waiting for the stream first,
  // never while the stream is being captured (std::logic_error: run the step once un-captured).
  // The smaller buffer it replaces is kept until teardown (a captured graph may hold its address).
  void reserve_bf16_scratch(std::size_t bytes);
  void* bf16_scratch() const { return bf16_scratch_; }

  // Scratch for two-pass reductions: kReducePartials doubles.
  static constexpr int kReducePartials = 1024;
  double* reduce_partials() const { return reduce_partials_; }

  // A threads-per-block and block count for a grid-stride loop over n elements.
  int grid_for(std::size_t n, int threads) const;

 private:
  // Grows `buffer` (of `buffer_bytes`) to at least `bytes`, rounded up to 1 MiB and zeroed: waits
  // for the stream, retires the old buffer (a captured graph may hold it), refuses during capture.
  void grow_buffer(void*& buffer, std::size_t& buffer_bytes, std::size_t bytes, const char* what);

  CudaOptions options_;
  cudaDeviceProp properties_{};
  cudaStream_t stream_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  void* workspace_ = nullptr;
  std::size_t workspace_bytes_ = 0;
  std::size_t workspace_limit_ = 0;
  std::vector<void*> retired_workspaces_;
  void* bf16_scratch_ = nullptr;
  std::size_t bf16_scratch_bytes_ = 0;
  void* cublas_workspace_ = nullptr;
  double* reduce_partials_ = nullptr;

  void release() noexcept;
};

}  // namespace fmnist::cuda
