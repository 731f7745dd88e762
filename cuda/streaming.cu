// CudaUploadRing and CudaStopwatch (see streaming.h).
#include "cuda/streaming.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "cuda/check.h"
#include "cuda/device_gate.h"

namespace fmnist::cuda {

CudaUploadRing::CudaUploadRing(const Context& context, int slots, std::size_t slot_bytes)
    : compute_(context.main_stream()), slots_(slots), slot_bytes_(slot_bytes) {
  if (slots < 2) throw std::invalid_argument("upload ring: at least 2 slots are needed");
  if (slot_bytes == 0) throw std::invalid_argument("upload ring: slot size must be positive");
  const std::size_t total = static_cast<std::size_t>(slots) * slot_bytes;
  try {  // allocations only; release_all, on failure, takes the device gate for its frees
    CUDA_CHECK(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&host_), total, cudaHostAllocDefault));
    std::fill(host_, host_ + total, std::uint8_t{0});
    CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&device_), total));
    // On the copy stream: ordered before every upload, and before any read (acquire waits for
    // an upload's event).
    CUDA_CHECK(cudaMemsetAsync(device_, 0, total, copy_));
    copied_.assign(static_cast<std::size_t>(slots), nullptr);
    consumed_.assign(static_cast<std::size_t>(slots), nullptr);
    for (int s = 0; s < slots; ++s) {
      CUDA_CHECK(cudaEventCreateWithFlags(&copied_[s], cudaEventDisableTiming));
      CUDA_CHECK(cudaEventCreateWithFlags(&consumed_[s], cudaEventDisableTiming));
    }
  } catch (...) {
    release_all();
    throw;
  }
}

CudaUploadRing::~CudaUploadRing() { release_all(); }

void CudaUploadRing::release_all() noexcept {
  DeviceWideSync sync;  // cudaFree and cudaFreeHost synchronise the device
  // Work still queued on either stream may use the buffers.
  if (copy_ != nullptr) CUDA_LOG(cudaStreamSynchronize(copy_));
  if (compute_ != nullptr) CUDA_LOG(cudaStreamSynchronize(compute_));
  for (cudaEvent_t e : copied_)
    if (e != nullptr) CUDA_LOG(cudaEventDestroy(e));
  for (cudaEvent_t e : consumed_)
    if (e != nullptr) CUDA_LOG(cudaEventDestroy(e));
  copied_.clear();
  consumed_.clear();
  if (device_ != nullptr) CUDA_LOG(cudaFree(device_));
  if (host_ != nullptr) CUDA_LOG(cudaFreeHost(host_));
  if (copy_ != nullptr) CUDA_LOG(cudaStreamDestroy(copy_));
  device_ = host_ = nullptr;
  copy_ = nullptr;
}

std::size_t CudaUploadRing::offset(int slot) const {
  if (slot < 0 || slot >= slots_)
    throw std::out_of_range("upload ring: slot " + std::to_string(slot) + " outside [0, " +
                            std::to_string(slots_) + ")");
  return static_cast<std::size_t>(slot) * slot_bytes_;
}

void CudaUploadRing::wait_writable(int slot) {
  (void)offset(slot);
  CUDA_CHECK(cudaEventSynchronize(copied_[slot]));
}

void CudaUploadRing::upload(int slot, std::size_t bytes) {
  const std::size_t at = offset(slot);
  if (bytes > slot_bytes_) throw std::invalid_argument("upload ring: upload larger than a slot");
  CUDA_CHECK(cudaStreamWaitEvent(copy_, consumed_[slot], 0));
  CUDA_CHECK(cudaMemcpyAsync(device_ + at, host_ + at, bytes, cudaMemcpyHostToDevice, copy_));
  CUDA_CHECK(cudaEventRecord(copied_[slot], copy_));
}

void CudaUploadRing::acquire(int slot) {
  (void)offset(slot);
  CUDA_CHECK(cudaStreamWaitEvent(compute_, copied_[slot], 0));
}

void CudaUploadRing::release(int slot) {
  (void)offset(slot);
  CUDA_CHECK(cudaEventRecord(consumed_[slot], compute_));
}

CudaStopwatch::CudaStopwatch(const Context& context) : stream_(context.main_stream()) {
  CUDA_CHECK(cudaEventCreate(&start_));
  const cudaError_t status = cudaEventCreate(&stop_);
  if (status != cudaSuccess) {
    CUDA_LOG(cudaEventDestroy(start_));
    throw_cuda(status, "cudaEventCreate(&stop_)", __FILE__, __LINE__);
  }
}

CudaStopwatch::~CudaStopwatch() {
  CUDA_LOG(cudaEventDestroy(start_));
  CUDA_LOG(cudaEventDestroy(stop_));
}

// External records: in a stream capture each becomes a node of the graph, so that every replay
// records the event (host/range_timer.h times a captured step's ranges so); elsewhere plain records.
void CudaStopwatch::start() { CUDA_CHECK(cudaEventRecordWithFlags(start_, stream_, cudaEventRecordExternal)); }
void CudaStopwatch::stop() { CUDA_CHECK(cudaEventRecordWithFlags(stop_, stream_, cudaEventRecordExternal)); }

double CudaStopwatch::seconds() {
  CUDA_CHECK(cudaEventSynchronize(stop_));
  float ms = 0.0f;
  CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
  return static_cast<double>(ms) / 1000.0;
}

}  // namespace fmnist::cuda
