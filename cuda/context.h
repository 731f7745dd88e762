// The CUDA context of one CudaOps: the device, and one lane of work (a stream, a cuDNN and a cuBLAS
// handle bound to it, the cuDNN workspace shared by every convolution on it and grown only while a
// new convolution geometry is being planned, cuBLAS's own fixed workspace, and a small scratch
// area for deterministic reductions), plus options().backward_streams - 1 side lanes that compute a
// backward pass's parameter gradients beside the main one (SideLane below).
// Everything here is created once; nothing is allocated per step.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <string>
#include <vector>

#include "cuda/backend.h"
#include "cuda/launch_geometry.h"

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
  // The current lane's stream and handles: a side lane's inside a SideLane, else the main one's.
  cudaStream_t stream() const { return lane().stream; }
  cudnnHandle_t cudnn() const { return lane().cudnn; }
  cublasHandle_t cublas() const { return lane().cublas; }
  // The main lane's stream: captures, copies, uploads and timings are ordered on it.
  cudaStream_t main_stream() const { return main_.stream; }

  // The workspace of each lane (cuDNN's, and the partial sums of fmnist's direct backward-filter and
  // split-K Linear products), at least `bytes` large. Growing it (only ever while a new convolution
  // plan is made or a Linear shape first runs, never in a steady-state step) waits for the lanes
  // first. The smaller buffer it replaces is kept until teardown: a CUDA graph captured earlier holds its
  // address (cuda/graph.h).
  void reserve_workspace(std::size_t bytes);
  void* workspace() const { return lane().workspace; }
  std::size_t workspace_bytes() const { return main_.workspace_bytes; }
  // The largest workspace a convolution algorithm may ask for.
  std::size_t workspace_limit() const { return workspace_limit_; }

  // BF16 mode's scratch (options().bf16, models/precision.h): the bfloat16 copies of a product's
  // operands and, for cuDNN, its bfloat16 result. At least `bytes` after the call; grown only
  // when a convolution is planned or a Linear shape is first met, waiting for the stream first,
  // never while the stream is being captured (std::logic_error: run the step once un-captured).
  // The smaller buffer it replaces is kept until teardown (a captured graph may hold its address).
  void reserve_bf16_scratch(std::size_t bytes);
  void* bf16_scratch() const { return bf16_scratch_; }

  // Scratch for two-pass reductions on the current lane: kReducePartials doubles, and
  // kReduceCounters counters of finished blocks for the reductions whose last block adds the
  // partials (ordered_sum.cuh's last_block_of_row). Zeroed once; every kernel leaves the counters
  // it used at 0, so the kernels of a lane, which run in order, share them.
  static constexpr int kReducePartials = kReducePartialCount;
  static constexpr int kReduceCounters = kReduceCounterCount;
  double* reduce_partials() const { return lane().reduce_partials; }
  unsigned int* reduce_counters() const {
    return reinterpret_cast<unsigned int*>(lane().reduce_partials + kReducePartials);
  }

  // The side lanes (options().backward_streams - 1 of them, none in BF16 mode): whether there are
  // any; the fork (the next side lane in turn waits for the main lane's work so far, and runs what
  // is enqueued until leave_side_lane); and the join (the main lane waits for all side work, a
  // no-op when there is none; the turn starts again at the first side lane, so every backward
  // pass assigns its layers to the same lanes). With one lane, enter and leave do nothing. Used
  // through SideLane.
  bool has_side_lane() const { return !sides_.empty(); }
  void enter_side_lane();
  void leave_side_lane() noexcept { on_side_ = -1; }
  void join_side_lane();
  // Waits until every lane is idle; logs, never throws (for teardown and frees).
  void wait_for_lanes() noexcept;

  // The block count for a grid-stride loop over n elements (launch_geometry.h).
  int grid_for(std::size_t n, int threads) const {
    return grid_stride_blocks(n, threads, properties_.multiProcessorCount);
  }

 private:
  // One stream of work and what runs on it.
  struct Lane {
    cudaStream_t stream = nullptr;
    cudnnHandle_t cudnn = nullptr;
    cublasHandle_t cublas = nullptr;
    void* cublas_workspace = nullptr;
    void* workspace = nullptr;  // cuDNN's
    std::size_t workspace_bytes = 0;
    double* reduce_partials = nullptr;
  };
  const Lane& lane() const { return on_side_ >= 0 ? sides_[static_cast<std::size_t>(on_side_)] : main_; }
  void create_lane(Lane& lane);
  void release_lane(Lane& lane) noexcept;

  // Grows `buffer` (of `buffer_bytes`) to at least `bytes`, rounded up to 1 MiB and zeroed on
  // `stream`: waits for the lanes, retires the old buffer (a captured graph may hold it), refuses
  // during capture.
  void grow_buffer(void*& buffer, std::size_t& buffer_bytes, std::size_t bytes, const char* what,
                   cudaStream_t stream);

  CudaOptions options_;
  cudaDeviceProp properties_{};
  Lane main_;
  std::vector<Lane> sides_;
  int on_side_ = -1;                // the side lane work goes to (inside a SideLane), else -1
  std::size_t next_side_ = 0;       // the side lane the next SideLane enters
  std::vector<bool> side_pending_;  // side lanes with work the main lane has not joined
  cudaEvent_t fork_event_ = nullptr, join_event_ = nullptr;
  std::size_t workspace_limit_ = 0;
  std::vector<void*> retired_workspaces_;
  void* bf16_scratch_ = nullptr;
  std::size_t bf16_scratch_bytes_ = 0;

  void release() noexcept;
};

// For its lifetime, work enqueued through the context goes to the next side lane in turn, after the
// main lane's work so far (a fork); without side lanes it changes nothing. The main lane joins them
// later (Context::join_side_lane). Not nested.
class SideLane {
 public:
  explicit SideLane(Context& context) : context_(context) { context_.enter_side_lane(); }
  ~SideLane() { context_.leave_side_lane(); }
  SideLane(const SideLane&) = delete;
  SideLane& operator=(const SideLane&) = delete;

 private:
  Context& context_;
};

}  // namespace fmnist::cuda
