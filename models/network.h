// The paper's networks as data: an ordered list of layers with their shapes, and the parameters
// named, shaped and ordered exactly as the PyTorch state_dict of the paper's notebook.
// Both backends execute the same NetworkSpec (see executor.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "point_loss.h"

namespace fmnist {

constexpr int kNetworkClasses = 10;  // a classifier's outputs: the ten Fashion-MNIST classes

enum class ModelKind { Autoencoder, Classifier };
// Paper: Linear -> Sigmoid -> CrossEntropyLoss on the sigmoid outputs. Logits: no Sigmoid.
enum class ClassifierHead { Sigmoid, Logits };

struct ModelConfig {
  ModelKind kind = ModelKind::Autoencoder;
  int latent = 256;
  float dropout = 0.0f;  // p after each hidden ReLU; 0 disables
  PointLoss ae_loss = PointLoss::L1;
  ClassifierHead head = ClassifierHead::Sigmoid;
  bool freeze_encoder = false;  // classifier only: train clasiffier.0.* alone
};

enum class LayerKind { Conv2d, ConvTranspose2d, MaxPool2d, Linear, ReLU, Sigmoid, Dropout };

// A tensor shape as (channels, height, width); a flat feature vector is (features, 1, 1).
struct Shape3 {
  int c = 0, h = 0, w = 0;
  std::size_t count() const { return static_cast<std::size_t>(c) * h * w; }
  bool operator==(const Shape3& o) const { return c == o.c && h == o.h && w == o.w; }
};

struct LayerSpec {
  LayerKind kind;
  std::string name;  // PyTorch module path, e.g. "encoder.0"; parameters are name + ".weight"/".bias"
  Shape3 in, out;
  int kernel = 0, stride = 1, padding = 0, output_padding = 0;  // convolutions, pooling
  float dropout_p = 0.0f;
  std::uint32_t dropout_index = 0;  // distinct per Dropout layer: part of its RNG counter
  int weight = -1, bias = -1;       // indices into NetworkSpec::params, -1 if none
};

struct ParamSpec {
  std::string name;                // state_dict key
  std::vector<std::int64_t> shape;  // PyTorch layout
  std::size_t offset = 0;          // into the flat parameter buffer (elements)
  std::size_t count = 0;
  int fan_in = 0;                  // as torch.nn.init._calculate_fan_in_and_fan_out computes it
  bool trainable = true;
};

struct NetworkSpec {
  ModelConfig config;
  Shape3 input{1, 28, 28};
  std::vector<LayerSpec> layers;
  std::vector<ParamSpec> params;  // state_dict order
  std::size_t param_count = 0;    // total elements in the flat buffer

  const ParamSpec* find_param(const std::string& name) const;
  std::size_t trainable_count() const;
  Shape3 output() const { return layers.empty() ? input : layers.back().out; }
  int classes() const { return config.kind == ModelKind::Classifier ? kNetworkClasses : 0; }
};

// AE(n) or C(n) exactly as ../shared/paper/FACTS.md gives them. Throws std::invalid_argument on a
// configuration that makes no sense (latent < 1, dropout outside [0,1), freeze on an AE...).
NetworkSpec build_network(const ModelConfig& config);

// "AE(256)", "C(64)", with options appended, for logs and reports.
std::string describe(const ModelConfig& config);

// PyTorch's default initialisation (kaiming_uniform_(a=sqrt(5)) for weights, U(-1/sqrt(fan_in),
// 1/sqrt(fan_in)) for biases: both reduce to U(-1/sqrt(fan_in), +1/sqrt(fan_in))), drawn from a
// generator that depends only on `seed`, in state_dict order. Writes spec.param_count floats.
void initialize_parameters(const NetworkSpec& spec, std::uint64_t seed, float* params);

// The encoder's parameter names are shared by AE(n) and C(n): true for "encoder.*".
bool is_encoder_param(const std::string& name);

}  // namespace fmnist
