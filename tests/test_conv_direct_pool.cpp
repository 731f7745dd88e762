// models/conv_direct_pool.h, the GPU's Conv2d forward fused with its ReLU and 2 x 2 max pooling, and
// its input gradient fused with the backward of the pooling and ReLU below it (cuda/direct_conv.cu),
// item by item on the CPU: every output element written, with the bits of the direct pass and of
// the CPU's pooling op, for each channel block; which shapes they take and which block they pick.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "host/reference/cpu_ops.h"
#include "models/conv_direct.h"
#include "models/conv_direct_pool.h"
#include "models/elementwise.h"
#include "models/rng.h"
#include "op_shapes.h"

namespace fmnist::testing {
namespace {

// The pooling after Conv2d g: 2 x 2 windows over its whole output.
PoolGeometry pool_after(const ConvGeometry& g) { return pool_geometry(g.batch, g.out_channels, g.out_h(), g.out_w()); }

// How many elements of got differ in their bits from want (sizes must match).
template <class T> std::size_t bits_differ(const std::vector<T>& got, const std::vector<T>& want) {
  REQUIRE(got.size() == want.size());
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(T)) != 0) ++wrong;
  return wrong;
}

// Every item of the fused pass with channel blocks of OB, against the direct forward element by
// element, its ReLU, and CpuOps' max pooling of that ReLU. The outputs start as a NaN no result
// has (and argmax as -1), so an element no item writes differs.
template <int OB>
void check_fused(const ConvGeometry& g, const std::vector<float>& x, const std::vector<float>& w,
                 const std::vector<float>& b) {
  const ConvShape s = conv_shape(g);
  INFO(describe(g) << ", channel block " << OB);
  if (!direct_conv_block_fits(s, DirectPass::Forward, OB)) return;
  const PoolGeometry p = pool_after(g);
  REQUIRE(direct_pool_supported(s, p));
  std::vector<float> y_want(g.out_count()), relu_want(g.out_count());
  std::vector<float> pooled_want(p.out_count());
  std::vector<std::int32_t> argmax_want(p.out_count());
  REQUIRE(with_kernel_size(s.kernel, [&](auto ks) {
    for (std::size_t e = 0; e < y_want.size(); ++e) {
      y_want[e] = direct_conv_element<decltype(ks)::value, DirectPass::Forward, float>(s, e, x.data(), w.data(),
                                                                                      b.data());
      relu_want[e] = elementwise::relu(y_want[e]);
    }
  }));
  CpuOps<float> cpu;
  cpu.maxpool2d_forward(p, relu_want.data(), pooled_want.data(), argmax_want.data());

  float poison;
  const std::uint32_t poison_bits = 0x7fc0beefu;
  std::memcpy(&poison, &poison_bits, sizeof poison);
  std::vector<float> y(y_want.size(), poison), y_relu(y_want.size(), poison), pooled(pooled_want.size(), poison);
  std::vector<std::int32_t> argmax(argmax_want.size(), -1);
  const TiledPool tiles = direct_pool_tiles(s, OB);
  const std::size_t items = direct_pool_items(s, OB);
  // One item a window of OB channels, one an uncovered element of OB channels.
  const std::size_t planes = static_cast<std::size_t>(g.batch) * (g.out_channels / OB);
  CHECK(items == planes * (static_cast<std::size_t>(p.out_h()) * p.out_w() +
                           (static_cast<std::size_t>(g.out_h()) * g.out_w() - 4u * p.out_h() * p.out_w())));
  REQUIRE(with_kernel_size(s.kernel, [&](auto ks) {
    for (std::size_t e = 0; e < items; ++e)
      direct_forward_relu_maxpool_item<decltype(ks)::value, OB>(s, tiles, e, x.data(), w.data(), b.data(), y.data(),
                                                                y_relu.data(), pooled.data(), argmax.data());
  }));
  CHECK(bits_differ(y, y_want) == 0);
  CHECK(bits_differ(y_relu, relu_want) == 0);
  CHECK(bits_differ(pooled, pooled_want) == 0);
  CHECK(bits_differ(argmax, argmax_want) == 0);
}

void check_fused_all_blocks(const ConvGeometry& g, std::uint64_t seed) {
  const auto x = random_floats(g.in_count(), seed), w = random_floats(g.weight_count(), seed + 1),
             b = random_floats(static_cast<std::size_t>(g.out_channels), seed + 2);
  static_assert(sizeof(kDirectPoolChannelBlocks) / sizeof(int) == 2, "the blocks below are the fused pass's");
  check_fused<4>(g, x, w, b);
  check_fused<1>(g, x, w, b);
}

