// fmnist's direct convolution backward-data (see backward_data.h): one thread per src element,
// in a grid-stride loop over the (N,C,Hs,Ws) elements in memory order (coalesced writes; threads
// of a warp share n and c, so they read the same filter taps), each summing its taps in FP32
// with models/conv_backward_data.h's backward_data_at and adding the bias after the sum.
#include "cuda/backward_data.h"

#include <stdexcept>
#include <string>

#include "cuda/check.h"
#include "cuda/grid_stride.cuh"

namespace fmnist::cuda {
namespace {

// ddst (N,K,Hd,Wd), w (K,C,KS,KS), bias (C) or null -> dsrc (N,C,Hs,Ws)
template <int KS>
__global__ void __launch_bounds__(kThreads)
    direct_backward_data_kernel(ConvShape s, std::size_t count, const float* __restrict__ ddst,
                                const float* __restrict__ w, const float* __restrict__ bias,
                                float* __restrict__ dsrc) {
  for (std::size_t e = global_index(); e < count; e += global_stride()) {
    const int x = static_cast<int>(e % s.src_w);
    const std::size_t row = e / s.src_w;
    const int y = static_cast<int>(row % s.src_h);
    const std::size_t plane = row / s.src_h;  // n * C + c
    const int c = static_cast<int>(plane % s.c), n = static_cast<int>(plane / s.c);
    float v = backward_data_at<KS, float, float>(s, n, c, y, x, ddst, w);
    if (bias != nullptr) v += bias[c];
    dsrc[e] = v;
  }
}

template <int KS>
void launch_for(const Context& c, const ConvShape& s, const float* ddst, const float* w, const float* bias,
                float* dsrc) {
  const std::size_t count = static_cast<std::size_t>(s.n) * s.c * s.src_h * s.src_w;
  direct_backward_data_kernel<KS><<<c.grid_for(count, kThreads), kThreads, 0, c.stream()>>>(s, count, ddst, w,
                                                                                          bias, dsrc);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_direct_backward_data(const Context& c, const ConvShape& s, const float* ddst, const float* w,
                                 const float* bias, float* dsrc) {
  if (!direct_backward_data_supported(s))
    throw std::invalid_argument("direct backward-data: unsupported shape (kernel " + std::to_string(s.kernel) +
                                ", " + std::to_string(s.n) + " images)");
  if (ddst == nullptr || w == nullptr || dsrc == nullptr)
    throw std::invalid_argument("direct backward-data: null ddst, w or dsrc");
  switch (s.kernel) {
    case 1: launch_for<1>(c, s, ddst, w, bias, dsrc); break;
    case 2: launch_for<2>(c, s, ddst, w, bias, dsrc); break;
    case 3: launch_for<3>(c, s, ddst, w, bias, dsrc); break;
    case 4: launch_for<4>(c, s, ddst, w, bias, dsrc); break;
    case 5: launch_for<5>(c, s, ddst, w, bias, dsrc); break;
    default: throw std::invalid_argument("direct backward-data: kernel size over 5");
  }
}

}  // namespace fmnist::cuda
