// The kernels of the step-reading ops (models/ops.h, "streaming"): each reads its per-step value
// from a StepCursor in device memory when it runs, so a CUDA graph captured once replays every
// step. Host-side launchers as in kernels.h: enqueue on the context's stream, check the launch,
// never wait; the caller (cuda_ops_stream.cu) checks preconditions. Per-element math is
// models/elementwise.h's, as in the by-value kernels, so both compute the same bits.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda/context.h"
#include "models/elementwise.h"
#include "models/stream_types.h"

namespace fmnist::cuda {

// images (count, pixels), labels (count) = the rows of `source` that `order` names for
// cursor->index (see RowOrder); scaled (count, pixels), when non-null, = their pixel_to_unit.
void launch_gather_rows(const Context& c, int count, std::size_t pixels, const RowSource& source,
                        const RowOrder& order, const StepCursor* cursor, std::uint8_t* images,
                        std::uint8_t* labels, float* scaled);
// out (n) = in (n) * dropout_factor(seed, cursor->step, layer, i, p)
void launch_dropout_at(const Context& c, std::size_t n, float p, std::uint64_t seed,
                       const StepCursor* cursor, std::uint32_t layer, const float* in, float* out);
// One launch: elementwise::adam_update with table[cursor->index] over n contiguous elements;
// then, when `advance`, cursor->step += 1 and cursor->index += 1 by the last block to finish
// (every block has read the constants by then).
void launch_adam_at(const Context& c, std::size_t n, float* params, const float* grads, float* m,
                    float* v, const elementwise::AdamStep<float>* table, StepCursor* cursor, bool advance);
// *cursor = {step, index}
void launch_set_cursor(const Context& c, StepCursor* cursor, std::uint64_t step, std::uint64_t index);
// cursor->step += 1, cursor->index += 1
void launch_advance_cursor(const Context& c, StepCursor* cursor);

}  // namespace fmnist::cuda
