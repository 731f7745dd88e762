// Every CudaOps op, forward and backward, against CpuOps<float> and CpuOps<double>: at the paper's
// shapes (batch 100) and at seeded random shapes. Inputs are identical float values on every
// backend; output buffers are poisoned (NaN, or -12345 for argmax) before each op so an element an
// op fails to write shows. Tolerances: gpu_test_support.h. Tests tagged [sanitize] are small and
// also run under compute-sanitizer (tools/gpu_check.sh).
#include <cmath>
#include <string>
#include <vector>

#include "gpu_test_support.h"
#include "host/reference/cpu_ops.h"
#include "models/executor.h"
#include "tests/op_shapes.h"

using namespace fmnist;
using namespace fmnist::gputest;
using namespace fmnist::testing;  // conv_geometry, paper_conv1 ..., describe

namespace {

// got (GPU) against the float and the double CPU reference, under one tolerance.
void compare_with_cpu(const std::string& what, const std::vector<float>& got,
                      const std::vector<float>& ref32, const std::vector<double>& ref64,
                      Tolerance tol) {
  compare(what, got, ref32, tol);
  compare(what + " (vs double)", got, ref64, tol);
}

// Forward (with and without bias) and backward (dx, dw, db) of one convolution on every backend.
// G: the backend under test (the shared GPU backend, or one with another option).
void check_conv(const ConvGeometry& g, std::uint64_t seed, Ops<float>& G = gpu()) {
  const std::string name = describe(g);
  INFO(name);
  CpuOps<float> cpu;
  CpuOps<double> cpu64;
  const ConvCase c = random_conv_case(g, seed);
  const std::vector<float>&x = c.x, &w = c.w, &b = c.b, &dy = c.dy;
  const auto x64 = to_double(x), w64 = to_double(w), b64 = to_double(b), dy64 = to_double(dy);

  auto forward = [&](auto& ops, const auto* xp, const auto* wp, const auto* bp, auto* yp) {
    if (g.transposed)
      ops.conv_transpose2d_forward(g, xp, wp, bp, yp);
    else
      ops.conv2d_forward(g, xp, wp, bp, yp);
  };
  auto backward = [&](auto& ops, const auto* xp, const auto* wp, const auto* dyp, auto* dxp,
                      auto* dwp, auto* dbp) {
    if (g.transposed)
      ops.conv_transpose2d_backward(g, xp, wp, dyp, dxp, dwp, dbp);
    else
      ops.conv2d_backward(g, xp, wp, dyp, dxp, dwp, dbp);
  };

  // CPU references
  auto y32 = poisoned<float>(g.out_count());
  auto y64 = poisoned<double>(g.out_count());
  auto y32_nobias = poisoned<float>(g.out_count());
  forward(cpu, x.data(), w.data(), b.data(), y32.data());
  forward(cpu64, x64.data(), w64.data(), b64.data(), y64.data());
  forward(cpu, x.data(), w.data(), static_cast<const float*>(nullptr), y32_nobias.data());
  auto dx32 = poisoned<float>(g.in_count()), dw32 = poisoned<float>(g.weight_count()),
       db32 = poisoned<float>(static_cast<std::size_t>(g.out_channels));
  auto dx64 = poisoned<double>(g.in_count()), dw64 = poisoned<double>(g.weight_count()),
       db64 = poisoned<double>(static_cast<std::size_t>(g.out_channels));
  backward(cpu, x.data(), w.data(), dy.data(), dx32.data(), dw32.data(), db32.data());
  backward(cpu64, x64.data(), w64.data(), dy64.data(), dx64.data(), dw64.data(), db64.data());

  // GPU
  DeviceBuffer<float> gx(G, x), gw(G, w), gb(G, b), gdy(G, dy);
  DeviceBuffer<float> gy(G, g.out_count()), gdx(G, g.in_count()), gdw(G, g.weight_count()),
      gdb(G, static_cast<std::size_t>(g.out_channels));
  gy.poison();
  forward(G, gx.get(), gw.get(), gb.get(), gy.get());
  const auto y = gy.download();
  gy.poison();
  forward(G, gx.get(), gw.get(), static_cast<const float*>(nullptr), gy.get());
  const auto y_nobias = gy.download();
  gdx.poison();
  gdw.poison();
  gdb.poison();
  backward(G, gx.get(), gw.get(), gdy.get(), gdx.get(), gdw.get(), gdb.get());
  const auto dx = gdx.download(), dw = gdw.download(), db = gdb.download();

  compare_with_cpu(name + " y", y, y32, y64, kForward);
  compare(name + " y without bias", y_nobias, y32_nobias, kForward);
  compare_with_cpu(name + " dx", dx, dx32, dx64, kGradient);
  compare_with_cpu(name + " dw", dw, dw32, dw64, kGradient);
  compare_with_cpu(name + " db", db, db32, db64, kGradient);

  // The executor's pattern for a first layer: weight gradients only (dx and db null).
  gdw.poison();
  backward(G, gx.get(), gw.get(), gdy.get(), static_cast<float*>(nullptr), gdw.get(),
           static_cast<float*>(nullptr));
  compare(name + " dw alone", gdw.download(), dw32, kGradient);
  // Once more: every reduction is deterministic, and a launch whose last block adds the partials
  // leaves its counters at 0 for the next one, so the results repeat bit for bit.
  gdx.poison();
  gdw.poison();
  gdb.poison();
  backward(G, gx.get(), gw.get(), gdy.get(), gdx.get(), gdw.get(), gdb.get());
  compare_exact(name + " dx, again", gdx.download(), dx);
  compare_exact(name + " dw, again", gdw.download(), dw);
  compare_exact(name + " db, again", gdb.download(), db);
}

// Max pooling: y and argmax bit for bit (comparisons only), dx bit for bit (one sum per window
// in the same order). x has ties (zeros and repeated values) to check the first-maximum rule.
void check_pool(const PoolGeometry& g, std::uint64_t seed) {
  const std::string name = "MaxPool2d(B" + std::to_string(g.batch) + " " +
                           std::to_string(g.channels) + "x" + std::to_string(g.in_h) + "x" +
                           std::to_string(g.in_w) + " k" + std::to_string(g.kernel) + " s" +
                           std::to_string(g.stride) + ")";
  INFO(name);
  Ops<float>& G = gpu();
  CpuOps<float> cpu;
  auto x = uniform(g.in_count(), -1.0, 1.0, seed);
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (i % 5 == 0) x[i] = 0.0f;                      // ReLU-like zeros: ties
    if (i % 7 == 3 && i > 0) x[i] = x[i - 1];         // repeated neighbours: ties
  }
  const auto dy = uniform(g.out_count(), -1.0, 1.0, seed + 1);
  auto y32 = poisoned<float>(g.out_count());
  auto a32 = poisoned<std::int32_t>(g.out_count());
  auto dx32 = poisoned<float>(g.in_count());
  cpu.maxpool2d_forward(g, x.data(), y32.data(), a32.data());
  cpu.maxpool2d_backward(g, dy.data(), a32.data(), dx32.data());

