// fmnist's own CUDA kernels (cuda/kernels.cu, adam.cu, step_kernels.cu) run by the CPU kernel
// emulator at the paper's sizes and at odd ones, against the CPU reference: bit for bit where both
// call the same per-element math (models/elementwise.h), within fmnist_gpu_tests' stated
// tolerances where they sum in another order; every reduction's bits independent of the schedule.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "cuda/kernels.h"
#include "cuda/step_kernels.h"
#include "host/reference/cpu_ops.h"
#include "kernel_emu_support.h"
#include "models/executor.h"
#include "models/ops.h"
#include "../op_shapes.h"

namespace {

using namespace fmnist;
using namespace fmnist::gputest;
using fmnist::cuda::Context;
using fmnist::kernel_emu::Bytes;
using fmnist::kernel_emu::append_bytes;
using fmnist::kernel_emu::require_schedule_independent;

// Sizes: a conv1 activation at batch 100, odd sizes around a block and a grid.
const std::vector<std::size_t> kSizes = {1, 255, 257, 100 * 784, 100 * 16 * 26 * 26 + 3};

// A context whose grids cover a large tensor in a few strides (8 multiprocessors) and one with an
// H100's 132.
Context& few_blocks() {
  static const auto c = kernel_emu::make_context(8);
  return *c;
}
Context& h100() {
  static const auto c = kernel_emu::make_context(132);
  return *c;
}

// The pools of both pooling tests: conv1's and conv2's outputs at batch 100 (26x26 pooled whole;
// 11x11 leaves its last row and column outside the windows), at validation's batch 1,000, and 12
// random planes with 2x2 and 3x3 windows drawn from `seed`, most of them leaving rows or columns
// outside.
std::vector<PoolGeometry> pool_cases(std::uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<PoolGeometry> pools = {testing::pool_geometry(100, 16, 26, 26), testing::pool_geometry(100, 32, 11, 11),
                                     testing::pool_geometry(1000, 32, 11, 11)};
  for (int i = 0; i < 12; ++i)
    pools.push_back(testing::pool_geometry(random_int(rng, 1, 3), random_int(rng, 1, 5), random_int(rng, 3, 17),
                                           random_int(rng, 3, 17), random_int(rng, 2, 3)));
  return pools;
}
std::string pool_name(const PoolGeometry& g) {
  return " (B" + std::to_string(g.batch) + " C" + std::to_string(g.channels) + " " + std::to_string(g.in_h) + "x" +
         std::to_string(g.in_w) + " k" + std::to_string(g.kernel) + " s" + std::to_string(g.stride) + ")";
}

}  // namespace

