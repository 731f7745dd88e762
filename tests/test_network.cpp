// The paper's networks as specified: layer shapes, parameter names, shapes and counts of every
// variant, PyTorch's initialisation bounds, and which parameters a frozen encoder leaves trainable.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <vector>

#include "models/network.h"

using namespace fmnist;

namespace {

ModelConfig ae(int n) {
  ModelConfig c;
  c.kind = ModelKind::Autoencoder;
  c.latent = n;
  return c;
}
ModelConfig classifier(int n) {
  ModelConfig c;
  c.kind = ModelKind::Classifier;
  c.latent = n;
  return c;
}
std::vector<std::int64_t> shape_of(const NetworkSpec& s, const std::string& name) {
  const ParamSpec* p = s.find_param(name);
  REQUIRE(p != nullptr);
  return p->shape;
}

}  // namespace

TEST_CASE("AE(256) has the paper's layers, names, shapes and 423,809 parameters", "[network]") {
  const NetworkSpec s = build_network(ae(256));
  CHECK(s.param_count == 423809);
  using V = std::vector<std::int64_t>;
  // The notebook's state_dict, in order (FACTS.md).
  const std::vector<std::pair<std::string, V>> expected = {
      {"encoder.0.weight", {16, 1, 3, 3}}, {"encoder.0.bias", {16}},
      {"encoder.3.weight", {32, 16, 3, 3}}, {"encoder.3.bias", {32}},
      {"encoder.7.weight", {256, 800}},    {"encoder.7.bias", {256}},
      {"decoder.0.weight", {800, 256}},    {"decoder.0.bias", {800}},
      {"decoder.3.weight", {32, 16, 4, 4}}, {"decoder.3.bias", {16}},
      {"decoder.5.weight", {16, 1, 3, 3}}, {"decoder.5.bias", {1}}};
  REQUIRE(s.params.size() == expected.size());
  std::size_t offset = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    CHECK(s.params[i].name == expected[i].first);
    CHECK(s.params[i].shape == expected[i].second);
    CHECK(s.params[i].offset == offset);
    offset += s.params[i].count;
  }
  // Per-layer parameter counts of FACTS.md.
  auto layer_params = [&](const std::string& prefix) {
    return s.find_param(prefix + ".weight")->count + s.find_param(prefix + ".bias")->count;
  };
  CHECK(layer_params("encoder.0") == 160);
  CHECK(layer_params("encoder.3") == 4640);
  CHECK(layer_params("encoder.7") == 205056);
  CHECK(layer_params("decoder.0") == 205600);
  CHECK(layer_params("decoder.3") == 8208);
  CHECK(layer_params("decoder.5") == 145);
  // Output shapes of the table in FACTS.md.
  std::vector<Shape3> outs;
  for (const auto& l : s.layers)
    if (l.kind != LayerKind::ReLU) outs.push_back(l.out);
  const std::vector<Shape3> expected_outs = {{16, 26, 26}, {16, 13, 13}, {32, 11, 11}, {32, 5, 5},
                                             {256, 1, 1},  {800, 1, 1},  {16, 13, 13}, {1, 28, 28}};
  REQUIRE(outs.size() == expected_outs.size());
  for (std::size_t i = 0; i < outs.size(); ++i) CHECK(outs[i] == expected_outs[i]);
  CHECK(s.layers.back().kind == LayerKind::ReLU);
}

TEST_CASE("C(256) has 212,426 parameters and the notebook's 'clasiffier' head", "[network]") {
  const NetworkSpec s = build_network(classifier(256));
  CHECK(s.param_count == 212426);
  CHECK(shape_of(s, "clasiffier.0.weight") == std::vector<std::int64_t>{10, 256});
  CHECK(shape_of(s, "clasiffier.0.bias") == std::vector<std::int64_t>{10});
  CHECK(s.layers.back().kind == LayerKind::Sigmoid);
  CHECK(s.output() == Shape3{10, 1, 1});
  ModelConfig logits = classifier(256);
  logits.head = ClassifierHead::Logits;
  const NetworkSpec l = build_network(logits);
  CHECK(l.layers.back().kind == LayerKind::Linear);
  CHECK(l.param_count == 212426);
}

