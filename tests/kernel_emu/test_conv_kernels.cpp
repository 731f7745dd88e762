// fmnist's convolution kernels run by the CPU kernel emulator against the CPU reference: the conv
// bias gradient (the default path, kernels.cu) and the opt-in direct kernels (direct_conv.cu,
// weight_grad.cu), at the paper's four convolutions (batch 100 and 1) and at random shapes, with
// fmnist_gpu_tests' tolerances; the reductions' bits independent of the block order.
#include <catch2/catch.hpp>

#include <cstdint>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "cuda/direct_conv.h"
#include "cuda/kernels.h"
#include "cuda/weight_grad.h"
#include "host/reference/cpu_ops.h"
#include "kernel_emu_support.h"
#include "models/conv_direct.h"
#include "models/conv_shape.h"
#include "models/ops.h"
#include "../op_shapes.h"

namespace {

using namespace fmnist;
using namespace fmnist::gputest;
using fmnist::cuda::Context;
using fmnist::kernel_emu::Bytes;
using fmnist::kernel_emu::append_bytes;
using fmnist::kernel_emu::require_schedule_independent;

std::string describe(const ConvGeometry& g) {
  return std::string(g.transposed ? "ConvTranspose2d" : "Conv2d") + "(B" + std::to_string(g.batch) + " " +
         std::to_string(g.in_channels) + "x" + std::to_string(g.in_h) + "x" + std::to_string(g.in_w) + " -> " +
         std::to_string(g.out_channels) + ", k" + std::to_string(g.kernel) + " s" + std::to_string(g.stride) +
         " p" + std::to_string(g.padding) + " op" + std::to_string(g.output_padding) + ")";
}

// The paper's convolutions at batch 100, 37 (image groups of unequal size in the reductions'
// partitions) and 1, then random ones (both kinds).
std::vector<ConvGeometry> geometries() {
  std::vector<ConvGeometry> all = testing::paper_convs(100);
  for (const ConvGeometry& g : testing::paper_convs(37)) all.push_back(g);
  for (const ConvGeometry& g : testing::paper_convs(1)) all.push_back(g);
  SplitMix64 rng(20261127);
  for (int i = 0; i < 16; ++i) all.push_back(testing::random_conv_geometry(rng, i % 2 == 1));
  return all;
}

// Everything the CPU reference computes for a layer: forward (with its ReLU) and backward (with
// the ReLU of its input x, which is itself a ReLU's output).
struct Reference {
  std::vector<float> x, w, b, dy;
  std::vector<float> y, y_relu, dx, dw, db, dx_relu;
};
Reference cpu_reference(const ConvGeometry& g, std::uint64_t seed) {
  CpuOps<float> cpu;
  const ConvCase k = random_conv_case(g, seed);
  Reference r{k.x, k.w, k.b, k.dy, {}, {}, {}, {}, {}, {}};
  for (std::size_t i = 0; i < r.x.size(); ++i)
    if (i % 3 == 0 || r.x[i] < 0.0f) r.x[i] = 0.0f;  // x = ReLU(something): zeros included
  r.y.resize(g.out_count());
  r.y_relu.resize(g.out_count());
  r.dx.resize(g.in_count());
  r.dw.resize(g.weight_count());
  r.db.resize(static_cast<std::size_t>(g.out_channels));
  r.dx_relu.resize(g.in_count());
  if (!g.transposed) {
    cpu.conv2d_forward_relu(g, r.x.data(), r.w.data(), r.b.data(), r.y.data(), r.y_relu.data());
    cpu.conv2d_backward_relu(g, r.x.data(), r.w.data(), r.dy.data(), r.dx.data(), r.dw.data(), r.db.data(),
                             r.dx_relu.data());
  } else {
    cpu.conv_transpose2d_forward_relu(g, r.x.data(), r.w.data(), r.b.data(), r.y.data(), r.y_relu.data());
    cpu.conv_transpose2d_backward_relu(g, r.x.data(), r.w.data(), r.dy.data(), r.dx.data(), r.dw.data(),
                                       r.db.data(), r.dx_relu.data());
  }
  return r;
}

// Pass P of the direct convolution element by element on the host, through the same function the
// kernel calls: what the kernel must write at every index.
template <DirectPass P>
std::vector<float> direct_on_host(const ConvShape& s, const float* in, const float* w, const float* bias) {
  std::vector<float> out(direct_conv_outputs(s, P));
  with_kernel_size(s.kernel, [&](auto ks) {
    for (std::size_t e = 0; e < out.size(); ++e)
      out[e] = direct_conv_element<decltype(ks)::value, P, float>(s, e, in, w, bias);
  });
  return out;
}

}  // namespace

