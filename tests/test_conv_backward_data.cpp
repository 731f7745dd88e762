// models/conv_backward_data.h, the math of the GPU's direct backward-data kernel
// (cuda/backward_data.cu), checked on the CPU against the CPU reference: Conv2d's input gradient
// and ConvTranspose2d's forward (bias added after the sum, as the kernel does), at the paper's
// shapes and at random ones; output_padding rows get the bias alone. A broken tap index fails it.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "host/reference/cpu_ops.h"
#include "models/conv_backward_data.h"
#include "models/rng.h"
#include "op_shapes.h"

namespace fmnist::testing {
namespace {

template <int KS>
void fill_src(const ConvShape& s, const float* ddst, const float* w, const float* bias, float* dsrc) {
  std::size_t e = 0;
  for (int n = 0; n < s.n; ++n)
    for (int c = 0; c < s.c; ++c)
      for (int y = 0; y < s.src_h; ++y)
        for (int x = 0; x < s.src_w; ++x, ++e) {
          float v = backward_data_at<KS, float, float>(s, n, c, y, x, ddst, w);
          if (bias != nullptr) v += bias[c];
          dsrc[e] = v;
        }
}

// dsrc (N,C,Hs,Ws) element by element, in the kernel's sums (FP32), plus bias[c] when given.
std::vector<float> direct_backward_data(const ConvShape& s, const float* ddst, const float* w,
                                        const float* bias) {
  std::vector<float> dsrc(static_cast<std::size_t>(s.n) * s.c * s.src_h * s.src_w);
  switch (s.kernel) {
    case 1: fill_src<1>(s, ddst, w, bias, dsrc.data()); break;
    case 2: fill_src<2>(s, ddst, w, bias, dsrc.data()); break;
    case 3: fill_src<3>(s, ddst, w, bias, dsrc.data()); break;
    case 4: fill_src<4>(s, ddst, w, bias, dsrc.data()); break;
    case 5: fill_src<5>(s, ddst, w, bias, dsrc.data()); break;
    default: FAIL("kernel " << s.kernel);
  }
  return dsrc;
}

// FP32 sums of at most a few hundred terms of size <= 1, against the double reference.
void compare(const std::string& what, const std::vector<float>& got, const std::vector<double>& ref) {
  check_close(what, got, ref, 1e-5, 1e-5);
}

void check(const ConvGeometry& g, std::uint64_t seed) {
  INFO(describe(g));
  const ConvShape s = conv_shape(g);
  REQUIRE(direct_backward_data_supported(s));
  const auto x = random_floats(g.in_count(), seed), w = random_floats(g.weight_count(), seed + 1),
             b = random_floats(static_cast<std::size_t>(g.out_channels), seed + 2),
             dy = random_floats(g.out_count(), seed + 3);
  std::vector<double> x64(x.begin(), x.end()), w64(w.begin(), w.end()), b64(b.begin(), b.end()),
      dy64(dy.begin(), dy.end());
  CpuOps<double> cpu;
  if (g.transposed) {
    // The layer's forward: y (B,Cout,Ho,Wo) = backward-data of its conv from x, plus the bias.
    std::vector<double> y64(g.out_count());
    cpu.conv_transpose2d_forward(g, x64.data(), w64.data(), b64.data(), y64.data());
    compare("ConvTranspose2d y", direct_backward_data(s, x.data(), w.data(), b.data()), y64);
  } else {
    // The layer's input gradient: dx (B,Cin,H,W) = backward-data from dy.
    std::vector<double> dx64(g.in_count());
    cpu.conv2d_backward(g, x64.data(), w64.data(), dy64.data(), dx64.data(), nullptr, nullptr);
    compare("Conv2d dx", direct_backward_data(s, dy.data(), w.data(), nullptr), dx64);
  }
}

}  // namespace

TEST_CASE("direct backward-data math equals the CPU reference at the paper's shapes", "[conv][dgrad]") {
  check(paper_conv1(3), 1);
  check(paper_conv2(5), 2);
  check(paper_deconv1(5), 3);
  check(paper_deconv2(5), 4);
}

TEST_CASE("direct backward-data math equals the CPU reference at random shapes", "[conv][dgrad]") {
  SplitMix64 rng(91);
  for (int trial = 0; trial < 60; ++trial) check(random_conv_geometry(rng, trial % 2 == 1), 200 + trial);
}

TEST_CASE("direct backward-data: ConvTranspose2d's output_padding row and column get the bias alone",
          "[conv][dgrad]") {
  const ConvGeometry g = paper_deconv2(2);  // 16x13x13 -> 1x28x28: row and column 27 are padding
  const ConvShape s = conv_shape(g);
  const auto x = random_floats(g.in_count(), 5), w = random_floats(g.weight_count(), 6);
  const std::vector<float> bias{0.25f};
  const auto y = direct_backward_data(s, x.data(), w.data(), bias.data());
  for (int n = 0; n < g.batch; ++n)
    for (int t = 0; t < 28; ++t) {
      CHECK(y[static_cast<std::size_t>(n) * 784 + 27 * 28 + t] == 0.25f);  // row 27
      CHECK(y[static_cast<std::size_t>(n) * 784 + t * 28 + 27] == 0.25f);  // column 27
    }
}

TEST_CASE("direct backward-data refuses what it cannot handle", "[conv][dgrad]") {
  const ConvShape s = conv_shape(paper_conv2(100));
  CHECK(direct_backward_data_supported(s));
  ConvShape big_kernel = s;
  big_kernel.kernel = 6;
  CHECK_FALSE(direct_backward_data_supported(big_kernel));
  ConvShape no_channels = s;
  no_channels.c = 0;
  CHECK_FALSE(direct_backward_data_supported(no_channels));
  ConvShape too_many = s;
  too_many.n = 1 << 20;  // 2^20 images of 32x11x11 outputs: over INT_MAX
  CHECK_FALSE(direct_backward_data_supported(too_many));
}

}  // namespace fmnist::testing
