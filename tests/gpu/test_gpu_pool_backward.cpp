// conv2d_backward_maxpool_relu on the GPU: a Conv2d's backward handed to the MaxPool2d and the ReLU
// below it (one kernel on the direct backward-data, cuda/direct_conv.h) against conv2d_backward then
// maxpool2d_backward_relu on the same backend, every output bit for bit, with cuDNN's input
// gradient and with fmnist's direct one; a pooling that did not make the convolution's input refused.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "gpu_test_support.h"
#include "tests/op_shapes.h"

using namespace fmnist;
using namespace fmnist::gputest;
using namespace fmnist::testing;  // conv_geometry, paper_conv2, pool_geometry, describe

namespace {

// Conv2d g whose input the 2x2 pooling p made from a ReLU's output: that output random (about half
// of it 0, so the windows hold ties), pooled on the device for the convolution's input and argmax.
void check_conv_backward_maxpool_relu(const ConvGeometry& g, const PoolGeometry& p, std::uint64_t seed,
                                      Ops<float>& G) {
  INFO(describe(g) + " after MaxPool2d over " + std::to_string(p.in_h) + "x" + std::to_string(p.in_w));
  std::vector<float> relu_y = uniform(p.in_count(), -1.0, 1.0, seed);
  for (float& v : relu_y) v = v > 0.0f ? v : 0.0f;
  const ConvCase c = random_conv_case(g, seed + 1);
  DeviceBuffer<float> y(G, relu_y), x(G, g.in_count()), w(G, c.w), dy(G, c.dy);
  DeviceBuffer<std::int32_t> argmax(G, p.out_count());
  G.maxpool2d_forward(p, y.get(), x.get(), argmax.get());

  DeviceBuffer<float> dx1(G, g.in_count()), dw1(G, g.weight_count()), db1(G, g.out_channels),
      pdx1(G, p.in_count()), pr1(G, p.in_count());
  DeviceBuffer<float> dx2(G, g.in_count()), dw2(G, g.weight_count()), db2(G, g.out_channels),
      pdx2(G, p.in_count()), pr2(G, p.in_count());
  for (auto* b : {&dx1, &dw1, &db1, &pdx1, &pr1, &dx2, &dw2, &db2, &pdx2, &pr2}) b->poison();
  G.conv2d_backward(g, x.get(), w.get(), dy.get(), dx1.get(), dw1.get(), db1.get());
  G.maxpool2d_backward_relu(p, y.get(), dx1.get(), argmax.get(), pdx1.get(), pr1.get());
  G.conv2d_backward_maxpool_relu(g, p, x.get(), w.get(), dy.get(), dx2.get(), dw2.get(), db2.get(), y.get(),
                                 argmax.get(), pdx2.get(), pr2.get());
  compare_exact("dx, fused vs separate", dx2.download(), dx1.download());
  compare_exact("dw, fused vs separate", dw2.download(), dw1.download());
  compare_exact("db, fused vs separate", db2.download(), db1.download());
  compare_exact("the pooling's dx, fused vs separate", pdx2.download(), pdx1.download());
  compare_exact("the ReLU's dx, fused vs separate", pr2.download(), pr1.download());
}

void check_conv_backward_maxpool_relu_layers(Ops<float>& G) {
  std::uint64_t seed = 80;
  // The paper's second Conv2d after conv1's pooling (26x26 -> 13x13), at batch 100 and 7.
  for (const int batch : {100, 7})
    check_conv_backward_maxpool_relu(paper_conv2(batch), pool_geometry(batch, 16, 26, 26), seed++, G);
  // A pooling that leaves a row and a column (11x11 -> 5x5), and a Conv2d at stride 2 after a
  // pooling of 13x12 (6x6).
  check_conv_backward_maxpool_relu(conv_geometry(3, 32, 5, 5, 8, 3), pool_geometry(3, 32, 11, 11), seed++, G);
  check_conv_backward_maxpool_relu(conv_geometry(2, 4, 6, 6, 8, 2, 2), pool_geometry(2, 4, 13, 12), seed++, G);
  // A pooling whose output is not the convolution's input is refused, naming the op.
  const ConvGeometry g = paper_conv2(2);
  const PoolGeometry wrong = pool_geometry(2, 16, 24, 24);
  DeviceBuffer<float> buffer(G, 2 * 16 * 26 * 26);
  DeviceBuffer<std::int32_t> argmax(G, 2 * 16 * 13 * 13);
  float* b = buffer.get();
  CHECK_THROWS_WITH(G.conv2d_backward_maxpool_relu(g, wrong, b, b, b, b, nullptr, nullptr, b, argmax.get(), b, b),
                    Catch::Contains("conv2d_backward_maxpool_relu") && Catch::Contains("not the convolution's input"));
}

}  // namespace

TEST_CASE("GPU Conv2d backward handed to the MaxPool2d and ReLU below it equals the ops one after the other",
          "[gpu][conv][pool][sanitize]") {
  check_conv_backward_maxpool_relu_layers(gpu());
}

TEST_CASE("GPU Conv2d backward handed to the MaxPool2d and ReLU below it equals the ops one after the other with "
          "the direct kernels",
          "[gpu][conv][pool][dgrad][sanitize]") {
  check_conv_backward_maxpool_relu_layers(direct_conv_gpu());
}