TEST_CASE("emulated kernels: the conv bias gradient in one launch, against the CPU, in any block order",
          "[kernel_emu][conv][bias]") {
  const auto context = kernel_emu::make_context(132);
  Context& c = *context;
  for (const ConvGeometry& g : geometries()) {
    const std::string name = describe(g);
    const Reference r = cpu_reference(g, 31);
    const std::size_t hw = static_cast<std::size_t>(g.out_h()) * g.out_w();
    std::vector<float> db;
    const std::size_t before = kernel_emu::launch_log().launches;
    require_schedule_independent(name + " bias gradient", c, [&] {
      db = poisoned<float>(static_cast<std::size_t>(g.out_channels));
      cuda::launch_channel_bias_grad(c, g.batch, g.out_channels, hw, r.dy.data(), db.data());
      Bytes out;
      append_bytes(out, db);
      return out;
    });
    CHECK(kernel_emu::launch_log().launches - before == kernel_emu::schedules().size());  // one launch each
    compare(name + " bias gradient", db, r.db, kGradient);
  }
  // A Linear layer's bias gradient (hw = 1): column sums, 32 columns a block, 8 row lanes a column
  // (a partial block of columns, and fewer rows than lanes, among the shapes).
  CpuOps<float> cpu;
  for (const LinearGeometry& g : {testing::linear_geometry(100, 800, 256), testing::linear_geometry(100, 256, 800),
                                  testing::linear_geometry(100, 256, 10), testing::linear_geometry(3, 7, 5),
                                  testing::linear_geometry(37, 9, 70)}) {
    const LinearCase k = random_linear_case(g, 41);
    std::vector<float> dx(k.nx), dw(k.nw), db_cpu(static_cast<std::size_t>(g.out_features));
    cpu.linear_backward(g, k.x.data(), k.w.data(), k.dy.data(), dx.data(), dw.data(), db_cpu.data());
    std::vector<float> db;
    const std::size_t before = kernel_emu::launch_log().launches;
    require_schedule_independent(k.name + " bias gradient", c, [&] {
      db = poisoned<float>(static_cast<std::size_t>(g.out_features));
      cuda::launch_channel_bias_grad(c, g.batch, g.out_features, 1, k.dy.data(), db.data());
      Bytes out;
      append_bytes(out, db);
      return out;
    });
    CHECK(kernel_emu::launch_log().launches - before == kernel_emu::schedules().size());  // one launch each
    compare(k.name + " bias gradient", db, db_cpu, kGradient);

    // Through the ReLU after the layer: dy masked by the ReLU's output as it is summed, in the
    // same launch; the bits of the ReLU's backward, then of the column sums above on that dy.
    std::vector<float> relu_y(k.dy.size());
    for (std::size_t i = 0; i < relu_y.size(); ++i) relu_y[i] = i % 3 == 0 ? 0.0f : std::fabs(k.x[i % k.x.size()]);
    std::vector<float> masked_cpu(k.dy.size());
    cpu.relu_backward(k.dy.size(), relu_y.data(), k.dy.data(), masked_cpu.data());
    auto db_masked_separate = poisoned<float>(static_cast<std::size_t>(g.out_features));
    cuda::launch_channel_bias_grad(c, g.batch, g.out_features, 1, masked_cpu.data(), db_masked_separate.data());
    std::vector<float> masked, db_masked;
    const std::size_t launches = kernel_emu::launch_log().launches;
    require_schedule_independent(k.name + " bias gradient through a ReLU", c, [&] {
      masked = poisoned<float>(k.dy.size());
      db_masked = poisoned<float>(static_cast<std::size_t>(g.out_features));
      cuda::launch_linear_bias_grad_through_relu(c, g.batch, g.out_features, relu_y.data(), k.dy.data(),
                                                 masked.data(), db_masked.data());
      Bytes out;
      append_bytes(out, masked);
      append_bytes(out, db_masked);
      return out;
    });
    CHECK(kernel_emu::launch_log().launches - launches == kernel_emu::schedules().size());  // one launch each
    compare_exact(k.name + " dy through the ReLU", masked, masked_cpu);
    compare_exact(k.name + " bias gradient through the ReLU, against the two kernels", db_masked, db_masked_separate);
  }
  CHECK_THROWS_WITH(cuda::launch_channel_bias_grad(c, 0, 10, 1, nullptr, nullptr),
                    Catch::Contains("linear bias gradient"));
  CHECK_THROWS_WITH(cuda::launch_linear_bias_grad_through_relu(c, 4, 0, nullptr, nullptr, nullptr, nullptr),
                    Catch::Contains("linear bias gradient through a ReLU"));
}

