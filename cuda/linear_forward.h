// fmnist's own Linear forward, an alternative to cuBLAS's SGEMM and the bias kernel after it for the
// small products of this study (100 rows at the paper's batch): cuBLAS took 6 to 8 us a product on
// the H100, on 32 tiles without a split of the long in_features (bench/RESULTS.md). Split-K on
// about 128 blocks, FMA chains in a fixed order (models/linear_split.h), the slices added by the
// last block of each tile with the bias and the ReLU: one launch, deterministic, no float atomics.
#pragma once

#include <cstddef>

#include "cuda/context.h"
#include "models/linear_split.h"

namespace fmnist::cuda {

// Whether launch_linear_forward handles g (its tiles need one reduction counter each).
bool linear_forward_supported(const LinearGeometry& g);
// Bytes of workspace its slices' sums take (0 when g is one slice).
std::size_t linear_forward_workspace_bytes(const LinearGeometry& g);

// y (B,out) = x (B,in) w (out,in)^T + b (out; null: none), each element linear_split_element's
// bits (models/linear_split.h); y_relu (B,out) = ReLU(y) when non-null. `workspace` holds
// linear_forward_workspace_bytes(g) bytes (4-byte aligned; null when that is 0). Enqueued on the
// context's stream; std::invalid_argument for an unsupported shape or a null tensor.
void launch_linear_forward(const Context& c, const LinearGeometry& g, const float* x, const float* w,
                           const float* b, float* y, float* y_relu, void* workspace);

}  // namespace fmnist::cuda
