// CpuOps forward results against naive oracles and hand-computed cases (ConvTranspose2d, max
// pooling, losses, Adam), float against double, dropout statistics, determinism and refusals.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "gradient_check.h"
#include "host/reference/cpu_ops.h"
#include "models/executor.h"
#include "op_shapes.h"

namespace fmnist::testing {
namespace {

using Vec = std::vector<double>;

// ---- oracles: the definitions, written as plainly as possible ------------------------------------

// y[n,co,oy,ox] = b[co] + sum_{ci,ki,kj} x[n,ci,oy*s-p+ki,ox*s-p+kj] w[co,ci,ki,kj]
Vec naive_conv2d(const ConvGeometry& g, const Vec& x, const Vec& w, const Vec& b) {
  const int ho = g.out_h(), wo = g.out_w(), k = g.kernel;
  Vec y(g.out_count());
  for (int n = 0; n < g.batch; ++n)
    for (int co = 0; co < g.out_channels; ++co)
      for (int oy = 0; oy < ho; ++oy)
        for (int ox = 0; ox < wo; ++ox) {
          double sum = b[co];
          for (int ci = 0; ci < g.in_channels; ++ci)
            for (int ki = 0; ki < k; ++ki)
              for (int kj = 0; kj < k; ++kj) {
                const int iy = oy * g.stride - g.padding + ki, ix = ox * g.stride - g.padding + kj;
                if (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w) continue;
                sum += x[((n * g.in_channels + ci) * g.in_h + iy) * g.in_w + ix] *
                       w[((co * g.in_channels + ci) * k + ki) * k + kj];
              }
          y[((n * g.out_channels + co) * ho + oy) * wo + ox] = sum;
        }
  return y;
}

// Each x[n,ci,iy,ix] scatters x * w[ci,co,:,:] onto y[n,co,iy*s-p+ki,ix*s-p+kj]; y starts at b.
Vec naive_conv_transpose2d(const ConvGeometry& g, const Vec& x, const Vec& w, const Vec& b) {
  const int ho = g.out_h(), wo = g.out_w(), k = g.kernel;
  Vec y(g.out_count());
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = b[(i / (ho * wo)) % g.out_channels];
  for (int n = 0; n < g.batch; ++n)
    for (int ci = 0; ci < g.in_channels; ++ci)
      for (int iy = 0; iy < g.in_h; ++iy)
        for (int ix = 0; ix < g.in_w; ++ix)
          for (int co = 0; co < g.out_channels; ++co)
            for (int ki = 0; ki < k; ++ki)
              for (int kj = 0; kj < k; ++kj) {
                const int oy = iy * g.stride - g.padding + ki, ox = ix * g.stride - g.padding + kj;
                if (oy < 0 || oy >= ho || ox < 0 || ox >= wo) continue;
                y[((n * g.out_channels + co) * ho + oy) * wo + ox] +=
                    x[((n * g.in_channels + ci) * g.in_h + iy) * g.in_w + ix] *
                    w[((ci * g.out_channels + co) * k + ki) * k + kj];
              }
  return y;
}

// y[n,j] = b[j] + sum_i x[n,i] w[j,i]
Vec naive_linear(const LinearGeometry& g, const Vec& x, const Vec& w, const Vec& b) {
  Vec y(static_cast<std::size_t>(g.batch) * g.out_features);
  for (int n = 0; n < g.batch; ++n)
    for (int j = 0; j < g.out_features; ++j) {
      double sum = b[j];
      for (int i = 0; i < g.in_features; ++i)
        sum += x[n * g.in_features + i] * w[j * g.in_features + i];
      y[n * g.out_features + j] = sum;
    }
  return y;
}

// ---- helpers --------------------------------------------------------------------------------------

double max_abs(const Vec& a) {
  double m = 0.0;
  for (double v : a) m = std::max(m, std::fabs(v));
  return m;
}
template <class A, class B> double max_abs_diff(const A& a, const B& b) {
  double m = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  return m;
}
std::vector<float> to_float(const Vec& v) { return std::vector<float>(v.begin(), v.end()); }

template <class T> void run_conv(CpuOps<T>& ops, const ConvGeometry& g, const std::vector<T>& x,
                                 const std::vector<T>& w, const std::vector<T>& b, std::vector<T>& y) {
  y.assign(g.out_count(), T(0));
  if (g.transposed)
    ops.conv_transpose2d_forward(g, x.data(), w.data(), b.data(), y.data());
  else
    ops.conv2d_forward(g, x.data(), w.data(), b.data(), y.data());
}

// The double result against the oracle, and the float result against the double one
// (|y_float - y_double| <= 1e-5 * max |y_double|).
void check_conv_forward(const ConvGeometry& g, std::uint64_t seed) {
  INFO(describe(g));
  SplitMix64 rng(seed);
  const Vec x = random_vector(g.in_count(), rng), w = random_vector(g.weight_count(), rng);
  const Vec b = random_vector(g.out_channels, rng);
  CpuOps<double> ops;
  Vec y;
  run_conv(ops, g, x, w, b, y);
  const Vec expected = g.transposed ? naive_conv_transpose2d(g, x, w, b) : naive_conv2d(g, x, w, b);
  CHECK(max_abs_diff(y, expected) <= 1e-12 * (1.0 + max_abs(expected)));
  CpuOps<float> fops;
  std::vector<float> yf;
  run_conv(fops, g, to_float(x), to_float(w), to_float(b), yf);
  CHECK(max_abs_diff(yf, y) <= 1e-5 * max_abs(y));
}

// The executor's host-side Adam scalars (lr 1e-3, PyTorch's defaults) for step t.
template <class T> elementwise::AdamStep<T> adam_step_for(int t) {
  return adam_step_constants<T>(AdamConfig{}, static_cast<std::uint64_t>(t));
}

// Two Adam steps on 3 parameters, against values worked out from PyTorch's formulas:
//   m_t = 0.9 m + 0.1 g,  v_t = 0.999 v + 0.001 g^2,
//   p -= (lr / (1 - 0.9^t)) * m_t / (sqrt(v_t) / sqrt(1 - 0.999^t) + 1e-8).
template <class T> void check_adam_by_hand(double tol, double v_rtol) {
  CpuOps<T> ops;
  std::vector<T> p{T(1.0), T(-0.5), T(0.25)}, m(3, T(0)), v(3, T(0));
  // t = 1, g = (0.1, -0.2, 0): m = (0.01, -0.02, 0), v = (1e-5, 4e-5, 0); step_size = 1e-3/0.1
  // = 0.01; sqrt(v)/sqrt(0.001) = (0.1, 0.2, 0), so denom = (0.10000001, 0.20000001, 1e-8) and
  //   p0 = 1 - 0.01 * 0.01 / 0.10000001       = 0.99900000009999999
  //   p1 = -0.5 + 0.01 * 0.02 / 0.20000001    = -0.49900000004999999750
  //   p2 = 0.25 - 0.01 * 0 / 1e-8             = 0.25
  const std::vector<T> g1{T(0.1), T(-0.2), T(0.0)};
  ops.adam_update(3, p.data(), g1.data(), m.data(), v.data(), adam_step_for<T>(1));
  CHECK(std::fabs(p[0] - 0.99900000009999999) <= tol);
  CHECK(std::fabs(p[1] - -0.49900000004999999750) <= tol);
  CHECK(std::fabs(p[2] - 0.25) <= tol);
  // t = 2, g = (0.3, 0.1, -0.4): m = 0.9 m + 0.1 g = (0.039, -0.008, -0.04),
  // v = 0.999 v + 0.001 g^2 = (9.999e-5, 4.996e-5, 1.6e-4); step_size = 1e-3/0.19
  // = 0.0052631578947368421; sqrt(1 - 0.999^2) = sqrt(0.001999) = 0.044710177812216314;
  // denom = sqrt(v)/0.044710177812216314 + 1e-8 = (0.22365154700567877, 0.15809016228066567,
  // 0.28291345968029534), so p -= 0.0052631578947368421 * m / denom:
  //   p0 = 0.99900000009999999 - 9.1778e-4   = 0.99808221902205589
  //   p1 = -0.49900000005 + 2.6634e-4        = -0.49873366302718676
  //   p2 = 0.25 + 7.4414e-4                  = 0.25074413679726436
  const std::vector<T> g2{T(0.3), T(0.1), T(-0.4)};
  ops.adam_update(3, p.data(), g2.data(), m.data(), v.data(), adam_step_for<T>(2));
  CHECK(std::fabs(m[0] - 0.039) <= tol);
  CHECK(std::fabs(m[1] - -0.008) <= tol);
  CHECK(std::fabs(m[2] - -0.04) <= tol);
  CHECK(std::fabs(v[0] - 9.999e-5) <= v_rtol * 9.999e-5);
  CHECK(std::fabs(v[1] - 4.996e-5) <= v_rtol * 4.996e-5);
  CHECK(std::fabs(v[2] - 1.6e-4) <= v_rtol * 1.6e-4);
  CHECK(std::fabs(p[0] - 0.99808221902205589) <= tol);
  CHECK(std::fabs(p[1] - -0.49873366302718676) <= tol);
  CHECK(std::fabs(p[2] - 0.25074413679726436) <= tol);
}

// Forward + backward of one conv layer, float, every output copied out.
std::vector<std::vector<float>> conv_step(CpuOps<float>& ops, const ConvGeometry& g) {
  SplitMix64 rng(99);
  const std::vector<float> x = to_float(random_vector(g.in_count(), rng));
  const std::vector<float> w = to_float(random_vector(g.weight_count(), rng));
  const std::vector<float> b = to_float(random_vector(g.out_channels, rng));
  const std::vector<float> dy = to_float(random_vector(g.out_count(), rng));
  std::vector<float> y, dx(g.in_count()), dw(g.weight_count()), db(g.out_channels);
  run_conv(ops, g, x, w, b, y);
  if (g.transposed)
    ops.conv_transpose2d_backward(g, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
  else
    ops.conv2d_backward(g, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
  return {y, dx, dw, db};
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Max pooling as PyTorch defines it, written plainly: in each window, scanned row by row, a value
// replaces the best so far when it is larger or NaN.
void naive_maxpool(const PoolGeometry& g, const Vec& x, Vec& y, std::vector<std::int32_t>& argmax) {
  const int ho = g.out_h(), wo = g.out_w();
  y.assign(g.out_count(), 0.0);
  argmax.assign(g.out_count(), -1);
  for (int plane = 0; plane < g.batch * g.channels; ++plane)
    for (int oy = 0; oy < ho; ++oy)
      for (int ox = 0; ox < wo; ++ox) {
        double best = -std::numeric_limits<double>::infinity();
        int at = (oy * g.stride) * g.in_w + ox * g.stride;
        for (int ky = 0; ky < g.kernel; ++ky)
          for (int kx = 0; kx < g.kernel; ++kx) {
            const int i = (oy * g.stride + ky) * g.in_w + ox * g.stride + kx;
            const double v = x[static_cast<std::size_t>(plane) * g.in_h * g.in_w + i];
            if (v > best || std::isnan(v)) {
              best = v;
              at = i;
            }
          }
        const std::size_t o = (static_cast<std::size_t>(plane) * ho + oy) * wo + ox;
        y[o] = best;
        argmax[o] = at;
      }
}

// Every output of one training-step's worth of ops, on a CpuOps with `threads` threads: the
// paper's four convolutions (forward and backward), its Linear layers, both poolings, ReLU and Adam.
std::vector<std::vector<float>> all_ops_step(int threads, int batch) {
  CpuOps<float> ops(threads);
  REQUIRE(ops.threads() == threads);
  std::vector<std::vector<float>> out;
  for (const ConvGeometry& g : paper_convs(batch))
    for (auto& v : conv_step(ops, g)) out.push_back(std::move(v));
  SplitMix64 rng(7);
  for (const LinearGeometry& g : {linear_geometry(batch, 800, 256), linear_geometry(batch, 256, 800),
                                  linear_geometry(batch, 256, 10)}) {
    const std::size_t nx = static_cast<std::size_t>(batch) * g.in_features;
    const std::size_t ny = static_cast<std::size_t>(batch) * g.out_features;
    const auto x = to_float(random_vector(nx, rng)), dy = to_float(random_vector(ny, rng));
    const auto w = to_float(random_vector(static_cast<std::size_t>(g.out_features) * g.in_features, rng));
    const auto b = to_float(random_vector(g.out_features, rng));
    std::vector<float> y(ny), dx(nx), dw(w.size()), db(b.size());
    ops.linear_forward(g, x.data(), w.data(), b.data(), y.data());
    ops.linear_backward(g, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
    for (auto* v : {&y, &dx, &dw, &db}) out.push_back(*v);
  }
  for (const PoolGeometry& g : {pool_geometry(batch, 16, 26, 26), pool_geometry(batch, 32, 11, 11)}) {
    const auto x = to_float(random_vector(g.in_count(), rng));
    const auto dy = to_float(random_vector(g.out_count(), rng));
    std::vector<float> y(g.out_count()), dx(g.in_count());
    std::vector<std::int32_t> argmax(g.out_count());
    ops.maxpool2d_forward(g, x.data(), y.data(), argmax.data());
    ops.maxpool2d_backward(g, dy.data(), argmax.data(), dx.data());
    out.push_back(y);
    out.push_back(dx);
    out.emplace_back(argmax.begin(), argmax.end());
    std::vector<float> relu(x.size()), drelu(x.size());
    ops.relu_forward(x.size(), x.data(), relu.data());
    ops.relu_backward(x.size(), relu.data(), x.data(), drelu.data());
    out.push_back(relu);
    out.push_back(drelu);
  }
  std::vector<float> p = to_float(random_vector(423809, rng)), m(p.size(), 0.0f), v(p.size(), 0.0f);
  const auto grad = to_float(random_vector(p.size(), rng));
  for (int t = 1; t <= 2; ++t) ops.adam_update(p.size(), p.data(), grad.data(), m.data(), v.data(), adam_step_for<float>(t));
  out.push_back(p);
  return out;
}

}  // namespace

TEST_CASE("Conv2d and ConvTranspose2d forward match naive oracles, float matches double", "[ops]") {
  SplitMix64 rng(11);
  for (int i = 0; i < 10; ++i) check_conv_forward(random_conv_geometry(rng, false), 100 + i);
  for (int i = 0; i < 10; ++i) check_conv_forward(random_conv_geometry(rng, true), 200 + i);
  check_conv_forward(paper_conv1(2), 301);
  check_conv_forward(paper_conv2(2), 302);
  check_conv_forward(paper_deconv1(2), 303);
  check_conv_forward(paper_deconv2(2), 304);
}

TEST_CASE("Linear forward matches a naive loop, float matches double", "[ops]") {
  for (const LinearGeometry& g : {linear_geometry(3, 7, 5), linear_geometry(2, 800, 256),
                                  linear_geometry(4, 256, 10), linear_geometry(1, 1, 1)}) {
    INFO("Linear B" << g.batch << " " << g.in_features << " -> " << g.out_features);
    SplitMix64 rng(12);
    const Vec x = random_vector(static_cast<std::size_t>(g.batch) * g.in_features, rng);
    const Vec w = random_vector(static_cast<std::size_t>(g.out_features) * g.in_features, rng);
    const Vec b = random_vector(g.out_features, rng);
    CpuOps<double> ops;
    Vec y(static_cast<std::size_t>(g.batch) * g.out_features);
    ops.linear_forward(g, x.data(), w.data(), b.data(), y.data());
    const Vec expected = naive_linear(g, x, w, b);
    CHECK(max_abs_diff(y, expected) <= 1e-12 * (1.0 + max_abs(expected)));
    CpuOps<float> fops;
    const std::vector<float> xf = to_float(x), wf = to_float(w), bf = to_float(b);
    std::vector<float> yf(y.size());
    fops.linear_forward(g, xf.data(), wf.data(), bf.data(), yf.data());
    CHECK(max_abs_diff(yf, y) <= 1e-5 * max_abs(y));
  }
}

TEST_CASE("ConvTranspose2d by hand: stride 2 with output_padding, and two input channels", "[ops]") {
  CpuOps<double> ops;
  SECTION("1 channel, 2x2 input, 2x2 kernel, stride 2, output_padding 1, bias 0.5 -> 5x5") {
    // Each input pixel (i,j) stamps x[i][j] * kernel at (2i, 2j); the kernel does not overlap
    // itself, and the last row and column (output_padding) receive only the bias.
    const ConvGeometry g = conv_geometry(1, 1, 2, 2, 1, 2, 2, 0, 1, true);
    REQUIRE(g.out_h() == 5);
    const Vec x{1, 2, 3, 4}, w{1, 10, 100, 1000}, b{0.5};
    const Vec expected{1.5,   10.5,   2.5,   20.5,   0.5,   //
                       100.5, 1000.5, 200.5, 2000.5, 0.5,   //
                       3.5,   30.5,   4.5,   40.5,   0.5,   //
                       300.5, 3000.5, 400.5, 4000.5, 0.5,   //
                       0.5,   0.5,    0.5,   0.5,    0.5};
    Vec y(25);
    ops.conv_transpose2d_forward(g, x.data(), w.data(), b.data(), y.data());
    CHECK(y == expected);
  }
  SECTION("2 input channels, 1 output, 2x2 kernel, stride 1 -> 3x3") {
    // x0 = [1 2; 3 4] with w0 = [1 2; 3 4] gives [1 4 4; 6 20 16; 9 24 16];
    // x1 = [-1 0; 0 2] with w1 = [0 1; 1 0] gives [0 -1 0; -1 0 2; 0 2 0]; the sum, bias 0:
    const ConvGeometry g = conv_geometry(1, 2, 2, 2, 1, 2, 1, 0, 0, true);
    const Vec x{1, 2, 3, 4, -1, 0, 0, 2}, w{1, 2, 3, 4, 0, 1, 1, 0}, b{0.0};
    const Vec expected{1, 3, 4, 5, 20, 18, 9, 26, 16};
    Vec y(9);
    ops.conv_transpose2d_forward(g, x.data(), w.data(), b.data(), y.data());
    CHECK(y == expected);
  }
}

TEST_CASE("MaxPool2d by hand: first maximum on ties, floor on odd sizes, dx written whole",
          "[ops]") {
  CpuOps<double> ops;
  const PoolGeometry g = pool_geometry(1, 1, 5, 5);  // -> 2x2, the last row and column dropped
  const Vec x{1, 1, 0, 2, 9,  //
              1, 0, 2, 2, 9,  //
              3, 4, 5, 5, 9,  //
              4, 4, 5, 1, 9,  //
              9, 9, 9, 9, 9};
  Vec y(4);
  std::vector<std::int32_t> argmax(4, -7);
  ops.maxpool2d_forward(g, x.data(), y.data(), argmax.data());
  CHECK(y == Vec{1, 2, 4, 5});
  CHECK(argmax == std::vector<std::int32_t>{0, 3, 11, 12});
  Vec dx(25, std::numeric_limits<double>::quiet_NaN());
  const Vec dy{10, 20, 30, 40};
  ops.maxpool2d_backward(g, dy.data(), argmax.data(), dx.data());
  Vec expected(25, 0.0);
  expected[0] = 10;
  expected[3] = 20;
  expected[11] = 30;
  expected[12] = 40;
  CHECK(dx == expected);
  // A NaN in a window is its maximum, as in PyTorch.
  Vec xn = x;
  xn[6] = std::numeric_limits<double>::quiet_NaN();
  ops.maxpool2d_forward(g, xn.data(), y.data(), argmax.data());
  CHECK(std::isnan(y[0]));
  CHECK(argmax[0] == 6);
}

TEST_CASE("Adam by hand, two steps, float and double", "[ops]") {
  check_adam_by_hand<double>(1e-15, 1e-14);
  // In float, 1 - beta2 is rounded from the double 0.001 (as PyTorch's scalar), not computed as
  // 1 - 0.999f: v stays within float rounding of the exact value.
  check_adam_by_hand<float>(2e-7, 1e-6);
}

TEST_CASE("Losses, prediction counts and pixel scaling by hand", "[ops]") {
  CpuOps<double> ops;
  const Vec pred{0, 1, 2}, target{1, 1, 0};
  Vec d(3);
  double loss = 0, loss_sum = 0.5;
  ops.l1_loss(3, pred.data(), target.data(), d.data(), &loss, &loss_sum);  // (1 + 0 + 2) / 3
  CHECK(loss == 1.0);
  CHECK(loss_sum == 1.5);
  CHECK(d == Vec{-1.0 / 3, 0.0, 1.0 / 3});
  ops.mse_loss(3, pred.data(), target.data(), d.data(), &loss, nullptr);  // (1 + 0 + 4) / 3
  CHECK(loss == Approx(5.0 / 3).epsilon(1e-15));
  CHECK(d[0] == Approx(-2.0 / 3).epsilon(1e-15));
  CHECK(d[1] == 0.0);
  CHECK(d[2] == Approx(4.0 / 3).epsilon(1e-15));

  // Equal scores: loss log(10), gradient (0.1 - [c == label]) / batch.
  const Vec scores(20, 0.25);
  const std::vector<std::uint8_t> labels{3, 9};
  Vec ds(20);
  ops.softmax_cross_entropy(2, 10, scores.data(), labels.data(), ds.data(), &loss, nullptr);
  CHECK(loss == Approx(std::log(10.0)).epsilon(1e-14));
  CHECK(ds[3] == Approx((0.1 - 1.0) / 2).epsilon(1e-14));
  CHECK(ds[4] == Approx(0.1 / 2).epsilon(1e-14));

  // Row 0 ties between classes 1 and 2 -> 1 (the first); row 1 -> 0.
  const Vec s2{0.0, 5.0, 5.0, 1.0, 7.0, 2.0, 3.0, 4.0};
  std::vector<std::int64_t> confusion(16, 0);
  const std::vector<std::uint8_t> l2{2, 0};
  ops.count_predictions(2, 4, s2.data(), l2.data(), confusion.data());
  ops.count_predictions(2, 4, s2.data(), l2.data(), confusion.data());
  CHECK(confusion[2 * 4 + 1] == 2);
  CHECK(confusion[0 * 4 + 0] == 2);
  CHECK(std::count(confusion.begin(), confusion.end(), 0) == 14);

  const std::vector<std::uint8_t> pixels{0, 51, 255};
  Vec unit(3);
  ops.images_to_float(3, pixels.data(), unit.data());
  CHECK(unit == Vec{0.0, 0.2, 1.0});
}

TEST_CASE("Memory ops: zeroed aligned allocations and copies", "[ops]") {
  CpuOps<float> ops;
  CHECK(ops.name() == "cpu");
  auto* a = static_cast<float*>(ops.allocate(100 * sizeof(float)));
  REQUIRE(a != nullptr);
  CHECK(reinterpret_cast<std::uintptr_t>(a) % 64 == 0);
  CHECK(std::all_of(a, a + 100, [](float v) { return v == 0.0f; }));
  ops.fill(a, 2.5f, 100);
  auto* b = static_cast<float*>(ops.allocate(100 * sizeof(float)));
  ops.copy(b, a, 100 * sizeof(float));
  std::vector<float> host(100, 0.0f);
  ops.copy_to_host(host.data(), b, 100 * sizeof(float));
  CHECK(std::all_of(host.begin(), host.end(), [](float v) { return v == 2.5f; }));
  host[7] = -1.0f;
  ops.copy_to_device(a, host.data(), 100 * sizeof(float));
  CHECK(a[7] == -1.0f);
  void* empty = ops.allocate(0);
  CHECK(empty != nullptr);
  ops.deallocate(empty);
  ops.deallocate(a);
  ops.deallocate(b);
  ops.synchronize();
  CHECK(make_cpu_ops()->name() == "cpu");
}

TEST_CASE("Dropout drops a fraction p, with a mask fixed by (seed, step, layer)", "[ops]") {
  CpuOps<float> ops;
  const std::size_t n = 1000000;
  const float p = 0.3f;
  const std::vector<float> ones(n, 1.0f);
  std::vector<float> y(n), again(n), other_step(n), other_layer(n), dx(n);
  ops.dropout_forward(n, p, 1234, 7, 1, ones.data(), y.data());
  const float kept = 1.0f / (1.0f - p);
  const auto dropped = std::count(y.begin(), y.end(), 0.0f);
  CHECK(std::count(y.begin(), y.end(), kept) == static_cast<std::ptrdiff_t>(n) - dropped);
  // binomial(1e6, 0.3): sd = sqrt(n p (1-p)) = 458; allow 6 sd
  CHECK(std::abs(dropped - 300000) < 2750);

  ops.dropout_forward(n, p, 1234, 7, 1, ones.data(), again.data());
  CHECK(again == y);
  ops.dropout_backward(n, p, 1234, 7, 1, ones.data(), dx.data());
  CHECK(dx == y);  // the same factor on the gradient

  // Another step or layer: an independent mask, differing at ~2 p (1-p) = 42 % of positions.
  ops.dropout_forward(n, p, 1234, 8, 1, ones.data(), other_step.data());
  ops.dropout_forward(n, p, 1234, 7, 2, ones.data(), other_layer.data());
  for (const auto* other : {&other_step, &other_layer}) {
    std::size_t differ = 0;
    for (std::size_t i = 0; i < n; ++i) differ += (*other)[i] != y[i];
    CHECK(differ > 410000);
    CHECK(differ < 430000);
  }
  // p = 0 is the identity.
  ops.dropout_forward(1000, 0.0f, 1234, 7, 1, ones.data(), again.data());
  CHECK(std::all_of(again.begin(), again.begin() + 1000, [](float v) { return v == 1.0f; }));
}

TEST_CASE("Convolutions are bitwise deterministic at the paper's shapes, batch 100", "[ops]") {
  for (const ConvGeometry& g : paper_convs(100)) {
    INFO(describe(g));
    CpuOps<float> first, second;
    const auto a = conv_step(first, g);
    const auto b = conv_step(first, g);  // scratch already grown
    const auto c = conv_step(second, g);
    for (std::size_t i = 0; i < a.size(); ++i) {
      CHECK(bitwise_equal(a[i], b[i]));
      CHECK(bitwise_equal(a[i], c[i]));
    }
  }
}

TEST_CASE("Every op gives the same bits on 1, 2 and 3 threads", "[ops]") {
  // Work is cut into tasks fixed by the shapes alone (host/reference/parallel.h): the thread count
  // only decides who runs them. Batch 100 (full chunks of images) and 13 (a partial last chunk).
  for (int batch : {100, 13}) {
    INFO("batch " << batch);
    const auto one = all_ops_step(1, batch);
    for (int threads : {2, 3}) {
      INFO(threads << " threads");
      const auto many = all_ops_step(threads, batch);
      REQUIRE(many.size() == one.size());
      for (std::size_t i = 0; i < one.size(); ++i) {
        INFO("output " << i);
        CHECK(bitwise_equal(many[i], one[i]));
      }
    }
  }
}

TEST_CASE("A whole training step gives the same bits on 1 and 3 threads", "[ops]") {
  for (ModelKind kind : {ModelKind::Autoencoder, ModelKind::Classifier}) {
    ModelConfig config;
    config.kind = kind;
    config.latent = 256;
    const NetworkSpec spec = build_network(config);
    std::vector<std::vector<float>> params;
    for (int threads : {1, 3}) {
      CpuOps<float> ops(threads);
      const int batch = 23;
      Executor<float> ex(spec, ops, batch, 5);
      std::vector<float> p(spec.param_count);
      initialize_parameters(spec, 5, p.data());
      ops.copy_to_device(ex.params(), p.data(), p.size() * sizeof(float));
      SplitMix64 rng(9);
      for (int i = 0; i < batch * 784; ++i) ex.batch_images()[i] = static_cast<std::uint8_t>(rng.below(256));
      for (int i = 0; i < batch; ++i) ex.batch_labels()[i] = static_cast<std::uint8_t>(rng.below(10));
      for (std::uint64_t step = 1; step <= 3; ++step) ex.train_step(batch, step, AdamConfig{});
      ops.copy_to_host(p.data(), ex.params(), p.size() * sizeof(float));
      params.push_back(p);
    }
    CHECK(bitwise_equal(params[0], params[1]));
  }
}

TEST_CASE("MaxPool2d matches a naive loop with ties and NaNs, 2x2 and other windows", "[ops]") {
  // Few distinct values (many ties) and a sprinkling of NaNs; the 2x2 stride-2 windows take a
  // path of their own, the others the general loop.
  for (const PoolGeometry& g : {pool_geometry(3, 4, 26, 26), pool_geometry(3, 4, 11, 11),
                                pool_geometry(2, 3, 9, 8, 3), pool_geometry(2, 2, 7, 7, 1)}) {
    INFO("MaxPool2d k" << g.kernel << " on " << g.in_h << "x" << g.in_w);
    SplitMix64 rng(31);
    Vec x(g.in_count());
    for (double& v : x)
      v = rng.below(40) == 0 ? std::numeric_limits<double>::quiet_NaN() : static_cast<double>(rng.below(4));
    Vec expected;
    std::vector<std::int32_t> expected_argmax;
    naive_maxpool(g, x, expected, expected_argmax);
    for (int threads : {1, 2}) {
      CpuOps<double> ops(threads);
      Vec y(g.out_count());
      std::vector<std::int32_t> argmax(g.out_count(), -7);
      ops.maxpool2d_forward(g, x.data(), y.data(), argmax.data());
      CHECK(argmax == expected_argmax);
      bool same = true;
      for (std::size_t i = 0; i < y.size(); ++i)
        same = same && (y[i] == expected[i] || (std::isnan(y[i]) && std::isnan(expected[i])));
      CHECK(same);
    }
  }
}

TEST_CASE("Conv2d, ReLU and MaxPool2d as one op equal the three ops, the paper's encoder shapes", "[ops]") {
  // The defaults (ops_defaults.h) run the ops the executor ran before it fused them: the same bits.
  CpuOps<float> ops(2);
  for (const ConvGeometry& g : {paper_conv1(4), paper_conv2(4)}) {
    INFO("Conv2d to " << g.out_h() << "x" << g.out_w());
    const PoolGeometry p = pool_geometry(g.batch, g.out_channels, g.out_h(), g.out_w());
    SplitMix64 rng(17);
    auto draw = [&](std::size_t n) {
      std::vector<float> v(n);
      for (float& f : v) f = static_cast<float>(rng.uniform() - 0.5);
      return v;
    };
    const auto x = draw(g.in_count()), w = draw(g.weight_count()), b = draw(static_cast<std::size_t>(g.out_channels));
    std::vector<float> y1(g.out_count()), r1(g.out_count()), p1(p.out_count()), y2(y1), r2(r1), p2(p.out_count(), -9.0f);
    std::vector<std::int32_t> a1(p.out_count()), a2(p.out_count(), -7);
    ops.conv2d_forward(g, x.data(), w.data(), b.data(), y1.data());
    ops.relu_forward(g.out_count(), y1.data(), r1.data());
    ops.maxpool2d_forward(p, r1.data(), p1.data(), a1.data());
    ops.conv2d_forward_relu_maxpool(g, p, x.data(), w.data(), b.data(), y2.data(), r2.data(), p2.data(), a2.data());
    CHECK(y2 == y1);
    CHECK(r2 == r1);
    CHECK(p2 == p1);
    CHECK(a2 == a1);
  }
}

TEST_CASE("The CPU thread count: the constructor's, else FMNIST_CPU_THREADS, else the CPUs", "[ops]") {
  const char* saved = std::getenv("FMNIST_CPU_THREADS");
  const std::string saved_value = saved != nullptr ? saved : "";
  CHECK(CpuOps<float>(3).threads() == 3);
  ::setenv("FMNIST_CPU_THREADS", "5", 1);
  CHECK(CpuOps<float>().threads() == 5);
  CHECK(CpuOps<float>(2).threads() == 2);
  for (const char* bad : {"0", "-1", "two", "3x", "5000"}) {
    ::setenv("FMNIST_CPU_THREADS", bad, 1);
    CHECK_THROWS_WITH(CpuOps<float>(), Catch::Matchers::Contains("FMNIST_CPU_THREADS"));
  }
  ::unsetenv("FMNIST_CPU_THREADS");
  const int cpus = CpuOps<float>().threads();
  CHECK(cpus >= 1);
  CHECK(cpus <= reference::kMaxDefaultThreads);
  if (saved != nullptr) ::setenv("FMNIST_CPU_THREADS", saved_value.c_str(), 1);
}

TEST_CASE("TaskPool runs every task exactly once, op after op", "[ops]") {
  // Many short ops back to back, so that workers often arrive late for an op (the case the
  // pool's ticket numbering exists for); each task counts its runs.
  reference::TaskPool pool(4);
  SplitMix64 rng(3);
  std::vector<std::atomic<int>> runs(64);
  std::atomic<int> bad_thread{0};
  for (int op = 0; op < 3000; ++op) {
    const int tasks = 1 + static_cast<int>(rng.below(64));
    for (int t = 0; t < tasks; ++t) runs[t] = 0;
    pool.run(tasks, [&](int task, int thread) {
      runs[task].fetch_add(1);
      if (thread < 0 || thread >= pool.threads()) bad_thread = 1;
    });
    bool once = true;
    for (int t = 0; t < tasks; ++t) once = once && runs[t].load() == 1;
    REQUIRE(once);
  }
  CHECK(bad_thread == 0);
}

TEST_CASE("Every op refuses bad arguments with std::invalid_argument", "[ops]") {
  using Catch::Matchers::Contains;
  CpuOps<float> ops;
  std::vector<float> buf(4096, 0.5f), out(4096);
  std::vector<std::int32_t> arg(4096, 0);
  std::vector<std::uint8_t> labels(16, 0);
  std::vector<std::int64_t> confusion(100, 0);
  const float* in = buf.data();
  float* o = out.data();
  float loss = 0;

  ConvGeometry conv = conv_geometry(0, 1, 5, 5, 2, 3);  // zero batch
  CHECK_THROWS_WITH(ops.conv2d_forward(conv, in, in, in, o), Contains("conv2d_forward") && Contains("batch"));
  CHECK_THROWS_AS(ops.conv2d_backward(conv, in, in, in, o, o, o), std::invalid_argument);
  conv.batch = 1;
  conv.kernel = 8;  // larger than the input
  CHECK_THROWS_AS(ops.conv2d_forward(conv, in, in, in, o), std::invalid_argument);
  conv.kernel = 3;
  CHECK_THROWS_AS(ops.conv2d_forward(conv, nullptr, in, in, o), std::invalid_argument);
  CHECK_THROWS_AS(ops.conv2d_backward(conv, in, in, nullptr, o, o, o), std::invalid_argument);
  CHECK_THROWS_AS(ops.conv2d_backward(conv, nullptr, in, in, nullptr, o, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(ops.conv_transpose2d_forward(conv, in, in, in, o), std::invalid_argument);  // not transposed
  // The fused Conv2d + ReLU + MaxPool2d needs a pool of the convolution's output (3x3 here).
  CHECK_THROWS_WITH(ops.conv2d_forward_relu_maxpool(conv, pool_geometry(1, 2, 4, 4), in, in, in, o, o + 64, o + 128,
                                                    arg.data()),
                    Contains("conv2d_forward_relu_maxpool") && Contains("not the convolution's output"));
  ConvGeometry deconv = conv_geometry(0, 2, 3, 3, 1, 3, 2, 0, 1, true);
  CHECK_THROWS_WITH(ops.conv_transpose2d_forward(deconv, in, in, in, o), Contains("conv_transpose2d_forward"));
  CHECK_THROWS_AS(ops.conv_transpose2d_backward(deconv, in, in, in, o, o, o), std::invalid_argument);
  deconv.batch = 1;
  deconv.output_padding = 2;  // not below the stride
  CHECK_THROWS_AS(ops.conv_transpose2d_forward(deconv, in, in, in, o), std::invalid_argument);
  CHECK_THROWS_AS(ops.conv2d_forward(deconv, in, in, in, o), std::invalid_argument);  // transposed

  PoolGeometry pool = pool_geometry(0, 1, 4, 4);
  CHECK_THROWS_WITH(ops.maxpool2d_forward(pool, in, o, arg.data()), Contains("maxpool2d_forward"));
  CHECK_THROWS_AS(ops.maxpool2d_backward(pool, in, arg.data(), o), std::invalid_argument);
  pool = pool_geometry(1, 1, 1, 4);  // kernel taller than the input
  CHECK_THROWS_AS(ops.maxpool2d_forward(pool, in, o, arg.data()), std::invalid_argument);
  pool = pool_geometry(1, 1, 4, 4);
  arg[0] = 16;  // outside the 4x4 plane
  CHECK_THROWS_AS(ops.maxpool2d_backward(pool, in, arg.data(), o), std::invalid_argument);

  LinearGeometry lin = linear_geometry(0, 3, 2);
  CHECK_THROWS_WITH(ops.linear_forward(lin, in, in, in, o), Contains("linear_forward"));
  CHECK_THROWS_AS(ops.linear_backward(lin, in, in, in, o, o, o), std::invalid_argument);
  lin = linear_geometry(1, 3, 0);
  CHECK_THROWS_AS(ops.linear_forward(lin, in, in, in, o), std::invalid_argument);

  CHECK_THROWS_AS(ops.relu_forward(0, in, o), std::invalid_argument);
  CHECK_THROWS_AS(ops.relu_backward(0, in, in, o), std::invalid_argument);
  CHECK_THROWS_AS(ops.sigmoid_forward(0, in, o), std::invalid_argument);
  CHECK_THROWS_AS(ops.sigmoid_backward(0, in, in, o), std::invalid_argument);
  CHECK_THROWS_AS(ops.relu_forward(4, nullptr, o), std::invalid_argument);
  CHECK_THROWS_AS(ops.dropout_forward(0, 0.2f, 1, 1, 0, in, o), std::invalid_argument);
  CHECK_THROWS_AS(ops.dropout_forward(4, 1.0f, 1, 1, 0, in, o), std::invalid_argument);
  CHECK_THROWS_AS(ops.dropout_backward(4, -0.1f, 1, 1, 0, in, o), std::invalid_argument);

  CHECK_THROWS_WITH(ops.l1_loss(0, in, in, o, &loss, nullptr), Contains("l1_loss"));
  CHECK_THROWS_AS(ops.mse_loss(0, in, in, o, &loss, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(ops.mse_loss(4, in, in, o, nullptr, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(ops.softmax_cross_entropy(0, 10, in, labels.data(), o, &loss, nullptr), std::invalid_argument);
  labels[1] = 10;  // not a class
  CHECK_THROWS_WITH(ops.softmax_cross_entropy(2, 10, in, labels.data(), o, &loss, nullptr), Contains("label"));
  CHECK_THROWS_AS(ops.count_predictions(2, 10, in, labels.data(), confusion.data()), std::invalid_argument);
  CHECK_THROWS_AS(ops.count_predictions(0, 10, in, labels.data(), confusion.data()), std::invalid_argument);

  std::vector<float> p(4), g(4), m(4), v(4);
  const elementwise::AdamStep<float> step = adam_step_for<float>(1);
  CHECK_THROWS_WITH(ops.adam_update(0, p.data(), g.data(), m.data(), v.data(), step), Contains("adam_update"));
  CHECK_THROWS_AS(ops.adam_update(4, p.data(), nullptr, m.data(), v.data(), step), std::invalid_argument);
  CHECK_THROWS_AS(ops.images_to_float(0, labels.data(), o), std::invalid_argument);
}

}  // namespace fmnist::testing
