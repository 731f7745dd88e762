// Weights and training state as safetensors files with the paper's PyTorch state_dict names.
#include "host/checkpoint.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "host/json_exact.h"
#include "host/one_line.h"

namespace fmnist {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; this host copies floats as they are in memory");

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw FormatError(one_line(path + ": " + problem));
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool has_prefix(const std::string& name, const std::string& prefix) {
  return name.compare(0, prefix.size(), prefix) == 0;
}

// The tensor `name` of the file, F32 with `shape`, or a FormatError naming it and both shapes.
const Tensor& expect_tensor(const SafetensorsFile& file, const std::string& path,
                            const std::string& name, const std::vector<std::int64_t>& shape,
                            const std::string& model) {
  const Tensor* t = file.find(name);
  if (!t) fail(path, "missing tensor '" + name + "' (shape " + shape_text(shape) + ") that " + model + " needs");
  if (t->shape != shape)
    fail(path, "tensor '" + name + "' has shape " + shape_text(t->shape) + " in the file but " + model +
                   " expects " + shape_text(shape));
  if (t->dtype != "F32") fail(path, "tensor '" + name + "' is " + t->dtype + ", expected F32");
  return *t;
}

// Refuses tensors of the file that are not in `expected` (only those whose name `counts`).
template <typename Counts>
void refuse_extra(const SafetensorsFile& file, const std::string& path,
                  const std::set<std::string>& expected, const std::string& model, Counts counts) {
  for (const auto& t : file.tensors)
    if (counts(t.name) && !expected.count(t.name))
      fail(path, "unexpected tensor '" + t.name + "' (shape " + shape_text(t.shape) + ") that " +
                     model + " does not have");
}

void copy_params(const SafetensorsFile& file, const std::string& path, const NetworkSpec& spec,
                 float* params, bool encoder_only) {
  const std::string model = describe(spec.config);
  std::set<std::string> expected;
  for (const auto& p : spec.params) {
    if (encoder_only && !is_encoder_param(p.name)) continue;
    expected.insert(p.name);
    const Tensor& t = expect_tensor(file, path, p.name, p.shape, model);
    std::memcpy(params + p.offset, t.data.data(), p.count * sizeof(float));
  }
  refuse_extra(file, path, expected, model,
               [&](const std::string& name) { return !encoder_only || is_encoder_param(name); });
}

bool same_config(const ModelConfig& a, const ModelConfig& b) {
  return a.kind == b.kind && a.latent == b.latent && a.dropout == b.dropout && a.ae_loss == b.ae_loss &&
         a.head == b.head && a.freeze_encoder == b.freeze_encoder;
}

ModelConfig config_from_metadata(const std::string& text, const std::string& path) {
  try {
    return model_config_from_json(text);
  } catch (const std::invalid_argument& e) {
    fail(path, std::string("metadata fmnist.config: ") + e.what());
  }
}

std::string adam_name(const char* moment, const ParamSpec& p) {
  return std::string("adam.") + moment + "." + p.name;
}

std::string weights_name(const ParamSpec& p) { return "weights." + p.name; }

}  // namespace

std::string model_config_to_json(const ModelConfig& c) {
  ordered_json j;
  j["kind"] = c.kind == ModelKind::Autoencoder ? "autoencoder" : "classifier";
  j["latent"] = c.latent;
  j["dropout"] = c.dropout;
  j["ae_loss"] = c.ae_loss == PointLoss::L1 ? "mae" : "mse";
  j["head"] = c.head == ClassifierHead::Sigmoid ? "sigmoid" : "logits";
  j["freeze_encoder"] = c.freeze_encoder;
  return j.dump();
}

ModelConfig model_config_from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw std::invalid_argument(std::string("model config is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw std::invalid_argument("model config is not a JSON object: " + j.dump());
  ModelConfig c;
  auto choose = [&](const char* key, const char* first, const char* second) {
    const auto& v = j[key];
    if (v.is_string() && v == first) return true;
    if (v.is_string() && v == second) return false;
    throw std::invalid_argument(std::string("model config: ") + key + " must be \"" + first + "\" or \"" +
                                second + "\", got " + v.dump());
  };
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    if (key == "kind") {
      c.kind = choose("kind", "autoencoder", "classifier") ? ModelKind::Autoencoder : ModelKind::Classifier;
    } else if (key == "latent") {
      const std::optional<int> latent = exact_json_value<int>(v);
      if (!latent) throw std::invalid_argument("model config: latent must be an integer, got " + v.dump());
      c.latent = *latent;
    } else if (key == "dropout") {
      const std::optional<float> dropout = exact_json_value<float>(v);
      if (!dropout) throw std::invalid_argument("model config: dropout must be a number, got " + v.dump());
      c.dropout = *dropout;
    } else if (key == "ae_loss") {
      c.ae_loss = choose("ae_loss", "mae", "mse") ? PointLoss::L1 : PointLoss::MSE;
    } else if (key == "head") {
      c.head = choose("head", "sigmoid", "logits") ? ClassifierHead::Sigmoid : ClassifierHead::Logits;
    } else if (key == "freeze_encoder") {
      if (!v.is_boolean()) throw std::invalid_argument("model config: freeze_encoder must be true or false, got " + v.dump());
      c.freeze_encoder = v.get<bool>();
    } else {
      throw std::invalid_argument(one_line("model config: unknown field '" + key + "'"));
    }
  }
  return c;
}