TEST_CASE("emulated kernels: fill, pixel scaling, ReLU, Sigmoid and dropout equal the CPU's bits",
          "[kernel_emu][elementwise]") {
  CpuOps<float> cpu;
  for (std::size_t n : kSizes) {
    const std::string size = " (n " + std::to_string(n) + ")";
    Context& c = n > 100000 ? few_blocks() : h100();
    const auto pixels = random_pixels(n, 11 + n);
    auto x = uniform(n, -3.0, 3.0, 12 + n);
    for (std::size_t i = 0; i < n; i += 7) x[i] = 0.0f;  // ReLU's edge
    const auto dy = uniform(n, -1.0, 1.0, 13 + n);

    auto got = poisoned<float>(n), want = poisoned<float>(n);
    cuda::launch_fill(c, n, 0.375f, got.data());
    compare_exact("fill" + size, got, std::vector<float>(n, 0.375f));
    got = poisoned<float>(n);
    cuda::launch_images_to_float(c, n, pixels.data(), got.data());
    cpu.images_to_float(n, pixels.data(), want.data());
    compare_exact("images_to_float" + size, got, want);

    std::vector<float> y(n), y_cpu(n);
    cuda::launch_relu_forward(c, n, x.data(), y.data());
    cpu.relu_forward(n, x.data(), y_cpu.data());
    compare_exact("relu_forward" + size, y, y_cpu);
    got = poisoned<float>(n);
    cuda::launch_relu_backward(c, n, y.data(), dy.data(), got.data());
    cpu.relu_backward(n, y_cpu.data(), dy.data(), want.data());
    compare_exact("relu_backward" + size, got, want);

    cuda::launch_sigmoid_forward(c, n, x.data(), y.data());
    cpu.sigmoid_forward(n, x.data(), y_cpu.data());
    compare_exact("sigmoid_forward" + size, y, y_cpu);
    got = poisoned<float>(n);
    cuda::launch_sigmoid_backward(c, n, y.data(), dy.data(), got.data());
    cpu.sigmoid_backward(n, y_cpu.data(), dy.data(), want.data());
    compare_exact("sigmoid_backward" + size, got, want);

    for (float p : {0.2f, 0.5f}) {
      got = poisoned<float>(n);
      cuda::launch_dropout(c, n, p, 1234, 77, 3, x.data(), got.data());
      cpu.dropout_forward(n, p, 1234, 77, 3, x.data(), want.data());
      compare_exact("dropout p " + std::to_string(p) + size, got, want);
      // The step-reading twin reads the step from the cursor: the same mask.
      const StepCursor cursor{77, 5};
      got = poisoned<float>(n);
      cuda::launch_dropout_at(c, n, p, 1234, &cursor, 3, x.data(), got.data());
      compare_exact("dropout_at p " + std::to_string(p) + size, got, want);
    }
  }
}

TEST_CASE("emulated kernels: bias add, alone and with its ReLU or Sigmoid, at the paper's layer outputs",
          "[kernel_emu][bias]") {
  CpuOps<float> cpu;
  struct Case {
    int batch, channels;
    std::size_t hw;
  };
  // conv1, conv2, deconv1 and deconv2 outputs, Linear(800->256), Linear(256->800), the classifier's
  // head (256->10), odd ones.
  for (const Case& k : {Case{100, 16, 26 * 26}, Case{100, 32, 11 * 11}, Case{100, 16, 13 * 13},
                        Case{100, 1, 28 * 28}, Case{100, 256, 1}, Case{100, 800, 1}, Case{100, 10, 1},
                        Case{1000, 16, 26 * 26}, Case{3, 5, 7}, Case{1, 1, 1}}) {
    const std::size_t n = static_cast<std::size_t>(k.batch) * k.channels * k.hw;
    const std::string shape = " (B" + std::to_string(k.batch) + ", C" + std::to_string(k.channels) + ", HW" +
                              std::to_string(k.hw) + ")";
    Context& c = n > 100000 ? few_blocks() : h100();
    const auto y0 = uniform(n, -2.0, 2.0, n + 1);
    const auto bias = uniform(static_cast<std::size_t>(k.channels), -0.5, 0.5, n + 2);
    std::vector<float> want(n), want_relu(n);
    for (std::size_t i = 0; i < n; ++i) want[i] = y0[i] + bias[i / k.hw % static_cast<std::size_t>(k.channels)];
    cpu.relu_forward(n, want.data(), want_relu.data());

    auto y = y0;
    cuda::launch_add_channel_bias(c, k.batch, k.channels, k.hw, bias.data(), y.data());
    compare_exact("add_channel_bias" + shape, y, want);
    y = y0;
    auto y_relu = poisoned<float>(n);
    cuda::launch_add_channel_bias(c, k.batch, k.channels, k.hw, bias.data(), y.data(), y_relu.data());
    compare_exact("add_channel_bias with ReLU: y" + shape, y, want);
    compare_exact("add_channel_bias with ReLU: ReLU(y)" + shape, y_relu, want_relu);
    // With a Sigmoid (the classifier's head): the CPU's sigmoid_forward of the same y, bit for bit.
    y = y0;
    auto y_sigmoid = poisoned<float>(n);
    std::vector<float> want_sigmoid(n);
    cpu.sigmoid_forward(n, want.data(), want_sigmoid.data());
    cuda::launch_add_channel_bias(c, k.batch, k.channels, k.hw, bias.data(), y.data(), y_sigmoid.data(),
                                  elementwise::Activation::Sigmoid);
    compare_exact("add_channel_bias with Sigmoid: y" + shape, y, want);
    compare_exact("add_channel_bias with Sigmoid: Sigmoid(y)" + shape, y_sigmoid, want_sigmoid);
    // No bias (a direct kernel added it already): the ReLU alone, y untouched.
    y = y0;
    y_relu = poisoned<float>(n);
    cuda::launch_add_channel_bias(c, k.batch, k.channels, k.hw, nullptr, y.data(), y_relu.data());
    std::vector<float> relu_only(n);
    cpu.relu_forward(n, y0.data(), relu_only.data());
    compare_exact("ReLU without bias: y untouched" + shape, y, y0);
    compare_exact("ReLU without bias" + shape, y_relu, relu_only);
  }
}

