// CUDA graphs for CudaOps' capture calls (models/ops.h): stream capture of the compute stream into
// a graph, instantiated once and replayed with one cudaGraphLaunch. What a graph captured holds
// fixed: every kernel argument (device pointers included) and every cuDNN/cuBLAS call's
// algorithm, workspace and scalars. So everything it touches must outlive it at the same address
// (the executor's buffers, the cuDNN workspace: the context retires a grown workspace instead of
// freeing it), and whatever changes per step is read from device memory (a StepCursor).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "cuda/context.h"
#include "models/stream_types.h"

namespace fmnist::cuda {

// Starts capturing `stream` (thread-local mode: other threads' CUDA calls are not refused). Holds the
// device gate until the capture ends, so another thread's device-wide synchronisation (a cudaFree,
// which CUDA lets invalidate every capture on the device) waits for it (device_gate.h).
void begin_stream_capture(cudaStream_t stream);
// Ends the capture of `stream`; throws when the capture failed (an op that may not be captured
// ran, e.g. one that allocates or waits).
cudaGraph_t end_stream_capture(cudaStream_t stream);
// Ends a capture that failed midway and discards it; never throws. Both end the gate's hold.
void abort_stream_capture(cudaStream_t stream) noexcept;

// An instantiated graph, replayed on the context's main stream. A replay first joins any side-lane
// work still pending (Context::join_side_lane): the graph's own branches use the side lanes'
// workspaces and reduction scratch.
class CudaGraph final : public CapturedWork {
 public:
  // Instantiates `graph` and destroys it (the executable graph is all that is kept).
  CudaGraph(cudaGraph_t graph, Context& context);
  ~CudaGraph() override;
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  void replay() override;
  std::size_t node_count() const { return nodes_; }

 private:
  cudaGraphExec_t exec_ = nullptr;
  Context& context_;
  std::size_t nodes_ = 0;
};

}  // namespace fmnist::cuda
