// models/conv_weight_grad.h, the math of the GPU's direct backward-filter (cuda/weight_grad.cu),
// checked on the CPU: its contributions summed in the kernel's order (image groups, then the
// groups' partials in order) give the CPU reference's weight gradient, for Conv2d and
// ConvTranspose2d at the paper's shapes and at random ones, and a Conv2d's bias gradient summed
// beside it; its partition covers every image once.
// (What it refuses: tests/test_conv_direct.cpp, with the other direct kernels.)
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "host/reference/cpu_ops.h"
#include "models/conv_weight_grad.h"
#include "models/rng.h"
#include "op_shapes.h"

namespace fmnist::testing {
namespace {

// Slice group (k0, c)'s sums over images [first, end), as a GPU block accumulates them (with
// kBiasToo, the slices' bias sums after the taps'; kInside: without the taps' bounds checks).
template <int KS, bool kBiasToo, bool kInside>
void sum_slice_group_as(const ConvShape& s, int k0, int count, int c, int first, int end, const float* src,
                        const float* ddst, double* acc) {
  for (int n = first; n < end; ++n)
    for (int i = 0; i < s.dst_h; ++i)
      for (int j = 0; j < s.dst_w; ++j)
        accumulate_weight_grad_taps<KS, kWeightGradSlices(KS), kBiasToo, kInside>(s, n, k0, count, c, i, j, src,
                                                                                ddst, acc);
}
// The same, with or without the checks as the kernel chooses (conv_taps_inside).
template <int KS, bool kBiasToo>
void sum_slice_group(const ConvShape& s, int k0, int count, int c, int first, int end, const float* src,
                     const float* ddst, double* acc) {
  if (conv_taps_inside(s))
    sum_slice_group_as<KS, kBiasToo, true>(s, k0, count, c, first, end, src, ddst, acc);
  else
    sum_slice_group_as<KS, kBiasToo, false>(s, k0, count, c, first, end, src, ddst, acc);
}

// Whether every tap of every output position of s lies inside src, tap by tap.
bool every_tap_inside(const ConvShape& s) {
  for (int i = 0; i < s.dst_h; ++i)
    for (int r = 0; r < s.kernel; ++r) {
      const int y = i * s.stride - s.padding + r;
      if (y < 0 || y >= s.src_h) return false;
    }
  for (int j = 0; j < s.dst_w; ++j)
    for (int q = 0; q < s.kernel; ++q) {
      const int x = j * s.stride - s.padding + q;
      if (x < 0 || x >= s.src_w) return false;
    }
  return true;
}

// dw as the GPU path partitions it: per slice group (kWeightGradSlices(k) filter slices) and
// image group, then the image groups in order; and db (K), the sums of ddst's planes, as the
// blocks of c = 0 add them beside their taps (a Conv2d's bias gradient, where ddst = dy).
struct DirectGradients {
  std::vector<float> dw, db;
};
DirectGradients direct_weight_grad(const ConvShape& s, const float* src, const float* ddst) {
  const int taps = s.kernel * s.kernel, slices = kWeightGradSlices(s.kernel);
  const ImageGroups part = weight_grad_groups(s);
  const int per_group = part.per_group, groups = part.groups;
  DirectGradients out;
  out.dw.resize(static_cast<std::size_t>(s.k) * s.c * taps);
  out.db.resize(static_cast<std::size_t>(s.k));
  const std::size_t sums = static_cast<std::size_t>(slices) * (taps + 1);
  for (int k0 = 0; k0 < s.k; k0 += slices)
    for (int c = 0; c < s.c; ++c) {
      const int count = std::min(slices, s.k - k0);
      std::vector<double> total(sums, 0.0);
      for (int g = 0; g < groups; ++g) {
        std::vector<double> acc(sums, 0.0);
        const int first = g * per_group, end = std::min(s.n, first + per_group);
        const bool compiled = with_kernel_size(s.kernel, [&](auto ks) {
          if (c == 0)
            sum_slice_group<decltype(ks)::value, true>(s, k0, count, c, first, end, src, ddst, acc.data());
          else
            sum_slice_group<decltype(ks)::value, false>(s, k0, count, c, first, end, src, ddst, acc.data());
        });
        REQUIRE(compiled);
        for (std::size_t t = 0; t < total.size(); ++t) total[t] += acc[t];
      }
      for (int b = 0; b < count; ++b) {
        for (int t = 0; t < taps; ++t)
          out.dw[(static_cast<std::size_t>(k0 + b) * s.c + c) * taps + t] =
              static_cast<float>(total[static_cast<std::size_t>(b) * taps + t]);
        if (c == 0)
          out.db[static_cast<std::size_t>(k0 + b)] = static_cast<float>(total[static_cast<std::size_t>(slices) * taps + b]);
      }
    }
  return out;
}

void check(const ConvGeometry& g, std::uint64_t seed) {
  INFO(describe(g));
  const ConvShape s = conv_shape(g);
  REQUIRE(direct_weight_grad_supported(s));
  const auto x = random_floats(g.in_count(), seed), w = random_floats(g.weight_count(), seed + 1),
             dy = random_floats(g.out_count(), seed + 2);
  // The reference in double: dw from the CPU backend's own backward pass.
  std::vector<double> x64(x.begin(), x.end()), w64(w.begin(), w.end()), dy64(dy.begin(), dy.end());
  std::vector<double> dx64(g.in_count()), dw64(g.weight_count()), db64(static_cast<std::size_t>(g.out_channels));
  CpuOps<double> cpu;
  if (g.transposed)
    cpu.conv_transpose2d_backward(g, x64.data(), w64.data(), dy64.data(), dx64.data(), dw64.data(), nullptr);
  else
    cpu.conv2d_backward(g, x64.data(), w64.data(), dy64.data(), dx64.data(), dw64.data(), db64.data());
  // Conv2d: src x, ddst dy; ConvTranspose2d: src dy, ddst x (weight_grad_shape's roles).
  const DirectGradients d =
      g.transposed ? direct_weight_grad(s, dy.data(), x.data()) : direct_weight_grad(s, x.data(), dy.data());
  // FP64 sums of exact products, rounded once to float: within a float's rounding of the reference.
  check_close("dw", d.dw, dw64, 1e-6, 1e-6);
  // A Conv2d's bias gradient, fused into the same blocks (FP64 sums of floats, rounded once).
  if (!g.transposed) check_close("db", d.db, db64, 1e-6, 1e-6);
}

}  // namespace

TEST_CASE("direct weight gradient math equals the CPU reference at the paper's shapes", "[conv][wgrad]") {
  std::uint64_t seed = 1;
  for (const ConvGeometry& g : paper_convs(100)) check(g, seed++);
  check(paper_conv1(7), seed);  // a batch that does not divide into the groups evenly
}

TEST_CASE("direct weight gradient math equals the CPU reference at random shapes", "[conv][wgrad]") {
  SplitMix64 rng(77);
  for (int trial = 0; trial < 40; ++trial) {
    ConvGeometry g = random_conv_geometry(rng, trial % 2 == 1);
    g.batch = 1 + static_cast<int>(rng.below(40));  // many images: several per group, or one
    check(g, 100 + trial);
  }
}

TEST_CASE("direct weight gradient partition: every image in one group, counts from the shape alone",
          "[conv][wgrad]") {
  for (const ConvGeometry& g : {paper_conv1(100), paper_conv2(100), paper_deconv1(100), paper_deconv2(100),
                                paper_conv1(1), paper_conv2(37), paper_deconv2(4096)}) {
    INFO(describe(g));
    const ConvShape s = conv_shape(g);
    const ImageGroups part = weight_grad_groups(s);
  const int per_group = part.per_group, groups = part.groups;
    CHECK(per_group >= 1);
    CHECK(groups >= 1);
    CHECK(static_cast<long long>(groups) * per_group >= s.n);  // every image is in a group
    CHECK(static_cast<long long>(groups - 1) * per_group < s.n);  // no group is empty
    // Enough blocks for the card where there are images enough, no more than about the target.
    const long long slice_groups = weight_grad_slice_groups(s);
    CHECK(slice_groups * kWeightGradSlices(s.kernel) >= static_cast<long long>(s.k) * s.c);  // every slice
    const long long blocks = static_cast<long long>(groups) * slice_groups;
    CHECK(blocks <= 2LL * kReductionTargetBlocks + slice_groups);
    // Enough positions a block for its threads, where the batch has them.
    CHECK(static_cast<long long>(per_group) * s.dst_h * s.dst_w >=
          std::min<long long>(kWeightGradMinPositions, static_cast<long long>(s.n) * s.dst_h * s.dst_w));
    if (s.n >= kReductionTargetBlocks) CHECK(blocks >= kReductionTargetBlocks / 2);
  }
  // The paper's layers: 4 slices a block at k = 3 (conv1: 4 slice groups, conv2: 128, deconv2: 4),
  // 2 at k = 4 (deconv1: 256); the batch split to reach about kReductionTargetBlocks blocks.
  CHECK(weight_grad_slice_groups(conv_shape(paper_conv2(100))) == 128);
  CHECK(weight_grad_slice_groups(conv_shape(paper_deconv1(100))) == 256);
  CHECK(weight_grad_groups(conv_shape(paper_conv1(100))).groups == 100);
  CHECK(weight_grad_groups(conv_shape(paper_conv2(100))).groups == 4);
  CHECK(weight_grad_groups(conv_shape(paper_deconv1(100))).groups == 2);
  // deconv2 (its conv view's ddst is x, 13x13 planes): 4 images a group for 512 positions, not 1.
  CHECK(weight_grad_groups(conv_shape(paper_deconv2(100))).per_group == 4);
  CHECK(weight_grad_groups(conv_shape(paper_deconv2(100))).groups == 25);
  // Both ConvTranspose2d's bias gradients fit rows of their own (16 and 1 more rows); a shape whose
  // slice groups and channels pass the grid's 65,535 rows does not.
  CHECK(direct_weight_grad_fuses_src_bias(conv_shape(paper_deconv1(100))));
  CHECK(direct_weight_grad_fuses_src_bias(conv_shape(paper_deconv2(100))));
  CHECK(direct_weight_grad_fuses_src_bias(conv_shape(paper_deconv2(4096))));
  ConvShape wide = conv_shape(conv_geometry(2, 1, 8, 8, 65534, 5));  // 5x5: one slice a block
  CHECK(direct_weight_grad_supported(wide));
  CHECK(direct_weight_grad_fuses_src_bias(wide));  // 65,534 slice groups + 1 channel: 65,535 rows
  wide.k = 65535;
  CHECK(direct_weight_grad_supported(wide));
  CHECK_FALSE(direct_weight_grad_fuses_src_bias(wide));  // one row too many
}

TEST_CASE("image groups of any reduction: every image once, partials under twice the target", "[conv][wgrad]") {
  // The bias gradient's reduction uses it with one slice per channel, its partials in a buffer of
  // 2 * kReductionTargetBlocks (cuda/kernels.cu asserts the size).
  for (int images : {1, 2, 7, 50, 100, 4096})
    for (int slices : {1, 16, 32, 100, 511, 512, 513, 4096}) {
      INFO(images << " images, " << slices << " slices");
      const ImageGroups g = split_into_image_groups(images, slices);
      CHECK(g.per_group >= 1);
      CHECK(static_cast<long long>(g.groups) * g.per_group >= images);
      CHECK(static_cast<long long>(g.groups - 1) * g.per_group < images);
      if (g.groups > 1) CHECK(static_cast<long long>(g.groups) * slices < 2LL * kReductionTargetBlocks);
    }
  CHECK(split_into_image_groups(100, 16).groups == 25);  // AE(256)'s conv1 bias: 400 blocks
  CHECK(split_into_image_groups(100, 32).groups == 15);  // conv2: 480 blocks
  CHECK(split_into_image_groups(100, 1).groups == 100);  // the last ConvTranspose2d: one image a block
}

TEST_CASE("a weight-gradient tap's multiply_add rounds as its multiply then add would", "[conv][wgrad]") {
  // A product of two floats is exact in double, so rounding it with the sum once (one FP64 FMA)
  // or twice (a multiply, then an add: the kernel before) gives the same bits. Floats from
  // subnormal to near the largest, of both signs, and sums from zero to far larger.
  SplitMix64 rng(20261207);
  auto random_float = [&rng] {
    const float mantissa = static_cast<float>(1.0 + rng.uniform());
    const int exponent = static_cast<int>(rng.below(276)) - 149;  // 2^-149 (subnormal) to 2^126
    const float v = std::ldexp(mantissa, exponent);
    return rng.below(2) == 0 ? v : -v;
  };
  std::size_t differ = 0, exact_products = 0;
  for (int trial = 0; trial < 200000; ++trial) {
    const double a = random_float(), b = random_float();
    const double c = trial % 4 == 0 ? 0.0 : std::ldexp(rng.uniform() - 0.5, static_cast<int>(rng.below(600)) - 300);
    volatile double product = a * b;  // rounded on its own (volatile: no contraction into an FMA)
    const double twice = product + c, once = elementwise::multiply_add(a, b, c);
    if (std::fma(a, b, -product) == 0.0) ++exact_products;  // nothing of a * b was rounded off
    if (std::memcmp(&twice, &once, sizeof twice) != 0) ++differ;
  }
  CHECK(exact_products == 200000);
  CHECK(differ == 0);
  // It is not so for a product that double cannot hold: (1 + 2^-30)^2 = 1 + 2^-29 + 2^-60.
  const double a = 1.0 + std::ldexp(1.0, -30), c = -(1.0 + std::ldexp(1.0, -29));
  volatile double product = a * a;
  CHECK(product + c == 0.0);
  CHECK(elementwise::multiply_add(a, a, c) == std::ldexp(1.0, -60));
}

TEST_CASE("the weight gradient leaves out the taps' bounds checks exactly where every tap is inside",
          "[conv][wgrad]") {
  // The paper's four convolutions (each conv view: deconv2's src is its 28x28 output, whose last
  // row and column no tap reaches).
  for (const ConvGeometry& g : paper_convs(100)) {
    INFO(describe(g));
    CHECK(conv_taps_inside(conv_shape(g)));
  }
  // Random shapes, padded or not: the test agrees with the taps, tap by tap; and the unchecked
  // sums equal the checked ones bit for bit where it holds.
  SplitMix64 rng(1207);
  int inside = 0, outside = 0;
  for (int trial = 0; trial < 400; ++trial) {
    ConvGeometry g = random_conv_geometry(rng, trial % 2 == 1);
    if (trial % 3 == 0) {  // unpadded, where the shape still has an output
      ConvGeometry unpadded = g;
      unpadded.padding = 0;
      if (unpadded.out_h() > 0 && unpadded.out_w() > 0 &&
          (g.transposed || (g.in_h >= g.kernel && g.in_w >= g.kernel)))
        g = unpadded;
    }
    const ConvShape s = conv_shape(g);
    INFO(describe(g));
    REQUIRE(conv_taps_inside(s) == every_tap_inside(s));
    (conv_taps_inside(s) ? inside : outside)++;
    if (!conv_taps_inside(s) || trial % 8 != 0) continue;
    const std::vector<float> src = random_floats(static_cast<std::size_t>(s.n) * s.c * s.src_h * s.src_w, trial),
                             ddst = random_floats(static_cast<std::size_t>(s.n) * s.k * s.dst_h * s.dst_w, trial + 1);
    const int count = std::min(s.k, kWeightGradSlices(s.kernel));
    const std::size_t sums = static_cast<std::size_t>(kWeightGradSlices(s.kernel)) * (s.kernel * s.kernel + 1);
    std::vector<double> checked(sums, 0.0), unchecked(sums, 0.0);
    REQUIRE(with_kernel_size(s.kernel, [&](auto ks) {
      sum_slice_group_as<decltype(ks)::value, true, false>(s, 0, count, 0, 0, s.n, src.data(), ddst.data(),
                                                           checked.data());
      sum_slice_group_as<decltype(ks)::value, true, true>(s, 0, count, 0, 0, s.n, src.data(), ddst.data(),
                                                          unchecked.data());
    }));
    CHECK(std::memcmp(checked.data(), unchecked.data(), sums * sizeof(double)) == 0);
  }
  CHECK(inside > 20);  // both kinds were seen
  CHECK(outside > 20);
}

TEST_CASE("a weight-gradient thread's position walk gives the positions that division gives", "[conv][wgrad]") {
  // The GPU kernel's walk (PositionWalk) from e = thread, by 256; planes from one pixel to wider
  // than the step, steps shorter and longer than a row or a plane.
  for (const auto& [h, w] : {std::pair{1, 1}, std::pair{5, 5}, std::pair{13, 13}, std::pair{26, 26},
                            std::pair{11, 11}, std::pair{1, 300}, std::pair{300, 1}, std::pair{3, 700}, std::pair{17, 19}})
    for (const int step : {1, 7, 25, 256, 1000}) {
      INFO(h << "x" << w << " planes, step " << step);
      ConvShape s;
      s.dst_h = h;
      s.dst_w = w;
      const int plane = h * w, positions = 5 * plane + 3;
      std::size_t wrong = 0, visited = 0;
      for (const int first : {0, 1, step / 2, step - 1}) {
        PositionWalk at(s, first, step);
        for (int e = first; e < positions; e += step, at.advance()) {
          ++visited;
          if (at.image != e / plane || at.i != e % plane / w || at.j != e % w) ++wrong;
        }
      }
      CHECK(visited > 0);
      CHECK(wrong == 0);
    }
}

}  // namespace fmnist::testing