  DeviceBuffer<float> gx(G, x), gy(G, g.out_count()), gdy(G, dy), gdx(G, g.in_count());
  DeviceBuffer<std::int32_t> ga(G, g.out_count());
  gy.poison();
  ga.poison();
  gdx.poison();
  G.maxpool2d_forward(g, gx.get(), gy.get(), ga.get());
  G.maxpool2d_backward(g, gdy.get(), ga.get(), gdx.get());
  compare_exact(name + " y", gy.download(), y32);
  compare_exact(name + " argmax", ga.download(), a32);
  compare_exact(name + " dx", gdx.download(), dx32);
}

void check_linear(const LinearGeometry& g, std::uint64_t seed, Ops<float>& G = gpu()) {
  const LinearCase c = random_linear_case(g, seed);
  const std::string& name = c.name;
  const std::size_t nx = c.nx, ny = c.ny, nw = c.nw;
  const std::vector<float>&x = c.x, &w = c.w, &b = c.b, &dy = c.dy;
  INFO(name);
  CpuOps<float> cpu;
  CpuOps<double> cpu64;
  const auto x64 = to_double(x), w64 = to_double(w), b64 = to_double(b), dy64 = to_double(dy);
  auto y32 = poisoned<float>(ny), dx32 = poisoned<float>(nx), dw32 = poisoned<float>(nw),
       db32 = poisoned<float>(static_cast<std::size_t>(g.out_features));
  auto y64 = poisoned<double>(ny), dx64 = poisoned<double>(nx), dw64 = poisoned<double>(nw),
       db64 = poisoned<double>(static_cast<std::size_t>(g.out_features));
  cpu.linear_forward(g, x.data(), w.data(), b.data(), y32.data());
  cpu64.linear_forward(g, x64.data(), w64.data(), b64.data(), y64.data());
  cpu.linear_backward(g, x.data(), w.data(), dy.data(), dx32.data(), dw32.data(), db32.data());
  cpu64.linear_backward(g, x64.data(), w64.data(), dy64.data(), dx64.data(), dw64.data(),
                        db64.data());

  DeviceBuffer<float> gx(G, x), gw(G, w), gb(G, b), gdy(G, dy), gy(G, ny), gdx(G, nx),
      gdw(G, nw), gdb(G, static_cast<std::size_t>(g.out_features));
  gy.poison();
  gdx.poison();
  gdw.poison();
  gdb.poison();
  G.linear_forward(g, gx.get(), gw.get(), gb.get(), gy.get());
  G.linear_backward(g, gx.get(), gw.get(), gdy.get(), gdx.get(), gdw.get(), gdb.get());
  const auto y = gy.download(), dx = gdx.download(), dw = gdw.download(), db = gdb.download();
  compare_with_cpu(name + " y", y, y32, y64, kForward);
  compare_with_cpu(name + " dx", dx, dx32, dx64, kGradient);
  compare_with_cpu(name + " dw", dw, dw32, dw64, kGradient);
  compare_with_cpu(name + " db", db, db32, db64, kGradient);
}

void check_elementwise(std::size_t n, std::uint64_t seed) {
  const std::string suffix = " (n " + std::to_string(n) + ")";
  Ops<float>& G = gpu();
  CpuOps<float> cpu;
  const auto pixels = random_pixels(n, seed);
  auto x = uniform(n, -6.0, 6.0, seed + 1);
  for (std::size_t i = 0; i < n; i += 9) x[i] = 0.0f;  // ReLU's boundary
  const auto dy = uniform(n, -1.0, 1.0, seed + 2);

  DeviceBuffer<std::uint8_t> gp(G, pixels);
  DeviceBuffer<float> gx(G, x), gdy(G, dy), gy(G, n), gdx(G, n);
  std::vector<float> ref = poisoned<float>(n), ref2 = poisoned<float>(n);

  cpu.images_to_float(n, pixels.data(), ref.data());
  gy.poison();
  G.images_to_float(n, gp.get(), gy.get());
  compare_exact("images_to_float" + suffix, gy.download(), ref);

  cpu.relu_forward(n, x.data(), ref.data());
  gy.poison();
  G.relu_forward(n, gx.get(), gy.get());
  compare_exact("relu_forward" + suffix, gy.download(), ref);
  cpu.relu_backward(n, ref.data(), dy.data(), ref2.data());  // y = relu(x)
  gdx.poison();
  G.relu_backward(n, gy.get(), gdy.get(), gdx.get());
  compare_exact("relu_backward" + suffix, gdx.download(), ref2);

  cpu.sigmoid_forward(n, x.data(), ref.data());
  gy.poison();
  G.sigmoid_forward(n, gx.get(), gy.get());
  const auto sig = gy.download();
  compare("sigmoid_forward" + suffix, sig, ref, kForward);  // exp() differs by an ulp or two
  // Backward from identical y (the CPU's), so only the backward itself is compared.
  gy.upload(ref);
  cpu.sigmoid_backward(n, ref.data(), dy.data(), ref2.data());
  gdx.poison();
  G.sigmoid_backward(n, gy.get(), gdy.get(), gdx.get());
  compare("sigmoid_backward" + suffix, gdx.download(), ref2, kForward);

  // In place (y aliases x; dx aliases dy), as the interface allows.
  cpu.relu_forward(n, x.data(), ref.data());
  DeviceBuffer<float> inplace(G, x);
  G.relu_forward(n, inplace.get(), inplace.get());
  compare_exact("relu_forward in place" + suffix, inplace.download(), ref);
  cpu.sigmoid_backward(n, ref.data(), dy.data(), ref2.data());
  DeviceBuffer<float> inplace_dy(G, dy);
  gy.upload(ref);
  G.sigmoid_backward(n, gy.get(), inplace_dy.get(), inplace_dy.get());
  compare("sigmoid_backward in place" + suffix, inplace_dy.download(), ref2, kForward);
}

}  // namespace

// ---- the paper's shapes (batch 100) ------------------------------------------------------------------

TEST_CASE("GPU Conv2d at the paper's shapes", "[gpu][conv]") {
  check_conv(paper_conv1(100), 11);  // encoder.0
  check_conv(paper_conv2(100), 12);  // encoder.3
}

TEST_CASE("GPU ConvTranspose2d at the paper's shapes", "[gpu][conv]") {
  check_conv(paper_deconv1(100), 13);  // decoder.3 -> 16x13x13
  check_conv(paper_deconv2(100), 14);  // decoder.5 -> 1x28x28
}

TEST_CASE("GPU MaxPool2d at the paper's shapes", "[gpu][pool]") {
  check_pool(pool_geometry(100, 16, 26, 26), 21);
  check_pool(pool_geometry(100, 32, 11, 11), 22);  // 11: the floor mode drops a row and a column
}

TEST_CASE("GPU Linear at the paper's shapes", "[gpu][linear]") {
  check_linear({100, 800, 256}, 31);  // encoder.7
  check_linear({100, 256, 800}, 32);  // decoder.0
  check_linear({100, 256, 10}, 33);   // clasiffier.0
  check_linear({100, 64, 10}, 34);    // C(64)'s head
}

TEST_CASE("GPU Linear at the paper's shapes with fmnist's split-K forward and input gradient",
          "[gpu][linear][linear-split]") {
  check_linear({100, 800, 256}, 31, direct_linear_gpu());
  check_linear({100, 256, 800}, 32, direct_linear_gpu());
  check_linear({100, 256, 10}, 33, direct_linear_gpu());
  check_linear({100, 64, 10}, 34, direct_linear_gpu());
  check_linear({1000, 800, 256}, 35, direct_linear_gpu());  // a validation batch: 128 tiles, one slice (no partials)
}