void save_weights(const std::string& path, const NetworkSpec& spec, const float* params,
                  const std::map<std::string, std::string>& metadata) {
  SafetensorsFile file;
  file.metadata = {{"format", "pt"}, {"fmnist.config", model_config_to_json(spec.config)}};
  for (const auto& [key, value] : metadata) file.metadata[key] = value;
  for (const auto& p : spec.params) file.tensors.push_back(make_f32_tensor(p.name, p.shape, params + p.offset));
  write_safetensors(path, file);
}

ModelConfig infer_model_config(const SafetensorsFile& file, const std::string& path) {
  bool encoder = false, decoder = false, classifier = false;
  for (const auto& t : file.tensors) {
    encoder |= has_prefix(t.name, "encoder.");
    decoder |= has_prefix(t.name, "decoder.");
    classifier |= has_prefix(t.name, "clasiffier.");
  }
  if (!encoder) fail(path, "no encoder.* tensors: not weights of the paper's autoencoder or classifier");
  if (decoder && classifier) fail(path, "holds both decoder.* and clasiffier.* tensors: autoencoder or classifier?");
  if (!decoder && !classifier) fail(path, "holds encoder.* but neither decoder.* nor clasiffier.* tensors");
  const Tensor* fc = file.find("encoder.7.weight");
  if (!fc) fail(path, "missing tensor 'encoder.7.weight', whose rows give the latent size");
  if (fc->shape.size() != 2 || fc->shape[1] != 800 || fc->shape[0] < 1 || fc->shape[0] > 65536)
    fail(path, "tensor 'encoder.7.weight' has shape " + shape_text(fc->shape) + ", expected [n, 800]");

  ModelConfig config;
  config.kind = decoder ? ModelKind::Autoencoder : ModelKind::Classifier;
  config.latent = static_cast<int>(fc->shape[0]);
  const auto meta = file.metadata.find("fmnist.config");
  if (meta != file.metadata.end()) {
    const ModelConfig saved = config_from_metadata(meta->second, path);
    if (saved.kind != config.kind || saved.latent != config.latent)
      fail(path, "metadata fmnist.config says " + describe(saved) + " but the tensors are " + describe(config));
    config = saved;
  }
  NetworkSpec spec;
  try {
    spec = build_network(config);
  } catch (const std::invalid_argument& e) {
    fail(path, std::string("not a valid model configuration: ") + e.what());
  }
  std::vector<float> scratch(spec.param_count);
  copy_params(file, path, spec, scratch.data(), /*encoder_only=*/false);
  return config;
}

void load_weights(const SafetensorsFile& file, const std::string& path, const NetworkSpec& spec,
                  float* params) {
  copy_params(file, path, spec, params, /*encoder_only=*/false);
}

void load_encoder_weights(const SafetensorsFile& file, const std::string& path, const NetworkSpec& spec,
                          float* params) {
  copy_params(file, path, spec, params, /*encoder_only=*/true);
}

