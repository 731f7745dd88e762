// BF16 precision on the GPU (models/precision.h): every convolution and Linear op, forward and
// backward, at the paper's shapes (batch 100) and a few others, on a CudaOps made with
// CudaOptions::bf16, against the CPU reference in BF16 mode (CpuOps<float>(0, Precision::BF16)).
// Also: the shared rounding function agrees with CUDA's __float2bfloat16_rn on the device over
// all 2^32 floats, and a few BF16 training steps track the CPU's.
//
// Tolerance of a product's result (y without bias, dx, dw), element by element:
//     |gpu - cpu| <= 2 ulp_bf16(max(|gpu|, |cpu|)) + 2^-16 S,
// where S is the element's sum of |products| (the same pass on the operands' magnitudes).
// - 2 bfloat16 ulps: both backends round the FP32 sum of the same exact bfloat16 products to
//   bfloat16, each within one ulp of the exact sum (tests/test_precision.cpp), but they add in
//   other orders (cuDNN's tiles, cuBLAS's split-K, tensor-core accumulation), so near a rounding
//   boundary one may round up and the other down: two neighbouring bfloat16 values at most.
// - 2^-16 S: where the terms cancel, the two FP32 sums differ by their summation errors, a few
//   2^-24 S each (tensor cores may truncate while accumulating: 256 times that is allowed), which
//   can exceed the ulp of a result near zero.
// Every such result must also be a bfloat16 value. y with bias = that + b exactly; db (sums of the
// unrounded dy in double) at the FP32 tests' gradient tolerance.
#include <cmath>
#include <string>
#include <vector>

#include "gpu_test_support.h"
#include "host/reference/cpu_ops.h"
#include "models/elementwise.h"

using namespace fmnist;
using namespace fmnist::gputest;

namespace {

double bf16_ulp(double v) {
  const double a = std::fabs(v);
  if (a < std::ldexp(1.0, -126)) return std::ldexp(1.0, -133);
  int e = 0;
  std::frexp(a, &e);
  return std::ldexp(1.0, e - 8);
}

std::vector<double> magnitudes(const std::vector<float>& v) {  // |bf16(v)| in double
  std::vector<double> r(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) r[i] = std::fabs(elementwise::round_to_bf16(v[i]));
  return r;
}

// got (GPU) against ref (CPU BF16) under the tolerance above; S per element.
void compare_bf16(const std::string& what, const std::vector<float>& got,
                  const std::vector<float>& ref, const std::vector<double>& S) {
  REQUIRE(got.size() == ref.size());
  REQUIRE(S.size() == ref.size());
  std::size_t bad = 0, not_bf16 = 0;
  double worst = 0.0;
  std::size_t worst_index = 0;
  std::ostringstream first;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], r = ref[i];
    const double allowed = 2.0 * bf16_ulp(std::max(std::fabs(g), std::fabs(r))) + std::ldexp(S[i], -16);
    const double diff = std::fabs(g - r);
    if (!std::isnan(g) && elementwise::round_to_bf16(got[i]) != got[i]) ++not_bf16;
    const bool wrong = std::isnan(g) || std::isnan(r) || !(diff <= allowed);
    const double excess = allowed > 0 ? diff / allowed : (diff > 0 ? INFINITY : 0.0);
    if (excess > worst) worst = excess, worst_index = i;
    if (wrong && bad++ < 8)
      first << "\n    [" << i << "] gpu " << g << " cpu " << r << " |diff| " << diff << " allowed " << allowed;
  }
  INFO(what << ": " << got.size() << " elements, " << bad << " beyond 2 bf16 ulps + 2^-16 S, "
            << not_bf16 << " not bfloat16 values; worst diff/allowed " << worst << " at ["
            << worst_index << "]; first:" << first.str());
  CHECK(bad == 0);
  CHECK(not_bf16 == 0);
  if (bad == 0 && not_bf16 == 0 && verbose())
    std::printf("  ok %s: %zu elements, worst diff/allowed %.3g\n", what.c_str(), got.size(), worst);
}

ConvGeometry conv(int batch, int cin, int h, int w, int cout, int kernel, int stride, int padding,
                  int output_padding, bool transposed) {
  ConvGeometry g;
  g.batch = batch, g.in_channels = cin, g.in_h = h, g.in_w = w, g.out_channels = cout;
  g.kernel = kernel, g.stride = stride, g.padding = padding, g.output_padding = output_padding;
  g.transposed = transposed;
  return g;
}

std::string describe(const ConvGeometry& g) {
  return std::string(g.transposed ? "BF16 ConvTranspose2d" : "BF16 Conv2d") + "(B" +
         std::to_string(g.batch) + " " + std::to_string(g.in_channels) + "x" + std::to_string(g.in_h) +
         "x" + std::to_string(g.in_w) + " -> " + std::to_string(g.out_channels) + "x" +
         std::to_string(g.out_h()) + "x" + std::to_string(g.out_w()) + " k" + std::to_string(g.kernel) +
         " s" + std::to_string(g.stride) + ")";
}