TEST_CASE("parameter counts of every variant follow from n", "[network]") {
  for (int n : {1, 64, 128, 256, 512}) {
    const std::size_t encoder = 160 + 4640 + (800 * n + n);
    CHECK(build_network(ae(n)).param_count == encoder + (n * 800 + 800) + 8208 + 145);
    CHECK(build_network(classifier(n)).param_count == encoder + (10 * n + 10));
    ModelConfig dropout = ae(n);
    dropout.dropout = 0.2f;
    const NetworkSpec d = build_network(dropout);
    CHECK(d.param_count == build_network(ae(n)).param_count);
    int dropout_layers = 0;
    for (const auto& layer : d.layers)
      if (layer.kind == LayerKind::Dropout) {
        CHECK(layer.dropout_index == static_cast<std::uint32_t>(dropout_layers));
        CHECK(layer.dropout_p == Approx(0.2f));
        ++dropout_layers;
      }
    CHECK(dropout_layers == 5);  // after each hidden ReLU; none after the reconstruction
  }
}

TEST_CASE("a frozen encoder leaves only clasiffier.0.* trainable", "[network]") {
  ModelConfig c = classifier(64);
  c.freeze_encoder = true;
  const NetworkSpec s = build_network(c);
  for (const auto& p : s.params) CHECK(p.trainable == (p.name.rfind("clasiffier.0.", 0) == 0));
  CHECK(s.trainable_count() == 10 * 64 + 10);
  ModelConfig bad = ae(64);
  bad.freeze_encoder = true;
  CHECK_THROWS_AS(build_network(bad), std::invalid_argument);
}

TEST_CASE("bad model options are refused", "[network]") {
  ModelConfig c = ae(0);
  CHECK_THROWS_WITH(build_network(c), Catch::Contains("latent"));
  c = ae(64);
  c.dropout = 1.0f;
  CHECK_THROWS_WITH(build_network(c), Catch::Contains("dropout"));
  c.dropout = -0.1f;
  CHECK_THROWS_AS(build_network(c), std::invalid_argument);
}

TEST_CASE("initialisation follows PyTorch's bounds, fan-in of ConvTranspose2d included", "[network]") {
  const NetworkSpec s = build_network(ae(256));
  // fan_in as torch computes it: Conv2d in*k*k; ConvTranspose2d weight (in,out,k,k) -> out*k*k.
  const std::map<std::string, int> fan_in = {
      {"encoder.0", 9},   {"encoder.3", 144}, {"encoder.7", 800},
      {"decoder.0", 256}, {"decoder.3", 256}, {"decoder.5", 9}};
  std::vector<float> params(s.param_count);
  initialize_parameters(s, 7, params.data());
  for (const auto& p : s.params) {
    const std::string layer = p.name.substr(0, p.name.rfind('.'));
    REQUIRE(p.fan_in == fan_in.at(layer));
    const double bound = 1.0 / std::sqrt(static_cast<double>(p.fan_in));
    double lo = 1e9, hi = -1e9, sum = 0;
    for (std::size_t i = 0; i < p.count; ++i) {
      const double v = params[p.offset + i];
      lo = std::min(lo, v);
      hi = std::max(hi, v);
      sum += v;
    }
    INFO(p.name);
    CHECK(lo >= -bound);
    CHECK(hi <= bound);
    if (p.count >= 1000) {  // large tensors fill the range and centre on 0
      CHECK(hi > 0.98 * bound);
      CHECK(lo < -0.98 * bound);
      CHECK(std::abs(sum / p.count) < 0.05 * bound);
    }
  }
  std::vector<float> again(s.param_count), other(s.param_count);
  initialize_parameters(s, 7, again.data());
  initialize_parameters(s, 8, other.data());
  CHECK(again == params);
  CHECK(other != params);
}
