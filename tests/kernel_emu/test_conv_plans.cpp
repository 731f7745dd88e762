// cuDNN convolution plans beside another thread's capture (cuda/conv.cu): trial buffers in stream
// order neither wait for nor break it; without memory pools, cudaMalloc/cudaFree wait at the
// device gate instead. The same results either way.
#include <cuda_runtime.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "cuda/backend.h"
#include "cuda/graph.h"
#include "kernel_emu_support.h"
#include "../op_shapes.h"

namespace {

using namespace fmnist;
namespace fake_cuda = fmnist::fake_cuda;

// Runs a Conv2d forward (its first: the backend makes its plan then) on a thread of its own while
// this thread holds a capture open on another context; returns y. With memory pools the plan must
// finish during the capture and leave it intact; without, it must wait for the capture's end.
std::vector<float> forward_beside_a_capture(bool memory_pools) {
  fake_cuda::set_device_visible(true);
  fake_cuda::set_memory_pools(memory_pools);
  const ConvGeometry g = testing::paper_conv2(3);
  const gputest::ConvCase k = gputest::random_conv_case(g, 20261128);
  auto ops = make_cuda_ops(CudaOptions{});
  auto* x = static_cast<float*>(ops->allocate(k.x.size() * sizeof(float)));
  auto* w = static_cast<float*>(ops->allocate(k.w.size() * sizeof(float)));
  auto* b = static_cast<float*>(ops->allocate(k.b.size() * sizeof(float)));
  auto* y = static_cast<float*>(ops->allocate(g.out_count() * sizeof(float)));
  ops->copy_to_device(x, k.x.data(), k.x.size() * sizeof(float));
  ops->copy_to_device(w, k.w.data(), k.w.size() * sizeof(float));
  ops->copy_to_device(b, k.b.data(), k.b.size() * sizeof(float));
  ops->synchronize();

  auto capturing = kernel_emu::make_context(fake_cuda::kDefaultMultiprocessors);
  cuda::begin_stream_capture(capturing->main_stream());
  std::atomic<bool> planned{false};
  std::thread planner([&] {
    ops->conv2d_forward(g, x, w, b, y);
    ops->synchronize();
    planned = true;
  });
  for (int i = 0; i < 30 && !planned; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  CHECK(cudaStreamIsCapturing(capturing->main_stream(), &status) == cudaSuccess);
  if (memory_pools) {
    CHECK(planned);  // the plan did not wait for the capture...
    CHECK(status == cudaStreamCaptureStatusActive);  // ...nor break it
  } else {
    CHECK_FALSE(planned);  // its cudaFree waits at the gate for the capture to end
  }
  cudaGraph_t graph = nullptr;
  CHECK_NOTHROW(graph = cuda::end_stream_capture(capturing->main_stream()));
  if (graph != nullptr) CHECK(cudaGraphDestroy(graph) == cudaSuccess);
  planner.join();
  CHECK(planned);

  std::vector<float> out(g.out_count());
  ops->copy_to_host(out.data(), y, out.size() * sizeof(float));
  for (float* p : {x, w, b, y}) ops->deallocate(p);
  fake_cuda::set_memory_pools(true);
  return out;
}

}  // namespace

TEST_CASE("a convolution plan made beside another thread's capture: stream-ordered trials, or the gate",
          "[capture_gate][conv]") {
  const std::vector<float> pooled = forward_beside_a_capture(true);
  const std::vector<float> plain = forward_beside_a_capture(false);
  CHECK(pooled == plain);
}
