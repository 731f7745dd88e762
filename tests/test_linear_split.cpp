// models/linear_split.h, the math of the GPU's split-K Linear products (cuda/linear_split.cu),
// checked on the CPU: its FMA rounds once, its cut of the summed dimension, and its forward, input
// gradient and weight gradient against the CPU reference's Linear in double (the same sums, in
// another order) and in float.
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
  CHECK(elementwise::multiply_add(a, a, c) == std::ldexp(1.0f, -24));
  CHECK(elementwise::multiply_add(2.0, 3.0, 1.0) == 7.0);
}

TEST_CASE("the split-K Linear's cut covers the summed dimension once, in whole stages", "[linear][split]") {
  for (const LinearGeometry& g : {linear_geometry(100, 800, 256), linear_geometry(100, 256, 800),
                                  linear_geometry(100, 256, 10), linear_geometry(1, 1, 1),
                                  linear_geometry(4096, 800, 256), linear_geometry(7, 33, 65)})
    for (const LinearPass pass : {LinearPass::Forward, LinearPass::BackwardData, LinearPass::WeightGrad}) {
      const LinearProduct p = linear_product(g, pass);
      const LinearSplit s = linear_split(p);
      INFO(g.batch << " x " << g.in_features << " -> " << g.out_features << ", pass " << static_cast<int>(pass));
      CHECK(s.tiles == linear_tile_count(p));
      CHECK(s.slice_length % kLinearTileDepth == 0);
      CHECK(s.slices * s.slice_length >= p.depth);
      CHECK((s.slices - 1) * s.slice_length < p.depth);  // the last slice is not empty
      CHECK(s.slices <= kLinearTargetBlocks);
      if (s.slices > 1) CHECK(s.tiles * (s.slices - 1) < kLinearTargetBlocks);
    }
  // The AE's Linear layers at batch 100, forward: 16 tiles x 7 slices of 128 (800 -> 256), 52 tiles
  // x 3 slices of 96 (256 -> 800); their input gradients the other way round.
  const auto split_of = [](int in, int out, LinearPass pass) {
    return linear_split(linear_product(linear_geometry(100, in, out), pass));
  };
  const LinearSplit encoder = split_of(800, 256, LinearPass::Forward);
  CHECK((encoder.tiles == 16 && encoder.slices == 7 && encoder.slice_length == 128));
  const LinearSplit decoder = split_of(256, 800, LinearPass::Forward);
  CHECK((decoder.tiles == 52 && decoder.slices == 3 && decoder.slice_length == 96));
  const LinearSplit encoder_dx = split_of(800, 256, LinearPass::BackwardData);  // dx (100,800), 256 terms each
  CHECK((encoder_dx.tiles == 52 && encoder_dx.slices == 3 && encoder_dx.slice_length == 96));
  const LinearSplit decoder_dx = split_of(256, 800, LinearPass::BackwardData);  // dx (100,256), 800 terms each
  CHECK((decoder_dx.tiles == 16 && decoder_dx.slices == 7 && decoder_dx.slice_length == 128));
  CHECK(linear_split(linear_product(linear_geometry(4096, 800, 256), LinearPass::Forward)).slices == 1);
  // Their weight gradients: (256, 800) and (800, 256), 100 terms each, in 2 slices of 64.
  const LinearSplit encoder_dw = split_of(800, 256, LinearPass::WeightGrad);
  CHECK((encoder_dw.tiles == 104 && encoder_dw.slices == 2 && encoder_dw.slice_length == 64));
  const LinearSplit decoder_dw = split_of(256, 800, LinearPass::WeightGrad);
  CHECK((decoder_dw.tiles == 100 && decoder_dw.slices == 2 && decoder_dw.slice_length == 64));
  CHECK_FALSE(linear_split_supported(linear_geometry(0, 8, 8)));
  CHECK_FALSE(linear_split_supported(linear_geometry(70000, 70000, 1)));
}

TEST_CASE("the split-K Linear's outputs and both gradients are the CPU reference's Linear", "[linear][split]") {
  CpuOps<double> cpu64;
  CpuOps<float> cpu;
  for (const LinearGeometry& g : {linear_geometry(100, 800, 256), linear_geometry(100, 256, 800),
                                  linear_geometry(100, 256, 10), linear_geometry(37, 45, 70),
                                  linear_geometry(3, 1000, 5)}) {
    const std::string name = std::to_string(g.batch) + " x " + std::to_string(g.in_features) + " -> " +
                             std::to_string(g.out_features);
    const auto x = uniform_values(static_cast<std::size_t>(g.batch) * g.in_features, 1.0, 11);
    const auto w = uniform_values(static_cast<std::size_t>(g.out_features) * g.in_features,
                                  1.0 / std::sqrt(static_cast<double>(g.in_features)), 12);
    const auto b = uniform_values(static_cast<std::size_t>(g.out_features), 0.1, 13);
    const auto dy = uniform_values(static_cast<std::size_t>(g.batch) * g.out_features, 1.0, 14);
    std::vector<double> y64(dy.size()), dx64(x.size()), dw64(w.size());
    cpu64.linear_forward(g, x.data(), w.data(), b.data(), y64.data());
    cpu64.linear_backward(g, x.data(), w.data(), dy.data(), dx64.data(), dw64.data(), nullptr);
    const std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end()), bf(b.begin(), b.end()),
        dyf(dy.begin(), dy.end());
    std::vector<float> y32(y64.size()), dx32(dx64.size()), dw32(dw64.size());
    cpu.linear_forward(g, xf.data(), wf.data(), bf.data(), y32.data());
    cpu.linear_backward(g, xf.data(), wf.data(), dyf.data(), dx32.data(), dw32.data(), nullptr);
    // pass's outputs (rows, outputs) from `a` and `wt` (linear_product's operands) against the
    // references, worst errors over max|ref|.
    auto check_pass = [&](LinearPass pass, const std::vector<double>& a, const std::vector<float>& a32,
                          const std::vector<double>& wt, const std::vector<float>& wt32, const double* bias,
                          const float* bias32, const std::vector<double>& ref64, const std::vector<float>& ref32,
                          const char* what) {
      const LinearProduct p = linear_product(g, pass);
      const LinearSplit split = linear_split(p);
      double worst64 = 0.0, worst32 = 0.0, scale = 0.0;
      for (const double v : ref64) scale = std::max(scale, std::abs(v));
      for (int r = 0; r < p.rows; ++r)
        for (int o = 0; o < p.outputs; ++o) {
          const std::size_t i = static_cast<std::size_t>(r) * p.outputs + o;
          worst64 = std::max(worst64, std::abs(linear_split_element(p, split, a.data(), wt.data(), bias, r, o) - ref64[i]));
          const float got = linear_split_element(p, split, a32.data(), wt32.data(), bias32, r, o);
          worst32 = std::max(worst32, std::abs(static_cast<double>(got) - static_cast<double>(ref32[i])));
        }
      INFO(name << " " << what << ": worst |split - reference| " << worst64 << " (double), " << worst32
                << " (float), max|ref| " << scale);
      CHECK(worst64 <= 1e-12 * scale);
      CHECK(worst32 <= 1e-5 * scale);  // kForward's atol: another order of the same FP32 sums
    };
    check_pass(LinearPass::Forward, x, xf, w, wf, b.data(), bf.data(), y64, y32, "y");
    check_pass(LinearPass::BackwardData, dy, dyf, w, wf, nullptr, nullptr, dx64, dx32, "dx");
    check_pass(LinearPass::WeightGrad, dy, dyf, x, xf, nullptr, nullptr, dw64, dw32, "dw");
  }
}

}  // namespace fmnist::testing