TEST_CASE("GPU element-wise ops at the paper's sizes", "[gpu][elementwise]") {
  check_elementwise(100 * 784, 41);             // the input batch
  check_elementwise(100 * 16 * 26 * 26, 42);    // conv1's output
}

// ---- random shapes (small: also run under compute-sanitizer) --------------------------------------

TEST_CASE("GPU Conv2d at random shapes", "[gpu][conv][sanitize]") {
  SplitMix64 rng(1001);
  for (int trial = 0; trial < 12; ++trial) {
    const int kernel = random_int(rng, 1, 5);
    const int stride = random_int(rng, 1, 3);
    const int padding = random_int(rng, 0, std::min(2, kernel - 1));
    const int h = random_int(rng, std::max(1, kernel - 2 * padding), 20);
    const int w = random_int(rng, std::max(1, kernel - 2 * padding), 20);
    check_conv(conv_geometry(random_int(rng, 1, 6), random_int(rng, 1, 8), h, w,
                             random_int(rng, 1, 8), kernel, stride, padding, 0, false),
               2000 + trial);
  }
}

TEST_CASE("GPU ConvTranspose2d at random shapes: stride 1/2, output_padding 0/1, kernel 3/4",
          "[gpu][conv][sanitize]") {
  SplitMix64 rng(1002);
  int trial = 0;
  for (int stride = 1; stride <= 2; ++stride)
    for (int output_padding = 0; output_padding < stride; ++output_padding)
      for (int kernel = 3; kernel <= 4; ++kernel)
        for (int padding = 0; padding <= 1; ++padding) {
          const int h = random_int(rng, 1, 12), w = random_int(rng, 1, 12);
          const ConvGeometry g =
              conv_geometry(random_int(rng, 1, 6), random_int(rng, 1, 8), h, w,
                            random_int(rng, 1, 8), kernel, stride, padding, output_padding, true);
          if (g.out_h() <= 0 || g.out_w() <= 0) continue;
          check_conv(g, 3000 + trial++);
        }
}

namespace {

// check_conv on `ops` at 16 random geometries (kernels 1-5, the direct kernels' range; Conv2d and
// ConvTranspose2d in turn, batches up to 40), drawn from rng_seed, data from data_seed on.
void check_random_direct_convs(std::uint64_t rng_seed, std::uint64_t data_seed, Ops<float>& ops) {
  SplitMix64 rng(rng_seed);
  for (int trial = 0; trial < 16; ++trial) {
    const int kernel = random_int(rng, 1, 5);
    const int stride = random_int(rng, 1, 3);
    const int padding = random_int(rng, 0, std::min(2, kernel - 1));
    const bool transposed = trial % 2 == 1;
    const int output_padding = transposed && stride > 1 ? random_int(rng, 0, stride - 1) : 0;
    const int h = random_int(rng, std::max(1, kernel - 2 * padding), 16);
    const int w = random_int(rng, std::max(1, kernel - 2 * padding), 16);
    const ConvGeometry g = conv_geometry(random_int(rng, 1, 40), random_int(rng, 1, 8), h, w,
                                         random_int(rng, 1, 8), kernel, stride, padding,
                                         output_padding, transposed);
    if (g.out_h() <= 0 || g.out_w() <= 0) continue;
    check_conv(g, data_seed + trial, ops);
  }
}

// check_conv on `ops` at the paper's four convolutions, batch 100, then `partial` (a partial last
// batch's plan), with data seeds from `seed` on.
void check_paper_convs(std::uint64_t seed, Ops<float>& ops, const ConvGeometry& partial) {
  std::vector<ConvGeometry> shapes = paper_convs(100);
  shapes.push_back(partial);
  for (std::size_t i = 0; i < shapes.size(); ++i) check_conv(shapes[i], seed + i, ops);
}

}  // namespace

// fmnist's direct backward-filter (cuda/weight_grad.h) in place of cuDNN's: the same checks, the
// same tolerances; the paper's shapes split the images into groups (two passes), random ones also
// take the single-group path.
TEST_CASE("GPU convolutions with fmnist's direct backward-filter at the paper's shapes", "[gpu][conv][wgrad]") {
  check_paper_convs(15, direct_wgrad_gpu(), paper_conv1(50));
}

TEST_CASE("GPU convolutions with fmnist's direct backward-filter at random shapes",
          "[gpu][conv][wgrad][sanitize]") {
  check_random_direct_convs(1003, 4000, direct_wgrad_gpu());
}

// All direct kernels: forward and backward-data (each layer's forward with its bias and its input
// gradient) and backward-filter in place of cuDNN's; the same checks and tolerances.
TEST_CASE("GPU convolutions with fmnist's direct kernels at the paper's shapes", "[gpu][conv][dgrad]") {
  check_paper_convs(25, direct_conv_gpu(), paper_deconv1(50));
}

TEST_CASE("GPU convolutions with fmnist's direct kernels at random shapes",
          "[gpu][conv][dgrad][sanitize]") {
  check_random_direct_convs(1005, 5000, direct_conv_gpu());
}

