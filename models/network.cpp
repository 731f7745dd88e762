// Builds AE(n) and C(n) as ordered layer lists with PyTorch-named parameters, and initialises
// the parameters as PyTorch's defaults do.
#include "network.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "rng.h"

namespace fmnist {
namespace {

class NetworkBuilder {
 public:
  explicit NetworkBuilder(NetworkSpec& spec) : spec_(spec), shape_(spec.input) {}

  void conv2d(const std::string& name, int out_channels, int kernel) {
    LayerSpec l = start(LayerKind::Conv2d, name);
    l.kernel = kernel;
    l.out = {out_channels, shape_.h - kernel + 1, shape_.w - kernel + 1};
    l.weight = add_param(name + ".weight", {out_channels, shape_.c, kernel, kernel},
                         shape_.c * kernel * kernel);
    l.bias = add_param(name + ".bias", {out_channels}, shape_.c * kernel * kernel);
    finish(l);
  }
  void conv_transpose2d(const std::string& name, int out_channels, int kernel, int stride,
                        int output_padding) {
    LayerSpec l = start(LayerKind::ConvTranspose2d, name);
    l.kernel = kernel;
    l.stride = stride;
    l.output_padding = output_padding;
    l.out = {out_channels, (shape_.h - 1) * stride + kernel + output_padding,
             (shape_.w - 1) * stride + kernel + output_padding};
    // PyTorch stores ConvTranspose2d weights as (in, out, k, k) and takes fan_in from dim 1.
    l.weight = add_param(name + ".weight", {shape_.c, out_channels, kernel, kernel},
                         out_channels * kernel * kernel);
    l.bias = add_param(name + ".bias", {out_channels}, out_channels * kernel * kernel);
    finish(l);
  }
  void maxpool2d(int kernel) {
    LayerSpec l = start(LayerKind::MaxPool2d, "");
    l.kernel = kernel;
    l.stride = kernel;
    l.out = {shape_.c, (shape_.h - kernel) / kernel + 1, (shape_.w - kernel) / kernel + 1};
    finish(l);
  }
  void linear(const std::string& name, int out_features) {
    LayerSpec l = start(LayerKind::Linear, name);
    int in_features = static_cast<int>(shape_.count());
    l.out = {out_features, 1, 1};
    l.weight = add_param(name + ".weight", {out_features, in_features}, in_features);
    l.bias = add_param(name + ".bias", {out_features}, in_features);
    finish(l);
  }
  void activation(LayerKind kind) {
    LayerSpec l = start(kind, "");
    l.out = shape_;
    finish(l);
  }
  void dropout(float p) {
    if (p <= 0.0f) return;
    LayerSpec l = start(LayerKind::Dropout, "");
    l.out = shape_;
    l.dropout_p = p;
    l.dropout_index = dropout_layers_++;
    finish(l);
  }
  void unflatten(Shape3 shape) {
    if (shape.count() != shape_.count()) throw std::logic_error("unflatten to a different size");
    shape_ = shape;
  }

 private:
  LayerSpec start(LayerKind kind, const std::string& name) {
    LayerSpec l{kind, name, shape_, shape_};
    return l;
  }
  void finish(LayerSpec& l) {
    // Flatten/Unflatten move no data in NCHW: a layer's input takes the previous output's size.
    if (!spec_.layers.empty() && spec_.layers.back().out.count() != l.in.count())
      throw std::logic_error("layer sizes do not chain");
    shape_ = l.out;
    spec_.layers.push_back(l);
  }
  int add_param(const std::string& name, std::vector<std::int64_t> shape, int fan_in) {
    ParamSpec p;
    p.name = name;
    p.count = 1;
    for (auto d : shape) p.count *= static_cast<std::size_t>(d);
    p.shape = std::move(shape);
    p.offset = spec_.param_count;
    p.fan_in = fan_in;
    spec_.param_count += p.count;
    spec_.params.push_back(p);
    return static_cast<int>(spec_.params.size()) - 1;
  }

