// fmnist's own Linear products (forward, input gradient, weight gradient), an alternative to
// cuBLAS's SGEMM (and the bias kernel after the forward's) for the small products of this study
// (100 rows at the paper's batch): cuBLAS took 6 to 8 us a product on the H100, on 32 to 52 tiles
// without a split of the summed dimension (bench/RESULTS.md). Split-K on about 128 blocks, FMA
// chains in a fixed order (models/linear_split.h), the slices added by the last block of each tile, with the forward's bias and
// ReLU or Sigmoid: one launch a product, deterministic, no float atomics.
#pragma once

#include <cstddef>

#include "cuda/context.h"
#include "models/linear_split.h"

namespace fmnist::cuda {

// Whether the split kernel handles g (its tiles need one reduction counter each), every pass.
bool linear_split_kernel_supported(const LinearGeometry& g);
// Bytes of workspace a pass's slices' sums take (0 when it is one slice).
std::size_t linear_split_workspace_bytes(const LinearGeometry& g, LinearPass pass);

// y (B,out) = x (B,in) w (out,in)^T + b (out; null: none), each element linear_split_element's
// bits (models/linear_split.h, LinearPass::Forward); y_act (B,out) = act(y) (ReLU or Sigmoid,
// elementwise::activate) when non-null.
// `workspace` holds linear_split_workspace_bytes(g, Forward) bytes (4-byte aligned; may be null
// when that is 0). Enqueued on the context's stream; std::invalid_argument for an unsupported
// shape or a null tensor.
void launch_linear_split_forward(const Context& c, const LinearGeometry& g, const float* x, const float* w,
                                 const float* b, float* y, float* y_act, void* workspace,
                                 elementwise::Activation act = elementwise::Activation::ReLU);

// dx (B,in) = dy (B,out) w (out,in), each element linear_split_element's bits (BackwardData), the
// workspace as above for that pass.
void launch_linear_split_backward_data(const Context& c, const LinearGeometry& g, const float* w,
                                       const float* dy, float* dx, void* workspace);

// dw (out,in) = dy (B,out)^T x (B,in), each element linear_split_element's bits (WeightGrad), the
// workspace as above for that pass. No bias gradient (CudaOps sums it as before).
void launch_linear_split_weight_grad(const Context& c, const LinearGeometry& g, const float* x, const float* dy,
                                     float* dw, void* workspace);

}  // namespace fmnist::cuda
