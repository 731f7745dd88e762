// The executor on the CPU reference in double precision: the gradient of every parameter tensor of
// whole networks (AE with MSE, with dropout; classifiers with both heads) against central finite
// differences, a frozen encoder left bitwise untouched, and the bias corrections of Adam.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "gradient_check.h"
#include "host/reference/cpu_ops.h"
#include "models/executor.h"
#include "models/rng.h"

using namespace fmnist;

namespace {

constexpr int kBatch = 3;

// An executor over CpuOps<double> with PyTorch-style initial weights and a random batch.
struct DoubleNet {
  NetworkSpec spec;
  CpuOps<double> ops;
  Executor<double> ex;
  std::vector<double> params;

  explicit DoubleNet(const ModelConfig& config, std::uint64_t seed = 3)
      : spec(build_network(config)), ex(spec, ops, kBatch, seed), params(spec.param_count) {
    std::vector<float> init(spec.param_count);
    initialize_parameters(spec, seed, init.data());
    params.assign(init.begin(), init.end());
    // A positive reconstruction bias keeps the AE's output ReLU alive, so that every tensor gets
    // a gradient (about half of the default draws leave it dead; see trainer.cpp).
    if (const ParamSpec* b = spec.find_param("decoder.5.bias")) params[b->offset] = 0.1;
    SplitMix64 rng(seed + 100);
    for (int i = 0; i < kBatch * 784; ++i) ex.batch_images()[i] = static_cast<std::uint8_t>(rng.below(256));
    for (int i = 0; i < kBatch; ++i) ex.batch_labels()[i] = static_cast<std::uint8_t>(rng.below(10));
  }
  // The training loss at `p` (dropout masks of step 1).
  double loss_at(const std::vector<double>& p) {
    std::copy(p.begin(), p.end(), ex.params());
    ex.forward(kBatch, /*training=*/true, 1);
    ex.loss(kBatch, nullptr, /*with_gradient=*/false);
    return ex.batch_loss()[0];
  }
  std::vector<double> analytic_gradient() {
    std::copy(params.begin(), params.end(), ex.params());
    ex.forward(kBatch, true, 1);
    ex.loss(kBatch, nullptr, true);
    ex.backward(kBatch, 1);
    return std::vector<double>(ex.grads(), ex.grads() + spec.param_count);
  }
};

// Checks up to `per_tensor` entries of every trainable tensor's gradient.
void check_network_gradient(const ModelConfig& config, int per_tensor = 24) {
  DoubleNet net(config);
  const std::vector<double> analytic = net.analytic_gradient();
  SplitMix64 pick(11);
  for (const auto& p : net.spec.params) {
    if (!p.trainable) continue;
    std::vector<std::size_t> indices;
    for (int k = 0; k < per_tensor && k < static_cast<int>(p.count); ++k)
      indices.push_back(p.offset + (p.count <= static_cast<std::size_t>(per_tensor) ? k : pick.below(p.count)));
    // Whole networks chain many ops: the tolerance allows for the central difference's O(h^2)
    // error through ReLU/max-pool kinks that h = 1e-6 does not cross.
    testing::GradientTolerance tol;
    tol.atol = 1e-8;
    tol.rtol = 1e-4;
    auto r = testing::check_gradient([&](const std::vector<double>& q) { return net.loss_at(q); },
                                     net.params, analytic, indices, tol);
    INFO(describe(config) << " " << p.name << "\n" << r.report);
    CHECK(r.ok);
    // The gradient is not trivially zero: something flows into every tensor.
    double norm = 0;
    for (std::size_t i = 0; i < p.count; ++i) norm += std::abs(analytic[p.offset + i]);
    CHECK(norm > 0);
  }
}

}  // namespace

TEST_CASE("AE gradients match finite differences through the whole network", "[executor]") {
  ModelConfig c;
  c.kind = ModelKind::Autoencoder;
  c.latent = 16;
  c.ae_loss = PointLoss::MSE;  // smooth: L1's kink at pred == target is checked per op instead
  check_network_gradient(c);
}

TEST_CASE("AE with dropout: gradients match finite differences for a fixed mask", "[executor]") {
  ModelConfig c;
  c.kind = ModelKind::Autoencoder;
  c.latent = 16;
  c.ae_loss = PointLoss::MSE;
  c.dropout = 0.2f;
  check_network_gradient(c);
}

TEST_CASE("classifier gradients match finite differences, both heads", "[executor]") {
  ModelConfig c;
  c.kind = ModelKind::Classifier;
  c.latent = 16;
  SECTION("paper's Sigmoid + cross-entropy") { check_network_gradient(c); }
  SECTION("logits + softmax cross-entropy") {
    c.head = ClassifierHead::Logits;
    check_network_gradient(c);
  }
}

TEST_CASE("a frozen encoder is never written, only the head trains", "[executor]") {
  ModelConfig c;
  c.kind = ModelKind::Classifier;
  c.latent = 32;
  c.freeze_encoder = true;
  DoubleNet net(c);
  std::copy(net.params.begin(), net.params.end(), net.ex.params());
  for (std::uint64_t step = 1; step <= 3; ++step) net.ex.train_step(kBatch, step, AdamConfig{});
  for (const auto& p : net.spec.params) {
    INFO(p.name);
    bool unchanged = true, grad_untouched = true;
    for (std::size_t i = p.offset; i < p.offset + p.count; ++i) {
      unchanged = unchanged && net.ex.params()[i] == net.params[i];
      grad_untouched = grad_untouched && net.ex.grads()[i] == 0.0 && net.ex.exp_avg()[i] == 0.0;
    }
    CHECK(unchanged == !p.trainable);
    CHECK(grad_untouched == !p.trainable);
  }
}

TEST_CASE("Adam's host-side bias corrections are torch.optim.Adam's", "[executor]") {
  AdamConfig c;
  const auto s1 = adam_step_constants<double>(c, 1);
  CHECK(s1.step_size == Approx(1e-3 / 0.1).epsilon(1e-14));
  CHECK(s1.bias_correction2_sqrt == Approx(std::sqrt(0.001)).epsilon(1e-14));
  const auto s2 = adam_step_constants<double>(c, 2);
  CHECK(s2.step_size == Approx(1e-3 / (1 - 0.81)).epsilon(1e-14));
  CHECK(s2.bias_correction2_sqrt == Approx(std::sqrt(1 - 0.999 * 0.999)).epsilon(1e-14));
}

TEST_CASE("the executor refuses a batch outside [1, max_batch]", "[executor]") {
  ModelConfig c;
  c.latent = 8;
  DoubleNet net(c);
  CHECK_THROWS_AS(net.ex.forward(0, false, 0), std::invalid_argument);
  CHECK_THROWS_AS(net.ex.forward(kBatch + 1, false, 0), std::invalid_argument);
}
