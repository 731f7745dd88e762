// The process-wide gate between CUDA graph captures and the calls that synchronise the whole
// device, so that runs sharing a process (fmnist reproduce) do not break each other's captures.
#pragma once

#include <mutex>
#include <shared_mutex>

namespace fmnist::cuda {

// CUDA invalidates every capture in progress on a device when any thread synchronises that device
// (cudaFree, cudaFreeHost, a library handle's teardown), whatever the capture mode. A capture holds
// the gate shared, from its begin to its end (captures in several threads may run at once); those
// calls hold it exclusively, and so wait for the captures. Allocations (cudaMalloc, cudaHostAlloc,
// cudaMallocAsync) synchronise nothing and take no gate; library handles' creation takes it, as
// their teardown does (cuda/context.cu).

// Entered by begin_stream_capture, left by end_stream_capture or abort_stream_capture (graph.h), in
// the capturing thread. One capture a thread: entering twice is a std::logic_error.
void enter_capture_section();
void leave_capture_section() noexcept;  // no-op when this thread holds no capture section
bool in_capture_section() noexcept;     // this thread's

// Held around each call that may synchronise the whole device, and around sections that make such
// calls (a Context's lanes and handles, their release):
//   DeviceWideSync sync;  CUDA_CHECK(cudaFree(ptr));
// Waits for the captures of other threads to end. In a thread that is itself capturing it takes
// nothing: CUDA then refuses the call (cudaErrorStreamCaptureUnsupported), and the check of that
// call reports it; waiting would wait for ever.
class DeviceWideSync {
 public:
  DeviceWideSync();
  ~DeviceWideSync();
  DeviceWideSync(const DeviceWideSync&) = delete;
  DeviceWideSync& operator=(const DeviceWideSync&) = delete;

 private:
  std::unique_lock<std::shared_mutex> lock_;
};

}  // namespace fmnist::cuda