TEST_CASE("emulated kernels: max pooling forward and backward, with the ReLU's gradient, equal the CPU's bits",
          "[kernel_emu][pool]") {
  CpuOps<float> cpu;
  // The pools above (windows side by side: the backward's tiled kernel), and windows that overlap
  // or leave gaps (its general kernel).
  std::vector<PoolGeometry> pools = pool_cases(2026);
  for (const auto& [kernel, stride] : {std::pair{3, 2}, std::pair{2, 3}, std::pair{3, 1}, std::pair{1, 2}}) {
    PoolGeometry g = testing::pool_geometry(2, 3, 12, 9, kernel);
    g.stride = stride;
    pools.push_back(g);
  }
  for (const PoolGeometry& g : pools) {
    const std::string shape = pool_name(g);
    Context& c = g.in_count() > 100000 ? few_blocks() : h100();
    auto x = uniform(g.in_count(), -1.0, 1.0, g.in_count());
    for (std::size_t i = 0; i < x.size(); i += 5) x[i] = 0.0f;  // ties and the ReLU's zeros
    for (float& v : x) v = v < 0.0f ? 0.0f : v;                 // x is a ReLU's output
    const auto dy = uniform(g.out_count(), -1.0, 1.0, g.out_count() + 1);

    auto y = poisoned<float>(g.out_count()), y_cpu = poisoned<float>(g.out_count());
    auto argmax = poisoned<std::int32_t>(g.out_count()), argmax_cpu = poisoned<std::int32_t>(g.out_count());
    cuda::launch_maxpool_forward(c, g, x.data(), y.data(), argmax.data());
    cpu.maxpool2d_forward(g, x.data(), y_cpu.data(), argmax_cpu.data());
    compare_exact("maxpool forward" + shape, y, y_cpu);
    compare_exact("maxpool argmax" + shape, argmax, argmax_cpu);

    auto dx = poisoned<float>(g.in_count()), dx_cpu = poisoned<float>(g.in_count());
    cuda::launch_maxpool_backward(c, g, dy.data(), argmax.data(), dx.data());
    cpu.maxpool2d_backward(g, dy.data(), argmax_cpu.data(), dx_cpu.data());
    compare_exact("maxpool backward" + shape, dx, dx_cpu);

    auto dx_relu = poisoned<float>(g.in_count()), dx_relu_cpu = poisoned<float>(g.in_count());
    dx = poisoned<float>(g.in_count());
    cuda::launch_maxpool_backward(c, g, dy.data(), argmax.data(), dx.data(), x.data(), dx_relu.data());
    cpu.maxpool2d_backward_relu(g, x.data(), dy.data(), argmax_cpu.data(), dx_cpu.data(), dx_relu_cpu.data());
    compare_exact("maxpool backward with ReLU: dx" + shape, dx, dx_cpu);
    compare_exact("maxpool backward with ReLU: dx through the ReLU" + shape, dx_relu, dx_relu_cpu);
  }
}

