// CUDA graphs: capture, instantiation and replay (see graph.h).
#include "cuda/graph.h"

#include <cstdio>
#include <stdexcept>

#include "cuda/check.h"
#include "cuda/device_gate.h"

namespace fmnist::cuda {

// A capture holds the device gate from its begin to its end, so that no other thread's device-wide
// synchronisation invalidates it halfway (device_gate.h).
void begin_stream_capture(cudaStream_t stream) {
  enter_capture_section();
  const cudaError_t status = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
  if (status != cudaSuccess) {
    leave_capture_section();
    throw_cuda(status, "cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal)", __FILE__, __LINE__);
  }
}

cudaGraph_t end_stream_capture(cudaStream_t stream) {
  cudaGraph_t graph = nullptr;
  const cudaError_t status = cudaStreamEndCapture(stream, &graph);
  leave_capture_section();
  if (status != cudaSuccess) {
    if (graph != nullptr) CUDA_LOG(cudaGraphDestroy(graph));
    throw_cuda(status, "cudaStreamEndCapture(stream, &graph)", __FILE__, __LINE__);
  }
  if (graph == nullptr) throw std::runtime_error("CUDA graph capture produced no graph");
  return graph;
}

void abort_stream_capture(cudaStream_t stream) noexcept {
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &capturing) != cudaSuccess) (void)cudaGetLastError();
  if (capturing != cudaStreamCaptureStatusNone) {
    cudaGraph_t graph = nullptr;
    (void)cudaStreamEndCapture(stream, &graph);  // fails for an invalidated capture: expected
    if (graph != nullptr) CUDA_LOG(cudaGraphDestroy(graph));
    // Said, for the next GPU session to read: the step's un-captured run follows on this stream.
    cudaStreamCaptureStatus after = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream, &after) == cudaSuccess && after != cudaStreamCaptureStatusNone)
      std::fprintf(stderr, "fmnist: abort_stream_capture: the stream still reports a capture (status %d) after "
                           "cudaStreamEndCapture\n", static_cast<int>(after));
  }
  (void)cudaGetLastError();  // the capture's error is not sticky; clear it
  leave_capture_section();
}

CudaGraph::CudaGraph(cudaGraph_t graph, Context& context) : context_(context) {
  const cudaError_t counted = cudaGraphGetNodes(graph, nullptr, &nodes_);
  const cudaError_t status = counted == cudaSuccess ? cudaGraphInstantiate(&exec_, graph, 0) : counted;
  CUDA_LOG(cudaGraphDestroy(graph));
  if (status != cudaSuccess) throw_cuda(status, "cudaGraphInstantiate(&exec_, graph, 0)", __FILE__, __LINE__);
}

CudaGraph::~CudaGraph() {
  // An executable graph still running is freed when it completes.
  if (exec_ != nullptr) CUDA_LOG(cudaGraphExecDestroy(exec_));
}

void CudaGraph::replay() {
  context_.join_side_lane();
  CUDA_CHECK(cudaGraphLaunch(exec_, context_.main_stream()));
}

}  // namespace fmnist::cuda
