// models/conv_direct.h, the math of the GPU's direct forward and backward-data kernels
// (cuda/direct_conv.cu), checked on the CPU against the CPU reference: each layer's forward (bias
// added after the sum, as the kernels do) and input gradient, Conv2d and ConvTranspose2d, at the
// paper's shapes and at random ones; output_padding rows get the bias alone. A broken tap index
// fails it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <string>
#include <vector>

#include "host/reference/cpu_ops.h"
#include "models/conv_direct.h"
#include "models/conv_weight_grad.h"
#include "models/rng.h"
#include "op_shapes.h"

namespace fmnist::testing {
namespace {

// Pass P's output element by element, as the GPU kernel computes each (direct_conv_element, FP32).
template <DirectPass P>
std::vector<float> direct_pass(const ConvShape& s, const float* in, const float* w, const float* bias) {
  std::vector<float> out(direct_conv_outputs(s, P));
  const bool compiled = with_kernel_size(s.kernel, [&](auto ks) {
    for (std::size_t e = 0; e < out.size(); ++e)
      out[e] = direct_conv_element<decltype(ks)::value, P, float>(s, e, in, w, bias);
  });
  REQUIRE(compiled);
  return out;
}
std::vector<float> direct_backward_data(const ConvShape& s, const float* ddst, const float* w, const float* bias) {
  return direct_pass<DirectPass::BackwardData>(s, ddst, w, bias);
}
std::vector<float> direct_forward(const ConvShape& s, const float* src, const float* w, const float* bias) {
  return direct_pass<DirectPass::Forward>(s, src, w, bias);
}

// FP32 sums of at most a few hundred terms of size <= 1, against the double reference.
void compare(const std::string& what, const std::vector<float>& got, const std::vector<double>& ref) {
  check_close(what, got, ref, 1e-5, 1e-5);
}

void check(const ConvGeometry& g, std::uint64_t seed) {
  INFO(describe(g));
  const ConvShape s = conv_shape(g);
  REQUIRE(direct_conv_supported(s));
  const auto x = random_floats(g.in_count(), seed), w = random_floats(g.weight_count(), seed + 1),
             b = random_floats(static_cast<std::size_t>(g.out_channels), seed + 2),
             dy = random_floats(g.out_count(), seed + 3);
  std::vector<double> x64(x.begin(), x.end()), w64(w.begin(), w.end()), b64(b.begin(), b.end()),
      dy64(dy.begin(), dy.end());
  CpuOps<double> cpu;
  std::vector<double> y64(g.out_count()), dx64(g.in_count());
  if (g.transposed) {
    cpu.conv_transpose2d_forward(g, x64.data(), w64.data(), b64.data(), y64.data());
    cpu.conv_transpose2d_backward(g, x64.data(), w64.data(), dy64.data(), dx64.data(), nullptr, nullptr);
    // Its forward is its conv's backward-data from x; its input gradient that conv's forward from dy.
    compare("ConvTranspose2d y", direct_backward_data(s, x.data(), w.data(), b.data()), y64);
    compare("ConvTranspose2d dx", direct_forward(s, dy.data(), w.data(), nullptr), dx64);
  } else {
    cpu.conv2d_forward(g, x64.data(), w64.data(), b64.data(), y64.data());
    cpu.conv2d_backward(g, x64.data(), w64.data(), dy64.data(), dx64.data(), nullptr, nullptr);
    compare("Conv2d y", direct_forward(s, x.data(), w.data(), b.data()), y64);
    compare("Conv2d dx", direct_backward_data(s, dy.data(), w.data(), nullptr), dx64);
  }
}

}  // namespace

TEST_CASE("direct forward and backward-data math equal the CPU reference at the paper's shapes", "[conv][dgrad]") {
  std::uint64_t seed = 1;
  for (const ConvGeometry& g : paper_convs(5)) check(g, seed++);
}

TEST_CASE("direct forward and backward-data math equal the CPU reference at random shapes", "[conv][dgrad]") {
  SplitMix64 rng(91);
  for (int trial = 0; trial < 60; ++trial) check(random_conv_geometry(rng, trial % 2 == 1), 200 + trial);
}

// Pass P item by item with channel blocks of OB (direct_conv_item, direct_conv_block), as the
// GPU kernel computes them: every output written exactly once, with the bits of
// direct_conv_element; also the way the kernel walks the taps where it has a faster one
// (DirectTaps: Inside for a Forward whose taps are all inside src, Stride2 for a BackwardData at
// stride 2). For BackwardData at a stride above 1, the items of one image's channel block go
// class by class of (y mod stride, x mod stride). Blocks that do not divide the output channels
// are not taken (direct_conv_block_fits).
template <DirectPass P, int OB>
void check_items(const ConvShape& s, const float* in, const float* w, const float* bias, const std::string& what) {
  INFO(what << ", channel block " << OB);
  if (!direct_conv_block_fits(s, P, OB)) return;
  constexpr bool kForward = P == DirectPass::Forward;
  constexpr DirectTaps kFast = kForward ? DirectTaps::Inside : DirectTaps::Stride2;
  const bool fast = kForward ? conv_taps_inside(s) : s.stride == 2;
  const std::vector<float> exact = direct_pass<P>(s, in, w, bias);
  std::vector<float> out(exact.size(), 0.0f);
  std::vector<int> writes(exact.size(), 0);
  const std::size_t items = direct_conv_items(s, P, OB);
  const bool forward = P == DirectPass::Forward;
  const std::size_t pixels = forward ? static_cast<std::size_t>(s.dst_h) * s.dst_w
                                     : static_cast<std::size_t>(s.src_h) * s.src_w;
  REQUIRE(items % pixels == 0);
  int class_changes = 0, last_class = -1;
  std::size_t fast_items = 0;
  const bool compiled = with_kernel_size(s.kernel, [&](auto ks) {
    for (std::size_t e = 0; e < items; ++e) {
      const DirectItem item = direct_conv_item<P>(s, OB, static_cast<unsigned>(e));
      float v[OB];
      direct_conv_block<decltype(ks)::value, P, OB, float>(s, item, in, w, bias, v);
      if (fast) {  // the kernel's walk of the taps: the same bits
        float walked[OB];
        direct_conv_block<decltype(ks)::value, P, OB, float, kFast>(s, item, in, w, bias, walked);
        REQUIRE(std::memcmp(walked, v, sizeof v) == 0);
        ++fast_items;
      }
      for (int o = 0; o < OB; ++o) {
        const std::size_t i = direct_conv_index<P>(s, item, o);
        REQUIRE(i < out.size());
        out[i] = v[o];
        ++writes[i];
      }
      const int cls = (item.y % s.stride) * s.stride + item.x % s.stride;
      if (e % pixels == 0) last_class = -1;
      if (cls != last_class && last_class != -1) ++class_changes;
      last_class = cls;
    }
  });
  REQUIRE(compiled);
  std::size_t wrong = 0, not_once = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (writes[i] != 1) ++not_once;
    if (std::memcmp(&out[i], &exact[i], sizeof(float)) != 0) ++wrong;
  }
  CHECK(not_once == 0);
  CHECK(wrong == 0);
  CHECK(fast_items == (fast ? items : 0));
  if (!forward && s.stride > 1) {
    // Each image's channel block walks its non-empty classes once each: one change between two.
    const int rows = std::min(s.stride, s.src_h), cols = std::min(s.stride, s.src_w);
    CHECK(static_cast<std::size_t>(class_changes) == (rows * cols - 1) * (items / pixels));
  }
}