// The fused backward's items with channel blocks of OB for Conv2d g
// after pooling p, against the direct backward-data element by element, then CpuOps'
// maxpool2d_backward_relu of it. Outputs poisoned as above.
template <int OB>
void check_fused_backward(const ConvGeometry& g, const PoolGeometry& p, std::uint64_t seed) {
  const ConvShape s = conv_shape(g);
  INFO(describe(g) << " after pooling " << p.in_h << "x" << p.in_w << ", channel block " << OB);
  if (!direct_conv_block_fits(s, DirectPass::BackwardData, OB)) return;
  REQUIRE(direct_pool_backward_supported(s, p));
  std::vector<float> relu_y = random_floats(p.in_count(), seed);
  for (float& v : relu_y) v = elementwise::relu(v);  // a ReLU's output: zeros, so ties in the windows
  const auto ddst = random_floats(g.out_count(), seed + 1), w = random_floats(g.weight_count(), seed + 2);
  CpuOps<float> cpu;
  std::vector<float> pooled(p.out_count());
  std::vector<std::int32_t> argmax(p.out_count());
  cpu.maxpool2d_forward(p, relu_y.data(), pooled.data(), argmax.data());
  std::vector<float> dsrc_want(g.in_count()), dx_want(p.in_count()), relu_dx_want(p.in_count());
  REQUIRE(with_kernel_size(s.kernel, [&](auto ks) {
    for (std::size_t e = 0; e < dsrc_want.size(); ++e)
      dsrc_want[e] = direct_conv_element<decltype(ks)::value, DirectPass::BackwardData, float>(s, e, ddst.data(),
                                                                                              w.data(), nullptr);
  }));
  cpu.maxpool2d_backward_relu(p, relu_y.data(), dsrc_want.data(), argmax.data(), dx_want.data(), relu_dx_want.data());

  float poison;
  const std::uint32_t poison_bits = 0x7fc0beefu;
  std::memcpy(&poison, &poison_bits, sizeof poison);
  std::vector<float> dsrc(dsrc_want.size(), poison), dx(dx_want.size(), poison), relu_dx(dx_want.size(), poison);
  const TiledPool tiles = direct_pool_backward_tiles(p, OB);
  const std::size_t items = direct_pool_backward_items(p, OB);
  CHECK(items == static_cast<std::size_t>(p.batch) * (p.channels / OB) *
                     (static_cast<std::size_t>(p.out_h()) * p.out_w() +
                      (static_cast<std::size_t>(p.in_h) * p.in_w - 4u * p.out_h() * p.out_w())));
  REQUIRE(with_kernel_size(s.kernel, [&](auto ks) {
    for (std::size_t e = 0; e < items; ++e)
      direct_backward_data_maxpool_relu_item<decltype(ks)::value, OB>(
          s, tiles, e, ddst.data(), w.data(), dsrc.data(), argmax.data(), relu_y.data(), dx.data(), relu_dx.data());
  }));
  CHECK(bits_differ(dsrc, dsrc_want) == 0);
  CHECK(bits_differ(dx, dx_want) == 0);
  CHECK(bits_differ(relu_dx, relu_dx_want) == 0);
}

}  // namespace

TEST_CASE("fused direct backward-data, max pooling's and ReLU's backward: each element written, the bits of the "
          "passes it fuses",
          "[conv][pool]") {
  // The paper's second Conv2d after the first's pooling; a pooling that leaves a row and a column
  // no window covers; padded and stride-2 Conv2d; then random Conv2d layers after a pooling of
  // twice their input (plus 0 or 1).
  std::vector<std::pair<ConvGeometry, PoolGeometry>> cases{
      {paper_conv2(3), pool_geometry(3, 16, 26, 26)},
      {conv_geometry(2, 32, 5, 5, 8, 3), pool_geometry(2, 32, 11, 11)},
      {conv_geometry(2, 16, 6, 7, 4, 3, 1, 1), pool_geometry(2, 16, 12, 15)},
      {conv_geometry(2, 4, 6, 6, 8, 2, 2), pool_geometry(2, 4, 13, 12)}};
  SplitMix64 rng(1208);
  while (cases.size() < 20) {
    const ConvGeometry g = random_conv_geometry(rng, false);
    const int extra = static_cast<int>(rng.below(2));
    cases.push_back({g, pool_geometry(g.batch, g.in_channels, 2 * g.in_h + extra, 2 * g.in_w + 1 - extra)});
  }
  std::uint64_t seed = 1300;
  for (const auto& [g, p] : cases) {
    check_fused_backward<16>(g, p, seed);
    check_fused_backward<4>(g, p, seed);
    check_fused_backward<1>(g, p, seed);
    seed += 3;
  }
}