namespace {

// The fused *_forward_relu op against the layer's forward then relu_forward on the same backend:
// y and y_relu bitwise equal (the same float operations; the forward itself is checked against
// the CPU above, the fused path in whole training steps in test_gpu_training.cpp). forward(ops,
// y) runs the layer; fused(ops, y, y_relu) the fused op. Outputs poisoned first.
template <class Forward, class Fused>
void check_forward_relu(const std::string& name, Ops<float>& G, std::size_t n, Forward forward, Fused fused,
                        bool sigmoid = false) {
  INFO(name);
  DeviceBuffer<float> y1(G, n), r1(G, n), y2(G, n), r2(G, n);
  for (auto* b : {&y1, &r1, &y2, &r2}) b->poison();
  forward(G, y1.get());
  if (sigmoid)
    G.sigmoid_forward(n, y1.get(), r1.get());
  else
    G.relu_forward(n, y1.get(), r1.get());
  fused(G, y2.get(), r2.get());
  compare_exact(name + ": y, fused vs separate", y2.download(), y1.download());
  compare_exact(name + ": act(y), fused vs separate", r2.download(), r1.download());
}

void check_conv_relu(const ConvGeometry& g, std::uint64_t seed, Ops<float>& G) {
  const ConvCase c = random_conv_case(g, seed);
  DeviceBuffer<float> x(G, c.x), w(G, c.w), b(G, c.b);
  const bool t = g.transposed;
  check_forward_relu(describe(g) + " + ReLU", G, g.out_count(),
      [&](Ops<float>& ops, float* y) {
        if (t) ops.conv_transpose2d_forward(g, x.get(), w.get(), b.get(), y);
        else ops.conv2d_forward(g, x.get(), w.get(), b.get(), y);
      },
      [&](Ops<float>& ops, float* y, float* r) {
        if (t) ops.conv_transpose2d_forward_relu(g, x.get(), w.get(), b.get(), y, r);
        else ops.conv2d_forward_relu(g, x.get(), w.get(), b.get(), y, r);
      });
}

void check_linear_relu(const LinearGeometry& g, std::uint64_t seed, Ops<float>& G) {
  const LinearCase c = random_linear_case(g, seed);
  DeviceBuffer<float> x(G, c.x), w(G, c.w), b(G, c.b);
  check_forward_relu(c.name + " + ReLU", G, c.ny,
      [&](Ops<float>& ops, float* y) { ops.linear_forward(g, x.get(), w.get(), b.get(), y); },
      [&](Ops<float>& ops, float* y, float* r) { ops.linear_forward_relu(g, x.get(), w.get(), b.get(), y, r); });
}

// The classifier's head: a Linear layer and its Sigmoid (linear_forward_sigmoid).
void check_linear_sigmoid(const LinearGeometry& g, std::uint64_t seed, Ops<float>& G) {
  const LinearCase c = random_linear_case(g, seed);
  DeviceBuffer<float> x(G, c.x), w(G, c.w), b(G, c.b);
  check_forward_relu(c.name + " + Sigmoid", G, c.ny,
      [&](Ops<float>& ops, float* y) { ops.linear_forward(g, x.get(), w.get(), b.get(), y); },
      [&](Ops<float>& ops, float* y, float* r) { ops.linear_forward_sigmoid(g, x.get(), w.get(), b.get(), y, r); },
      /*sigmoid=*/true);
}

// The fused conv2d_forward_relu_maxpool op against conv2d_forward_relu then maxpool2d_forward on
// the same backend: y, y_relu, the pooled values and the argmax bitwise equal. Pooled with 2x2
// windows (the paper's) and, on conv2's output, 3x3 ones (both leave rows and columns outside);
// with a bias and without.
void check_conv_relu_pool(const ConvGeometry& g, int kernel, std::uint64_t seed, Ops<float>& G) {
  const ConvCase c = random_conv_case(g, seed);
  const PoolGeometry p = pool_geometry(g.batch, g.out_channels, g.out_h(), g.out_w(), kernel);
  DeviceBuffer<float> x(G, c.x), w(G, c.w), b(G, c.b);
  for (const float* bias : {static_cast<const float*>(b.get()), static_cast<const float*>(nullptr)}) {
    INFO(describe(g) + " + ReLU + MaxPool2d k" + std::to_string(kernel) + (bias ? "" : ", no bias"));
    DeviceBuffer<float> y1(G, g.out_count()), r1(G, g.out_count()), p1(G, p.out_count());
    DeviceBuffer<float> y2(G, g.out_count()), r2(G, g.out_count()), p2(G, p.out_count());
    DeviceBuffer<std::int32_t> a1(G, p.out_count()), a2(G, p.out_count());
    for (auto* d : {&y1, &r1, &p1, &y2, &r2, &p2}) d->poison();
    a1.poison();
    a2.poison();
    G.conv2d_forward_relu(g, x.get(), w.get(), bias, y1.get(), r1.get());
    G.maxpool2d_forward(p, r1.get(), p1.get(), a1.get());
    G.conv2d_forward_relu_maxpool(g, p, x.get(), w.get(), bias, y2.get(), r2.get(), p2.get(), a2.get());
    compare_exact("y, fused vs separate", y2.download(), y1.download());
    compare_exact("ReLU(y), fused vs separate", r2.download(), r1.download());
    compare_exact("pooled, fused vs separate", p2.download(), p1.download());
    compare_exact("argmax, fused vs separate", a2.download(), a1.download());
  }
}

void check_conv_relu_pool_layers(Ops<float>& G) {
  int seed = 70;
  for (const ConvGeometry& g : {paper_conv1(100), paper_conv2(100), paper_conv1(3), paper_conv2(7)})
    check_conv_relu_pool(g, 2, seed++, G);
  check_conv_relu_pool(paper_conv2(5), 3, seed++, G);
  // A pool that is not of the convolution's output is refused, naming the op.
  const ConvGeometry g = paper_conv2(2);
  const PoolGeometry wrong = pool_geometry(2, 32, 13, 13);
  DeviceBuffer<float> x(G, g.in_count()), w(G, g.weight_count()), y(G, g.out_count()), r(G, g.out_count()),
      pooled(G, 2 * 32 * 6 * 6);
  DeviceBuffer<std::int32_t> argmax(G, 2 * 32 * 6 * 6);
  CHECK_THROWS_WITH(G.conv2d_forward_relu_maxpool(g, wrong, x.get(), w.get(), nullptr, y.get(), r.get(),
                                                  pooled.get(), argmax.get()),
                    Catch::Contains("conv2d_forward_relu_maxpool") && Catch::Contains("not the convolution's output"));
}

// x >= 0, as the output of a ReLU is (about half of it 0).
std::vector<float> relu_output(std::vector<float> x) {
  for (float& v : x) v = v > 0.0f ? v : 0.0f;
  return x;
}

// The fused *_backward_relu op against the layer's backward then relu_backward(x, dx): every output
// bitwise equal. backward(ops, dx, dw, db) runs the layer; fused(ops, dx, dw, db, dx_relu) the
// fused op; x (n_in elements on the device) is the ReLU output the layer reads.
template <class Backward, class Fused>
void check_backward_relu(const std::string& name, Ops<float>& G, const float* x, std::size_t n_in,
                         std::size_t n_w, std::size_t n_b, Backward backward, Fused fused) {
  INFO(name);
  DeviceBuffer<float> dx1(G, n_in), r1(G, n_in), dw1(G, n_w), db1(G, n_b);
  DeviceBuffer<float> dx2(G, n_in), r2(G, n_in), dw2(G, n_w), db2(G, n_b);
  for (auto* b : {&dx1, &r1, &dw1, &db1, &dx2, &r2, &dw2, &db2}) b->poison();
  backward(G, dx1.get(), dw1.get(), db1.get());
  G.relu_backward(n_in, x, dx1.get(), r1.get());
  fused(G, dx2.get(), dw2.get(), db2.get(), r2.get());
  compare_exact(name + ": dx, fused vs separate", dx2.download(), dx1.download());
  compare_exact(name + ": ReLU's dx, fused vs separate", r2.download(), r1.download());
  if (n_w > 0) compare_exact(name + ": dw, fused vs separate", dw2.download(), dw1.download());
  if (n_b > 0) compare_exact(name + ": db, fused vs separate", db2.download(), db1.download());
}

void check_conv_backward_relu(const ConvGeometry& g, std::uint64_t seed, Ops<float>& G) {
  const ConvCase c = random_conv_case(g, seed);
  DeviceBuffer<float> x(G, relu_output(c.x)), w(G, c.w), dy(G, c.dy);
  const bool t = g.transposed;
  check_backward_relu(describe(g) + " after a ReLU", G, x.get(), g.in_count(), g.weight_count(),
      static_cast<std::size_t>(g.out_channels),
      [&](Ops<float>& ops, float* dx, float* dw, float* db) {
        if (t) ops.conv_transpose2d_backward(g, x.get(), w.get(), dy.get(), dx, dw, db);
        else ops.conv2d_backward(g, x.get(), w.get(), dy.get(), dx, dw, db);
      },
      [&](Ops<float>& ops, float* dx, float* dw, float* db, float* r) {
        if (t) ops.conv_transpose2d_backward_relu(g, x.get(), w.get(), dy.get(), dx, dw, db, r);
        else ops.conv2d_backward_relu(g, x.get(), w.get(), dy.get(), dx, dw, db, r);
      });
}

void check_pool_backward_relu(const PoolGeometry& g, std::uint64_t seed, Ops<float>& G) {
  DeviceBuffer<float> x(G, relu_output(uniform(g.in_count(), -1.0, 1.0, seed))), y(G, g.out_count()),
      dy(G, uniform(g.out_count(), -1.0, 1.0, seed + 1));
  DeviceBuffer<std::int32_t> argmax(G, g.out_count());
  G.maxpool2d_forward(g, x.get(), y.get(), argmax.get());
  check_backward_relu("MaxPool2d B" + std::to_string(g.batch) + " " + std::to_string(g.channels) + "x" +
                          std::to_string(g.in_h) + "x" + std::to_string(g.in_w) + " after a ReLU",
                      G, x.get(), g.in_count(), 0, 0,
                      [&](Ops<float>& ops, float* dx, float*, float*) {
                        ops.maxpool2d_backward(g, dy.get(), argmax.get(), dx);
                      },
                      [&](Ops<float>& ops, float* dx, float*, float*, float* r) {
                        ops.maxpool2d_backward_relu(g, x.get(), dy.get(), argmax.get(), dx, r);
                      });
}

// relu_linear_backward (the ReLU after a Linear layer, then the layer) against relu_backward then
// linear_backward on the same backend: dy, dx, dw and db bitwise equal; with db and without.
void check_relu_linear_backward(const LinearGeometry& g, std::uint64_t seed, Ops<float>& G) {
  const LinearCase c = random_linear_case(g, seed);
  const std::size_t n_out = static_cast<std::size_t>(g.batch) * g.out_features;
  DeviceBuffer<float> x(G, c.x), w(G, c.w), dy_relu(G, c.dy),
      y_relu(G, relu_output(uniform(n_out, -1.0, 1.0, seed + 3)));
  for (const bool with_bias : {true, false}) {
    INFO(c.name << " after a ReLU" << (with_bias ? "" : ", no bias"));
    DeviceBuffer<float> dy1(G, n_out), dx1(G, c.nx), dw1(G, c.nw), db1(G, g.out_features);
    DeviceBuffer<float> dy2(G, n_out), dx2(G, c.nx), dw2(G, c.nw), db2(G, g.out_features);
    for (auto* b : {&dy1, &dx1, &dw1, &db1, &dy2, &dx2, &dw2, &db2}) b->poison();
    G.relu_backward(n_out, y_relu.get(), dy_relu.get(), dy1.get());
    G.linear_backward(g, x.get(), w.get(), dy1.get(), dx1.get(), dw1.get(), with_bias ? db1.get() : nullptr);
    G.relu_linear_backward(g, x.get(), w.get(), y_relu.get(), dy_relu.get(), dy2.get(), dx2.get(), dw2.get(),
                           with_bias ? db2.get() : nullptr);
    compare_exact("dy through the ReLU, fused vs separate", dy2.download(), dy1.download());
    compare_exact("dx, fused vs separate", dx2.download(), dx1.download());
    compare_exact("dw, fused vs separate", dw2.download(), dw1.download());
    if (with_bias) compare_exact("db, fused vs separate", db2.download(), db1.download());
  }
}

// The layers of both networks that follow a ReLU: conv2 (after conv1's ReLU and pool), the two// The layers of both networks that follow a ReLU: conv2 (after conv1's ReLU and pool), the two
// ConvTranspose2d, the two pools; and small ones.
void check_backward_relu_layers(Ops<float>& G) {
  int seed = 60;
  for (const ConvGeometry& g : {paper_conv2(100), paper_deconv1(100), paper_deconv2(100), paper_conv1(3),
                                paper_deconv2(7)})
    check_conv_backward_relu(g, seed++, G);
  for (const PoolGeometry& g : {pool_geometry(100, 16, 26, 26), pool_geometry(100, 32, 11, 11),
                                pool_geometry(3, 2, 5, 7)})
    check_pool_backward_relu(g, seed++, G);
  // And the Linear layers a ReLU follows: AE(256)'s and C(256)'s first, a small one.
  for (const LinearGeometry& g : {linear_geometry(100, 800, 256), linear_geometry(3, 17, 5)})
    check_relu_linear_backward(g, seed++, G);
}

// The paper's four convolutions and two Linear shapes, and two small ones.
void check_forward_relu_layers(Ops<float>& G) {
  int seed = 40;
  std::vector<ConvGeometry> shapes = paper_convs(100);
  shapes.push_back(paper_conv2(7));
  for (const ConvGeometry& g : shapes) check_conv_relu(g, seed++, G);
  check_linear_relu(linear_geometry(100, 800, 256), seed++, G);
  check_linear_relu(linear_geometry(100, 256, 800), seed++, G);
  check_linear_relu(linear_geometry(3, 17, 5), seed++, G);
  check_linear_sigmoid(linear_geometry(100, 256, 10), seed++, G);  // C(256)'s and C(64)'s heads
  check_linear_sigmoid(linear_geometry(100, 64, 10), seed++, G);
  check_linear_sigmoid(linear_geometry(3, 17, 5), seed++, G);
}

}  // namespace

