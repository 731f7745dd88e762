// The types of the backend interface's streaming part (models/ops.h): what lets a train step run
// without the host. A step reads its per-step values (Adam's constants, the dropout step, which
// batch rows to stage) from a StepCursor in backend memory, so that one captured program (a CUDA
// graph, CapturedWork) serves every step; batches reach the backend through an UploadRing that
// overlaps their copy with compute; a Stopwatch times work where it runs.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fmnist {

// The step that a step-reading op works on, in backend memory. `step` is the 1-based global
// training step (Adam's t and the dropout counter); `index` the step's position in its pass (the
// batch number within the epoch or evaluation: the row of the Adam table and of the batch order).
// Ops::advance_cursor adds one to both.
struct StepCursor {
  std::uint64_t step = 0;
  std::uint64_t index = 0;
};

// Rows of uint8 images and labels in backend memory: row q's image is the `pixels` bytes at
// images + q * image_stride, its label labels[q * label_stride].
struct RowSource {
  const std::uint8_t* images = nullptr;
  const std::uint8_t* labels = nullptr;
  std::size_t image_stride = 0;
  std::size_t label_stride = 0;
};

// Which rows a batch is: batch row r (r < count) is source row
//   order[(period ? cursor->index % period : cursor->index) * stride + r].
struct RowOrder {
  const std::int32_t* order = nullptr;  // backend memory
  std::size_t stride = 0;               // entries per batch (the full batch size)
  std::size_t period = 0;               // 0: none; else batches repeat every `period` indices
};

// A ring of `slots()` upload slots, each a host buffer (pinned on a GPU) and a backend buffer of
// slot_bytes() bytes, the backend buffers contiguous from device_base(). Copies run on a copy
// queue beside the compute queue and overlap compute. The protocol for one use of a slot:
//   wait_writable(s)  host: the slot's previous upload has finished reading host_slot(s)
//   (the host writes host_slot(s))
//   upload(s, bytes)  copy queue: host_slot(s) -> device_slot(s), once the compute queue has
//                     passed release(s) of the slot's previous use
//   acquire(s)        compute queue: ops enqueued from now on run after the upload
//   (compute ops read device_slot(s))
//   release(s)        compute queue: the ops enqueued so far are the last to read the slot
// The CPU's ring is synchronous (the copy happens in upload) and checks this order.
class UploadRing {
 public:
  virtual ~UploadRing() = default;
  virtual int slots() const = 0;
  virtual std::size_t slot_bytes() const = 0;
  virtual std::uint8_t* host_slot(int slot) = 0;
  virtual std::uint8_t* device_base() = 0;
  std::uint8_t* device_slot(int slot) { return device_base() + static_cast<std::size_t>(slot) * slot_bytes(); }
  virtual void wait_writable(int slot) = 0;
  virtual void upload(int slot, std::size_t bytes) = 0;
  virtual void acquire(int slot) = 0;
  virtual void release(int slot) = 0;
};

// Times the work enqueued between start() and stop() where it runs: CUDA events on the GPU, the
// host clock on a synchronous backend. seconds() waits for stop() to be reached.
class Stopwatch {
 public:
  virtual ~Stopwatch() = default;
  virtual void start() = 0;
  virtual void stop() = 0;
  virtual double seconds() = 0;
  virtual const char* clock() const = 0;  // "cuda-events" or "host-clock"
};

// Work recorded once (Ops::begin_capture .. end_capture) and replayed: a CUDA graph. replay()
// enqueues it on the compute queue and returns.
class CapturedWork {
 public:
  virtual ~CapturedWork() = default;
  virtual void replay() = 0;
};

}  // namespace fmnist
