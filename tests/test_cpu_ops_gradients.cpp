// Every backward op of CpuOps<double> against central finite differences of the random linear
// functional L = sum(r .* y): on random small shapes and on the paper's exact layer shapes.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "gradient_check.h"
#include "host/reference/cpu_ops.h"
#include "op_shapes.h"

namespace fmnist::testing {
namespace {

using Vec = std::vector<double>;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Checks one gradient, sampling at most `max_checked` entries; prints the report on failure.
void expect_gradient(const char* what, const std::function<double(const Vec&)>& f, Vec& params,
                     const Vec& analytic, std::size_t max_checked, std::uint64_t seed,
                     GradientTolerance tol = {}) {
  const GradientCheckResult r =
      check_gradient(f, params, analytic, sample_indices(params.size(), max_checked, seed), tol);
  INFO(what << ": " << r.report);
  CHECK(r.ok);
}

// dx, dw, db of a Conv2d or ConvTranspose2d, with output buffers pre-filled with NaN so that
// an op that accumulates instead of overwriting fails.
void check_conv_gradients(const ConvGeometry& g, std::uint64_t seed, std::size_t max_checked) {
  INFO(describe(g));
  CpuOps<double> ops;
  SplitMix64 rng(seed);
  Vec x = random_vector(g.in_count(), rng), w = random_vector(g.weight_count(), rng);
  Vec b = random_vector(g.out_channels, rng), r = random_vector(g.out_count(), rng);
  Vec y(g.out_count());
  auto loss = [&](const Vec& xx, const Vec& ww, const Vec& bb) {
    if (g.transposed)
      ops.conv_transpose2d_forward(g, xx.data(), ww.data(), bb.data(), y.data());
    else
      ops.conv2d_forward(g, xx.data(), ww.data(), bb.data(), y.data());
    return dot(r, y);
  };
  Vec dx(x.size(), kNaN), dw(w.size(), kNaN), db(b.size(), kNaN);
  if (g.transposed)
    ops.conv_transpose2d_backward(g, x.data(), w.data(), r.data(), dx.data(), dw.data(), db.data());
  else
    ops.conv2d_backward(g, x.data(), w.data(), r.data(), dx.data(), dw.data(), db.data());
  expect_gradient("dx", [&](const Vec& p) { return loss(p, w, b); }, x, dx, max_checked, seed + 1);
  expect_gradient("dw", [&](const Vec& p) { return loss(x, p, b); }, w, dw, max_checked, seed + 2);
  expect_gradient("db", [&](const Vec& p) { return loss(x, w, p); }, b, db, max_checked, seed + 3);

  // Each output alone (the others null) gives the same bits.
  Vec dx1(x.size()), dw1(w.size()), db1(b.size());
  if (g.transposed) {
    ops.conv_transpose2d_backward(g, nullptr, w.data(), r.data(), dx1.data(), nullptr, nullptr);
    ops.conv_transpose2d_backward(g, x.data(), nullptr, r.data(), nullptr, dw1.data(), nullptr);
    ops.conv_transpose2d_backward(g, nullptr, nullptr, r.data(), nullptr, nullptr, db1.data());
  } else {
    ops.conv2d_backward(g, nullptr, w.data(), r.data(), dx1.data(), nullptr, nullptr);
    ops.conv2d_backward(g, x.data(), nullptr, r.data(), nullptr, dw1.data(), nullptr);
    ops.conv2d_backward(g, nullptr, nullptr, r.data(), nullptr, nullptr, db1.data());
  }
  CHECK(dx1 == dx);
  CHECK(dw1 == dw);
  CHECK(db1 == db);
}

// Distinct values (spaced 1e-4, shuffled, |v| <= ~1), so that no max-pool window has a tie
// closer than the finite-difference step.
Vec distinct_values(std::size_t n, SplitMix64& rng) {
  Vec v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = (static_cast<double>(i) - n / 2.0) * 1e-4;
  for (std::size_t i = n; i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
  return v;
}

void check_pool_gradient(const PoolGeometry& g, std::uint64_t seed, std::size_t max_checked) {
  INFO("MaxPool2d B" << g.batch << " " << g.channels << "x" << g.in_h << "x" << g.in_w << " k"
                     << g.kernel);
  CpuOps<double> ops;
  SplitMix64 rng(seed);
  Vec x = distinct_values(g.in_count(), rng), r = random_vector(g.out_count(), rng);
  Vec y(g.out_count());
  std::vector<std::int32_t> argmax(g.out_count());
  auto loss = [&](const Vec& xx) {
    ops.maxpool2d_forward(g, xx.data(), y.data(), argmax.data());
    return dot(r, y);
  };
  loss(x);
  Vec dx(x.size(), kNaN);
  ops.maxpool2d_backward(g, r.data(), argmax.data(), dx.data());
  expect_gradient("dx", loss, x, dx, max_checked, seed + 1);
}

void check_linear_gradients(const LinearGeometry& g, std::uint64_t seed, std::size_t max_checked) {
  INFO("Linear B" << g.batch << " " << g.in_features << " -> " << g.out_features);
  CpuOps<double> ops;
  SplitMix64 rng(seed);
  const std::size_t nx = static_cast<std::size_t>(g.batch) * g.in_features;
  const std::size_t ny = static_cast<std::size_t>(g.batch) * g.out_features;
  Vec x = random_vector(nx, rng), r = random_vector(ny, rng), b = random_vector(g.out_features, rng);
  Vec w = random_vector(static_cast<std::size_t>(g.out_features) * g.in_features, rng);
  Vec y(ny);
  auto loss = [&](const Vec& xx, const Vec& ww, const Vec& bb) {
    ops.linear_forward(g, xx.data(), ww.data(), bb.data(), y.data());
    return dot(r, y);
  };
  Vec dx(x.size(), kNaN), dw(w.size(), kNaN), db(b.size(), kNaN);
  ops.linear_backward(g, x.data(), w.data(), r.data(), dx.data(), dw.data(), db.data());
  expect_gradient("dx", [&](const Vec& p) { return loss(p, w, b); }, x, dx, max_checked, seed + 1);
  expect_gradient("dw", [&](const Vec& p) { return loss(x, p, b); }, w, dw, max_checked, seed + 2);
  expect_gradient("db", [&](const Vec& p) { return loss(x, w, p); }, b, db, max_checked, seed + 3);
}

}  // namespace

TEST_CASE("Conv2d backward matches finite differences on random shapes", "[ops]") {
  SplitMix64 rng(101);
  for (int i = 0; i < 12; ++i) check_conv_gradients(random_conv_geometry(rng, false), 1000 + i, 300);
}

TEST_CASE("ConvTranspose2d backward matches finite differences on random shapes", "[ops]") {
  SplitMix64 rng(202);
  for (int i = 0; i < 12; ++i) check_conv_gradients(random_conv_geometry(rng, true), 2000 + i, 300);
  // stride 2 with output_padding 1 and stride 1, kernels 3 and 4, with and without padding
  check_conv_gradients(conv_geometry(2, 3, 4, 5, 2, 3, 2, 0, 1, true), 2100, 300);
  check_conv_gradients(conv_geometry(2, 3, 4, 5, 2, 4, 2, 0, 1, true), 2101, 300);
  check_conv_gradients(conv_geometry(2, 2, 4, 3, 3, 3, 1, 0, 0, true), 2102, 300);
  check_conv_gradients(conv_geometry(1, 2, 4, 3, 3, 4, 1, 1, 0, true), 2103, 300);
  check_conv_gradients(conv_geometry(2, 2, 3, 4, 2, 4, 2, 1, 1, true), 2104, 300);
  check_conv_gradients(conv_geometry(1, 2, 3, 3, 2, 3, 3, 1, 2, true), 2105, 300);
}

TEST_CASE("Convolution backward matches finite differences at the paper's shapes", "[ops]") {
  check_conv_gradients(paper_conv1(2), 3001, 400);
  check_conv_gradients(paper_conv2(2), 3002, 400);
  check_conv_gradients(paper_deconv1(2), 3003, 400);
  check_conv_gradients(paper_deconv2(2), 3004, 400);
}

TEST_CASE("MaxPool2d backward matches finite differences", "[ops]") {
  check_pool_gradient(pool_geometry(2, 16, 26, 26), 4001, 600);  // the paper's first pool
  check_pool_gradient(pool_geometry(2, 32, 11, 11), 4002, 600);  // odd size, floor
  check_pool_gradient(pool_geometry(3, 2, 7, 6), 4003, 1000);
  check_pool_gradient(pool_geometry(1, 3, 8, 7, 3), 4004, 1000);
}

TEST_CASE("Linear backward matches finite differences", "[ops]") {
  check_linear_gradients(linear_geometry(2, 800, 256), 5001, 400);  // encoder.7
  check_linear_gradients(linear_geometry(2, 256, 800), 5002, 400);  // decoder.0
  check_linear_gradients(linear_geometry(2, 256, 10), 5003, 400);   // clasiffier.0
  check_linear_gradients(linear_geometry(3, 7, 5), 5004, 400);
  check_linear_gradients(linear_geometry(1, 1, 1), 5005, 400);
}

TEST_CASE("Activation and dropout backward match finite differences", "[ops]") {
  CpuOps<double> ops;
  SplitMix64 rng(6001);
  const std::size_t n = 500;
  Vec x = random_vector(n, rng, -4.0, 4.0), r = random_vector(n, rng), y(n), dx(n, kNaN);
  for (double& v : x)
    if (std::fabs(v) < 1e-3) v = 0.5;  // keep ReLU away from its kink

  SECTION("relu") {
    auto loss = [&](const Vec& p) { ops.relu_forward(n, p.data(), y.data()); return dot(r, y); };
    loss(x);
    ops.relu_backward(n, y.data(), r.data(), dx.data());
    expect_gradient("relu dx", loss, x, dx, n, 1);
  }
  SECTION("sigmoid") {
    auto loss = [&](const Vec& p) { ops.sigmoid_forward(n, p.data(), y.data()); return dot(r, y); };
    loss(x);
    ops.sigmoid_backward(n, y.data(), r.data(), dx.data());
    expect_gradient("sigmoid dx", loss, x, dx, n, 1);
  }
  SECTION("dropout p = 0.3") {
    auto loss = [&](const Vec& p) {
      ops.dropout_forward(n, 0.3f, 77, 5, 2, p.data(), y.data());
      return dot(r, y);
    };
    ops.dropout_backward(n, 0.3f, 77, 5, 2, r.data(), dx.data());
    expect_gradient("dropout dx", loss, x, dx, n, 1);
  }
  SECTION("in place (y == x, dx == dy) gives the same values") {
    Vec a = x, da = r, expected_y(n), expected_dx(n);
    ops.sigmoid_forward(n, x.data(), expected_y.data());
    ops.sigmoid_backward(n, expected_y.data(), r.data(), expected_dx.data());
    ops.sigmoid_forward(n, a.data(), a.data());
    ops.sigmoid_backward(n, a.data(), da.data(), da.data());
    CHECK(a == expected_y);
    CHECK(da == expected_dx);
  }
}

TEST_CASE("Loss gradients match finite differences", "[ops]") {
  CpuOps<double> ops;
  SplitMix64 rng(7001);
  const std::size_t n = 300;
  Vec pred = random_vector(n, rng), target = random_vector(n, rng), dpred(n, kNaN);
  for (std::size_t i = 0; i < n; ++i)
    if (std::fabs(pred[i] - target[i]) < 1e-3) pred[i] = target[i] + 0.01;  // no L1 kinks
  double loss_value = 0.0, loss_sum = 0.0;

  SECTION("l1") {
    auto loss = [&](const Vec& p) {
      ops.l1_loss(n, p.data(), target.data(), nullptr, &loss_value, nullptr);
      return loss_value;
    };
    ops.l1_loss(n, pred.data(), target.data(), dpred.data(), &loss_value, &loss_sum);
    CHECK(loss_sum == loss_value);
    expect_gradient("l1 dpred", loss, pred, dpred, n, 1);
  }
  SECTION("mse") {
    auto loss = [&](const Vec& p) {
      ops.mse_loss(n, p.data(), target.data(), nullptr, &loss_value, nullptr);
      return loss_value;
    };
    ops.mse_loss(n, pred.data(), target.data(), dpred.data(), &loss_value, &loss_sum);
    CHECK(loss_sum == loss_value);
    expect_gradient("mse dpred", loss, pred, dpred, n, 1);
  }
  SECTION("softmax cross-entropy") {
    const int batch = 7, classes = 10;
    Vec scores = random_vector(batch * classes, rng, -3.0, 3.0), dscores(scores.size(), kNaN);
    std::vector<std::uint8_t> labels(batch);
    for (auto& l : labels) l = static_cast<std::uint8_t>(rng.below(classes));
    auto loss = [&](const Vec& s) {
      ops.softmax_cross_entropy(batch, classes, s.data(), labels.data(), nullptr, &loss_value,
                                nullptr);
      return loss_value;
    };
    ops.softmax_cross_entropy(batch, classes, scores.data(), labels.data(), dscores.data(),
                              &loss_value, &loss_sum);
    CHECK(loss_sum == loss_value);
    expect_gradient("softmax CE dscores", loss, scores, dscores, scores.size(), 1);
  }
}

}  // namespace fmnist::testing
