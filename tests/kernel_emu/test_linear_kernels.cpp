// fmnist's split-K Linear forward (cuda/linear_forward.cu) run by the CPU kernel emulator: every
// element bit for bit as models/linear_split.h's linear_split_element, within fmnist_gpu_tests'
// tolerance of the CPU reference's Linear, the same bits in any block order, one launch.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "cuda/linear_forward.h"
#include "host/reference/cpu_ops.h"
#include "kernel_emu_support.h"
#include "models/linear_split.h"
#include "../op_shapes.h"

namespace {

using namespace fmnist;
using namespace fmnist::gputest;
using fmnist::kernel_emu::Bytes;
using fmnist::kernel_emu::append_bytes;
using fmnist::kernel_emu::require_schedule_independent;

// The paper's Linear layers at batch 100 (AE: 800 -> 256 in 7 slices, 256 -> 800 in 3; C's head
// 256 -> 10 and 64 -> 10), then shapes with partial tiles, a depth not a multiple of a stage, one
// slice (many tiles), one input, one row.
std::vector<LinearGeometry> geometries() {
  return {testing::linear_geometry(100, 800, 256), testing::linear_geometry(100, 256, 800),
          testing::linear_geometry(100, 256, 10),  testing::linear_geometry(100, 64, 10),
          testing::linear_geometry(37, 45, 70),    testing::linear_geometry(1, 800, 64),
          testing::linear_geometry(300, 33, 130),  testing::linear_geometry(5, 1, 3),
          testing::linear_geometry(64, 1000, 129), testing::linear_geometry(4096, 256, 800)};
}

}  // namespace

TEST_CASE("emulated kernels: the split-K Linear forward with its bias and ReLU, against the CPU, in any block order",
          "[kernel_emu][linear]") {
  const auto context = kernel_emu::make_context(132);
  cuda::Context& c = *context;
  CpuOps<float> cpu;
  for (const LinearGeometry& g : geometries()) {
    const LinearCase k = random_linear_case(g, 71);
    const LinearSplit split = linear_split(g);
    INFO(k.name << ": " << split.tiles << " tiles, " << split.slices << " slices of " << split.slice_length);
    REQUIRE(cuda::linear_forward_supported(g));
    std::vector<float> y_cpu(k.ny), y_relu_cpu(k.ny);
    cpu.linear_forward_relu(g, k.x.data(), k.w.data(), k.b.data(), y_cpu.data(), y_relu_cpu.data());
    std::vector<float> exact(k.ny), exact_no_bias(k.ny);
    for (int r = 0; r < g.batch; ++r)
      for (int o = 0; o < g.out_features; ++o) {
        const std::size_t i = static_cast<std::size_t>(r) * g.out_features + o;
        exact[i] = linear_split_element(g, split, k.x.data(), k.w.data(), k.b.data(), r, o);
        exact_no_bias[i] = linear_split_element<float>(g, split, k.x.data(), k.w.data(), nullptr, r, o);
      }
    std::vector<float> workspace(cuda::linear_forward_workspace_bytes(g) / sizeof(float));
    CHECK(workspace.size() == (split.slices > 1 ? split.slices * k.ny : 0));
    std::vector<float> y, y_relu;
    const std::size_t before = kernel_emu::launch_log().launches;
    require_schedule_independent(k.name + " split-K forward", c, [&] {
      y = poisoned<float>(k.ny);
      y_relu = poisoned<float>(k.ny);
      cuda::launch_linear_forward(c, g, k.x.data(), k.w.data(), k.b.data(), y.data(), y_relu.data(),
                                  workspace.empty() ? nullptr : workspace.data());
      Bytes out;
      append_bytes(out, y);
      append_bytes(out, y_relu);
      return out;
    });
    CHECK(kernel_emu::launch_log().launches - before == kernel_emu::schedules().size());  // one launch each
    CHECK(compare_exact(k.name + " split-K forward, every element as on the host", y, exact));
    compare(k.name + " split-K forward against the CPU", y, y_cpu, kForward);
    compare(k.name + " split-K forward's ReLU against the CPU", y_relu, y_relu_cpu, kForward);

    // Without a bias and without the ReLU: y alone, nothing else touched.
    y = poisoned<float>(k.ny);
    cuda::launch_linear_forward(c, g, k.x.data(), k.w.data(), nullptr, y.data(), nullptr,
                                workspace.empty() ? nullptr : workspace.data());
    CHECK(compare_exact(k.name + " split-K forward without a bias", y, exact_no_bias));
    CHECK(kernel_emu::counters_clear(c));
  }
}

TEST_CASE("emulated kernels: the split-K Linear forward's cut and its refusals", "[kernel_emu][linear]") {
  // The cut: whole stages, every input in exactly one slice, about kLinearTargetBlocks blocks.
  for (const LinearGeometry& g : geometries()) {
    const LinearSplit s = linear_split(g);
    INFO(g.batch << " x " << g.in_features << " -> " << g.out_features);
    CHECK(s.slice_length % kLinearTileDepth == 0);
    CHECK(s.slices >= 1);
    CHECK(s.slices * s.slice_length >= g.in_features);
    CHECK((s.slices - 1) * s.slice_length < g.in_features);  // the last slice is not empty
    CHECK(s.slices <= kLinearTargetBlocks);
    if (s.slices > 1) CHECK(s.tiles * (s.slices - 1) < kLinearTargetBlocks);
  }
  const LinearSplit ae_encoder = linear_split(testing::linear_geometry(100, 800, 256));
  CHECK(ae_encoder.tiles == 16);
  CHECK(ae_encoder.slices == 7);
  CHECK(ae_encoder.slice_length == 128);

  const auto context = kernel_emu::make_context(132);
  std::vector<float> data(1000);
  CHECK_THROWS_WITH(cuda::launch_linear_forward(*context, testing::linear_geometry(0, 8, 8), data.data(),
                                                data.data(), nullptr, data.data(), nullptr, nullptr),
                    Catch::Contains("linear forward: unsupported shape (0 x 8 -> 8)"));
  CHECK_THROWS_WITH(cuda::launch_linear_forward(*context, testing::linear_geometry(2, 8, 8), nullptr, data.data(),
                                                nullptr, data.data(), nullptr, nullptr),
                    Catch::Contains("linear forward: null input, weight or output"));
  CHECK_THROWS_WITH(cuda::launch_linear_forward(*context, testing::linear_geometry(100, 800, 256), data.data(),
                                                data.data(), nullptr, data.data(), nullptr, nullptr),
                    Catch::Contains("linear forward: null workspace"));
}
