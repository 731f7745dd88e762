// Geometries for the op tests: the paper's layers (FACTS.md) at a chosen batch, and random small
// Conv2d / ConvTranspose2d / MaxPool2d / Linear shapes drawn from a seeded generator; seeded
// inputs, and a per-element comparison against a double reference (|err| <= atol + rtol*|ref|).
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "models/ops.h"
#include "models/rng.h"

namespace fmnist::testing {

inline ConvGeometry conv_geometry(int batch, int cin, int h, int w, int cout, int kernel,
                                  int stride = 1, int padding = 0, int output_padding = 0,
                                  bool transposed = false) {
  ConvGeometry g;
  g.batch = batch;
  g.in_channels = cin;
  g.in_h = h;
  g.in_w = w;
  g.out_channels = cout;
  g.kernel = kernel;
  g.stride = stride;
  g.padding = padding;
  g.output_padding = output_padding;
  g.transposed = transposed;
  return g;
}

// The AE's four convolutions: encoder.0, encoder.3, decoder.3, decoder.5.
inline ConvGeometry paper_conv1(int batch) { return conv_geometry(batch, 1, 28, 28, 16, 3); }
inline ConvGeometry paper_conv2(int batch) { return conv_geometry(batch, 16, 13, 13, 32, 3); }
inline ConvGeometry paper_deconv1(int batch) {  // 32x5x5 -> 16x13x13
  return conv_geometry(batch, 32, 5, 5, 16, 4, 2, 0, 1, true);
}
inline ConvGeometry paper_deconv2(int batch) {  // 16x13x13 -> 1x28x28
  return conv_geometry(batch, 16, 13, 13, 1, 3, 2, 0, 1, true);
}
// All four, in that order.
inline std::vector<ConvGeometry> paper_convs(int batch) {
  return {paper_conv1(batch), paper_conv2(batch), paper_deconv1(batch), paper_deconv2(batch)};
}

inline PoolGeometry pool_geometry(int batch, int channels, int h, int w, int kernel = 2) {
  PoolGeometry g;
  g.batch = batch;
  g.channels = channels;
  g.in_h = h;
  g.in_w = w;
  g.kernel = kernel;
  g.stride = kernel;
  return g;
}

inline LinearGeometry linear_geometry(int batch, int in, int out) {
  LinearGeometry g;
  g.batch = batch;
  g.in_features = in;
  g.out_features = out;
  return g;
}

// A random small geometry: batch 1-3, channels 1-4, kernel 1-4, stride 1-3, padding below the
// kernel, output_padding below the stride (transposed), sizes that give a positive output.
inline ConvGeometry random_conv_geometry(SplitMix64& rng, bool transposed) {
  auto pick = [&rng](int lo, int hi) { return lo + static_cast<int>(rng.below(hi - lo + 1)); };
  for (;;) {
    ConvGeometry g = conv_geometry(pick(1, 3), pick(1, 4), pick(1, 9), pick(1, 9), pick(1, 4),
                                   pick(1, 4), pick(1, 3));
    g.padding = pick(0, g.kernel - 1);
    g.transposed = transposed;
    if (transposed) g.output_padding = pick(0, g.stride - 1);
    const bool fits = transposed || (g.in_h + 2 * g.padding >= g.kernel &&
                                     g.in_w + 2 * g.padding >= g.kernel);
    if (fits && g.out_h() > 0 && g.out_w() > 0) return g;
  }
}

inline std::string describe(const ConvGeometry& g) {
  return std::string(g.transposed ? "ConvTranspose2d" : "Conv2d") + " B" +
         std::to_string(g.batch) + " " + std::to_string(g.in_channels) + "x" +
         std::to_string(g.in_h) + "x" + std::to_string(g.in_w) + " -> " +
         std::to_string(g.out_channels) + "x" + std::to_string(g.out_h()) + "x" +
         std::to_string(g.out_w()) + " k" + std::to_string(g.kernel) + " s" +
         std::to_string(g.stride) + " p" + std::to_string(g.padding) + " op" +
         std::to_string(g.output_padding);
}

// n values uniform in [-1, 1) from `seed`.
inline std::vector<float> random_floats(std::size_t n, std::uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(2.0 * rng.uniform() - 1.0);
  return v;
}

// got against ref element by element, |got - ref| <= atol + rtol * |ref|: the first 5 mismatches
// fail (named `what`[i]), the worst error is reported.
inline void check_close(const std::string& what, const std::vector<float>& got, const std::vector<double>& ref,
                        double atol, double rtol) {
  REQUIRE(got.size() == ref.size());
  int shown = 0;
  double worst = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(got[i] - ref[i]), allowed = atol + rtol * std::fabs(ref[i]);
    worst = std::max(worst, err);
    if (!(err <= allowed) && shown++ < 5)
      FAIL_CHECK(what << "[" << i << "] " << got[i] << " against " << ref[i] << " (error " << err << ")");
  }
  INFO(what << ": worst error " << worst);
  CHECK(shown == 0);
}

}  // namespace fmnist::testing