TEST_CASE("GPU layer forward fused with its ReLU or Sigmoid equals the two ops, bit for bit",
          "[gpu][conv][linear][sanitize]") {
  check_forward_relu_layers(gpu());
}

TEST_CASE("GPU layer forward fused with its ReLU or Sigmoid equals the two ops with the direct kernels, bit for bit",
          "[gpu][conv][dgrad][sanitize]") {
  check_forward_relu_layers(direct_conv_gpu());
}

TEST_CASE("GPU layer forward fused with its ReLU or Sigmoid equals the two ops with the split-K Linear forward, bit "
          "for bit",
          "[gpu][linear][linear-split][sanitize]") {
  check_forward_relu_layers(direct_linear_gpu());
}

TEST_CASE("GPU Conv2d, its ReLU and a MaxPool2d fused equal the ops one after the other, bit for bit",
          "[gpu][conv][pool][sanitize]") {
  check_conv_relu_pool_layers(gpu());
}

TEST_CASE("GPU Conv2d, its ReLU and a MaxPool2d fused equal the ops one after the other with the direct kernels",
          "[gpu][conv][pool][dgrad][sanitize]") {
  check_conv_relu_pool_layers(direct_conv_gpu());
}

TEST_CASE("GPU layer backward fused with the ReLU before it equals the two ops, bit for bit",
          "[gpu][conv][pool][sanitize]") {
  check_backward_relu_layers(gpu());
}

TEST_CASE("GPU layer backward fused with the ReLU before it equals the two ops with the direct kernels, bit for bit",
          "[gpu][conv][pool][dgrad][sanitize]") {
  check_backward_relu_layers(direct_conv_gpu());
}

TEST_CASE("GPU MaxPool2d at random shapes", "[gpu][pool][sanitize]") {
  SplitMix64 rng(1003);
  for (int trial = 0; trial < 10; ++trial) {
    PoolGeometry g;
    g.batch = random_int(rng, 1, 5);
    g.channels = random_int(rng, 1, 6);
    g.kernel = random_int(rng, 1, 3);
    // Mostly kernel == stride (the paper's), also overlapping and gapped windows.
    g.stride = trial % 3 == 0 ? random_int(rng, 1, 3) : g.kernel;
    g.in_h = random_int(rng, g.kernel, 17);
    g.in_w = random_int(rng, g.kernel, 17);
    check_pool(g, 4000 + trial);
  }
}

