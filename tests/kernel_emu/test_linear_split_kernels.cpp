// fmnist's split-K Linear products (cuda/linear_split.cu) run by the CPU kernel emulator, the forward
// and the input and weight gradients: every element bit for bit as models/linear_split.h's
// linear_split_element, within fmnist_gpu_tests' tolerance of the CPU reference's Linear, the same
// bits in any block order, one launch.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "cuda/linear_split.h"
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
          testing::linear_geometry(64, 1000, 129), testing::linear_geometry(2048, 64, 128)};
}

// Every element of pass `pass` on the host, through the function the kernel's threads run.
std::vector<float> on_host(const LinearGeometry& g, LinearPass pass, const float* in, const float* w,
                           const float* bias) {
  const LinearProduct p = linear_product(g, pass);
  const LinearSplit split = linear_split(p);
  std::vector<float> out(static_cast<std::size_t>(p.rows) * p.outputs);
  for (int r = 0; r < p.rows; ++r)
    for (int o = 0; o < p.outputs; ++o)
      out[static_cast<std::size_t>(r) * p.outputs + o] = linear_split_element(p, split, in, w, bias, r, o);
  return out;
}

}  // namespace

TEST_CASE("emulated kernels: the split-K Linear products, the forward's bias and ReLU or Sigmoid, against the "
          "CPU, in any block order",
          "[kernel_emu][linear]") {
  const auto context = kernel_emu::make_context(132);
  cuda::Context& c = *context;
  CpuOps<float> cpu;
  for (const LinearGeometry& g : geometries()) {
    const LinearCase k = random_linear_case(g, 71);
    const LinearSplit forward = linear_split(linear_product(g, LinearPass::Forward));
    const LinearSplit backward = linear_split(linear_product(g, LinearPass::BackwardData));
    INFO(k.name << ": forward " << forward.tiles << " tiles, " << forward.slices << " slices of "
                << forward.slice_length << "; backward-data " << backward.tiles << " tiles, " << backward.slices
                << " slices of " << backward.slice_length << "; weight gradient "
                << linear_split(linear_product(g, LinearPass::WeightGrad)).slices << " slices");
    REQUIRE(cuda::linear_split_kernel_supported(g));
    std::vector<float> y_cpu(k.ny), y_relu_cpu(k.ny), dx_cpu(k.nx), dw_cpu(k.nw);
    cpu.linear_forward_relu(g, k.x.data(), k.w.data(), k.b.data(), y_cpu.data(), y_relu_cpu.data());
    cpu.linear_backward(g, k.x.data(), k.w.data(), k.dy.data(), dx_cpu.data(), dw_cpu.data(), nullptr);
    // One workspace for the three passes; each pass's size is its slices' (rows, outputs) planes.
    std::size_t workspace_bytes = 0;
    for (const LinearPass pass : {LinearPass::Forward, LinearPass::BackwardData, LinearPass::WeightGrad}) {
      const LinearProduct p = linear_product(g, pass);
      const LinearSplit split = linear_split(p);
      const std::size_t bytes = cuda::linear_split_workspace_bytes(g, pass);
      CHECK(bytes == (split.slices > 1 ? std::size_t(split.slices) * p.rows * p.outputs * sizeof(float) : 0));
      workspace_bytes = std::max(workspace_bytes, bytes);
    }
    std::vector<float> workspace(workspace_bytes / sizeof(float));
    float* scratch = workspace.empty() ? nullptr : workspace.data();

    // launch() into poisoned outputs of `count` elements (and the ReLU's, when `relu` is given), under
    // every schedule: the same bytes each time, one launch each; returns the output.
    auto run_pass = [&](const std::string& what, std::size_t count, std::vector<float>* relu, auto launch) {
      std::vector<float> out;
      const std::size_t before = kernel_emu::launch_log().launches;
      require_schedule_independent(k.name + " " + what, c, [&] {
        out = poisoned<float>(count);
        if (relu != nullptr) *relu = poisoned<float>(count);
        launch(out.data(), relu != nullptr ? relu->data() : nullptr);
        Bytes bytes;
        append_bytes(bytes, out);
        if (relu != nullptr) append_bytes(bytes, *relu);
        return bytes;
      });
      CHECK(kernel_emu::launch_log().launches - before == kernel_emu::schedules().size());
      return out;
    };

    std::vector<float> y_relu;
    const auto y = run_pass("split-K forward", k.ny, &y_relu, [&](float* out, float* relu) {
      cuda::launch_linear_split_forward(c, g, k.x.data(), k.w.data(), k.b.data(), out, relu, scratch);
    });
    CHECK(compare_exact(k.name + " split-K forward, every element as on the host", y,
                        on_host(g, LinearPass::Forward, k.x.data(), k.w.data(), k.b.data())));
    compare(k.name + " split-K forward against the CPU", y, y_cpu, kForward);
    compare(k.name + " split-K forward's ReLU against the CPU", y_relu, y_relu_cpu, kForward);
    const auto y_no_bias = run_pass("split-K forward without a bias or a ReLU", k.ny, nullptr, [&](float* out, float*) {
      cuda::launch_linear_split_forward(c, g, k.x.data(), k.w.data(), nullptr, out, nullptr, scratch);
    });
    CHECK(compare_exact(k.name + " split-K forward without a bias", y_no_bias,
                        on_host(g, LinearPass::Forward, k.x.data(), k.w.data(), nullptr)));
    // The classifier head's epilogue: the same y, and the CPU's Sigmoid of it, bit for bit.
    std::vector<float> y_sigmoid, sigmoid_of_y(k.ny);
    const auto y_head = run_pass("split-K forward with its Sigmoid", k.ny, &y_sigmoid, [&](float* out, float* act) {
      cuda::launch_linear_split_forward(c, g, k.x.data(), k.w.data(), k.b.data(), out, act, scratch,
                                        elementwise::Activation::Sigmoid);
    });
    cpu.sigmoid_forward(k.ny, y.data(), sigmoid_of_y.data());
    CHECK(compare_exact(k.name + " split-K forward with a Sigmoid: y", y_head, y));
    CHECK(compare_exact(k.name + " split-K forward's Sigmoid, as the CPU's of y", y_sigmoid, sigmoid_of_y));

    const auto dx = run_pass("split-K backward-data", k.nx, nullptr, [&](float* out, float*) {
      cuda::launch_linear_split_backward_data(c, g, k.w.data(), k.dy.data(), out, scratch);
    });
    CHECK(compare_exact(k.name + " split-K backward-data, every element as on the host", dx,
                        on_host(g, LinearPass::BackwardData, k.dy.data(), k.w.data(), nullptr)));
    compare(k.name + " split-K backward-data against the CPU", dx, dx_cpu, kGradient);

    const auto dw = run_pass("split-K weight gradient", k.nw, nullptr, [&](float* out, float*) {
      cuda::launch_linear_split_weight_grad(c, g, k.x.data(), k.dy.data(), out, scratch);
    });
    CHECK(compare_exact(k.name + " split-K weight gradient, every element as on the host", dw,
                        on_host(g, LinearPass::WeightGrad, k.dy.data(), k.x.data(), nullptr)));
    compare(k.name + " split-K weight gradient against the CPU", dw, dw_cpu, kGradient);
    CHECK(kernel_emu::counters_clear(c));
  }
}