void save_training_state(const std::string& path, const NetworkSpec& spec, const TrainingState& state) {
  if (state.exp_avg.size() != spec.param_count || state.exp_avg_sq.size() != spec.param_count)
    throw std::invalid_argument("training state: Adam moments must hold " + std::to_string(spec.param_count) +
                                " floats each");
  if (!state.params.empty() && state.params.size() != spec.param_count)
    throw std::invalid_argument("training state: weights must hold " + std::to_string(spec.param_count) +
                                " floats (or none)");
  ordered_json train;
  train["epoch"] = state.epoch;
  train["step"] = state.step;
  train["seed"] = state.seed;
  ordered_json extra;
  try {
    extra = ordered_json::parse(state.extra_json);
  } catch (const json::exception& e) {
    throw std::invalid_argument(std::string("training state: extra_json is not valid JSON: ") + e.what());
  }
  if (!extra.is_object()) throw std::invalid_argument("training state: extra_json is not a JSON object");
  for (auto it = extra.begin(); it != extra.end(); ++it) {
    if (train.contains(it.key()))
      throw std::invalid_argument("training state: extra_json may not redefine '" + it.key() + "'");
    train[it.key()] = it.value();
  }
  SafetensorsFile file;
  file.metadata = {{"fmnist.kind", "training_state"},
                   {"fmnist.config", model_config_to_json(spec.config)},
                   {"fmnist.train", train.dump()}};
  for (const char* moment : {"exp_avg", "exp_avg_sq"}) {
    const auto& values = std::string(moment) == "exp_avg" ? state.exp_avg : state.exp_avg_sq;
    for (const auto& p : spec.params)
      if (p.trainable) file.tensors.push_back(make_f32_tensor(adam_name(moment, p), p.shape, values.data() + p.offset));
  }
  if (!state.params.empty())
    for (const auto& p : spec.params)
      file.tensors.push_back(make_f32_tensor(weights_name(p), p.shape, state.params.data() + p.offset));
  write_safetensors(path, file);
}

TrainingState load_training_state(const std::string& path, const NetworkSpec& spec) {
  const SafetensorsFile file = read_safetensors(path);
  const auto meta = [&](const std::string& key) -> const std::string& {
    const auto it = file.metadata.find(key);
    if (it == file.metadata.end()) fail(path, "not a training state: no metadata '" + key + "'");
    return it->second;
  };
  if (meta("fmnist.kind") != "training_state")
    fail(path, "not a training state: fmnist.kind is '" + meta("fmnist.kind") + "'");
  const ModelConfig saved = config_from_metadata(meta("fmnist.config"), path);
  if (!same_config(saved, spec.config))
    fail(path, "training state is for " + describe(saved) + " but the model is " + describe(spec.config));

  TrainingState state;
  ordered_json train;
  try {
    train = ordered_json::parse(meta("fmnist.train"));
  } catch (const json::exception& e) {
    fail(path, std::string("metadata fmnist.train is not valid JSON: ") + e.what());
  }
  if (!train.is_object() || !train.contains("epoch") || !train["epoch"].is_number_integer() ||
      !train.contains("step") || !train["step"].is_number_unsigned() || !train.contains("seed") ||
      !train["seed"].is_number_unsigned())
    fail(path, "metadata fmnist.train needs integer epoch, step and seed: " + meta("fmnist.train"));
  const std::optional<int> epoch = exact_json_value<int>(train["epoch"]);
  if (!epoch || *epoch < 0) fail(path, "metadata fmnist.train: epoch is not in [0, 2^31): " + train["epoch"].dump());
  state.epoch = *epoch;
  state.step = train["step"].get<std::uint64_t>();
  state.seed = train["seed"].get<std::uint64_t>();
  for (const char* key : {"epoch", "step", "seed"}) train.erase(key);
  state.extra_json = train.dump();

  const std::string model = describe(spec.config) + "'s Adam state";
  state.exp_avg.assign(spec.param_count, 0.0f);
  state.exp_avg_sq.assign(spec.param_count, 0.0f);
  std::set<std::string> expected;
  for (const char* moment : {"exp_avg", "exp_avg_sq"}) {
    auto& values = std::string(moment) == "exp_avg" ? state.exp_avg : state.exp_avg_sq;
    for (const auto& p : spec.params) {
      if (!p.trainable) continue;
      const std::string name = adam_name(moment, p);
      expected.insert(name);
      const Tensor& t = expect_tensor(file, path, name, p.shape, model);
      std::memcpy(values.data() + p.offset, t.data.data(), p.count * sizeof(float));
    }
  }
  const bool has_weights = std::any_of(file.tensors.begin(), file.tensors.end(),
                                       [](const Tensor& t) { return has_prefix(t.name, "weights."); });
  if (has_weights) {
    state.params.assign(spec.param_count, 0.0f);
    for (const auto& p : spec.params) {
      const std::string name = weights_name(p);
      expected.insert(name);
      const Tensor& t = expect_tensor(file, path, name, p.shape, describe(spec.config));
      std::memcpy(state.params.data() + p.offset, t.data.data(), p.count * sizeof(float));
    }
  }
  refuse_extra(file, path, expected, model, [](const std::string&) { return true; });
  return state;
}

}  // namespace fmnist