TEST_CASE("GPU Linear at random shapes", "[gpu][linear][sanitize]") {
  SplitMix64 rng(1004);
  for (int trial = 0; trial < 8; ++trial)
    check_linear({random_int(rng, 1, 17), random_int(rng, 1, 300), random_int(rng, 1, 300)},
                 5000 + trial);
}

TEST_CASE("GPU Linear at random shapes with fmnist's split-K forward and input gradient",
          "[gpu][linear][linear-split][sanitize]") {
  SplitMix64 rng(1014);
  for (int trial = 0; trial < 8; ++trial)
    check_linear({random_int(rng, 1, 140), random_int(rng, 1, 900), random_int(rng, 1, 300)}, 5100 + trial,
                 direct_linear_gpu());
}

TEST_CASE("GPU element-wise ops at odd sizes", "[gpu][elementwise][sanitize]") {
  for (std::size_t n : {std::size_t(1), std::size_t(7), std::size_t(1000), std::size_t(65537)})
    check_elementwise(n, 6000 + n);
}

// ---- dropout --------------------------------------------------------------------------------------------

TEST_CASE("GPU dropout masks are bitwise the CPU's", "[gpu][dropout][sanitize]") {
  Ops<float>& G = gpu();
  CpuOps<float> cpu;
  const std::size_t n = 100 * 16 * 26 + 3;  // not a multiple of anything the kernel uses
  const auto x = uniform(n, -1.0, 1.0, 77);
  const auto dy = uniform(n, -1.0, 1.0, 78);
  DeviceBuffer<float> gx(G, x), gdy(G, dy), gy(G, n), gdx(G, n);
  struct Case {
    float p;
    std::uint64_t seed, step;
    std::uint32_t layer;
  };
  const Case cases[] = {{0.2f, 1, 1, 0},
                        {0.2f, 1, 2, 0},
                        {0.2f, 1, 1, 3},
                        {0.5f, 0xDEADBEEFCAFEull, 123456789012ull, 7},  // step above 2^32
                        {0.0f, 5, 5, 1},
                        {0.9f, 42, 600, 2}};
  for (const Case& c : cases) {
    const std::string name = "dropout p " + std::to_string(c.p) + " seed " + std::to_string(c.seed) +
                             " step " + std::to_string(c.step) + " layer " + std::to_string(c.layer);
    auto y = poisoned<float>(n), dx = poisoned<float>(n);
    cpu.dropout_forward(n, c.p, c.seed, c.step, c.layer, x.data(), y.data());
    cpu.dropout_backward(n, c.p, c.seed, c.step, c.layer, dy.data(), dx.data());
    gy.poison();
    gdx.poison();
    G.dropout_forward(n, c.p, c.seed, c.step, c.layer, gx.get(), gy.get());
    G.dropout_backward(n, c.p, c.seed, c.step, c.layer, gdy.get(), gdx.get());
    const auto gy_host = gy.download();
    compare_exact(name + " forward", gy_host, y);
    compare_exact(name + " backward", gdx.download(), dx);
    std::size_t dropped = 0;
    for (float v : gy_host) dropped += v == 0.0f ? 1 : 0;
    const double fraction = static_cast<double>(dropped) / static_cast<double>(n);
    INFO(name << ": dropped fraction " << fraction);
    CHECK(std::fabs(fraction - c.p) < 0.02);
  }
}

// ---- losses and metrics ---------------------------------------------------------------------------

namespace {

void check_point_losses(std::size_t n, std::uint64_t seed) {
  const std::string suffix = " (n " + std::to_string(n) + ")";
  Ops<float>& G = gpu();
  CpuOps<float> cpu;
  CpuOps<double> cpu64;
  auto pred = uniform(n, 0.0, 1.0, seed);
  std::vector<float> target(n);
  const auto pixels = random_pixels(n, seed + 1);
  for (std::size_t i = 0; i < n; ++i) target[i] = elementwise::pixel_to_unit<float>(pixels[i]);
  for (std::size_t i = 0; i < n; i += 11) pred[i] = target[i];  // L1's zero-gradient case
  DeviceBuffer<float> gpred(G, pred), gtarget(G, target), gd(G, n), gloss(G, 1);
  DeviceBuffer<double> gsum(G, std::vector<double>{0.25});

  for (int kind = 0; kind < 2; ++kind) {
    const std::string name = (kind == 0 ? "l1_loss" : "mse_loss") + suffix;
    auto d32 = poisoned<float>(n);
    float loss32 = NAN;
    double loss64 = NAN, sum32 = 0.25;
    std::vector<double> pred64 = to_double(pred), target64 = to_double(target);
    if (kind == 0) {
      cpu.l1_loss(n, pred.data(), target.data(), d32.data(), &loss32, &sum32);
      cpu64.l1_loss(n, pred64.data(), target64.data(), nullptr, &loss64, nullptr);
    } else {
      cpu.mse_loss(n, pred.data(), target.data(), d32.data(), &loss32, &sum32);
      cpu64.mse_loss(n, pred64.data(), target64.data(), nullptr, &loss64, nullptr);
    }
    gd.poison();
    gloss.poison();
    gsum.upload({0.25});
    if (kind == 0)
      G.l1_loss(n, gpred.get(), gtarget.get(), gd.get(), gloss.get(), gsum.get());
    else
      G.mse_loss(n, gpred.get(), gtarget.get(), gd.get(), gloss.get(), gsum.get());
    const std::vector<float> loss_first = gloss.download();
    compare_with_cpu(name + " loss", loss_first, {loss32}, {loss64}, kForward);
    if (kind == 0)
      compare_exact(name + " gradient", gd.download(), d32);  // +-1/n or 0: exact
    else
      compare(name + " gradient", gd.download(), d32, kForward);
    // loss_sum: 0.25 + the mean, both accumulated in double
    const double got_sum = gsum.download()[0];
    INFO(name << ": loss_sum " << got_sum << " vs CPU " << sum32);
    CHECK(std::fabs(got_sum - sum32) <= 1e-9 * std::fabs(sum32));
    // Without a gradient or a sum: the loss alone.
    gloss.poison();
    if (kind == 0)
      G.l1_loss(n, gpred.get(), gtarget.get(), nullptr, gloss.get(), nullptr);
    else
      G.mse_loss(n, gpred.get(), gtarget.get(), nullptr, gloss.get(), nullptr);
    compare(name + " loss without gradient", gloss.download(), std::vector<float>{loss32}, kForward);
    // The same sums in the same order (and the blocks' counter was left at 0): the same bits.
    compare_exact(name + " loss without gradient, again", gloss.download(), loss_first);
  }
}

void check_softmax(int batch, int classes, std::uint64_t seed) {
  const std::string name = "softmax_cross_entropy (B" + std::to_string(batch) + ", " +
                           std::to_string(classes) + " classes)";
  Ops<float>& G = gpu();
  CpuOps<float> cpu;
  CpuOps<double> cpu64;
  const std::size_t n = static_cast<std::size_t>(batch) * classes;
  const auto scores = uniform(n, -4.0, 4.0, seed);
  const auto labels = random_labels(static_cast<std::size_t>(batch), classes, seed + 1);
  auto d32 = poisoned<float>(n);
  auto d64 = poisoned<double>(n);
  float loss32 = NAN;
  double loss64 = NAN, sum32 = 1.5;
  const auto scores64 = to_double(scores);
  cpu.softmax_cross_entropy(batch, classes, scores.data(), labels.data(), d32.data(), &loss32, &sum32);
  cpu64.softmax_cross_entropy(batch, classes, scores64.data(), labels.data(), d64.data(), &loss64,
                              nullptr);
  DeviceBuffer<float> gs(G, scores), gd(G, n), gloss(G, 1);
  DeviceBuffer<std::uint8_t> gl(G, labels);
  DeviceBuffer<double> gsum(G, std::vector<double>{1.5});
  gd.poison();
  gloss.poison();
  G.softmax_cross_entropy(batch, classes, gs.get(), gl.get(), gd.get(), gloss.get(), gsum.get());
  compare_with_cpu(name + " loss", gloss.download(), {loss32}, {loss64}, kForward);
  compare_with_cpu(name + " dscores", gd.download(), d32, d64, kForward);
  const double got_sum = gsum.download()[0];
  INFO(name << ": loss_sum " << got_sum << " vs CPU " << sum32);
  CHECK(std::fabs(got_sum - sum32) <= 1e-6 * std::fabs(sum32));

  // count_predictions: integer counts, exact; rows with tied maxima take the first (torch.argmax).
  auto tied = scores;
  for (int r = 0; r < batch; r += 4) {
    float* row = tied.data() + static_cast<std::size_t>(r) * classes;
    row[classes - 1] = row[0] = 10.0f;
  }
  std::vector<std::int64_t> confusion(static_cast<std::size_t>(classes) * classes);
  for (std::size_t i = 0; i < confusion.size(); ++i) confusion[i] = static_cast<std::int64_t>(i % 5);
  DeviceBuffer<float> gt(G, tied);
  DeviceBuffer<std::int64_t> gc(G, confusion);
  cpu.count_predictions(batch, classes, tied.data(), labels.data(), confusion.data());
  G.count_predictions(batch, classes, gt.get(), gl.get(), gc.get());
  compare_exact(name + " confusion", gc.download(), confusion);
}

}  // namespace