TEST_CASE("emulated kernels: the split-K Linear products refuse what they cannot compute", "[kernel_emu][linear]") {

  const auto context = kernel_emu::make_context(132);
  std::vector<float> data(1000);
  CHECK_THROWS_WITH(cuda::launch_linear_split_forward(*context, testing::linear_geometry(0, 8, 8), data.data(),
                                                      data.data(), nullptr, data.data(), nullptr, nullptr),
                    Catch::Contains("split-K linear forward: unsupported shape (0 x 8 -> 8)"));
  CHECK_THROWS_WITH(cuda::launch_linear_split_forward(*context, testing::linear_geometry(2, 8, 8), nullptr,
                                                      data.data(), nullptr, data.data(), nullptr, nullptr),
                    Catch::Contains("split-K linear forward: null input, weight or output"));
  CHECK_THROWS_WITH(cuda::launch_linear_split_forward(*context, testing::linear_geometry(100, 800, 256), data.data(),
                                                      data.data(), nullptr, data.data(), nullptr, nullptr),
                    Catch::Contains("split-K linear forward: null workspace"));
  CHECK_THROWS_WITH(cuda::launch_linear_split_backward_data(*context, testing::linear_geometry(100, 256, 800),
                                                            data.data(), data.data(), data.data(), nullptr),
                    Catch::Contains("split-K linear backward-data: null workspace"));
  CHECK_THROWS_WITH(cuda::launch_linear_split_weight_grad(*context, testing::linear_geometry(100, 800, 256),
                                                          data.data(), data.data(), nullptr, nullptr),
                    Catch::Contains("split-K linear weight gradient: null input, weight or output"));
}