TEST_CASE("emulated kernels: the direct forward and backward-data kernels, epilogues included, against the CPU",
          "[kernel_emu][conv][direct]") {
  const auto context = kernel_emu::make_context(8);  // large outputs in a few grid strides
  Context& c = *context;
  for (const ConvGeometry& g : geometries()) {
    const ConvShape s = conv_shape(g);
    REQUIRE(direct_conv_supported(s));
    const Reference r = cpu_reference(g, 53);
    // The shape's own channel block (0), then each one the kernels are compiled for that divides
    // the pass's output channels: the bits are the host's every time. At batch 100 the paper's
    // layers take 16, 4 and 1 of their own accord.
    std::vector<int> blocks{0};
    if (g.batch < 100) blocks.insert(blocks.end(), std::begin(kDirectConvChannelBlocks), std::end(kDirectConvChannelBlocks));
    const DirectPass layer_forward = g.transposed ? DirectPass::BackwardData : DirectPass::Forward;
    const DirectPass layer_backward = g.transposed ? DirectPass::Forward : DirectPass::BackwardData;
    for (const int block : blocks) {
      const std::string name = describe(g) + ", channel block " + std::to_string(block);
      std::vector<float> exact;
      if (block == 0 || direct_conv_block_fits(s, layer_forward, block)) {
        // The layer's forward: Conv2d's is the conv's forward, ConvTranspose2d's its backward-data.
        auto y = poisoned<float>(g.out_count()), y_relu = poisoned<float>(g.out_count());
        if (!g.transposed) {
          cuda::launch_direct_forward(c, s, r.x.data(), r.w.data(), r.b.data(), y.data(),
                                      cuda::DirectEpilogue{y_relu.data()}, block);
          exact = direct_on_host<DirectPass::Forward>(s, r.x.data(), r.w.data(), r.b.data());
        } else {
          cuda::launch_direct_backward_data(c, s, r.x.data(), r.w.data(), r.b.data(), y.data(),
                                            cuda::DirectEpilogue{y_relu.data()}, block);
          exact = direct_on_host<DirectPass::BackwardData>(s, r.x.data(), r.w.data(), r.b.data());
        }
        compare_exact(name + " direct forward, every element as on the host", y, exact);
        compare(name + " direct forward against the CPU", y, r.y, kForward);
        compare(name + " direct forward's ReLU against the CPU", y_relu, r.y_relu, kForward);
      }
      if (block == 0 || direct_conv_block_fits(s, layer_backward, block)) {
        // The layer's input gradient, and through the ReLU that made x: the other pass.
        auto dx = poisoned<float>(g.in_count()), dx_relu = poisoned<float>(g.in_count());
        const cuda::DirectEpilogue through_relu{nullptr, r.x.data(), dx_relu.data()};
        if (!g.transposed) {
          cuda::launch_direct_backward_data(c, s, r.dy.data(), r.w.data(), nullptr, dx.data(), through_relu, block);
          exact = direct_on_host<DirectPass::BackwardData>(s, r.dy.data(), r.w.data(), nullptr);
        } else {
          cuda::launch_direct_forward(c, s, r.dy.data(), r.w.data(), nullptr, dx.data(), through_relu, block);
          exact = direct_on_host<DirectPass::Forward>(s, r.dy.data(), r.w.data(), nullptr);
        }
        compare_exact(name + " direct input gradient, every element as on the host", dx, exact);
        compare(name + " direct input gradient against the CPU", dx, r.dx, kGradient);
        compare(name + " direct input gradient through the ReLU against the CPU", dx_relu, r.dx_relu, kGradient);
      }
    }
  }
  const ConvShape s = conv_shape(testing::paper_conv2(2));
  std::vector<float> data(direct_conv_outputs(s, DirectPass::BackwardData) + direct_conv_outputs(s, DirectPass::Forward));
  CHECK_THROWS_WITH(cuda::launch_direct_forward(c, s, data.data(), data.data(), nullptr, data.data(), {}, 8),
                    Catch::Contains("direct forward: no kernel compiled for a channel block of 8"));
  // A compiled block that would leave a block short: ConvTranspose2d(16 -> 1)'s one output channel.
  const ConvShape one_channel = conv_shape(testing::paper_deconv2(2));
  std::vector<float> big(direct_conv_outputs(one_channel, DirectPass::BackwardData) +
                         direct_conv_outputs(one_channel, DirectPass::Forward) +
                         static_cast<std::size_t>(one_channel.k) * one_channel.c * 9);
  CHECK_THROWS_WITH(
      cuda::launch_direct_backward_data(c, one_channel, big.data(), big.data(), nullptr, big.data(), {}, 4),
      Catch::Contains("direct backward-data: a channel block of 4 does not divide the 1 output channels"));
}

