// The copy stream and the events of CudaOps' streaming calls (models/stream_types.h):
// CudaUploadRing (pinned host slots, device slots, a copy stream, an event pair per slot) and
// CudaStopwatch (timing events on the compute stream).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cuda/context.h"
#include "models/stream_types.h"

namespace fmnist::cuda {

// Per slot s: copied[s] is recorded on the copy stream after the slot's upload, consumed[s] on the
// compute stream at release(s). upload waits (on the copy stream) for consumed[s]; acquire makes
// the compute stream wait for copied[s]; wait_writable waits on the host for copied[s] (so the
// pinned buffer may be rewritten). An event never recorded counts as reached.
class CudaUploadRing final : public UploadRing {
 public:
  CudaUploadRing(const Context& context, int slots, std::size_t slot_bytes);
  ~CudaUploadRing() override;
  CudaUploadRing(const CudaUploadRing&) = delete;
  CudaUploadRing& operator=(const CudaUploadRing&) = delete;

  int slots() const override { return slots_; }
  std::size_t slot_bytes() const override { return slot_bytes_; }
  std::uint8_t* host_slot(int slot) override { return host_ + offset(slot); }
  std::uint8_t* device_base() override { return device_; }
  void wait_writable(int slot) override;
  void upload(int slot, std::size_t bytes) override;
  void acquire(int slot) override;
  void release(int slot) override;

 private:
  std::size_t offset(int slot) const;
  void release_all() noexcept;

  cudaStream_t compute_ = nullptr;
  const int slots_;
  const std::size_t slot_bytes_;
  cudaStream_t copy_ = nullptr;
  std::uint8_t* host_ = nullptr;    // pinned, slots * slot_bytes
  std::uint8_t* device_ = nullptr;  // slots * slot_bytes
  std::vector<cudaEvent_t> copied_, consumed_;
};

class CudaStopwatch final : public Stopwatch {
 public:
  explicit CudaStopwatch(const Context& context);
  ~CudaStopwatch() override;
  CudaStopwatch(const CudaStopwatch&) = delete;
  CudaStopwatch& operator=(const CudaStopwatch&) = delete;

  void start() override;
  void stop() override;
  double seconds() override;
  const char* clock() const override { return "cuda-events"; }

 private:
  cudaStream_t stream_ = nullptr;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

}  // namespace fmnist::cuda
