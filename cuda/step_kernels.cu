// Kernels of the step-reading ops (see step_kernels.h). Compiled with --fmad=false like every
// kernel of this library: adam_at and dropout_at round exactly as their by-value twins
// (adam.cu, kernels.cu) and as the CPU reference.
#include "cuda/step_kernels.h"

#include "cuda/adam_elements.cuh"
#include "cuda/check.h"
#include "cuda/grid_stride.cuh"
#include "cuda/launch.cuh"
#include "cuda/ordered_sum.cuh"

namespace fmnist::cuda {
namespace {

namespace ew = elementwise;

// One thread per image byte (grid-stride), which it also scales into `scaled` when that is
// non-null (the executor's input: images_to_float in the same pass); the first `count` threads
// also copy a label.
__global__ void gather_rows_kernel(int count, std::size_t pixels, RowSource source, RowOrder order,
                                   const StepCursor* cursor, std::uint8_t* images,
                                   std::uint8_t* labels, float* scaled) {
  grid_dependency();
  const std::uint64_t index = order.period != 0 ? cursor->index % order.period : cursor->index;
  const std::int32_t* rows = order.order + index * order.stride;
  const std::size_t n = static_cast<std::size_t>(count) * pixels;
  for (std::size_t i = global_index(); i < n; i += global_stride()) {
    const std::size_t r = i / pixels, j = i % pixels;
    const std::uint8_t pixel = source.images[static_cast<std::size_t>(rows[r]) * source.image_stride + j];
    images[i] = pixel;
    if (scaled != nullptr) scaled[i] = ew::pixel_to_unit<float>(pixel);
  }
  for (std::size_t r = global_index(); r < static_cast<std::size_t>(count); r += global_stride())
    labels[r] = source.labels[static_cast<std::size_t>(rows[r]) * source.label_stride];
}

__global__ void dropout_at_kernel(std::size_t n, float p, std::uint64_t seed,
                                  const StepCursor* cursor, std::uint32_t layer, const float* in,
                                  float* out) {
  grid_dependency();
  const std::uint64_t step = cursor->step;
  for (std::size_t i = global_index(); i < n; i += global_stride())
    out[i] = in[i] * ew::dropout_factor<float>(seed, step, layer, i, p);
}

// counters: null, or the lane's reduction counters (counter 0, left at 0) to advance the cursor.
__global__ void adam_at_kernel(std::size_t n, float* params, const float* grads, float* m, float* v,
                               const ew::AdamStep<float>* table, StepCursor* cursor, unsigned int* counters) {
  grid_dependency();
  const ew::AdamStep<float> step = table[cursor->index];
  adam_elements(n, params, grads, m, v, step);
  // Each block read the cursor before it counts itself done; the last one moves it on.
  if (counters == nullptr || !last_block_of_row(counters, 0, gridDim.x)) return;
  if (threadIdx.x == 0) {
    cursor->step += 1;
    cursor->index += 1;
  }
}

__global__ void set_cursor_kernel(StepCursor* cursor, std::uint64_t step, std::uint64_t index) {
  grid_dependency();
  cursor->step = step;
  cursor->index = index;
}

__global__ void advance_cursor_kernel(StepCursor* cursor) {
  grid_dependency();
  cursor->step += 1;
  cursor->index += 1;
}

}  // namespace

void launch_gather_rows(const Context& c, int count, std::size_t pixels, const RowSource& source,
                        const RowOrder& order, const StepCursor* cursor, std::uint8_t* images,
                        std::uint8_t* labels, float* scaled) {
  const std::size_t n = static_cast<std::size_t>(count) * pixels;
  launch(c, gather_rows_kernel, c.grid_for(n, kThreads), kThreads, 0, count, pixels, source, order, cursor,
      images, labels, scaled);
}

void launch_dropout_at(const Context& c, std::size_t n, float p, std::uint64_t seed,
                       const StepCursor* cursor, std::uint32_t layer, const float* in, float* out) {
  launch(c, dropout_at_kernel, c.grid_for(n, kThreads), kThreads, 0, n, p, seed, cursor, layer, in, out);
}

void launch_adam_at(const Context& c, std::size_t n, float* params, const float* grads, float* m,
                    float* v, const elementwise::AdamStep<float>* table, StepCursor* cursor, bool advance) {
  launch(c, adam_at_kernel, c.grid_for(adam_threads(n), kThreads), kThreads, 0, n, params, grads, m, v, table, cursor,
      advance ? c.reduce_counters() : nullptr);
}

void launch_set_cursor(const Context& c, StepCursor* cursor, std::uint64_t step, std::uint64_t index) {
  launch(c, set_cursor_kernel, 1, 1, 0, cursor, step, index);
}

void launch_advance_cursor(const Context& c, StepCursor* cursor) {
  launch(c, advance_cursor_kernel, 1, 1, 0, cursor);
}

}  // namespace fmnist::cuda