template <int OB>
void check_items_both_passes(const ConvGeometry& g, std::uint64_t seed) {
  const ConvShape s = conv_shape(g);
  const auto x = random_floats(g.in_count(), seed), w = random_floats(g.weight_count(), seed + 1),
             b = random_floats(static_cast<std::size_t>(g.out_channels), seed + 2),
             dy = random_floats(g.out_count(), seed + 3);
  const std::string what = describe(g);
  if (g.transposed) {
    check_items<DirectPass::BackwardData, OB>(s, x.data(), w.data(), b.data(), what + " y");
    check_items<DirectPass::Forward, OB>(s, dy.data(), w.data(), nullptr, what + " dx");
  } else {
    check_items<DirectPass::Forward, OB>(s, x.data(), w.data(), b.data(), what + " y");
    check_items<DirectPass::BackwardData, OB>(s, dy.data(), w.data(), nullptr, what + " dx");
  }
}

TEST_CASE("direct kernels' items: each output once, the bits of one element at a time, for every channel block",
          "[conv][dgrad]") {
  std::vector<ConvGeometry> shapes = paper_convs(3);
  SplitMix64 rng(1207);
  for (int trial = 0; trial < 30; ++trial) shapes.push_back(random_conv_geometry(rng, trial % 2 == 1));
  // Channels that 4 and 16 divide, padded and not (random shapes have at most 4 channels).
  shapes.push_back(conv_geometry(2, 8, 9, 9, 16, 3, 1));
  shapes.push_back(conv_geometry(2, 16, 7, 8, 32, 2, 2));
  shapes.back().padding = 1;
  ConvGeometry transposed = conv_geometry(2, 32, 4, 4, 16, 4, 2);
  transposed.transposed = true;
  transposed.output_padding = 1;
  shapes.push_back(transposed);
  std::uint64_t seed = 700;
  for (const ConvGeometry& g : shapes) {
    check_items_both_passes<16>(g, seed);
    check_items_both_passes<4>(g, seed);
    check_items_both_passes<1>(g, seed);
    seed += 4;
  }
}