TEST_CASE("emulated kernels: bias, ReLU and max pooling in one pass equal the CPU's three ops, bit for bit",
          "[kernel_emu][pool][bias]") {
  CpuOps<float> cpu;
  for (const PoolGeometry& g : pool_cases(20261206)) {
    const std::string shape = pool_name(g);
    Context& c = g.in_count() > 100000 ? few_blocks() : h100();
    const std::size_t n = g.in_count(), hw = static_cast<std::size_t>(g.in_h) * g.in_w;
    auto y0 = uniform(n, -1.0, 1.0, n + 7);
    for (std::size_t i = 0; i < n; i += 7) y0[i] = 0.0f;    // ties after the ReLU
    for (std::size_t i = 3; i < n; i += 11) y0[i] = -0.0f;  // kept as they are without a bias
    const auto bias = uniform(static_cast<std::size_t>(g.channels), -0.3, 0.3, n + 8);
    for (const bool with_bias : {true, false}) {
      INFO((with_bias ? "with a bias" : "without a bias") << shape);
      std::vector<float> want = y0, want_relu(n), want_pooled(g.out_count());
      std::vector<std::int32_t> want_argmax(g.out_count());
      if (with_bias)
        for (std::size_t i = 0; i < n; ++i) want[i] = y0[i] + bias[i / hw % static_cast<std::size_t>(g.channels)];
      cpu.relu_forward(n, want.data(), want_relu.data());
      cpu.maxpool2d_forward(g, want_relu.data(), want_pooled.data(), want_argmax.data());

      auto y = y0, y_relu = poisoned<float>(n), pooled = poisoned<float>(g.out_count());
      auto argmax = poisoned<std::int32_t>(g.out_count());
      const std::size_t launches = kernel_emu::launch_log().launches;
      cuda::launch_bias_relu_maxpool(c, g, with_bias ? bias.data() : nullptr, y.data(), y_relu.data(), pooled.data(),
                                     argmax.data());
      CHECK(kernel_emu::launch_log().launches - launches == 1);
      compare_exact("y + bias" + shape, y, want);
      compare_exact("ReLU(y + bias)" + shape, y_relu, want_relu);
      compare_exact("its max pooling" + shape, pooled, want_pooled);
      compare_exact("its argmax" + shape, argmax, want_argmax);
    }
  }
  // Windows that overlap (kernel 3, stride 2) are refused before the launch.
  PoolGeometry overlapping = testing::pool_geometry(1, 1, 9, 9, 3);
  overlapping.stride = 2;
  std::vector<float> y(81), y_relu(81), pooled(16);
  std::vector<std::int32_t> argmax(16);
  CHECK_THROWS_WITH(cuda::launch_bias_relu_maxpool(h100(), overlapping, nullptr, y.data(), y_relu.data(),
                                                   pooled.data(), argmax.data()),
                    Catch::Contains("kernel 3 and stride 2 differ"));
}

