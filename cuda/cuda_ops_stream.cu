// CudaOps' streaming calls (models/ops.h, "streaming"): pinned host memory, the upload ring and
// stopwatch (streaming.h), graph capture of the compute stream (graph.h) and the step-reading
// ops (step_kernels.h). Preconditions are checked on the host as in cuda_ops.cu.
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "cuda/check.h"
#include "cuda/device_gate.h"
#include "cuda/cuda_ops.h"
#include "cuda/graph.h"
#include "cuda/step_kernels.h"
#include "cuda/streaming.h"
#include "models/op_checks.h"

namespace fmnist::cuda {

using namespace op_checks;  // fail, require, check_* (models/op_checks.h)

void* CudaOps::allocate_host(std::size_t bytes) {
  const std::size_t size = bytes == 0 ? 1 : bytes;
  void* ptr = nullptr;
  CUDA_CHECK(cudaHostAlloc(&ptr, size, cudaHostAllocDefault));
  std::memset(ptr, 0, size);
  return ptr;
}

void CudaOps::deallocate_host(void* ptr) noexcept {
  if (ptr == nullptr) return;
  DeviceWideSync sync;  // cudaFreeHost synchronises the device
  context_.wait_for_lanes();  // a queued copy may still read it
  CUDA_LOG(cudaFreeHost(ptr));
}

std::size_t CudaOps::free_memory() {
  std::size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return free_bytes;
}

std::unique_ptr<UploadRing> CudaOps::make_upload_ring(int slots, std::size_t slot_bytes) {
  return std::make_unique<CudaUploadRing>(main_lane(), slots, slot_bytes);
}

std::unique_ptr<Stopwatch> CudaOps::make_stopwatch() {
  return std::make_unique<CudaStopwatch>(main_lane());
}

void CudaOps::begin_capture() {
  if (capturing_) throw std::logic_error("begin_capture: a capture is already running");
  begin_stream_capture(main_lane().stream());
  capturing_ = true;
}

std::unique_ptr<CapturedWork> CudaOps::end_capture() {
  if (!capturing_) throw std::logic_error("end_capture: no capture is running");
  // The side lane rejoins first: a capture ends only with every forked stream joined. Should the
  // join throw, the capture still runs and abort_capture ends it.
  context_.join_side_lane();
  capturing_ = false;
  cudaGraph_t graph = end_stream_capture(context_.main_stream());
  return std::make_unique<CudaGraph>(graph, context_);
}

void CudaOps::abort_capture() noexcept {
  if (!capturing_) return;
  capturing_ = false;
  try {
    context_.join_side_lane();
  } catch (const std::exception& e) {  // an invalidated capture may refuse the join; it ends anyway
    std::fprintf(stderr, "fmnist: abort_capture: %s\n", e.what());
  }
  abort_stream_capture(context_.main_stream());
}

void CudaOps::gather_rows(int count, std::size_t pixels, const RowSource& source,
                          const RowOrder& order, const StepCursor* cursor, std::uint8_t* images,
                          std::uint8_t* labels, float* scaled) {
  const char* op = "gather_rows";
  if (count <= 0) fail(op, "count must be positive (got " + std::to_string(count) + ")");
  if (pixels == 0) fail(op, "pixels must be positive");
  require(op, "source.images", source.images);
  require(op, "source.labels", source.labels);
  require(op, "order", order.order);
  require(op, "cursor", cursor);
  require(op, "images", images);
  require(op, "labels", labels);
  if (order.stride < static_cast<std::size_t>(count)) fail(op, "order stride below the count");
  launch_gather_rows(main_lane(), count, pixels, source, order, cursor, images, labels, scaled);
}

void CudaOps::dropout_forward_at(std::size_t n, float p, std::uint64_t seed, const StepCursor* cursor,
                                 std::uint32_t layer, const float* x, float* y) {
  const char* op = "dropout_forward_at";
  check_dropout_forward(op, n, p, x, y);
  require(op, "cursor", cursor);
  launch_dropout_at(main_lane(), n, p, seed, cursor, layer, x, y);
}

void CudaOps::dropout_backward_at(std::size_t n, float p, std::uint64_t seed,
                                  const StepCursor* cursor, std::uint32_t layer, const float* dy,
                                  float* dx) {
  const char* op = "dropout_backward_at";
  check_dropout_backward(op, n, p, dy, dx);
  require(op, "cursor", cursor);
  launch_dropout_at(context_, n, p, seed, cursor, layer, dy, dx);
}

void CudaOps::adam_update_at(std::size_t n, float* params, const float* grads, float* m, float* v,
                             const elementwise::AdamStep<float>* table, StepCursor* cursor, bool advance) {
  const char* op = "adam_update_at";
  check_adam_update(op, n, params, grads, m, v);
  require(op, "table", table);
  require(op, "cursor", cursor);
  launch_adam_at(main_lane(), n, params, grads, m, v, table, cursor, advance);
}

void CudaOps::set_cursor(StepCursor* cursor, std::uint64_t step, std::uint64_t index) {
  require("set_cursor", "cursor", cursor);
  launch_set_cursor(main_lane(), cursor, step, index);
}

void CudaOps::advance_cursor(StepCursor* cursor) {
  require("advance_cursor", "cursor", cursor);
  launch_advance_cursor(main_lane(), cursor);
}

}  // namespace fmnist::cuda
