// The fake CUDA runtime itself (fake_cuda/): work runs at once unless its stream is captured, a
// graph replays what the capture recorded (the streams that joined it included), what CUDA forbids
// during a capture fails and invalidates it, and another thread's device-wide synchronisation
// invalidates it too.
#include <cuda_runtime.h>

#include <catch2/catch.hpp>

#include <thread>
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

  // Forbidden in a capturing thread: synchronising the stream, allocating, freeing. Each is refused
  // and invalidates the capture, whose end then fails and ends it.
  for (int forbidden = 0; forbidden < 3; ++forbidden) {
    INFO("forbidden call " << forbidden);
    REQUIRE(cudaStreamBeginCapture(main, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    void* more = nullptr;
    const cudaError_t refused = forbidden == 0   ? cudaStreamSynchronize(main)
                                : forbidden == 1 ? cudaMalloc(&more, 64)
                                                 : cudaFree(counter);
    CHECK(refused == cudaErrorStreamCaptureUnsupported);
    CHECK(cudaGetLastError() == cudaErrorStreamCaptureUnsupported);
    REQUIRE(cudaStreamIsCapturing(main, &status) == cudaSuccess);
    CHECK(status == cudaStreamCaptureStatusInvalidated);
    CHECK(launch_count(main, counter) == cudaErrorStreamCaptureInvalidated);
    CHECK(cudaStreamEndCapture(main, &graph) == cudaErrorStreamCaptureInvalidated);
    CHECK(graph == nullptr);
    REQUIRE(cudaStreamIsCapturing(main, &status) == cudaSuccess);
    CHECK(status == cudaStreamCaptureStatusNone);
    (void)cudaGetLastError();
  }
  CHECK(counter[0] == 5);

  // Another thread may allocate during this thread's capture (thread-local mode), but its free
  // synchronises the device, and that invalidates every capture on it, as in CUDA.
  REQUIRE(cudaStreamBeginCapture(main, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  void* elsewhere = nullptr;
  std::thread([&] { CHECK(cudaMalloc(&elsewhere, 64) == cudaSuccess); }).join();
  REQUIRE(cudaStreamIsCapturing(main, &status) == cudaSuccess);
  CHECK(status == cudaStreamCaptureStatusActive);
  void* ordered = nullptr;  // stream-ordered allocation and free: no device-wide synchronisation
  std::thread([&] {
    CHECK(cudaMallocAsync(&ordered, 64, side) == cudaSuccess);
    CHECK(cudaFreeAsync(ordered, side) == cudaSuccess);
  }).join();
  REQUIRE(cudaStreamIsCapturing(main, &status) == cudaSuccess);
  CHECK(status == cudaStreamCaptureStatusActive);
  std::thread([&] { CHECK(cudaFree(elsewhere) == cudaSuccess); }).join();
  REQUIRE(cudaStreamIsCapturing(main, &status) == cudaSuccess);
  CHECK(status == cudaStreamCaptureStatusInvalidated);
  CHECK(cudaStreamEndCapture(main, &graph) == cudaErrorStreamCaptureInvalidated);
  (void)cudaGetLastError();

  CHECK(cudaGraphExecDestroy(exec) == cudaSuccess);
  CHECK(cudaFree(counter) == cudaSuccess);
  CHECK(cudaEventDestroy(fork) == cudaSuccess);
  CHECK(cudaEventDestroy(join) == cudaSuccess);
  CHECK(cudaStreamDestroy(side) == cudaSuccess);
  CHECK(cudaStreamDestroy(main) == cudaSuccess);
}