TEST_CASE("emulated kernels: L1 and MSE losses in one launch, with their gradients, against the CPU",
          "[kernel_emu][loss]") {
  CpuOps<float> cpu;
  CpuOps<double> cpu64;
  // 100 * 784 is an AE batch, 1,000 * 784 a GPU validation batch; 4,200,000 makes more blocks
  // than the partials' 1,024 slots.
  for (std::size_t n : {std::size_t{1}, std::size_t{2047}, std::size_t{100 * 784}, std::size_t{1000 * 784},
                        std::size_t{4200000}}) {
    const std::string size = " (n " + std::to_string(n) + ")";
    Context& c = h100();
    auto pred = uniform(n, -0.2, 1.0, n + 5);
    const auto pixels = random_pixels(n, n + 6);
    std::vector<float> target(n);
    for (std::size_t i = 0; i < n; ++i) target[i] = elementwise::pixel_to_unit<float>(pixels[i]);
    for (std::size_t i = 0; i < n; i += 11) pred[i] = target[i];  // L1's zero-gradient case
    for (float& p : pred) p = p < 0.0f ? 0.0f : p;                // pred is a ReLU's output
    const std::vector<double> pred64(pred.begin(), pred.end()), target64(target.begin(), target.end());
    for (auto kind : {PointLoss::L1, PointLoss::MSE}) {
      const std::string name = std::string(kind == PointLoss::L1 ? "L1" : "MSE") + size;
      std::vector<float> d_cpu(n), d_relu_cpu(n);
      float loss_cpu = NAN;
      double loss64 = NAN, sum_cpu = 0.25;
      if (kind == PointLoss::L1) {
        cpu.l1_loss_relu(n, pred.data(), target.data(), d_cpu.data(), d_relu_cpu.data(), &loss_cpu, &sum_cpu);
        cpu64.l1_loss(n, pred64.data(), target64.data(), nullptr, &loss64, nullptr);
      } else {
        cpu.mse_loss_relu(n, pred.data(), target.data(), d_cpu.data(), d_relu_cpu.data(), &loss_cpu, &sum_cpu);
        cpu64.mse_loss(n, pred64.data(), target64.data(), nullptr, &loss64, nullptr);
      }
      const std::size_t launches_before = kernel_emu::launch_log().launches;
      std::vector<float> d, d_relu, loss;
      std::vector<double> sum;
      require_schedule_independent(name, c, [&] {
        d = poisoned<float>(n);
        d_relu = poisoned<float>(n);
        loss = poisoned<float>(1);
        sum = {0.25};
        cuda::launch_point_loss(c, kind, n, pred.data(), target.data(), d.data(), loss.data(), sum.data(),
                                d_relu.data());
        Bytes out;
        append_bytes(out, d);
        append_bytes(out, d_relu);
        append_bytes(out, loss);
        append_bytes(out, sum);
        return out;
      });
      CHECK(kernel_emu::launch_log().launches - launches_before == kernel_emu::schedules().size());  // one each
      compare_exact(name + " gradient", d, d_cpu);
      compare_exact(name + " gradient through the ReLU", d_relu, d_relu_cpu);
      compare(name + " loss against the CPU", loss, std::vector<float>{loss_cpu}, kForward);
      compare(name + " loss against double", loss, std::vector<double>{loss64}, kForward);
      INFO(name << ": loss_sum " << sum[0] << " vs CPU " << sum_cpu);
      CHECK(std::fabs(sum[0] - sum_cpu) <= 1e-9 * std::fabs(sum_cpu));
      // The loss alone (validation): the same sums in the same order, so the same bits.
      const auto first_loss = loss;
      loss = poisoned<float>(1);
      cuda::launch_point_loss(c, kind, n, pred.data(), target.data(), nullptr, loss.data(), nullptr, nullptr);
      compare_exact(name + " loss without gradient or sum", loss, first_loss);
      CHECK(kernel_emu::counters_clear(c));
    }
  }
}

TEST_CASE("emulated kernels: softmax cross-entropy and prediction counts against the CPU",
          "[kernel_emu][loss]") {
  CpuOps<float> cpu;
  Context& c = h100();
  for (int batch : {1, 100, 300}) {
    const int classes = 10;
    const std::string name = " (B" + std::to_string(batch) + ")";
    const std::size_t n = static_cast<std::size_t>(batch) * classes;
    auto scores = uniform(n, -4.0, 4.0, n);
    const auto labels = random_labels(static_cast<std::size_t>(batch), classes, n + 1);
    std::vector<float> d_cpu(n);
    float loss_cpu = NAN;
    double sum_cpu = 1.5;
    cpu.softmax_cross_entropy(batch, classes, scores.data(), labels.data(), d_cpu.data(), &loss_cpu, &sum_cpu);
    auto d = poisoned<float>(n);
    std::vector<float> loss = poisoned<float>(1);
    std::vector<double> sum = {1.5};
    cuda::launch_softmax_cross_entropy(c, batch, classes, scores.data(), labels.data(), d.data(), loss.data(),
                                       sum.data());
    compare_exact("softmax cross-entropy gradient" + name, d, d_cpu);  // per row: elementwise.h's
    compare("softmax cross-entropy loss" + name, loss, std::vector<float>{loss_cpu}, kForward);
    CHECK(std::fabs(sum[0] - sum_cpu) <= 1e-6 * std::fabs(sum_cpu));

    for (int r = 0; r < batch; r += 4) scores[static_cast<std::size_t>(r) * classes] = 10.0f;  // ties: first wins
    std::vector<std::int64_t> confusion(classes * classes), confusion_cpu(classes * classes);
    for (std::size_t i = 0; i < confusion.size(); ++i) confusion[i] = confusion_cpu[i] = static_cast<std::int64_t>(i % 5);
    cuda::launch_count_predictions(c, batch, classes, scores.data(), labels.data(), confusion.data());
    cpu.count_predictions(batch, classes, scores.data(), labels.data(), confusion_cpu.data());
    compare_exact("confusion counts" + name, confusion, confusion_cpu);
  }
}