TEST_CASE("GPU L1 and MSE losses with their gradients", "[gpu][loss][sanitize]") {
  for (std::size_t n : {std::size_t(1), std::size_t(1000), std::size_t(100 * 784)})
    check_point_losses(n, 7000 + n);
}

TEST_CASE("GPU L1 and MSE losses over many blocks", "[gpu][loss]") {
  check_point_losses(3000001, 7100);  // more elements than 1024 blocks x 2048 per block
}

TEST_CASE("GPU L1 and MSE losses through a ReLU equal the loss and relu_backward, bit for bit",
          "[gpu][loss][sanitize]") {
  Ops<float>& G = gpu();
  for (std::size_t n : {std::size_t(1), std::size_t(100 * 784), std::size_t(300001)}) {
    auto pred = uniform(n, -0.2, 1.0, 7200 + n);
    for (float& p : pred) p = std::max(p, 0.0f);  // a ReLU's output: about a sixth are 0
    const auto target = uniform(n, 0.0, 1.0, 7300 + n);
    DeviceBuffer<float> gpred(G, pred), gtarget(G, target), d1(G, n), r1(G, n), d2(G, n), r2(G, n), l1(G, 1),
        l2(G, 1);
    for (int kind = 0; kind < 2; ++kind) {
      const std::string name = std::string(kind == 0 ? "l1_loss_relu" : "mse_loss_relu") + " (n " +
                               std::to_string(n) + ")";
      for (auto* b : {&d1, &r1, &d2, &r2, &l1, &l2}) b->poison();
      DeviceBuffer<double> sum1(G, std::vector<double>{0.5}), sum2(G, std::vector<double>{0.5});
      if (kind == 0) {
        G.l1_loss(n, gpred.get(), gtarget.get(), d1.get(), l1.get(), sum1.get());
        G.l1_loss_relu(n, gpred.get(), gtarget.get(), d2.get(), r2.get(), l2.get(), sum2.get());
      } else {
        G.mse_loss(n, gpred.get(), gtarget.get(), d1.get(), l1.get(), sum1.get());
        G.mse_loss_relu(n, gpred.get(), gtarget.get(), d2.get(), r2.get(), l2.get(), sum2.get());
      }
      G.relu_backward(n, gpred.get(), d1.get(), r1.get());
      compare_exact(name + " loss", l2.download(), l1.download());
      compare_exact(name + " loss sum", sum2.download(), sum1.download());
      compare_exact(name + " dpred", d2.download(), d1.download());
      compare_exact(name + " dpred through the ReLU", r2.download(), r1.download());
    }
  }
}

TEST_CASE("GPU softmax cross-entropy and prediction counts", "[gpu][loss][sanitize]") {
  check_softmax(100, 10, 8001);  // the paper's
  check_softmax(1, 10, 8002);
  check_softmax(3, 3, 8003);
  check_softmax(257, 37, 8004);
  check_softmax(1000, 10, 8005);
}

TEST_CASE("GPU softmax cross-entropy through a Sigmoid equals the loss and sigmoid_backward, bit for bit",
          "[gpu][loss][sanitize]") {
  Ops<float>& G = gpu();
  std::uint64_t seed = 8100;
  for (const auto& [batch, classes] : {std::pair{100, 10}, std::pair{1, 10}, std::pair{257, 37}, std::pair{1000, 10}}) {
    const std::string name = "softmax_cross_entropy_sigmoid (B" + std::to_string(batch) + ", " +
                             std::to_string(classes) + " classes)";
    const std::size_t n = static_cast<std::size_t>(batch) * classes;
    const auto scores = uniform(n, 0.01, 0.99, seed++);  // a Sigmoid's output
    const auto labels = random_labels(static_cast<std::size_t>(batch), classes, seed++);
    DeviceBuffer<float> gs(G, scores), d1(G, n), r1(G, n), d2(G, n), r2(G, n), l1(G, 1), l2(G, 1);
    DeviceBuffer<std::uint8_t> gl(G, labels);
    DeviceBuffer<double> sum1(G, std::vector<double>{0.25}), sum2(G, std::vector<double>{0.25});
    for (auto* b : {&d1, &r1, &d2, &r2, &l1, &l2}) b->poison();
    G.softmax_cross_entropy(batch, classes, gs.get(), gl.get(), d1.get(), l1.get(), sum1.get());
    G.sigmoid_backward(n, gs.get(), d1.get(), r1.get());
    G.softmax_cross_entropy_sigmoid(batch, classes, gs.get(), gl.get(), d2.get(), r2.get(), l2.get(), sum2.get());
    compare_exact(name + " loss", l2.download(), l1.download());
    compare_exact(name + " loss sum", sum2.download(), sum1.download());
    compare_exact(name + " dscores", d2.download(), d1.download());
    compare_exact(name + " dscores through the Sigmoid", r2.download(), r1.download());
  }
  // A label >= classes (the device cannot report it): the loss and that row's gradients are NaN,
  // the other rows' are written.
  const int batch = 3, classes = 4;
  const std::size_t n = static_cast<std::size_t>(batch) * classes;
  DeviceBuffer<float> gs(G, uniform(n, 0.01, 0.99, seed)), d(G, n), r(G, n), loss(G, 1);
  DeviceBuffer<std::uint8_t> gl(G, std::vector<std::uint8_t>{1, 4, 0});
  d.poison();
  r.poison();
  G.softmax_cross_entropy_sigmoid(batch, classes, gs.get(), gl.get(), d.get(), r.get(), loss.get(), nullptr);
  CHECK(std::isnan(loss.download()[0]));
  const auto through = r.download();
  for (std::size_t i = 0; i < n; ++i) {
    INFO("dscores_sigmoid[" << i << "] = " << through[i]);
    CHECK(std::isnan(through[i]) == (i / classes == 1));
  }
}

