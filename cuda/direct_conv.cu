// fmnist's direct convolution forward and backward-data (see direct_conv.h): one thread per
// output element, in a grid-stride loop over the elements in memory order (coalesced writes;
// threads of a warp mostly share the image and channel, so they read the same filter taps), each
// computed by models/conv_direct.h's direct_conv_element (FP32 sums, then the bias).
#include "cuda/direct_conv.h"

#include <stdexcept>
#include <string>

#include "cuda/check.h"
#include "cuda/grid_stride.cuh"
#include "cuda/launch.cuh"

namespace fmnist::cuda {
namespace {

// out = pass P of the convolution (models/conv_direct.h's direct_conv_element, element by
// element): Forward: in = src (N,C,Hs,Ws) -> out = dst (N,K,Hd,Wd), bias (K) or null;
// BackwardData: in = ddst (N,K,Hd,Wd) -> out = dsrc (N,C,Hs,Ws), bias (C) or null. w (K,C,KS,KS).
// Then the epilogue (direct_conv.h) with elementwise.h's relu and relu_grad.
template <int KS, DirectPass P>
__global__ void __launch_bounds__(kThreads)
    direct_conv_kernel(ConvShape s, std::size_t count, const float* __restrict__ in, const float* __restrict__ w,
                       const float* __restrict__ bias, float* __restrict__ out, DirectEpilogue epilogue) {
  grid_dependency();
  for (std::size_t e = global_index(); e < count; e += global_stride()) {
    const float v = direct_conv_element<KS, P, float>(s, e, in, w, bias);
    out[e] = v;
    if (epilogue.relu_out != nullptr) epilogue.relu_out[e] = elementwise::relu(v);
    if (epilogue.relu_dx != nullptr) epilogue.relu_dx[e] = elementwise::relu_grad(epilogue.relu_y[e], v);
  }
}

// Pass P after its checks: shape supported (its kernel size too), pointers non-null.
template <DirectPass P>
void launch_pass(const Context& c, const char* name, const ConvShape& s, const float* in, const float* w,
                 const float* bias, float* out, const DirectEpilogue& epilogue) {
  if (!direct_conv_supported(s))
    throw std::invalid_argument(std::string(name) + ": unsupported shape (kernel " + std::to_string(s.kernel) +
                                ", " + std::to_string(s.n) + " images)");
  if (in == nullptr || w == nullptr || out == nullptr)
    throw std::invalid_argument(std::string(name) + ": null input, filter or output");
  if ((epilogue.relu_dx == nullptr) != (epilogue.relu_y == nullptr))
    throw std::invalid_argument(std::string(name) + ": a ReLU gradient needs both the ReLU's output and its target");
  const std::size_t count = direct_conv_outputs(s, P);
  const int blocks = c.grid_for(count, kThreads);
  const bool compiled = with_kernel_size(s.kernel, [&](auto ks) {
    launch(c, direct_conv_kernel<decltype(ks)::value, P>, blocks, kThreads, 0, s, count, in, w, bias, out,
        epilogue);
  });
  if (!compiled) throw std::invalid_argument(std::string(name) + ": no kernel compiled for this kernel size");
}

}  // namespace

void launch_direct_backward_data(const Context& c, const ConvShape& s, const float* ddst, const float* w,
                                 const float* bias, float* dsrc, const DirectEpilogue& epilogue) {
  launch_pass<DirectPass::BackwardData>(c, "direct backward-data", s, ddst, w, bias, dsrc, epilogue);
}

void launch_direct_forward(const Context& c, const ConvShape& s, const float* src, const float* w,
                           const float* bias, float* dst, const DirectEpilogue& epilogue) {
  launch_pass<DirectPass::Forward>(c, "direct forward", s, src, w, bias, dst, epilogue);
}

}  // namespace fmnist::cuda