TEST_CASE("emulated kernels: the direct backward-filter, the layer's bias gradient with it, in one launch, against "
          "the CPU, in any block order",
          "[kernel_emu][conv][wgrad]") {
  const auto context = kernel_emu::make_context(132);
  Context& c = *context;
  for (const ConvGeometry& g : geometries()) {
    const std::string name = describe(g);
    const ConvShape s = conv_shape(g);
    REQUIRE(direct_weight_grad_supported(s));
    const Reference r = cpu_reference(g, 67);
    // Conv2d: src = x, ddst = dy; ConvTranspose2d: src = dy, ddst = x (models/conv_shape.h).
    const float* src = g.transposed ? r.dy.data() : r.x.data();
    const float* ddst = g.transposed ? r.x.data() : r.dy.data();
    // Exactly the bytes the partials need, so that the sanitizers see any write past them.
    const std::size_t bytes = cuda::direct_weight_grad_workspace_bytes(s);
    std::vector<double> workspace(bytes / sizeof(double));
    void* partials = workspace.empty() ? nullptr : workspace.data();
    // The bias gradient comes in the same launch: a Conv2d's over ddst's channels, a
    // ConvTranspose2d's over src's (rows of blocks of their own, where they fit).
    const bool with_bias = !g.transposed || direct_weight_grad_fuses_src_bias(s);
    const cuda::BiasOf bias_of = g.transposed ? cuda::BiasOf::Src : cuda::BiasOf::Dst;
    std::vector<float> dw, db;
    const std::size_t before = kernel_emu::launch_log().launches;
    require_schedule_independent(name + " direct weight gradient", c, [&] {
      dw = poisoned<float>(g.weight_count());
      db = poisoned<float>(static_cast<std::size_t>(g.out_channels));
      cuda::launch_direct_weight_grad(c, s, src, ddst, dw.data(), partials, with_bias ? db.data() : nullptr, bias_of);
      Bytes out;
      append_bytes(out, dw);
      if (with_bias) append_bytes(out, db);
      return out;
    });
    CHECK(kernel_emu::launch_log().launches - before == kernel_emu::schedules().size());  // one launch each
    compare(name + " direct weight gradient against the CPU", dw, r.dw, kGradient);
    if (!with_bias) continue;
    compare(name + " bias gradient with the weight gradient against the CPU", db, r.db, kGradient);
    auto dw_alone = poisoned<float>(g.weight_count());  // without db: the same bits of dw
    cuda::launch_direct_weight_grad(c, s, src, ddst, dw_alone.data(), partials);
    CHECK(dw_alone == dw);
  }
}