// ---- Adam ---------------------------------------------------------------------------------------------

TEST_CASE("GPU Adam update", "[gpu][adam][sanitize]") {
  Ops<float>& G = gpu();
  CpuOps<float> cpu;
  for (std::size_t n : {std::size_t(1), std::size_t(1000), std::size_t(423809)}) {
    for (std::uint64_t t : {std::uint64_t(1), std::uint64_t(2), std::uint64_t(1000)}) {
      const std::string name = "adam n " + std::to_string(n) + " t " + std::to_string(t);
      auto params = uniform(n, -0.1, 0.1, 9000 + n + t);
      const auto grads = uniform(n, -1e-2, 1e-2, 9100 + n + t);
      auto m = uniform(n, -1e-3, 1e-3, 9200 + n + t);
      auto v = uniform(n, 0.0, 1e-5, 9300 + n + t);
      if (t == 1) {
        std::fill(m.begin(), m.end(), 0.0f);
        std::fill(v.begin(), v.end(), 0.0f);
      }
      DeviceBuffer<float> gp(G, params), gg(G, grads), gm(G, m), gv(G, v);
      AdamConfig config;
      const auto step = adam_step_constants<float>(config, t);
      cpu.adam_update(n, params.data(), grads.data(), m.data(), v.data(), step);
      G.adam_update(n, gp.get(), gg.get(), gm.get(), gv.get(), step);
      // The same elementwise::adam_update on both, built without FMA contraction on the GPU:
      // expected bit for bit; compared at forward tolerance.
      compare(name + " params", gp.download(), params, kForward);
      compare(name + " exp_avg", gm.download(), m, kForward);
      compare(name + " exp_avg_sq", gv.download(), v, kForward);
    }
  }
}

TEST_CASE("GPU Adam from the step table, advancing the cursor in the same launch", "[gpu][adam][sanitize]") {
  // Three updates from a cursor at table index 1, the second one not advancing it (advance_cursor
  // does instead): the constants come from rows 1, 2 and 3 in turn (the CPU does the same with its
  // own cursor), and the cursor ends three steps on, moved once per advancing launch however many
  // blocks the update took.
  Ops<float>& G = gpu();
  CpuOps<float> cpu;
  for (std::size_t n : {std::size_t(1), std::size_t(423809)}) {
    const std::string name = "adam_update_at n " + std::to_string(n);
    auto params = uniform(n, -0.1, 0.1, 9400 + n);
    const auto grads = uniform(n, -1e-2, 1e-2, 9500 + n);
    std::vector<float> m(n, 0.0f), v(n, 0.0f);
    const auto table = adam_step_table<float>(AdamConfig{}, 1, 4);
    DeviceBuffer<float> gp(G, params), gg(G, grads), gm(G, m), gv(G, v);
    DeviceBuffer<std::uint8_t> gtable(G, table.size() * sizeof(table[0])), gcursor(G, sizeof(StepCursor));
    G.copy_to_device(gtable.get(), table.data(), table.size() * sizeof(table[0]));
    auto* device_table = reinterpret_cast<const elementwise::AdamStep<float>*>(gtable.get());
    auto* device_cursor = reinterpret_cast<StepCursor*>(gcursor.get());
    StepCursor cursor{10, 1};
    G.set_cursor(device_cursor, 10, 1);
    for (bool advance : {true, false, true}) {
      cpu.adam_update_at(n, params.data(), grads.data(), m.data(), v.data(), table.data(), &cursor, advance);
      G.adam_update_at(n, gp.get(), gg.get(), gm.get(), gv.get(), device_table, device_cursor, advance);
      if (!advance) {  // moved on by its own op instead
        cpu.advance_cursor(&cursor);
        G.advance_cursor(device_cursor);
      }
    }
    StepCursor got{};
    G.copy_to_host(&got, device_cursor, sizeof got);
    CHECK(got.step == 13);
    CHECK(got.index == 4);
    CHECK(cursor.step == 13);
    CHECK(cursor.index == 4);
    compare(name + " params", gp.download(), params, kForward);
    compare(name + " exp_avg", gm.download(), m, kForward);
    compare(name + " exp_avg_sq", gv.download(), v, kForward);
  }
}

// ---- memory, and preconditions -------------------------------------------------------------------------

TEST_CASE("GPU memory: zeroed allocation, fill, copies", "[gpu][memory][sanitize]") {
  Ops<float>& G = gpu();
  CHECK(G.name().rfind("cuda:", 0) == 0);
  const std::size_t n = 12345;
  DeviceBuffer<float> a(G, n);
  compare_exact("allocate is zero-filled", a.download(), std::vector<float>(n, 0.0f));
  G.fill(a.get(), 2.5f, n);
  compare_exact("fill", a.download(), std::vector<float>(n, 2.5f));
  const auto data = uniform(n, -1.0, 1.0, 10);
  DeviceBuffer<float> b(G, data);
  G.copy(a.get(), b.get(), n * sizeof(float));
  compare_exact("copy", a.download(), data);
  G.synchronize();
}

TEST_CASE("GPU ops check their preconditions before launching", "[gpu][preconditions][sanitize]") {
  Ops<float>& G = gpu();
  DeviceBuffer<float> a(G, 64), b(G, 64);
  CHECK_THROWS_AS(G.relu_forward(0, a.get(), b.get()), std::invalid_argument);
  CHECK_THROWS_AS(G.relu_forward(64, nullptr, b.get()), std::invalid_argument);
  CHECK_THROWS_AS(G.dropout_forward(64, 1.0f, 1, 1, 0, a.get(), b.get()), std::invalid_argument);
  CHECK_THROWS_AS(G.l1_loss(64, a.get(), b.get(), nullptr, nullptr, nullptr), std::invalid_argument);
  ConvGeometry g = conv_geometry(1, 1, 4, 4, 1, 3, 2, 0, 2, true);  // output_padding >= stride
  CHECK_THROWS_AS(G.conv_transpose2d_forward(g, a.get(), b.get(), nullptr, a.get()),
                  std::invalid_argument);
  g = conv_geometry(1, 1, 4, 4, 1, 3, 1, 0, 0, true);  // not a Conv2d geometry
  CHECK_THROWS_AS(G.conv2d_forward(g, a.get(), b.get(), nullptr, a.get()), std::invalid_argument);
  if (!on_cpu_stand_in())  // the CPU reference allows overlap (memmove); cudaMemcpy does not
    CHECK_THROWS_AS(G.copy(a.get(), a.get() + 1, 16 * sizeof(float)), std::invalid_argument);
  try {
    G.linear_forward({0, 4, 4}, a.get(), b.get(), nullptr, a.get());
    FAIL("linear_forward accepted batch 0");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("linear_forward") != std::string::npos);
  }
}