void check_conv_bf16(const ConvGeometry& g, std::uint64_t seed) {
  const std::string name = describe(g);
  INFO(name);
  Ops<float>& G = bf16_gpu();
  CpuOps<float> cpu(0, Precision::BF16), fp32;
  CpuOps<double> cpu64;  // S: the same passes on the operands' magnitudes
  const ConvCase c = random_conv_case(g, seed);
  const std::vector<float>&x = c.x, &w = c.w, &b = c.b, &dy = c.dy;
  auto forward = [&](auto& ops, const auto* xp, const auto* wp, const auto* bp, auto* yp) {
    if (g.transposed)
      ops.conv_transpose2d_forward(g, xp, wp, bp, yp);
    else
      ops.conv2d_forward(g, xp, wp, bp, yp);
  };
  auto backward = [&](auto& ops, const auto* xp, const auto* wp, const auto* dyp, auto* dxp, auto* dwp,
                      auto* dbp) {
    if (g.transposed)
      ops.conv_transpose2d_backward(g, xp, wp, dyp, dxp, dwp, dbp);
    else
      ops.conv2d_backward(g, xp, wp, dyp, dxp, dwp, dbp);
  };
  // CPU BF16 reference, FP32 bias gradient, and S.
  std::vector<float> y(g.out_count()), dx(g.in_count()), dw(g.weight_count()), db(g.out_channels);
  forward(cpu, x.data(), w.data(), static_cast<const float*>(nullptr), y.data());
  backward(cpu, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
  std::vector<float> db32(g.out_channels);
  backward(fp32, x.data(), w.data(), dy.data(), static_cast<float*>(nullptr),
           static_cast<float*>(nullptr), db32.data());
  const auto ax = magnitudes(x), aw = magnitudes(w), ady = magnitudes(dy);
  std::vector<double> Sy(g.out_count()), Sdx(g.in_count()), Sdw(g.weight_count());
  forward(cpu64, ax.data(), aw.data(), static_cast<const double*>(nullptr), Sy.data());
  backward(cpu64, ax.data(), aw.data(), ady.data(), Sdx.data(), Sdw.data(), static_cast<double*>(nullptr));

  DeviceBuffer<float> gx(G, x), gw(G, w), gb(G, b), gdy(G, dy), gy(G, g.out_count()),
      gdx(G, g.in_count()), gdw(G, g.weight_count()), gdb(G, static_cast<std::size_t>(g.out_channels));
  gy.poison();
  forward(G, gx.get(), gw.get(), static_cast<const float*>(nullptr), gy.get());
  const auto y_gpu = gy.download();
  gy.poison();
  forward(G, gx.get(), gw.get(), gb.get(), gy.get());
  const auto yb_gpu = gy.download();
  gdx.poison();
  gdw.poison();
  gdb.poison();
  backward(G, gx.get(), gw.get(), gdy.get(), gdx.get(), gdw.get(), gdb.get());
  const auto dx_gpu = gdx.download(), dw_gpu = gdw.download(), db_gpu = gdb.download();

  compare_bf16(name + " y", y_gpu, y, Sy);
  compare_bf16(name + " dx", dx_gpu, dx, Sdx);
  compare_bf16(name + " dw", dw_gpu, dw, Sdw);
  // y with bias: the GPU's own y without bias + b, in FP32, exactly.
  std::vector<float> y_plus_b(y_gpu.size());
  const std::size_t plane = static_cast<std::size_t>(g.out_h()) * g.out_w();
  for (std::size_t i = 0; i < y_gpu.size(); ++i) y_plus_b[i] = y_gpu[i] + b[(i / plane) % g.out_channels];
  compare_exact(name + " y with bias = y + b", yb_gpu, y_plus_b);
  compare(name + " db", db_gpu, db32, kGradient);
  compare_exact(name + " db (CPU BF16 = CPU FP32)", db, db32);
  // The executor's first-layer pattern: dw alone.
  gdw.poison();
  backward(G, gx.get(), gw.get(), gdy.get(), static_cast<float*>(nullptr), gdw.get(),
           static_cast<float*>(nullptr));
  compare_exact(name + " dw alone = dw", gdw.download(), dw_gpu);
}

void check_linear_bf16(const LinearGeometry& g, std::uint64_t seed) {
  const LinearCase c = random_linear_case(g, seed);
  const std::string name = "BF16 " + c.name;
  const std::size_t nx = c.nx, ny = c.ny, nw = c.nw;
  const std::vector<float>&x = c.x, &w = c.w, &b = c.b, &dy = c.dy;
  INFO(name);
  Ops<float>& G = bf16_gpu();
  CpuOps<float> cpu(0, Precision::BF16), fp32;
  CpuOps<double> cpu64;
  std::vector<float> y(ny), dx(nx), dw(nw), db(g.out_features), db32(g.out_features);
  cpu.linear_forward(g, x.data(), w.data(), nullptr, y.data());
  cpu.linear_backward(g, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
  fp32.linear_backward(g, x.data(), w.data(), dy.data(), nullptr, nullptr, db32.data());
  const auto ax = magnitudes(x), aw = magnitudes(w), ady = magnitudes(dy);
  std::vector<double> Sy(ny), Sdx(nx), Sdw(nw);
  cpu64.linear_forward(g, ax.data(), aw.data(), nullptr, Sy.data());
  cpu64.linear_backward(g, ax.data(), aw.data(), ady.data(), Sdx.data(), Sdw.data(), nullptr);

  DeviceBuffer<float> gx(G, x), gw(G, w), gb(G, b), gdy(G, dy), gy(G, ny), gdx(G, nx), gdw(G, nw),
      gdb(G, static_cast<std::size_t>(g.out_features));
  gy.poison();
  G.linear_forward(g, gx.get(), gw.get(), nullptr, gy.get());
  const auto y_gpu = gy.download();
  gy.poison();
  G.linear_forward(g, gx.get(), gw.get(), gb.get(), gy.get());
  const auto yb_gpu = gy.download();
  gdx.poison();
  gdw.poison();
  gdb.poison();
  G.linear_backward(g, gx.get(), gw.get(), gdy.get(), gdx.get(), gdw.get(), gdb.get());
  compare_bf16(name + " y", y_gpu, y, Sy);
  compare_bf16(name + " dx", gdx.download(), dx, Sdx);
  compare_bf16(name + " dw", gdw.download(), dw, Sdw);
  std::vector<float> y_plus_b(ny);
  for (std::size_t i = 0; i < ny; ++i) y_plus_b[i] = y_gpu[i] + b[i % g.out_features];
  compare_exact(name + " y with bias = y + b", yb_gpu, y_plus_b);
  compare(name + " db", gdb.download(), db32, kGradient);
}

}  // namespace

TEST_CASE("GPU BF16: the shared rounding agrees with __float2bfloat16_rn on every float",
          "[gpu][bf16][cuda-intrinsic]") {
  if (on_cpu_stand_in()) {
    WARN("not checked on the CPU stand-in (tests/test_precision.cpp checks the host path)");
    return;
  }
  CHECK(gpu_backend().bf16_rounding_mismatches(0) == 0);
}

TEST_CASE("GPU BF16 backend: name, precision, and the TF32 + BF16 refusal", "[gpu][bf16]") {
  Ops<float>& G = bf16_gpu();
  CHECK(G.precision() == Precision::BF16);
  CHECK(G.name().find("(BF16)") != std::string::npos);
  if (!on_cpu_stand_in()) {
    CudaOptions both;
    both.bf16 = true;
    both.allow_tf32 = true;
    CHECK_THROWS_AS(gpu_backend().make_ops(both), std::invalid_argument);
  }
}

TEST_CASE("GPU BF16 convolutions at the paper's shapes against the CPU's BF16", "[gpu][bf16][conv]") {
  check_conv_bf16(conv(100, 1, 28, 28, 16, 3, 1, 0, 0, false), 51);   // encoder.0
  check_conv_bf16(conv(100, 16, 13, 13, 32, 3, 1, 0, 0, false), 52);  // encoder.3
  check_conv_bf16(conv(100, 32, 5, 5, 16, 4, 2, 0, 1, true), 53);     // decoder.3 -> 16x13x13
  check_conv_bf16(conv(100, 16, 13, 13, 1, 3, 2, 0, 1, true), 54);    // decoder.5 -> 1x28x28
}

TEST_CASE("GPU BF16 convolutions at other shapes (odd channels, padding, batch 1)",
          "[gpu][bf16][conv][sanitize]") {
  check_conv_bf16(conv(3, 3, 9, 7, 5, 3, 2, 1, 0, false), 61);
  check_conv_bf16(conv(1, 2, 6, 6, 3, 4, 2, 1, 1, true), 62);
  check_conv_bf16(conv(7, 8, 12, 12, 8, 1, 1, 0, 0, false), 63);
}

TEST_CASE("GPU BF16 Linear at the paper's shapes against the CPU's BF16", "[gpu][bf16][linear]") {
  check_linear_bf16({100, 800, 256}, 71);  // encoder.7
  check_linear_bf16({100, 256, 800}, 72);  // decoder.0
  check_linear_bf16({100, 256, 10}, 73);   // classifier head
  check_linear_bf16({100, 64, 10}, 74);    // C(64)'s head
  check_linear_bf16({100, 800, 64}, 75);   // AE(64)'s encoder.7
  check_linear_bf16({3, 7, 5}, 76);        // odd sizes (no tensor-core alignment)
}