TEST_CASE("emulated kernels: the direct forward fused with its ReLU and 2x2 max pooling, the bits of the two "
          "kernels it replaces, in one launch",
          "[kernel_emu][conv][direct][pool]") {
  const auto context = kernel_emu::make_context(8);
  Context& c = *context;
  std::vector<ConvGeometry> shapes;
  for (const ConvGeometry& g : geometries())
    if (!g.transposed && g.padding == 0 && g.out_h() >= 2 && g.out_w() >= 2) shapes.push_back(g);
  REQUIRE(shapes.size() >= 8);  // the paper's two Conv2d layers at three batch sizes, and random ones
  for (const ConvGeometry& g : shapes) {
    const ConvShape s = conv_shape(g);
    const PoolGeometry p = testing::pool_geometry(g.batch, g.out_channels, g.out_h(), g.out_w());
    REQUIRE(direct_pool_supported(s, p));
    const Reference r = cpu_reference(g, 61);
    // What the fused kernel replaces: the direct forward, then bias (none left), ReLU and pooling.
    auto y_want = poisoned<float>(g.out_count()), relu_want = poisoned<float>(g.out_count());
    auto pooled_want = poisoned<float>(p.out_count());
    auto argmax_want = poisoned<std::int32_t>(p.out_count());
    cuda::launch_direct_forward(c, s, r.x.data(), r.w.data(), r.b.data(), y_want.data());
    cuda::launch_bias_relu_maxpool(c, p, nullptr, y_want.data(), relu_want.data(), pooled_want.data(),
                                   argmax_want.data());
    std::vector<int> blocks{0};
    if (g.batch < 100)
      blocks.insert(blocks.end(), std::begin(kDirectConvChannelBlocks), std::end(kDirectConvChannelBlocks));
    for (const int block : blocks) {
      if (block > kDirectPoolChannelBlocks[0] || (block != 0 && !direct_conv_block_fits(s, DirectPass::Forward, block)))
        continue;
      const std::string name = describe(g) + ", channel block " + std::to_string(block);
      auto y = poisoned<float>(g.out_count()), y_relu = poisoned<float>(g.out_count());
      auto pooled = poisoned<float>(p.out_count());
      auto argmax = poisoned<std::int32_t>(p.out_count());
      const std::size_t launches = kernel_emu::launch_log().launches;
      cuda::launch_direct_forward_relu_maxpool(c, s, p, r.x.data(), r.w.data(), r.b.data(), y.data(), y_relu.data(),
                                               pooled.data(), argmax.data(), block);
      CHECK(kernel_emu::launch_log().launches - launches == 1);
      compare_exact(name + " fused: y", y, y_want);
      compare_exact(name + " fused: ReLU(y)", y_relu, relu_want);
      compare_exact(name + " fused: pooled", pooled, pooled_want);
      compare_exact(name + " fused: argmax", argmax, argmax_want);
      compare(name + " fused: ReLU(y) against the CPU", y_relu, r.y_relu, kForward);
    }
  }
  // Refused before any launch: a padded Conv2d, windows that are not 2x2 at stride 2, a block that
  // leaves one short.
  const ConvGeometry g = testing::paper_conv2(2);
  const PoolGeometry p = testing::pool_geometry(2, 32, 11, 11);
  std::vector<float> data(g.in_count() + g.out_count() + g.weight_count());
  std::vector<std::int32_t> argmax(p.out_count());
  ConvGeometry padded = g;
  padded.padding = 1;
  const PoolGeometry padded_pool = testing::pool_geometry(2, 32, 13, 13);
  const std::size_t launches = kernel_emu::launch_log().launches;
  CHECK_THROWS_WITH(cuda::launch_direct_forward_relu_maxpool(c, conv_shape(padded), padded_pool, data.data(),
                                                             data.data(), nullptr, data.data(), data.data(),
                                                             data.data(), argmax.data()),
                    Catch::Contains("direct forward with ReLU and max pooling: unsupported shapes (kernel 3, "
                                    "padding 1, pooling 2 at stride 2 over 13x13; the forward's output is 13x13)"));
  const PoolGeometry threes = testing::pool_geometry(2, 32, 11, 11, 3);
  CHECK_THROWS_WITH(cuda::launch_direct_forward_relu_maxpool(c, conv_shape(g), threes, data.data(), data.data(),
                                                             nullptr, data.data(), data.data(), data.data(),
                                                             argmax.data()),
                    Catch::Contains("unsupported shapes (kernel 3, padding 0, pooling 3 at stride 3 over 11x11"));
  const ConvGeometry twenty_two = testing::conv_geometry(2, 1, 28, 28, 22, 3);
  const PoolGeometry twenty_two_pool = testing::pool_geometry(2, 22, 26, 26);
  CHECK_THROWS_WITH(cuda::launch_direct_forward_relu_maxpool(c, conv_shape(twenty_two), twenty_two_pool, data.data(),
                                                             data.data(), nullptr, data.data(), data.data(),
                                                             data.data(), argmax.data(), 4),
                    Catch::Contains("a channel block of 4 does not divide the 22 output channels"));
  CHECK_THROWS_WITH(cuda::launch_direct_forward_relu_maxpool(c, conv_shape(g), p, data.data(), data.data(), nullptr,
                                                             data.data(), data.data(), data.data(), argmax.data(), 16),
                    Catch::Contains("no kernel compiled for a channel block of 16"));
  CHECK_THROWS_WITH(cuda::launch_direct_forward_relu_maxpool(c, conv_shape(g), p, data.data(), data.data(), nullptr,
                                                             data.data(), nullptr, data.data(), argmax.data()),
                    Catch::Contains("null input, filter or output"));
  CHECK(kernel_emu::launch_log().launches == launches);
}