TEST_CASE("emulated kernels: a label out of range makes the loss NaN and is not counted (the CPU throws)",
          "[kernel_emu][loss]") {
  const int batch = 100, classes = 10, bad_row = 42;
  const std::size_t n = static_cast<std::size_t>(batch) * classes;
  const auto scores = uniform(n, -4.0, 4.0, 3);
  auto labels = random_labels(static_cast<std::size_t>(batch), classes, 4);
  labels[bad_row] = 10;
  auto d = poisoned<float>(n);
  std::vector<float> loss(1, 0.0f);
  cuda::launch_softmax_cross_entropy(h100(), batch, classes, scores.data(), labels.data(), d.data(), loss.data(),
                                     nullptr);
  CHECK(std::isnan(loss[0]));
  for (std::size_t i = 0; i < n; ++i) {
    INFO("dscores[" << i << "] = " << d[i]);
    CHECK(std::isnan(d[i]) == (i / classes == static_cast<std::size_t>(bad_row)));
  }
  std::vector<std::int64_t> confusion(classes * classes, 0);
  cuda::launch_count_predictions(h100(), batch, classes, scores.data(), labels.data(), confusion.data());
  std::int64_t counted = 0;
  for (std::int64_t v : confusion) counted += v;
  CHECK(counted == batch - 1);
}

