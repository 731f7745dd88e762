// BF16 precision (models/precision.h) on the CPU reference: the shared rounding function on known
// bit patterns (and against CUDA's own __float2bfloat16_rn where the CUDA headers are), every
// convolution and Linear pass against an independent double-precision computation on
// bfloat16-rounded operands, determinism, refusals, and a short training run against FP32.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

// (Not in an emulated build: its cuda_bf16.h is tests/kernel_emu's fake, which has no rounding.)
#if defined(FMNIST_HAVE_CUDA) && !defined(FMNIST_CUDA_EMULATED) && __has_include(<cuda_bf16.h>)
#include <cuda_bf16.h>
#define FMNIST_TEST_HAS_CUDA_BF16 1
#endif

#include "gradient_check.h"
#include "host/dataset.h"
#include "host/reference/cpu_ops.h"
#include "host/trainer.h"
#include "models/elementwise.h"
#include "op_shapes.h"
#include "real_data.h"

namespace fmnist::testing {
namespace {

using elementwise::bf16_bits;
using elementwise::round_to_bf16;

float from_bits(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}
std::uint32_t to_bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
// The float bits round_to_bf16 gives for the float with bits u.
std::uint32_t rounded_bits(std::uint32_t u) { return to_bits(round_to_bf16(from_bits(u))); }

// One bfloat16 ulp at |v| (v a normal-range double; bfloat16 has 8 significant bits), and the
// subnormal spacing 2^-133 below 2^-126.
double bf16_ulp(double v) {
  const double a = std::fabs(v);
  if (a < std::ldexp(1.0, -126)) return std::ldexp(1.0, -133);
  int e = 0;
  std::frexp(a, &e);  // a = m 2^e, m in [0.5, 1)
  return std::ldexp(1.0, e - 8);
}

std::vector<float> rounded(const std::vector<float>& v) {
  std::vector<float> r(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) r[i] = round_to_bf16(v[i]);
  return r;
}
std::vector<float> random_floats(std::size_t n, SplitMix64& rng, double lo = -1.0, double hi = 1.0) {
  const std::vector<double> d = random_vector(n, rng, lo, hi);
  return std::vector<float>(d.begin(), d.end());
}

// ---- the independent reference: plain loops in double over bfloat16-rounded operands ---------------
// Each result element gets its exact sum (double holds every sum of these products exactly enough:
// 16-bit products, at most ~10^5 terms) and the sum of the magnitudes of its terms.
struct Exact {
  std::vector<double> value, magnitude;
  explicit Exact(std::size_t n) : value(n, 0.0), magnitude(n, 0.0) {}
  void add(std::size_t i, double a, double b) {
    value[i] += a * b;
    magnitude[i] += std::fabs(a * b);
  }
};

// Conv2d forward (no bias), input gradient and weight gradient, from their definitions. For a
// ConvTranspose2d (the adjoint) the same loop runs with the roles of x and y swapped.
struct ConvExact {
  Exact y, dx, dw;
  ConvExact(const ConvGeometry& g, const std::vector<float>& x, const std::vector<float>& w,
            const std::vector<float>& dy)
      : y(g.out_count()), dx(g.in_count()), dw(g.weight_count()) {
    const int ho = g.out_h(), wo = g.out_w(), k = g.kernel;
    for (int n = 0; n < g.batch; ++n)
      for (int co = 0; co < g.out_channels; ++co)
        for (int ci = 0; ci < g.in_channels; ++ci)
          for (int ki = 0; ki < k; ++ki)
            for (int kj = 0; kj < k; ++kj) {
              // Conv2d: w (Cout,Cin,k,k); ConvTranspose2d: w (Cin,Cout,k,k).
              const std::size_t wi =
                  g.transposed ? ((static_cast<std::size_t>(ci) * g.out_channels + co) * k + ki) * k + kj
                               : ((static_cast<std::size_t>(co) * g.in_channels + ci) * k + ki) * k + kj;
              // Conv2d: output (oy,ox) reads input (oy*s-p+ki, ox*s-p+kj). ConvTranspose2d:
              // input (iy,ix) writes output (iy*s-p+ki, ix*s-p+kj). Either way: small grid
              // (gh,gw) against large image (ih,iw).
              const int gh = g.transposed ? g.in_h : ho, gw = g.transposed ? g.in_w : wo;
              const int ih = g.transposed ? ho : g.in_h, iw = g.transposed ? wo : g.in_w;
              for (int gy = 0; gy < gh; ++gy)
                for (int gx = 0; gx < gw; ++gx) {
                  const int py = gy * g.stride - g.padding + ki, px = gx * g.stride - g.padding + kj;
                  if (py < 0 || py >= ih || px < 0 || px >= iw) continue;
                  std::size_t xi, yi;
                  if (!g.transposed) {
                    xi = ((static_cast<std::size_t>(n) * g.in_channels + ci) * g.in_h + py) * g.in_w + px;
                    yi = ((static_cast<std::size_t>(n) * g.out_channels + co) * ho + gy) * wo + gx;
                  } else {
                    xi = ((static_cast<std::size_t>(n) * g.in_channels + ci) * g.in_h + gy) * g.in_w + gx;
                    yi = ((static_cast<std::size_t>(n) * g.out_channels + co) * ho + py) * wo + px;
                  }
                  y.add(yi, x[xi], w[wi]);
                  dx.add(xi, dy[yi], w[wi]);
                  dw.add(wi, dy[yi], x[xi]);
                }
            }
  }
};

// The stated tolerance of a BF16 result r against the exact sum s of its bfloat16 products with
// magnitude sum S:  |r - s| <= ulp_bf16(s) + 2^-18 S.
// - ulp_bf16(s), one bfloat16 ulp: rounding the FP32 sum to bfloat16 alone is within half an ulp;
//   the FP32 sum differs from s (FP32 keeps 16 more bits, an error near 2^-24 S), which can move it
//   across a rounding boundary, so r may be the other neighbour of s: under one ulp either way.
// - 2^-18 S: where the terms cancel (s much smaller than S) the FP32 summation error, a few 2^-24 S
//   for these sums of up to ~10^5 terms in blocked orders, can exceed the ulp of the small s.
// Also: r must be a bfloat16 value (the product's result is rounded), and exactly 0 where no
// product contributes.
struct Tally {
  std::size_t count = 0, bad = 0, not_bf16 = 0;
  double worst = 0.0;
  std::string first;
};
void check_bf16_result(const std::string& what, const std::vector<float>& got, const Exact& exact,
                       Tally& t) {
  REQUIRE(got.size() == exact.value.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double s = exact.value[i], S = exact.magnitude[i];
    const double allowed = (S == 0.0 ? 0.0 : bf16_ulp(s)) + std::ldexp(S, -18);
    const double diff = std::fabs(static_cast<double>(got[i]) - s);
    ++t.count;
    if (round_to_bf16(got[i]) != got[i]) ++t.not_bf16;
    if (allowed > 0) t.worst = std::max(t.worst, diff / allowed);
    if (!(diff <= allowed)) {
      if (t.bad++ == 0)
        t.first = what + "[" + std::to_string(i) + "]: got " + std::to_string(got[i]) + ", exact " +
                  std::to_string(s) + ", allowed " + std::to_string(allowed);
    }
  }
}

void check_conv_bf16(const ConvGeometry& g, std::uint64_t seed) {
  const std::string name = describe(g);
  INFO(name);
  SplitMix64 rng(seed);
  const auto x = random_floats(g.in_count(), rng), w = random_floats(g.weight_count(), rng, -0.5, 0.5);
  const auto dy = random_floats(g.out_count(), rng);
  const auto b = random_floats(g.out_channels, rng);
  const ConvExact exact(g, rounded(x), rounded(w), rounded(dy));

  CpuOps<float> ops(0, Precision::BF16);
  std::vector<float> y(g.out_count()), yb(g.out_count()), dx(g.in_count()), dw(g.weight_count()),
      db(g.out_channels);
  auto forward = [&](const float* bias, float* out) {
    if (g.transposed)
      ops.conv_transpose2d_forward(g, x.data(), w.data(), bias, out);
    else
      ops.conv2d_forward(g, x.data(), w.data(), bias, out);
  };
  forward(nullptr, y.data());
  forward(b.data(), yb.data());
  if (g.transposed)
    ops.conv_transpose2d_backward(g, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
  else
    ops.conv2d_backward(g, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());

  Tally t;
  check_bf16_result(name + " y", y, exact.y, t);
  check_bf16_result(name + " dx", dx, exact.dx, t);
  check_bf16_result(name + " dw", dw, exact.dw, t);
  INFO(t.count << " elements, " << t.bad << " beyond the tolerance (first: " << t.first
                << "), worst |diff|/allowed " << t.worst << ", " << t.not_bf16 << " not bfloat16");
  CHECK(t.bad == 0);
  CHECK(t.not_bf16 == 0);
  // The bias is added in FP32 after the rounding: exactly y + b.
  const std::size_t plane = static_cast<std::size_t>(g.out_h()) * g.out_w();
  std::size_t bias_mismatches = 0;
  for (std::size_t i = 0; i < y.size(); ++i)
    bias_mismatches += yb[i] != y[i] + b[(i / plane) % g.out_channels] ? 1 : 0;
  CHECK(bias_mismatches == 0);
  // The bias gradient: the FP32 reference's (sums of the unrounded dy).
  CpuOps<float> fp32;
  std::vector<float> db32(g.out_channels);
  if (g.transposed)
    fp32.conv_transpose2d_backward(g, x.data(), w.data(), dy.data(), nullptr, nullptr, db32.data());
  else
    fp32.conv2d_backward(g, x.data(), w.data(), dy.data(), nullptr, nullptr, db32.data());
  CHECK(db == db32);
}

void check_linear_bf16(const LinearGeometry& g, std::uint64_t seed) {
  const std::string name = "Linear B" + std::to_string(g.batch) + " " + std::to_string(g.in_features) +
                           " -> " + std::to_string(g.out_features);
  INFO(name);
  SplitMix64 rng(seed);
  const std::size_t nx = static_cast<std::size_t>(g.batch) * g.in_features;
  const std::size_t ny = static_cast<std::size_t>(g.batch) * g.out_features;
  const std::size_t nw = static_cast<std::size_t>(g.out_features) * g.in_features;
  const auto x = random_floats(nx, rng), w = random_floats(nw, rng, -0.2, 0.2);
  const auto dy = random_floats(ny, rng), b = random_floats(g.out_features, rng);
  const auto xr = rounded(x), wr = rounded(w), dyr = rounded(dy);
  Exact ey(ny), edx(nx), edw(nw);
  for (int n = 0; n < g.batch; ++n)
    for (int j = 0; j < g.out_features; ++j)
      for (int i = 0; i < g.in_features; ++i) {
        const std::size_t xi = static_cast<std::size_t>(n) * g.in_features + i;
        const std::size_t yi = static_cast<std::size_t>(n) * g.out_features + j;
        const std::size_t wi = static_cast<std::size_t>(j) * g.in_features + i;
        ey.add(yi, xr[xi], wr[wi]);
        edx.add(xi, dyr[yi], wr[wi]);
        edw.add(wi, dyr[yi], xr[xi]);
      }
  CpuOps<float> ops(0, Precision::BF16);
  std::vector<float> y(ny), yb(ny), dx(nx), dw(nw), db(g.out_features);
  ops.linear_forward(g, x.data(), w.data(), nullptr, y.data());
  ops.linear_forward(g, x.data(), w.data(), b.data(), yb.data());
  ops.linear_backward(g, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
  Tally t;
  check_bf16_result(name + " y", y, ey, t);
  check_bf16_result(name + " dx", dx, edx, t);
  check_bf16_result(name + " dw", dw, edw, t);
  INFO(t.count << " elements, " << t.bad << " beyond the tolerance (first: " << t.first
                << "), worst |diff|/allowed " << t.worst << ", " << t.not_bf16 << " not bfloat16");
  CHECK(t.bad == 0);
  CHECK(t.not_bf16 == 0);
  std::size_t bias_mismatches = 0;
  for (std::size_t i = 0; i < ny; ++i) bias_mismatches += yb[i] != y[i] + b[i % g.out_features] ? 1 : 0;
  CHECK(bias_mismatches == 0);
  // dw alone and dx alone give the same bits as together.
  std::vector<float> dw_alone(nw), dx_alone(nx);
  ops.linear_backward(g, x.data(), w.data(), dy.data(), nullptr, dw_alone.data(), nullptr);
  ops.linear_backward(g, x.data(), w.data(), dy.data(), dx_alone.data(), nullptr, nullptr);
  CHECK(dw_alone == dw);
  CHECK(dx_alone == dx);
}

}  // namespace

TEST_CASE("round_to_bf16 on known bit patterns", "[precision]") {
  // Exact bfloat16 values stay.
  for (float v : {0.0f, 1.0f, -2.5f, 0.15625f, 65280.0f, -1.0e-20f * 0.0f})
    CHECK(to_bits(round_to_bf16(v)) == to_bits(v));
  CHECK(round_to_bf16(1.0f / 3.0f) == 0.333984375f);  // 0x3EAAAAAB -> 0x3EAB
  CHECK(rounded_bits(0x3F800000u) == 0x3F800000u);  // 1
  CHECK(rounded_bits(0x80000000u) == 0x80000000u);  // -0 stays -0
  // Ties go to the even neighbour; anything off the tie to the nearer one.
  CHECK(rounded_bits(0x3F808000u) == 0x3F800000u);  // 1 + 2^-8: halfway 1 / 1+2^-7 -> 1 (even)
  CHECK(rounded_bits(0x3F818000u) == 0x3F820000u);  // halfway 0x3F81 / 0x3F82 -> 0x3F82 (even)
  CHECK(rounded_bits(0x3F808001u) == 0x3F810000u);  // just above the tie: up
  CHECK(rounded_bits(0x3F807FFFu) == 0x3F800000u);  // just below: down
  CHECK(rounded_bits(0xBF808000u) == 0xBF800000u);  // negative tie: to even, sign kept
  CHECK(rounded_bits(0xBF818000u) == 0xBF820000u);
  CHECK(rounded_bits(0x3FFF8000u) == 0x40000000u);  // carry into the exponent: 1.99609375.. -> 2
  // The top of the range: the largest bfloat16 stays; beyond half an ulp above it, infinity.
  CHECK(rounded_bits(0x7F7F0000u) == 0x7F7F0000u);
  CHECK(rounded_bits(0x7F7F7FFFu) == 0x7F7F0000u);
  CHECK(rounded_bits(0x7F7F8000u) == 0x7F800000u);  // tie, 0x7F7F odd: up to infinity
  CHECK(rounded_bits(0x7F7FFFFFu) == 0x7F800000u);  // FLT_MAX -> +inf
  CHECK(rounded_bits(0xFF7FFFFFu) == 0xFF800000u);  // -FLT_MAX -> -inf
  CHECK(rounded_bits(0x7F800000u) == 0x7F800000u);  // +inf
  CHECK(rounded_bits(0xFF800000u) == 0xFF800000u);  // -inf
  // Subnormals round on the same grid (no flush to zero).
  CHECK(rounded_bits(0x00000001u) == 0x00000000u);  // 2^-149 -> +0
  CHECK(rounded_bits(0x00008000u) == 0x00000000u);  // tie at the smallest: to even (0)
  CHECK(rounded_bits(0x00018000u) == 0x00020000u);  // tie: to even (2 * 2^-133)
  CHECK(rounded_bits(0x00008001u) == 0x00010000u);  // 2^-133, the smallest bfloat16 subnormal
  CHECK(rounded_bits(0x807FFFFFu) == 0x80800000u);  // largest negative subnormal -> -2^-126
  CHECK(rounded_bits(0x80000001u) == 0x80000000u);  // -> -0
  // NaN stays NaN (the canonical quiet 0x7FFF), never infinity, whatever its payload and sign.
  for (std::uint32_t nan : {0x7FC00000u, 0x7F800001u, 0x7F80FFFFu, 0xFF800001u, 0xFFFFFFFFu, 0x7FBFFFFFu}) {
    INFO("NaN bits " << std::hex << nan);
    CHECK(std::isnan(round_to_bf16(from_bits(nan))));
    CHECK(bf16_bits(from_bits(nan)) == 0x7FFFu);
  }
  // bf16_bits is the top half of round_to_bf16's float.
  SplitMix64 rng(3);
  for (int i = 0; i < 100000; ++i) {
    const std::uint32_t u = static_cast<std::uint32_t>(rng.next());
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) continue;
    const std::uint32_t r = rounded_bits(u);
    REQUIRE((r & 0xFFFFu) == 0u);
    REQUIRE(r >> 16 == bf16_bits(from_bits(u)));
    // Nearest: no other bfloat16 neighbour is closer (checked where both are finite).
    const double x = from_bits(u), got = from_bits(r);
    if (std::isinf(got)) continue;
    const double lo = from_bits(r - 0x10000u), hi = from_bits(r + 0x10000u);
    if ((r & 0x7FFFFFFFu) != 0 && !std::isinf(lo) && !std::isnan(lo)) REQUIRE(std::fabs(got - x) <= std::fabs(lo - x));
    if (!std::isinf(hi) && !std::isnan(hi)) REQUIRE(std::fabs(got - x) <= std::fabs(hi - x));
  }
}

#ifdef FMNIST_TEST_HAS_CUDA_BF16
TEST_CASE("round_to_bf16 agrees bit for bit with CUDA's __float2bfloat16_rn (host code)", "[precision]") {
  // Every exponent and high mantissa (all 65,536 top halves) with the low halves that decide
  // rounding: zero, the smallest, just below / at / just above the tie, the largest, and others.
  std::size_t mismatches = 0, checked = 0;
  std::string first;
  for (std::uint32_t high = 0; high <= 0xFFFFu; ++high)
    for (std::uint32_t low : {0x0000u, 0x0001u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu, 0x1234u, 0xC000u, 0x4000u}) {
      const std::uint32_t u = high << 16 | low;
      const float x = from_bits(u);
      const __nv_bfloat16_raw cuda = __float2bfloat16_rn(x);
      ++checked;
      if (cuda.x != bf16_bits(x) && mismatches++ == 0)
        first = std::to_string(u) + ": CUDA " + std::to_string(cuda.x) + ", ours " + std::to_string(bf16_bits(x));
    }
  INFO(checked << " patterns, " << mismatches << " mismatches; first " << first);
  CHECK(mismatches == 0);
}
#endif

TEST_CASE("BF16 convolutions, forward and both backward passes, against exact sums of bfloat16 "
          "products (1 bf16 ulp + 2^-18 sum|terms|)", "[precision][ops]") {
  // The paper's four at batch 10 (two tasks of 5 images: the weight gradient's partial sums meet).
  check_conv_bf16(paper_conv1(10), 1);
  check_conv_bf16(paper_conv2(10), 2);
  check_conv_bf16(paper_deconv1(10), 3);
  check_conv_bf16(paper_deconv2(10), 4);
  SplitMix64 rng(77);
  for (int i = 0; i < 8; ++i) check_conv_bf16(random_conv_geometry(rng, false), 100 + i);
  for (int i = 0; i < 8; ++i) check_conv_bf16(random_conv_geometry(rng, true), 200 + i);
}

TEST_CASE("BF16 Linear, forward and both backward products, against exact sums of bfloat16 products",
          "[precision][ops]") {
  for (const LinearGeometry& g : {linear_geometry(10, 800, 256), linear_geometry(10, 256, 800),
                                  linear_geometry(10, 256, 10), linear_geometry(10, 64, 10),
                                  linear_geometry(3, 7, 5), linear_geometry(1, 1, 1),
                                  linear_geometry(100, 800, 64)})
    check_linear_bf16(g, 10 + static_cast<std::uint64_t>(g.in_features));
}

TEST_CASE("BF16 on the CPU: deterministic on any thread count, FP32 unchanged, TF32 refused", "[precision][ops]") {
  auto run = [](int threads, Precision precision) {
    CpuOps<float> ops(threads, precision);
    SplitMix64 rng(5);
    std::vector<std::vector<float>> out;
    for (const ConvGeometry& g : {paper_conv2(12), paper_deconv1(12)}) {
      const auto x = random_floats(g.in_count(), rng), w = random_floats(g.weight_count(), rng);
      const auto dy = random_floats(g.out_count(), rng), b = random_floats(g.out_channels, rng);
      std::vector<float> y(g.out_count()), dx(g.in_count()), dw(g.weight_count()), db(g.out_channels);
      if (g.transposed) {
        ops.conv_transpose2d_forward(g, x.data(), w.data(), b.data(), y.data());
        ops.conv_transpose2d_backward(g, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
      } else {
        ops.conv2d_forward(g, x.data(), w.data(), b.data(), y.data());
        ops.conv2d_backward(g, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
      }
      for (auto* v : {&y, &dx, &dw, &db}) out.push_back(*v);
    }
    return out;
  };
  const auto one = run(1, Precision::BF16), three = run(3, Precision::BF16);
  CHECK(one == three);
  CHECK(run(2, Precision::FP32) == run(2, Precision::FP32));
  CHECK(run(2, Precision::FP32) != one);  // BF16 does change the results

  CpuOps<float> bf16(1, Precision::BF16);
  CHECK(bf16.name() == "cpu (BF16)");
  CHECK(bf16.precision() == Precision::BF16);
  CHECK(CpuOps<float>(1).precision() == Precision::FP32);
  CHECK(make_cpu_ops(Precision::BF16)->precision() == Precision::BF16);
  CHECK_THROWS_AS(CpuOps<float>(1, Precision::TF32), std::invalid_argument);
  CHECK_THROWS_AS(CpuOps<double>(1, Precision::BF16), std::invalid_argument);

  Precision p = Precision::FP32;
  CHECK(parse_precision("bf16", p));
  CHECK(p == Precision::BF16);
  CHECK(parse_precision("tf32", p));
  CHECK(p == Precision::TF32);
  CHECK_FALSE(parse_precision("fp16", p));
  CHECK(std::string(precision_name(Precision::FP32)) == "fp32");
}

TEST_CASE("150 steps of AE(64) in BF16 on real data: the loss falls and stays near FP32's", "[precision][training]") {
  auto losses = [](Precision precision) {
    TrainConfig c;
    c.model.kind = ModelKind::Autoencoder;
    c.model.latent = 64;
    c.epochs = 1;
    c.max_steps_per_epoch = 150;
    c.validation_count = 1000;
    c.seed = 5;
    c.precision = precision;
    auto ops = make_cpu_ops(precision);
    std::vector<float> out;
    TrainCallbacks cb;
    cb.on_step = [&](std::uint64_t, float loss) { out.push_back(loss); };
    std::ostringstream log;
    const TrainResult r = train(c, real_data(), *ops, log, cb);
    out.push_back(static_cast<float>(r.epochs.back().val_loss));  // last: the validation MAE
    return out;
  };
  const auto fp32 = losses(Precision::FP32), bf16 = losses(Precision::BF16);
  REQUIRE(fp32.size() == 151);
  REQUIRE(bf16.size() == 151);
  auto mean_last20 = [](const std::vector<float>& v) {
    return std::accumulate(v.end() - 21, v.end() - 1, 0.0) / 20;
  };
  const double first = bf16.front(), last_bf16 = mean_last20(bf16), last_fp32 = mean_last20(fp32);
  const double val_bf16 = bf16.back(), val_fp32 = fp32.back();
  INFO("BF16: first step " << first << ", last 20 steps " << last_bf16 << ", validation MAE "
                           << val_bf16 << "; FP32: last 20 " << last_fp32 << ", validation MAE "
                           << val_fp32);
  // Stated margins: the BF16 run's loss falls (the mean of its last 20 steps at most 0.7 of its
  // first step's), and ends within 10% of the FP32 run's, on the training steps and on validation
  // (bfloat16's 8 significant bits perturb each step's gradient by ~0.4%, far below the noise of
  // the mini-batches, so the two runs follow the same course).
  CHECK(last_bf16 <= 0.7 * first);
  CHECK(std::fabs(last_bf16 - last_fp32) <= 0.1 * last_fp32);
  CHECK(std::fabs(val_bf16 - val_fp32) <= 0.1 * val_fp32);
  CHECK(bf16 != fp32);  // it did run in BF16
}

TEST_CASE("train() refuses a backend whose precision is not the run's", "[precision][training]") {
  TrainConfig c;
  c.model.latent = 64;
  c.epochs = 1;
  c.max_steps_per_epoch = 1;
  c.precision = Precision::BF16;
  auto ops = make_cpu_ops();  // FP32
  std::ostringstream log;
  CHECK_THROWS_AS(train(c, real_data(), *ops, log), std::invalid_argument);
}

}  // namespace fmnist::testing