  NetworkSpec& spec_;
  Shape3 shape_;
  std::uint32_t dropout_layers_ = 0;
};

void validate(const ModelConfig& c) {
  if (c.latent < 1 || c.latent > 65536)
    throw std::invalid_argument("latent size must be in [1, 65536], got " + std::to_string(c.latent));
  if (!(c.dropout >= 0.0f && c.dropout < 1.0f))
    throw std::invalid_argument("dropout must be in [0, 1), got " + std::to_string(c.dropout));
  if (c.freeze_encoder && c.kind != ModelKind::Classifier)
    throw std::invalid_argument("only a classifier can freeze its encoder");
}

}  // namespace

NetworkSpec build_network(const ModelConfig& config) {
  validate(config);
  NetworkSpec spec;
  spec.config = config;
  NetworkBuilder b(spec);
  const float p = config.dropout;
  // Encoder: the same in AE(n) and C(n); indices are those of the notebook's nn.Sequential.
  b.conv2d("encoder.0", 16, 3);  // 16x26x26
  b.activation(LayerKind::ReLU);
  b.dropout(p);
  b.maxpool2d(2);                // 16x13x13
  b.conv2d("encoder.3", 32, 3);  // 32x11x11
  b.activation(LayerKind::ReLU);
  b.dropout(p);
  b.maxpool2d(2);                // 32x5x5, flattened to 800
  b.linear("encoder.7", config.latent);
  b.activation(LayerKind::ReLU);
  b.dropout(p);
  if (config.kind == ModelKind::Autoencoder) {
    b.linear("decoder.0", 800);
    b.activation(LayerKind::ReLU);
    b.dropout(p);
    b.unflatten({32, 5, 5});
    b.conv_transpose2d("decoder.3", 16, 4, 2, 1);  // 16x13x13
    b.activation(LayerKind::ReLU);
    b.dropout(p);
    b.conv_transpose2d("decoder.5", 1, 3, 2, 1);   // 1x28x28
    b.activation(LayerKind::ReLU);                 // the reconstruction: no dropout after it
  } else {
    b.linear("clasiffier.0", 10);  // the notebook's spelling, kept so its weights load
    if (config.head == ClassifierHead::Sigmoid) b.activation(LayerKind::Sigmoid);
  }
  for (auto& param : spec.params)
    param.trainable = !(config.freeze_encoder && is_encoder_param(param.name));
  return spec;
}

const ParamSpec* NetworkSpec::find_param(const std::string& name) const {
  for (const auto& p : params)
    if (p.name == name) return &p;
  return nullptr;
}

std::size_t NetworkSpec::trainable_count() const {
  std::size_t n = 0;
  for (const auto& p : params)
    if (p.trainable) n += p.count;
  return n;
}

bool is_encoder_param(const std::string& name) { return name.rfind("encoder.", 0) == 0; }

std::string describe(const ModelConfig& c) {
  std::ostringstream s;
  s << (c.kind == ModelKind::Autoencoder ? "AE(" : "C(") << c.latent << ")";
  if (c.kind == ModelKind::Autoencoder && c.ae_loss == PointLoss::MSE) s << " MSE";
  if (c.kind == ModelKind::Classifier && c.head == ClassifierHead::Logits) s << " logits";
  if (c.freeze_encoder) s << " frozen-encoder";
  if (c.dropout > 0.0f) s << " dropout " << c.dropout;
  return s.str();
}

void initialize_parameters(const NetworkSpec& spec, std::uint64_t seed, float* params) {
  SplitMix64 rng(derive_seed(seed, /*purpose=*/1));
  for (const auto& p : spec.params) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(p.fan_in));
    for (std::size_t i = 0; i < p.count; ++i)
      params[p.offset + i] = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
  }
}

}  // namespace fmnist