TEST_CASE("emulated kernels: Adam over AE(256)'s parameters, by value and from the step table, equals the CPU's bits",
          "[kernel_emu][adam]") {
  CpuOps<float> cpu;
  const std::size_t n = 423809;  // AE(256)'s parameters (FACTS.md)
  Context& c = few_blocks();
  const auto grads = uniform(n, -0.1, 0.1, 1);
  const auto params0 = uniform(n, -0.3, 0.3, 2);
  const auto m0 = uniform(n, -0.01, 0.01, 3);
  auto v0 = uniform(n, 0.0, 0.001, 4);
  AdamConfig config;
  const auto table = adam_step_table<float>(config, 1, 6);
  for (std::uint64_t index : {std::uint64_t{0}, std::uint64_t{4}}) {
    auto p_cpu = params0, m_cpu = m0, v_cpu = v0;
    cpu.adam_update(n, p_cpu.data(), grads.data(), m_cpu.data(), v_cpu.data(), table[index]);
    auto p = params0, m = m0, v = v0;
    cuda::launch_adam(c, n, p.data(), grads.data(), m.data(), v.data(), table[index]);
    compare_exact("adam params", p, p_cpu);
    compare_exact("adam m", m, m_cpu);
    compare_exact("adam v", v, v_cpu);

    // From the table at cursor->index, the last block moving the cursor on.
    StepCursor cursor{40, index};
    require_schedule_independent("adam_at", c, [&] {
      p = params0, m = m0, v = v0;
      cursor = StepCursor{40, index};
      cuda::launch_adam_at(c, n, p.data(), grads.data(), m.data(), v.data(), table.data(), &cursor, true);
      Bytes out;
      append_bytes(out, p);
      append_bytes(out, m);
      append_bytes(out, v);
      return out;
    });
    compare_exact("adam_at params", p, p_cpu);
    compare_exact("adam_at m", m, m_cpu);
    compare_exact("adam_at v", v, v_cpu);
    CHECK(cursor.step == 41);
    CHECK(cursor.index == index + 1);
    cuda::launch_adam_at(c, n, p.data(), grads.data(), m.data(), v.data(), table.data(), &cursor, false);
    CHECK(cursor.index == index + 1);  // not advanced
    cuda::launch_advance_cursor(c, &cursor);
    CHECK((cursor.step == 42 && cursor.index == index + 2));
    cuda::launch_set_cursor(c, &cursor, 7, 9);
    CHECK((cursor.step == 7 && cursor.index == 9));
    CHECK(kernel_emu::counters_clear(c));
  }
  // Ranges that start one float past an aligned buffer (no 16-byte loads: one element at a time)
  // or are shorter than four, and a length that is a multiple of four: the same bits.
  REQUIRE(reinterpret_cast<std::uintptr_t>(params0.data()) % 16 == 0);  // offset 0: the 16-byte path
  for (const auto& [offset, count] : {std::pair<std::size_t, std::size_t>{1, n - 1}, {1, 7}, {0, 3}, {0, 4096}, {2, 2}}) {
    INFO("offset " << offset << ", " << count << " elements");
    auto p_cpu = params0, m_cpu = m0, v_cpu = v0;
    cpu.adam_update(count, p_cpu.data() + offset, grads.data() + offset, m_cpu.data() + offset,
                    v_cpu.data() + offset, table[1]);
    auto p = params0, m = m0, v = v0;
    cuda::launch_adam(c, count, p.data() + offset, grads.data() + offset, m.data() + offset, v.data() + offset,
                      table[1]);
    compare_exact("adam params (range)", p, p_cpu);
    compare_exact("adam m (range)", m, m_cpu);
    compare_exact("adam v (range)", v, v_cpu);
    StepCursor cursor{3, 1};
    p = params0, m = m0, v = v0;
    cuda::launch_adam_at(c, count, p.data() + offset, grads.data() + offset, m.data() + offset, v.data() + offset,
                         table.data(), &cursor, true);
    compare_exact("adam_at params (range)", p, p_cpu);
    CHECK(cursor.index == 2);
    CHECK(kernel_emu::counters_clear(c));
  }
}

TEST_CASE("emulated kernels: the batch gather, scaling included, equals the CPU's", "[kernel_emu][gather]") {
  CpuOps<float> cpu;
  const std::size_t pixels = 784, rows = 1000;
  const auto images = random_pixels(rows * pixels + 3, 5);
  const auto labels = random_labels(rows * 2, 10, 6);
  SplitMix64 rng(7);
  std::vector<std::int32_t> order(3 * 100);
  for (auto& o : order) o = static_cast<std::int32_t>(rng.below(rows));
  const RowSource source{images.data(), labels.data(), pixels, 2};
  for (int count : {100, 37}) {  // a full batch and a partial last one
    for (std::uint64_t index : {std::uint64_t{0}, std::uint64_t{2}, std::uint64_t{5}}) {
      const RowOrder row_order{order.data(), 100, 3};
      const StepCursor cursor{9, index};
      const std::size_t n = static_cast<std::size_t>(count) * pixels;
      auto got_images = poisoned<std::uint8_t>(n), want_images = poisoned<std::uint8_t>(n);
      auto got_labels = poisoned<std::uint8_t>(count), want_labels = poisoned<std::uint8_t>(count);
      auto got_scaled = poisoned<float>(n), want_scaled = poisoned<float>(n);
      cuda::launch_gather_rows(h100(), count, pixels, source, row_order, &cursor, got_images.data(),
                               got_labels.data(), got_scaled.data());
      cpu.gather_rows(count, pixels, source, row_order, &cursor, want_images.data(), want_labels.data(),
                      want_scaled.data());
      const std::string name = " (count " + std::to_string(count) + ", index " + std::to_string(index) + ")";
      compare_exact("gathered images" + name, got_images, want_images);
      compare_exact("gathered labels" + name, got_labels, want_labels);
      compare_exact("gathered and scaled" + name, got_scaled, want_scaled);
    }
  }
}
