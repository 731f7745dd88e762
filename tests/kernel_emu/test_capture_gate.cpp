// Graph captures beside other threads (cuda/device_gate.h): a capture survives another thread's
// device-wide synchronisation, which waits for it; a capturing thread never waits for itself; and a
// step whose capture fails runs un-captured and is captured again at its next step (StepGraphs).
#include <cuda_runtime.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "cuda/backend.h"
#include "cuda/check.h"
#include "cuda/device_gate.h"
#include "cuda/graph.h"
#include "host/step_graphs.h"
#include "kernel_emu_support.h"

namespace {

using fmnist::CudaOptions;
namespace cuda = fmnist::cuda;
namespace fake_cuda = fmnist::fake_cuda;

// How long the capturing thread holds its capture open while another thread tries to tear down a
// context: far longer than that teardown takes when nothing holds it back.
constexpr auto kHoldOpen = std::chrono::milliseconds(300);

}  // namespace

TEST_CASE("a capture survives another thread's device-wide synchronisation, which waits for it", "[capture_gate]") {
  auto context = fmnist::kernel_emu::make_context(fake_cuda::kDefaultMultiprocessors);
  auto other = std::make_unique<cuda::Context>(CudaOptions{});  // torn down by the other thread
  int* marks = nullptr;  // two ints, set by two captured memsets
  REQUIRE(cudaMalloc(&marks, 2 * sizeof(int)) == cudaSuccess);
  REQUIRE(cudaMemsetAsync(marks, 0, 2 * sizeof(int), context->main_stream()) == cudaSuccess);

  cuda::begin_stream_capture(context->main_stream());
  CHECK(cuda::in_capture_section());
  CHECK(cudaMemsetAsync(marks, 0x01, sizeof(int), context->main_stream()) == cudaSuccess);
  std::atomic<bool> torn_down{false};
  std::thread teardown([&] {
    other.reset();  // cudaFree, cudnnDestroy...: each would invalidate the capture
    torn_down = true;
  });
  std::this_thread::sleep_for(kHoldOpen);
  CHECK_FALSE(torn_down);  // still waiting for the capture to end
  CHECK(cudaMemsetAsync(marks + 1, 0x02, sizeof(int), context->main_stream()) == cudaSuccess);
  cudaGraph_t graph = nullptr;
  CHECK_NOTHROW(graph = cuda::end_stream_capture(context->main_stream()));
  CHECK_FALSE(cuda::in_capture_section());
  teardown.join();
  CHECK(torn_down);
  REQUIRE(graph != nullptr);
  CHECK(marks[0] == 0);  // recorded, not run

  cuda::CudaGraph replayable(graph, *context);
  replayable.replay();
  CUDA_CHECK(cudaStreamSynchronize(context->main_stream()));
  CHECK(marks[0] == 0x01010101);  // both captured memsets, replayed
  CHECK(marks[1] == 0x02020202);
  CHECK(cudaFree(marks) == cudaSuccess);
}

TEST_CASE("a capturing thread's own device-wide call fails instead of waiting for itself", "[capture_gate]") {
  auto context = fmnist::kernel_emu::make_context(fake_cuda::kDefaultMultiprocessors);
  cuda::begin_stream_capture(context->main_stream());
  {
    cuda::DeviceWideSync sync;  // takes nothing: this thread holds the capture
    void* buffer = nullptr;
    CHECK(cudaMalloc(&buffer, 64) == cudaErrorStreamCaptureUnsupported);
    (void)cudaGetLastError();
  }
  // The refused call invalidated the capture; its end says so, and lets go of the gate.
  CHECK_THROWS_WITH(cuda::end_stream_capture(context->main_stream()),
                    Catch::Contains("cudaStreamEndCapture"));
  CHECK_FALSE(cuda::in_capture_section());
  std::thread other([] { cuda::DeviceWideSync sync; });  // would wait for ever if the gate were held
  other.join();
  // One capture a thread; a capture that fails midway and is aborted lets go of the gate too.
  cuda::begin_stream_capture(context->main_stream());
  CHECK_THROWS_AS(cuda::enter_capture_section(), std::logic_error);
  cuda::abort_stream_capture(context->main_stream());
  CHECK_FALSE(cuda::in_capture_section());
  std::thread after_abort([] { cuda::DeviceWideSync sync; });
  after_abort.join();
}

TEST_CASE("a backend destroyed in the middle of a capture lets go of the device gate", "[capture_gate]") {
  fake_cuda::set_device_visible(true);
  auto ops = fmnist::make_cuda_ops(CudaOptions{});
  ops->begin_capture();
  CHECK(cuda::in_capture_section());
  ops.reset();
  CHECK_FALSE(cuda::in_capture_section());
  // Another thread's device-wide call gets through (a leaked hold would keep it waiting for ever:
  // it is given 5 s, then left behind, detached).
  auto passed = std::make_shared<std::atomic<bool>>(false);
  std::thread other([passed] {
    cuda::DeviceWideSync sync;
    *passed = true;
  });
  for (int i = 0; i < 500 && !*passed; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(*passed);
  if (*passed)
    other.join();
  else
    other.detach();
}

TEST_CASE("StepGraphs: a step whose capture fails runs un-captured and its kind is captured again", "[capture_gate]") {
  fake_cuda::set_device_visible(true);
  auto ops = fmnist::make_cuda_ops(CudaOptions{});
  constexpr std::size_t kCount = 1000;
  auto* values = static_cast<float*>(ops->allocate(kCount * sizeof(float)));
  const fmnist::StepGraphs::Key key{fmnist::StepGraphs::Phase::Train, 4, 4, nullptr};
  constexpr int kAttempts = fmnist::StepGraphs::kCaptureAttempts;

  for (const int failing : {kAttempts - 1, kAttempts}) {
    INFO(failing << " captures fail");
    std::ostringstream log;
    fmnist::StepGraphs graphs(*ops, true, &log);
    REQUIRE(graphs.active());
    fake_cuda::invalidate_next_captures(failing);
    int enqueued = 0;
    for (int step = 1; step <= kAttempts + 3; ++step) {
      ops->fill(values, 0.0f, kCount);
      graphs.run(key, [&] {
        ++enqueued;
        ops->fill(values, 7.0f, kCount);
      });
      ops->synchronize();
      INFO("step " << step);
      CHECK(values[0] == 7.0f);  // captured, replayed or un-captured: the step ran
      CHECK(values[kCount - 1] == 7.0f);
    }
    CHECK(graphs.failures() == failing);
    for (int attempt = 1; attempt < kAttempts && attempt <= failing; ++attempt)
      CHECK_THAT(log.str(), Catch::Contains("tries again (attempt " + std::to_string(attempt) + " of " +
                                            std::to_string(kAttempts) + ")"));
    if (failing < kAttempts) {
      CHECK(graphs.captured() == 1);  // the capture after the failed ones
      // the warm-up, a failed capture plus its un-captured run each, then the successful capture
      CHECK(enqueued == 1 + 2 * failing + 1);
      CHECK(graphs.replays() == kAttempts + 3 - 1 - failing);
      CHECK_THAT(log.str(), !Catch::Contains("this kind of step runs un-captured"));
    } else {
      CHECK(graphs.captured() == 0);
      CHECK(enqueued == 1 + 2 * failing + (kAttempts + 3 - 1 - failing));  // given up: un-captured
      CHECK(graphs.replays() == 0);
      CHECK_THAT(log.str(), Catch::Contains("this kind of step runs un-captured (same results"));
    }
  }
  fake_cuda::invalidate_next_captures(0);
  ops->deallocate(values);
}