TEST_CASE("emulated kernels: a Conv2d's direct input gradient fused with the backward of the 2x2 max pooling and "
          "ReLU below it, the bits of the two kernels it replaces, in one launch",
          "[kernel_emu][conv][direct][pool]") {
  const auto context = kernel_emu::make_context(8);
  Context& c = *context;
  // The paper's second Conv2d at batch 100, 37 and 1 after its pooling (26x26), then the Conv2d
  // layers of geometries() after a pooling of twice their input plus 1 (a row and column left).
  std::vector<std::pair<ConvGeometry, PoolGeometry>> cases;
  for (const int batch : {100, 37, 1})
    cases.push_back({testing::paper_conv2(batch), testing::pool_geometry(batch, 16, 26, 26)});
  for (const ConvGeometry& g : geometries())
    if (!g.transposed && g.batch < 37)
      cases.push_back({g, testing::pool_geometry(g.batch, g.in_channels, 2 * g.in_h + 1, 2 * g.in_w + 1)});
  REQUIRE(cases.size() >= 8);
  CpuOps<float> cpu;
  for (const auto& [g, p] : cases) {
    const ConvShape s = conv_shape(g);
    REQUIRE(direct_pool_backward_supported(s, p));
    const Reference r = cpu_reference(g, 67);
    std::vector<float> relu_y = uniform(p.in_count(), -1.0, 1.0, 68);
    for (float& v : relu_y) v = v > 0.0f ? v : 0.0f;  // a ReLU's output: ties of 0 in the windows
    std::vector<float> pooled(p.out_count());
    std::vector<std::int32_t> argmax(p.out_count());
    cpu.maxpool2d_forward(p, relu_y.data(), pooled.data(), argmax.data());
    // What the fused kernel replaces: the direct backward-data, then the pooling's backward with
    // the ReLU's.
    auto dsrc_want = poisoned<float>(g.in_count()), dx_want = poisoned<float>(p.in_count()),
         relu_dx_want = poisoned<float>(p.in_count());
    cuda::launch_direct_backward_data(c, s, r.dy.data(), r.w.data(), nullptr, dsrc_want.data());
    cuda::launch_maxpool_backward(c, p, dsrc_want.data(), argmax.data(), dx_want.data(), relu_y.data(),
                                  relu_dx_want.data());
    std::vector<int> blocks{0};
    if (g.batch < 100)
      blocks.insert(blocks.end(), std::begin(kDirectConvChannelBlocks), std::end(kDirectConvChannelBlocks));
    for (const int block : blocks) {
      if (block != 0 && !direct_conv_block_fits(s, DirectPass::BackwardData, block)) continue;
      const std::string name = describe(g) + ", channel block " + std::to_string(block);
      auto dsrc = poisoned<float>(g.in_count()), dx = poisoned<float>(p.in_count()),
           relu_dx = poisoned<float>(p.in_count());
      const std::size_t launches = kernel_emu::launch_log().launches;
      cuda::launch_direct_backward_data_maxpool_relu(c, s, p, r.dy.data(), r.w.data(), dsrc.data(), argmax.data(),
                                                     relu_y.data(), dx.data(), relu_dx.data(), block);
      CHECK(kernel_emu::launch_log().launches - launches == 1);
      compare_exact(name + " fused: the convolution's dx", dsrc, dsrc_want);
      compare_exact(name + " fused: the pooling's dx", dx, dx_want);
      compare_exact(name + " fused: the ReLU's dx", relu_dx, relu_dx_want);
      compare(name + " fused: the convolution's dx against the CPU", dsrc, r.dx, kGradient);
    }
  }
  // Refused before any launch: a pooling that did not make the convolution's input.
  const ConvGeometry g = testing::paper_conv2(2);
  std::vector<float> data(2 * 16 * 26 * 26 + g.out_count() + g.weight_count());
  std::vector<std::int32_t> argmax(2 * 16 * 13 * 13);
  const std::size_t launches = kernel_emu::launch_log().launches;
  CHECK_THROWS_WITH(cuda::launch_direct_backward_data_maxpool_relu(
                        c, conv_shape(g), testing::pool_geometry(2, 16, 24, 24), data.data(), data.data(),
                        data.data(), argmax.data(), data.data(), data.data(), data.data()),
                    Catch::Contains("direct backward-data with max pooling's and ReLU's backward: unsupported shapes "
                                    "(pooling 2 at stride 2 of 16x24x24; the convolution's input is 16x13x13)"));
  CHECK_THROWS_WITH(cuda::launch_direct_backward_data_maxpool_relu(
                        c, conv_shape(g), testing::pool_geometry(2, 16, 26, 26), data.data(), data.data(),
                        data.data(), argmax.data(), nullptr, data.data(), data.data()),
                    Catch::Contains("null input, filter or output"));
  CHECK(kernel_emu::launch_log().launches == launches);
}
