// fmnist's own convolution backward-data, an alternative to cuDNN's for the small geometries of
// this study: ConvTranspose2d's forward (bias fused) and Conv2d's input gradient, which cuDNN ran
// at 32 us a call for a few MFLOP on the H100 (bench/RESULTS.md). One thread per src element sums
// its taps in a fixed order (models/conv_backward_data.h): deterministic, no atomics, no workspace.
#pragma once

#include "cuda/context.h"
#include "models/conv_backward_data.h"

namespace fmnist::cuda {

// dsrc (N,C,Hs,Ws) = backward_data_at (models/conv_backward_data.h) from ddst (N,K,Hd,Wd) and the
// (K,C,k,k) filter w, + bias[c] when bias is non-null. Enqueued on the context's stream;
// std::invalid_argument for an unsupported shape.
void launch_direct_backward_data(const Context& c, const ConvShape& s, const float* ddst, const float* w,
                                 const float* bias, float* dsrc);

}  // namespace fmnist::cuda
