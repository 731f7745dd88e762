// The fake CUDA runtime itself (fake_cuda/): work runs at once unless its stream is captured, a
// graph replays what the capture recorded (the streams that joined it included), and what CUDA
// forbids during a capture fails.
#include <cuda_runtime.h>

#include <catch2/catch.hpp>

#include <vector>

namespace {

// counter[0] += 1, by one thread.
__global__ void count_kernel(int* counter) { counter[0] += 1; }

cudaError_t launch_count(cudaStream_t stream, int* counter) {
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(1);
  config.blockDim = dim3(1);
  config.stream = stream;
  return cudaLaunchKernelEx(&config, count_kernel, counter);
}

}  // namespace

TEST_CASE("the fake CUDA runtime records a capture, replays it, and refuses what a capture forbids", "[fake_cuda]") {
  cudaStream_t main = nullptr, side = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&main, cudaStreamNonBlocking) == cudaSuccess);
  REQUIRE(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking) == cudaSuccess);
  cudaEvent_t fork = nullptr, join = nullptr;
  REQUIRE(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming) == cudaSuccess);
  REQUIRE(cudaEventCreateWithFlags(&join, cudaEventDisableTiming) == cudaSuccess);
  int* counter = nullptr;
  REQUIRE(cudaMalloc(&counter, sizeof(int)) == cudaSuccess);
  REQUIRE(cudaMemsetAsync(counter, 0, sizeof(int), main) == cudaSuccess);
  REQUIRE(launch_count(main, counter) == cudaSuccess);
  CHECK(counter[0] == 1);  // not captured: at once

  REQUIRE(cudaStreamBeginCapture(main, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  REQUIRE(launch_count(main, counter) == cudaSuccess);
  // The side stream joins the capture through an event, and the main stream joins it back.
  REQUIRE(cudaEventRecord(fork, main) == cudaSuccess);
  REQUIRE(cudaStreamWaitEvent(side, fork) == cudaSuccess);
  REQUIRE(launch_count(side, counter) == cudaSuccess);
  REQUIRE(cudaEventRecord(join, side) == cudaSuccess);
  REQUIRE(cudaStreamWaitEvent(main, join) == cudaSuccess);
  CHECK(counter[0] == 1);  // recorded, not run
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  REQUIRE(cudaStreamIsCapturing(side, &status) == cudaSuccess);
  CHECK(status == cudaStreamCaptureStatusActive);
  // Forbidden while capturing: synchronising the stream, allocating, freeing.
  void* more = nullptr;
  CHECK(cudaStreamSynchronize(main) == cudaErrorStreamCaptureUnsupported);
  CHECK(cudaMalloc(&more, 64) == cudaErrorStreamCaptureUnsupported);
  CHECK(cudaFree(counter) == cudaErrorStreamCaptureUnsupported);
  (void)cudaGetLastError();
  cudaGraph_t graph = nullptr;
  REQUIRE(cudaStreamEndCapture(main, &graph) == cudaSuccess);
  REQUIRE(cudaStreamIsCapturing(side, &status) == cudaSuccess);
  CHECK(status == cudaStreamCaptureStatusNone);  // the capture's end releases the joined stream
  std::size_t nodes = 0;
  REQUIRE(cudaGraphGetNodes(graph, nullptr, &nodes) == cudaSuccess);
  CHECK(nodes == 2);
  cudaGraphExec_t exec = nullptr;
  REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
  REQUIRE(cudaGraphDestroy(graph) == cudaSuccess);
  REQUIRE(cudaGraphLaunch(exec, main) == cudaSuccess);
  REQUIRE(cudaGraphLaunch(exec, main) == cudaSuccess);
  REQUIRE(cudaStreamSynchronize(main) == cudaSuccess);
  CHECK(counter[0] == 5);  // 1 + two replays of two launches

  // A launch the emulator refuses (a block of 2,048 threads) fails as a GPU's would.
  cudaLaunchConfig_t bad{};
  bad.gridDim = dim3(1);
  bad.blockDim = dim3(2048);
  bad.stream = main;
  CHECK(cudaLaunchKernelEx(&bad, count_kernel, counter) == cudaErrorLaunchFailure);
  CHECK(cudaGetLastError() == cudaErrorLaunchFailure);
  CHECK(cudaGetLastError() == cudaSuccess);

  CHECK(cudaGraphExecDestroy(exec) == cudaSuccess);
  CHECK(cudaFree(counter) == cudaSuccess);
  CHECK(cudaEventDestroy(fork) == cudaSuccess);
  CHECK(cudaEventDestroy(join) == cudaSuccess);
  CHECK(cudaStreamDestroy(side) == cudaSuccess);
  CHECK(cudaStreamDestroy(main) == cudaSuccess);
}
