// The output layer's forward and the training loss as one op on the GPU (the bias and the
// activation in the loss's kernel after cuDNN's or cuBLAS's product, cuda/kernels.h's
// OutputEpilogue) against the two ops one after the other on the same backend, every output bit
// for bit: an AE's last ConvTranspose2d + ReLU with L1 and MSE, a classifier's head + Sigmoid with
// the cross-entropy, on the default kernels and on fmnist's own; a missing gradient refused.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "gpu_test_support.h"
#include "tests/op_shapes.h"

using namespace fmnist;
using namespace fmnist::gputest;
using namespace fmnist::testing;  // conv_geometry, paper_deconv2, linear_geometry, describe

namespace {

// Poisoned outputs of both paths, so that an element one path leaves unwritten shows.
struct LossOutputs {
  DeviceBuffer<float> y, act, dpred, dact, loss;
  DeviceBuffer<double> loss_sum;
  LossOutputs(Ops<float>& G, std::size_t n)
      : y(G, n), act(G, n), dpred(G, n), dact(G, n), loss(G, 1), loss_sum(G, std::vector<double>{0.25}) {
    for (auto* b : {&y, &act, &dpred, &dact, &loss}) b->poison();
  }
};

void compare_outputs(LossOutputs& fused, LossOutputs& separate) {
  compare_exact("y (the product + bias), fused vs separate", fused.y.download(), separate.y.download());
  compare_exact("the activation's output, fused vs separate", fused.act.download(), separate.act.download());
  compare_exact("d loss / d output, fused vs separate", fused.dpred.download(), separate.dpred.download());
  compare_exact("the activation's input gradient, fused vs separate", fused.dact.download(),
                separate.dact.download());
  compare_exact("loss, fused vs separate", fused.loss.download(), separate.loss.download());
  compare_exact("loss sum, fused vs separate", fused.loss_sum.download(), separate.loss_sum.download());
}

// ConvTranspose2d g (+ ReLU) then its point loss against a random target in [0, 1]; with_bias
// false: a layer without bias.
void check_conv_transpose_loss(const ConvGeometry& g, PointLoss kind, bool with_bias, std::uint64_t seed,
                               Ops<float>& G) {
  INFO(describe(g) + (kind == PointLoss::L1 ? ", L1" : ", MSE") + (with_bias ? "" : ", no bias"));
  const ConvCase c = random_conv_case(g, seed);
  DeviceBuffer<float> x(G, c.x), w(G, c.w), b(G, c.b), target(G, uniform(g.out_count(), 0.0, 1.0, seed + 7));
  const float* bias = with_bias ? b.get() : nullptr;
  LossOutputs separate(G, g.out_count()), fused(G, g.out_count());
  G.conv_transpose2d_forward_relu(g, x.get(), w.get(), bias, separate.y.get(), separate.act.get());
  if (kind == PointLoss::L1)
    G.l1_loss_relu(g.out_count(), separate.act.get(), target.get(), separate.dpred.get(), separate.dact.get(),
                   separate.loss.get(), separate.loss_sum.get());
  else
    G.mse_loss_relu(g.out_count(), separate.act.get(), target.get(), separate.dpred.get(), separate.dact.get(),
                    separate.loss.get(), separate.loss_sum.get());
  G.conv_transpose2d_forward_relu_loss(g, x.get(), w.get(), bias, fused.y.get(), fused.act.get(), kind, target.get(),
                                       fused.dpred.get(), fused.dact.get(), fused.loss.get(), fused.loss_sum.get());
  compare_outputs(fused, separate);
}

// Linear g (+ Sigmoid) then the softmax cross-entropy of its output against random labels.
void check_head_loss(const LinearGeometry& g, std::uint64_t seed, Ops<float>& G) {
  const LinearCase c = random_linear_case(g, seed);
  INFO(c.name);
  DeviceBuffer<float> x(G, c.x), w(G, c.w), b(G, c.b);
  DeviceBuffer<std::uint8_t> labels(G, random_labels(static_cast<std::size_t>(g.batch), g.out_features, seed + 5));
  LossOutputs separate(G, c.ny), fused(G, c.ny);
  G.linear_forward_sigmoid(g, x.get(), w.get(), b.get(), separate.y.get(), separate.act.get());
  G.softmax_cross_entropy_sigmoid(g.batch, g.out_features, separate.act.get(), labels.get(), separate.dpred.get(),
                                  separate.dact.get(), separate.loss.get(), separate.loss_sum.get());
  G.linear_forward_sigmoid_cross_entropy(g, x.get(), w.get(), b.get(), fused.y.get(), fused.act.get(), labels.get(),
                                         fused.dpred.get(), fused.dact.get(), fused.loss.get(),
                                         fused.loss_sum.get());
  compare_outputs(fused, separate);
}

void check_output_losses(Ops<float>& G) {
  std::uint64_t seed = 140;
  // The AE's last layer at batch 100 and 7; a layer of 3 output channels, whose bias differs by
  // channel; one without bias.
  for (const int batch : {100, 7})
    for (const PointLoss kind : {PointLoss::L1, PointLoss::MSE})
      check_conv_transpose_loss(paper_deconv2(batch), kind, true, seed++, G);
  check_conv_transpose_loss(conv_geometry(2, 4, 5, 6, 3, 3, 2, 1, 1, true), PointLoss::L1, true, seed++, G);
  check_conv_transpose_loss(paper_deconv2(3), PointLoss::MSE, false, seed++, G);
  // The classifier's head of C(256) and C(64) at batch 100, and a batch of 7.
  check_head_loss(linear_geometry(100, 256, 10), seed++, G);
  check_head_loss(linear_geometry(100, 64, 10), seed++, G);
  check_head_loss(linear_geometry(7, 256, 10), seed++, G);
  // A gradient buffer missing is refused, naming the op and the buffer.
  const ConvGeometry g = paper_deconv2(2);
  DeviceBuffer<float> buffer(G, g.out_count() + g.in_count() + g.weight_count());
  float* p = buffer.get();
  CHECK_THROWS_WITH(G.conv_transpose2d_forward_relu_loss(g, p, p, nullptr, p, p, PointLoss::L1, p, p, nullptr, p,
                                                         nullptr),
                    Catch::Contains("conv_transpose2d_forward_relu_loss") && Catch::Contains("dpred_relu"));
  DeviceBuffer<std::uint8_t> labels(G, 2);
  CHECK_THROWS_WITH(G.linear_forward_sigmoid_cross_entropy(linear_geometry(2, 256, 10), p, p, p, p, p, labels.get(),
                                                           nullptr, p, p, nullptr),
                    Catch::Contains("linear_forward_sigmoid_cross_entropy") && Catch::Contains("dscores"));
}

}  // namespace

TEST_CASE("GPU output layer and loss in one op equal the two ops one after the other",
          "[gpu][loss][sanitize]") {
  check_output_losses(gpu());
}

TEST_CASE("GPU output layer and loss in one op equal the two ops one after the other with fmnist's kernels",
          "[gpu][loss][dgrad][sanitize]") {
  check_output_losses(direct_conv_gpu());
  check_output_losses(direct_linear_gpu());
}