TEST_CASE("direct kernels' channel block: 16 or 4 where the outputs keep enough threads busy, else 1",
          "[conv][dgrad]") {
  // At the paper's batch of 100 (models/conv_direct.h's kDirectConvThreadsTarget of 65,536).
  const ConvShape conv1 = conv_shape(paper_conv1(100)), conv2 = conv_shape(paper_conv2(100));
  const ConvShape deconv1 = conv_shape(paper_deconv1(100)), deconv2 = conv_shape(paper_deconv2(100));
  CHECK(direct_conv_channel_block(conv1, DirectPass::Forward) == 16);      // 16x26x26 outputs an image
  CHECK(direct_conv_channel_block(conv2, DirectPass::Forward) == 4);       // 32x11x11
  CHECK(direct_conv_channel_block(conv2, DirectPass::BackwardData) == 4);  // its dx, 16x13x13
  CHECK(direct_conv_channel_block(deconv1, DirectPass::BackwardData) == 4);  // its y, 16x13x13
  CHECK(direct_conv_channel_block(deconv1, DirectPass::Forward) == 1);       // its dx, 32x5x5
  CHECK(direct_conv_channel_block(deconv2, DirectPass::BackwardData) == 1);  // its y, one channel
  CHECK(direct_conv_channel_block(deconv2, DirectPass::Forward) == 4);       // its dx, 16x13x13
  // A small batch keeps one channel a thread: the threads would not fill the card otherwise.
  CHECK(direct_conv_channel_block(conv_shape(paper_conv1(2)), DirectPass::Forward) == 1);
  // Only blocks that divide the channels: every block full, none of the kernels' loops asks.
  CHECK(direct_conv_channel_block(conv_shape(conv_geometry(100, 1, 28, 28, 20, 3)), DirectPass::Forward) == 4);
  CHECK(direct_conv_channel_block(conv_shape(conv_geometry(100, 1, 28, 28, 18, 3)), DirectPass::Forward) == 1);
  CHECK(direct_conv_block_fits(conv1, DirectPass::Forward, 16));
  CHECK_FALSE(direct_conv_block_fits(conv_shape(conv_geometry(100, 1, 28, 28, 20, 3)), DirectPass::Forward, 16));
  CHECK_FALSE(direct_conv_block_fits(deconv2, DirectPass::BackwardData, 4));  // one channel
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

TEST_CASE("fmnist's direct convolution kernels refuse what they cannot handle", "[conv][dgrad][wgrad]") {
  for (const ConvShape& s : {conv_shape(paper_conv1(100)), conv_shape(paper_conv2(100))}) {
    CHECK(direct_conv_supported(s));
    CHECK(direct_weight_grad_supported(s));
    // What none of them handles (direct_conv_shape_valid).
    ConvShape big_kernel = s, no_images = s, no_channels = s, no_stride = s;
    big_kernel.kernel = kDirectConvMaxKernel + 1;
    no_images.n = 0;
    no_channels.c = 0;
    no_stride.stride = 0;
    for (const ConvShape& bad : {big_kernel, no_images, no_channels, no_stride}) {
      CHECK_FALSE(direct_conv_supported(bad));
      CHECK_FALSE(direct_weight_grad_supported(bad));
    }
  }
  // Each kernel's own limits: element counts over INT_MAX; the weight gradient's 65,535 slices.
  ConvShape too_many = conv_shape(paper_conv2(100));
  too_many.n = 1 << 20;  // 2^20 images of 32x11x11 outputs: over INT_MAX
  CHECK_FALSE(direct_conv_supported(too_many));
  ConvShape too_many_positions = conv_shape(paper_conv1(100));
  too_many_positions.n = 1 << 22;  // 2^22 images of 26x26 positions: over INT_MAX
  CHECK_FALSE(direct_weight_grad_supported(too_many_positions));
  ConvShape too_many_slices = conv_shape(paper_conv2(100));
  too_many_slices.k = 4096;  // 4096 x 16 filter slices
  CHECK_FALSE(direct_weight_grad_supported(too_many_slices));
  CHECK(direct_conv_supported(too_many_slices));
}

}  // namespace fmnist::testing
