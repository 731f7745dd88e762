// models/linear_split.h, the math of the GPU's split-K Linear forward (cuda/linear_forward.cu),
// checked on the CPU: its FMA rounds once, its cut of the in_features, and its outputs against the
// CPU reference's Linear in double (the same sum, in another order) and in float.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "host/reference/cpu_ops.h"
#include "models/linear_split.h"
#include "models/rng.h"
#include "op_shapes.h"

namespace fmnist::testing {
namespace {

std::vector<double> uniform_values(std::size_t n, double bound, std::uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<double> v(n);
  for (double& x : v) x = bound * (2.0 * rng.uniform() - 1.0);
  return v;
}

}  // namespace

TEST_CASE("the split-K Linear's multiply-add rounds once, as the GPU's FMA", "[linear][split]") {
  // (1 + 2^-12)^2 - (1 + 2^-11) = 2^-24 exactly; a product rounded first to float loses it.
  const float a = 1.0f + std::ldexp(1.0f, -12), c = -(1.0f + std::ldexp(1.0f, -11));
  CHECK(multiply_add(a, a, c) == std::ldexp(1.0f, -24));
  CHECK(multiply_add(2.0, 3.0, 1.0) == 7.0);
}

TEST_CASE("the split-K Linear's cut covers the in_features once, in whole stages", "[linear][split]") {
  for (const LinearGeometry& g : {linear_geometry(100, 800, 256), linear_geometry(100, 256, 800),
                                  linear_geometry(100, 256, 10), linear_geometry(1, 1, 1),
                                  linear_geometry(4096, 800, 256), linear_geometry(7, 33, 65)}) {
    const LinearSplit s = linear_split(g);
    INFO(g.batch << " x " << g.in_features << " -> " << g.out_features);
    CHECK(s.tiles == linear_tile_count(g));
    CHECK(s.slice_length % kLinearTileDepth == 0);
    CHECK(s.slices * s.slice_length >= g.in_features);
    CHECK((s.slices - 1) * s.slice_length < g.in_features);
    CHECK(s.slices <= kLinearTargetBlocks);
  }
  // The AE's Linear layers at batch 100: 16 tiles x 7 slices of 128, 52 tiles x 3 slices of 96.
  const LinearSplit encoder = linear_split(linear_geometry(100, 800, 256));
  CHECK((encoder.tiles == 16 && encoder.slices == 7 && encoder.slice_length == 128));
  const LinearSplit decoder = linear_split(linear_geometry(100, 256, 800));
  CHECK((decoder.tiles == 52 && decoder.slices == 3 && decoder.slice_length == 96));
  CHECK(linear_split(linear_geometry(4096, 800, 256)).slices == 1);  // 512 tiles: no split
  CHECK_FALSE(linear_split_supported(linear_geometry(0, 8, 8)));
  CHECK_FALSE(linear_split_supported(linear_geometry(70000, 70000, 1)));
}

TEST_CASE("the split-K Linear's outputs are the CPU reference's Linear", "[linear][split]") {
  CpuOps<double> cpu64;
  CpuOps<float> cpu;
  for (const LinearGeometry& g : {linear_geometry(100, 800, 256), linear_geometry(100, 256, 800),
                                  linear_geometry(100, 256, 10), linear_geometry(37, 45, 70),
                                  linear_geometry(3, 1000, 5)}) {
    const std::string name = std::to_string(g.batch) + " x " + std::to_string(g.in_features) + " -> " +
                             std::to_string(g.out_features);
    const LinearSplit split = linear_split(g);
    const auto x = uniform_values(static_cast<std::size_t>(g.batch) * g.in_features, 1.0, 11);
    const auto w = uniform_values(static_cast<std::size_t>(g.out_features) * g.in_features,
                                  1.0 / std::sqrt(static_cast<double>(g.in_features)), 12);
    const auto b = uniform_values(static_cast<std::size_t>(g.out_features), 0.1, 13);
    std::vector<double> y64(static_cast<std::size_t>(g.batch) * g.out_features);
    cpu64.linear_forward(g, x.data(), w.data(), b.data(), y64.data());
    const std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end()), bf(b.begin(), b.end());
    std::vector<float> y32(y64.size());
    cpu.linear_forward(g, xf.data(), wf.data(), bf.data(), y32.data());
    double worst64 = 0.0, worst32 = 0.0, scale = 0.0;
    for (const double v : y64) scale = std::max(scale, std::abs(v));
    for (int r = 0; r < g.batch; ++r)
      for (int o = 0; o < g.out_features; ++o) {
        const std::size_t i = static_cast<std::size_t>(r) * g.out_features + o;
        worst64 = std::max(worst64, std::abs(linear_split_element(g, split, x.data(), w.data(), b.data(), r, o) - y64[i]));
        const float got = linear_split_element(g, split, xf.data(), wf.data(), bf.data(), r, o);
        worst32 = std::max(worst32, std::abs(static_cast<double>(got) - static_cast<double>(y32[i])));
      }
    INFO(name << ": worst |split - reference| " << worst64 << " (double), " << worst32 << " (float), max|y| " << scale);
    CHECK(worst64 <= 1e-12 * scale);
    CHECK(worst32 <= 1e-5 * scale);  // kForward's atol: another order of the same FP32 sums
  }
}

}  // namespace fmnist::testing
