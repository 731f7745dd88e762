// The shape of a cuDNN-style convolution, in which fmnist's direct GPU convolution kernels and
// their CPU checks express both layer kinds: src (N,C,Hs,Ws) -> dst (N,K,Hd,Wd) with a (K,C,k,k)
// filter, cross-correlation, square stride and padding. Defined once for g++ and nvcc.
#pragma once

#include <type_traits>

#include "models/ops.h"  // ConvGeometry

namespace fmnist {

struct ConvShape {
  int n = 0, k = 0, c = 0;
  int src_h = 0, src_w = 0, dst_h = 0, dst_w = 0;
  int kernel = 0, stride = 1, padding = 0;
};

// A layer as that convolution. Conv2d: src = x, dst = y (k = out_channels, c = in_channels).
// ConvTranspose2d is the adjoint of the conv from its output to its input: src = y (B,Cout,Ho,Wo),
// dst = x (B,Cin,H,W), k = Cin and c = Cout, so that the (K,C,k,k) filter is the layer's own
// weight layout either way. Its forward is that conv's backward-data, its input gradient the
// conv's forward and its weight gradient the conv's weight gradient with src = dy, ddst = x.
inline ConvShape conv_shape(const ConvGeometry& g) {
  ConvShape s;
  s.n = g.batch;
  s.kernel = g.kernel;
  s.stride = g.stride;
  s.padding = g.padding;
  if (!g.transposed) {
    s.c = g.in_channels, s.src_h = g.in_h, s.src_w = g.in_w;
    s.k = g.out_channels, s.dst_h = g.out_h(), s.dst_w = g.out_w();
  } else {
    s.c = g.out_channels, s.src_h = g.out_h(), s.src_w = g.out_w();
    s.k = g.in_channels, s.dst_h = g.in_h, s.dst_w = g.in_w;
  }
  return s;
}

// The kernel sizes fmnist's direct GPU convolution kernels handle (cuda/weight_grad.h,
// cuda/direct_conv.h), and what every one of them needs of a shape, before its own count limits:
// positive sizes, a kernel of 1 to kDirectConvMaxKernel, a positive stride, no negative padding.
constexpr int kDirectConvMaxKernel = 5;
inline bool direct_conv_shape_valid(const ConvShape& s) {
  return s.n >= 1 && s.k >= 1 && s.c >= 1 && s.src_h >= 1 && s.src_w >= 1 && s.dst_h >= 1 && s.dst_w >= 1 &&
         s.kernel >= 1 && s.kernel <= kDirectConvMaxKernel && s.stride >= 1 && s.padding >= 0;
}

// Whether every tap of every output position of `s` lies inside src: no padding, and the last
// row's and column's taps end inside it (all four of the paper's convolutions). The taps' bounds
// checks then skip nothing, and the direct kernels that read src at the taps (the weight gradient,
// the forward) leave them out: the same terms in the same order, 4 integer instructions and a
// branch fewer a tap.
inline bool conv_taps_inside(const ConvShape& s) {
  return s.padding == 0 && static_cast<long long>(s.dst_h - 1) * s.stride + s.kernel <= s.src_h &&
         static_cast<long long>(s.dst_w - 1) * s.stride + s.kernel <= s.src_w;
}

// f(std::integral_constant<int, KS>{}) with KS = kernel, for the kernel sizes the direct kernels
// are compiled for (1 to kDirectConvMaxKernel); false, f not called, for any other size. The one
// switch from a runtime kernel size to the templates (GPU launches, their CPU checks).
template <class F> bool with_kernel_size(int kernel, F&& f) {
  static_assert(kDirectConvMaxKernel == 5, "with_kernel_size lists the sizes 1 to kDirectConvMaxKernel");
  switch (kernel) {
    case 1: f(std::integral_constant<int, 1>{}); return true;
    case 2: f(std::integral_constant<int, 2>{}); return true;
    case 3: f(std::integral_constant<int, 3>{}); return true;
    case 4: f(std::integral_constant<int, 4>{}); return true;
    case 5: f(std::integral_constant<int, 5>{}); return true;
    default: return false;
  }
}

}  // namespace fmnist
