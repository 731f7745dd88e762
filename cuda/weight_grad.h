// fmnist's own convolution backward-filter, an alternative to cuDNN's for the small geometries of
// this study, where cuDNN's deterministic choice (ALGO_1) ran at 0.4 % of an H100's FP32 peak
// (bench/RESULTS.md). Deterministic: fixed partition and summation order, FP64 sums, no atomics.
// The shape, partition and per-position math are models/conv_weight_grad.h's.
#pragma once

#include <cstddef>

#include "cuda/context.h"
#include "models/conv_weight_grad.h"

namespace fmnist::cuda {

// Bytes of workspace the partial sums need, the bias's included (0 with a single group of images).
std::size_t direct_weight_grad_workspace_bytes(const ConvShape& s);

// Which channels a bias gradient fused into the direct backward-filter sums over.
enum class BiasOf {
  Dst,  // db (K) = the sums of ddst's planes: a Conv2d's (src = x, ddst = dy)
  Src,  // db (C) = the sums of src's planes: a ConvTranspose2d's (src = dy, ddst = x)
};

// dw (K,C,k,k) = the weight gradient of models/conv_weight_grad.h from src (N,C,Hs,Ws) and
// ddst (N,K,Hd,Wd); `workspace` holds direct_weight_grad_workspace_bytes(s) bytes (8-byte
// aligned). With db non-null, also the bias gradient of `bias_of` (above), in the same launch
// (BiasOf::Src needs direct_weight_grad_fuses_src_bias(s)). Enqueued on the context's stream;
// std::invalid_argument for an unsupported shape.
void launch_direct_weight_grad(const Context& c, const ConvShape& s, const float* src,
                               const float* ddst, float* dw, void* workspace, float* db = nullptr,
                               BiasOf bias_of = BiasOf::Dst);

}  // namespace fmnist::cuda