TEST_CASE("fused direct forward, ReLU and max pooling: each element written, the bits of the passes it fuses",
          "[conv][pool]") {
  // The paper's two Conv2d layers (26x26 pooled whole; 11x11 with a last row and column no window
  // covers), outputs of odd and even sizes, 4 and 16 channels, stride 2; then random shapes.
  std::vector<ConvGeometry> shapes{paper_conv1(3), paper_conv2(3), conv_geometry(2, 8, 9, 9, 16, 3, 1),
                                   conv_geometry(2, 3, 10, 13, 4, 2, 2), conv_geometry(1, 2, 7, 6, 32, 4, 1)};
  SplitMix64 rng(20261207);
  while (shapes.size() < 25) {
    ConvGeometry g = random_conv_geometry(rng, false);
    g.padding = 0;
    if (g.out_h() >= 2 && g.out_w() >= 2) shapes.push_back(g);
  }
  std::uint64_t seed = 900;
  for (const ConvGeometry& g : shapes) {
    check_fused_all_blocks(g, seed);
    seed += 3;
  }
}

TEST_CASE("fused direct forward and pooling: the shapes it takes, the channel block it picks", "[conv][pool]") {
  const ConvShape conv1 = conv_shape(paper_conv1(100)), conv2 = conv_shape(paper_conv2(100));
  CHECK(direct_pool_supported(conv1, pool_after(paper_conv1(100))));
  CHECK(direct_pool_supported(conv2, pool_after(paper_conv2(100))));
  // At batch 100: conv1's 100 x 16 x 169 windows take 4 channels a thread (4 elements of each);
  // conv2's 100 x 32 x (25 + 21) items one.
  CHECK(direct_pool_channel_block(conv1) == 4);
  CHECK(direct_pool_channel_block(conv2) == 1);
  CHECK(direct_pool_channel_block(conv_shape(paper_conv1(2))) == 1);
  CHECK(direct_pool_channel_block(conv_shape(conv_geometry(400, 1, 28, 28, 16, 3))) == 4);  // never 16

  // Refused: padding (its taps are checked), windows of 3 or at another stride, a pooling of
  // another tensor's shape.
  ConvGeometry padded = paper_conv2(2);
  padded.padding = 1;
  CHECK_FALSE(direct_pool_supported(conv_shape(padded), pool_after(padded)));
  const ConvGeometry g = paper_conv1(2);
  PoolGeometry three = pool_after(g), overlapping = pool_after(g), other_plane = pool_after(g),
               other_channels = pool_after(g), other_batch = pool_after(g);
  three.kernel = three.stride = 3;
  overlapping.stride = 1;
  other_plane.in_w -= 1;
  other_channels.channels = 8;
  other_batch.batch = 3;
  for (const PoolGeometry& p : {three, overlapping, other_plane, other_channels, other_batch})
    CHECK_FALSE(direct_pool_supported(conv_shape(g), p));
  // A plane smaller than a window.
  const ConvGeometry tiny = conv_geometry(1, 1, 3, 8, 2, 3);  // 1x6 outputs
  CHECK_FALSE(direct_pool_supported(conv_shape(tiny), pool_geometry(1, 2, 1, 6)));

  // The backward: the pooling must have made the Conv2d's input (its output, batch and channels).
  const ConvShape conv2_input = conv_shape(paper_conv2(100));
  const PoolGeometry pool1 = pool_geometry(100, 16, 26, 26);
  CHECK(direct_pool_backward_supported(conv2_input, pool1));
  CHECK(direct_pool_backward_supported(conv2_input, pool_geometry(100, 16, 27, 27)));  // floor: 13x13 too
  // At batch 100: 100 x 16 x 169 windows, 4 channels a thread (as the forward's conv1).
  CHECK(direct_pool_backward_channel_block(pool1) == 4);
  CHECK(direct_pool_backward_channel_block(pool_geometry(2, 16, 26, 26)) == 1);
  PoolGeometry pool_three = pool_geometry(100, 16, 39, 39, 3), pool_overlapping = pool1, pool_other = pool1,
               pool_channels = pool1, pool_batch = pool1;
  pool_overlapping.stride = 1;
  pool_other.in_w = 24;  // 12 columns out
  pool_channels.channels = 32;
  pool_batch.batch = 99;
  for (const PoolGeometry& p : {pool_three, pool_overlapping, pool_other, pool_channels, pool_batch})
    CHECK_FALSE(direct_pool_backward_supported(conv2_input, p));
}

}  // namespace fmnist::testing
