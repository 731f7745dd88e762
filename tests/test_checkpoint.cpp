// Checkpoints: weights saved with exactly the paper's state_dict names and shapes, loaded back
// bitwise, the model inferred from the tensors, mismatches refused, and the training state.
#include <catch2/catch.hpp>


#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "host/checkpoint.h"
#include "host/idx.h"
#include "host/run_state.h"
#include "host/safetensors.h"
#include "torch_bridge.h"
#include "models/rng.h"

namespace fs = std::filesystem;
using namespace fmnist;
using Catch::Matchers::Contains;
using Catch::Matchers::Equals;
using Catch::Matchers::StartsWith;

namespace {

fs::path scratch_dir() {
  fs::path dir = fs::path(FMNIST_TEST_TMP_DIR) / "checkpoint";
  fs::create_directories(dir);
  return dir;
}

using Shapes = std::vector<std::pair<std::string, std::vector<std::int64_t>>>;

// ../shared/paper/FACTS.md, "The paper's PyTorch parameter names", in state_dict order.
Shapes paper_state_dict(ModelKind kind, std::int64_t n) {
  Shapes s = {{"encoder.0.weight", {16, 1, 3, 3}}, {"encoder.0.bias", {16}},
              {"encoder.3.weight", {32, 16, 3, 3}}, {"encoder.3.bias", {32}},
              {"encoder.7.weight", {n, 800}}, {"encoder.7.bias", {n}}};
  if (kind == ModelKind::Autoencoder) {
    s.insert(s.end(), {{"decoder.0.weight", {800, n}}, {"decoder.0.bias", {800}},
                       {"decoder.3.weight", {32, 16, 4, 4}}, {"decoder.3.bias", {16}},
                       {"decoder.5.weight", {16, 1, 3, 3}}, {"decoder.5.bias", {1}}});
  } else {
    s.insert(s.end(), {{"clasiffier.0.weight", {10, n}}, {"clasiffier.0.bias", {10}}});
  }
  return s;
}

ModelConfig config_of(ModelKind kind, int latent) {
  ModelConfig c;
  c.kind = kind;
  c.latent = latent;
  return c;
}

std::vector<float> initial_params(const NetworkSpec& spec, std::uint64_t seed) {
  std::vector<float> params(spec.param_count);
  initialize_parameters(spec, seed, params.data());
  return params;
}

std::vector<float> random_values(std::size_t count, std::uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<float> v(count);
  for (auto& x : v) x = static_cast<float>(rng.uniform() - 0.5);
  return v;
}

// Saves `config` initialised with `seed` and reads the file back.
SafetensorsFile saved_file(const ModelConfig& config, std::uint64_t seed, const std::string& path) {
  const NetworkSpec spec = build_network(config);
  save_weights(path, spec, initial_params(spec, seed).data());
  return read_safetensors(path);
}

}  // namespace

TEST_CASE("weights round trip bitwise with the paper's state_dict names and shapes", "[checkpoint]") {
  const std::pair<ModelKind, int> models[] = {{ModelKind::Autoencoder, 64}, {ModelKind::Autoencoder, 256},
                                              {ModelKind::Classifier, 64}, {ModelKind::Classifier, 256}};
  for (const auto& [kind, n] : models) {
    const ModelConfig config = config_of(kind, n);
    const NetworkSpec spec = build_network(config);
    INFO(describe(config));
    const std::string path = (scratch_dir() / ("weights_" + std::to_string(n) +
                                               (kind == ModelKind::Autoencoder ? "_ae" : "_c") + ".safetensors")).string();
    const std::vector<float> params = initial_params(spec, 1234);
    save_weights(path, spec, params.data(), {{"fmnist.epoch", "7"}});

    const SafetensorsFile file = read_safetensors(path);
    const Shapes expected = paper_state_dict(kind, n);
    REQUIRE(file.tensors.size() == expected.size());
    std::size_t total = 0;
    for (std::size_t i = 0; i < expected.size(); ++i) {
      CHECK(file.tensors[i].name == expected[i].first);
      CHECK(file.tensors[i].shape == expected[i].second);
      CHECK(file.tensors[i].dtype == "F32");
      total += static_cast<std::size_t>(element_count(expected[i].second));
    }
    CHECK(total == spec.param_count);
    if (n == 256) CHECK(total == (kind == ModelKind::Autoencoder ? 423809u : 212426u));
    CHECK(file.metadata.at("format") == "pt");
    CHECK(file.metadata.at("fmnist.epoch") == "7");
    CHECK(model_config_from_json(file.metadata.at("fmnist.config")).latent == n);

    const ModelConfig inferred = infer_model_config(file, path);
    CHECK(inferred.kind == kind);
    CHECK(inferred.latent == n);
    std::vector<float> loaded(spec.param_count, -1.0f);
    load_weights(file, path, spec, loaded.data());
    CHECK(std::memcmp(loaded.data(), params.data(), params.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("infer_model_config works from tensors alone and takes options from fmnist.config", "[checkpoint]") {
  const std::string path = (scratch_dir() / "infer.safetensors").string();
  SafetensorsFile file = saved_file(config_of(ModelKind::Classifier, 64), 5, path);
  file.metadata.clear();  // as PyTorch would write it
  ModelConfig c = infer_model_config(file, path);
  CHECK(c.kind == ModelKind::Classifier);
  CHECK(c.latent == 64);
  CHECK(c.head == ClassifierHead::Sigmoid);
  CHECK(c.dropout == 0.0f);
  CHECK_FALSE(c.freeze_encoder);

  ModelConfig custom = config_of(ModelKind::Classifier, 64);
  custom.head = ClassifierHead::Logits;
  custom.dropout = 0.2f;
  custom.freeze_encoder = true;
  file.metadata["fmnist.config"] = model_config_to_json(custom);
  c = infer_model_config(file, path);
  CHECK(c.head == ClassifierHead::Logits);
  CHECK(c.dropout == 0.2f);
  CHECK(c.freeze_encoder);

  file.metadata["fmnist.config"] = model_config_to_json(config_of(ModelKind::Autoencoder, 64));
  REQUIRE_THROWS_WITH(infer_model_config(file, path),
                      StartsWith(path + ": metadata fmnist.config says AE(64) but the tensors are C(64)"));
  file.metadata["fmnist.config"] = "{not json";
  REQUIRE_THROWS_WITH(infer_model_config(file, path), StartsWith(path + ": metadata fmnist.config: "));
}

TEST_CASE("mismatched, missing, extra and mistyped tensors are refused by name", "[checkpoint]") {
  const std::string path = (scratch_dir() / "ae64.safetensors").string();
  const SafetensorsFile ae64 = saved_file(config_of(ModelKind::Autoencoder, 64), 9, path);
  const NetworkSpec ae256 = build_network(config_of(ModelKind::Autoencoder, 256));
  std::vector<float> params(ae256.param_count);
  REQUIRE_THROWS_WITH(load_weights(ae64, path, ae256, params.data()),
                      StartsWith(path + ": tensor 'encoder.7.weight' has shape [64, 800] in the file but AE(256) expects [256, 800]"));

  SafetensorsFile missing = ae64;
  missing.tensors.pop_back();
  REQUIRE_THROWS_WITH(infer_model_config(missing, path), StartsWith(path + ": missing tensor 'decoder.5.bias'"));

  SafetensorsFile extra = ae64;
  extra.tensors.push_back(make_f32_tensor("decoder.7.weight", {1}, params.data()));
  REQUIRE_THROWS_WITH(infer_model_config(extra, path), StartsWith(path + ": unexpected tensor 'decoder.7.weight'"));

  SafetensorsFile both = ae64;
  both.tensors.push_back(make_f32_tensor("clasiffier.0.bias", {10}, params.data()));
  REQUIRE_THROWS_WITH(infer_model_config(both, path), Contains("both decoder.* and clasiffier.*"));

  SafetensorsFile wrong_dtype = ae64;
  wrong_dtype.tensors[1].dtype = "I32";
  REQUIRE_THROWS_WITH(infer_model_config(wrong_dtype, path), StartsWith(path + ": tensor 'encoder.0.bias' is I32, expected F32"));

  SafetensorsFile no_encoder;
  no_encoder.tensors.push_back(make_f32_tensor("fc.weight", {1}, params.data()));
  REQUIRE_THROWS_WITH(infer_model_config(no_encoder, path), StartsWith(path + ": no encoder.* tensors"));
}

TEST_CASE("a classifier takes its encoder from an autoencoder checkpoint", "[checkpoint]") {
  const std::string path = (scratch_dir() / "ae64_for_encoder.safetensors").string();
  const NetworkSpec ae = build_network(config_of(ModelKind::Autoencoder, 64));
  const std::vector<float> ae_params = initial_params(ae, 21);
  save_weights(path, ae, ae_params.data());
  const SafetensorsFile file = read_safetensors(path);

  ModelConfig frozen = config_of(ModelKind::Classifier, 64);
  frozen.freeze_encoder = true;
  const NetworkSpec c = build_network(frozen);
  std::vector<float> c_params = initial_params(c, 22);
  const std::vector<float> before = c_params;
  load_encoder_weights(file, path, c, c_params.data());
  for (const auto& p : c.params) {
    INFO(p.name);
    const float* now = c_params.data() + p.offset;
    if (is_encoder_param(p.name))
      CHECK(std::memcmp(now, ae_params.data() + ae.find_param(p.name)->offset, p.count * sizeof(float)) == 0);
    else
      CHECK(std::memcmp(now, before.data() + p.offset, p.count * sizeof(float)) == 0);
  }
  const NetworkSpec c256 = build_network(config_of(ModelKind::Classifier, 256));
  std::vector<float> c256_params(c256.param_count);
  REQUIRE_THROWS_WITH(load_encoder_weights(file, path, c256, c256_params.data()),
                      StartsWith(path + ": tensor 'encoder.7.weight' has shape [64, 800] in the file but C(256) expects [256, 800]"));
}

TEST_CASE("model config JSON round trips and refuses nonsense", "[checkpoint]") {
  ModelConfig c = config_of(ModelKind::Autoencoder, 128);
  c.ae_loss = PointLoss::MSE;
  c.dropout = 0.2f;
  const ModelConfig back = model_config_from_json(model_config_to_json(c));
  CHECK(back.kind == c.kind);
  CHECK(back.latent == 128);
  CHECK(back.ae_loss == PointLoss::MSE);
  CHECK(back.dropout == 0.2f);
  CHECK(model_config_from_json("{}").latent == ModelConfig{}.latent);
  CHECK_THROWS_AS(model_config_from_json("[1]"), std::invalid_argument);
  CHECK_THROWS_WITH(model_config_from_json(R"({"kind":"gan"})"), Contains("kind must be"));
  CHECK_THROWS_WITH(model_config_from_json(R"({"batchnorm":true})"), Contains("unknown field 'batchnorm'"));
  // A key with control characters is quoted in one line (a fuzzer's find: it split the message).
  CHECK_THROWS_WITH(model_config_from_json("{\"k\\nd\\u0001\":1}"), Equals("model config: unknown field 'k\\nd\\x01'"));
  // Numbers the field's type cannot hold are refused, not truncated or converted out of range.
  for (const char* latent : {"16.5", "4294967312", "1e300", "\"16\""})
    CHECK_THROWS_WITH(model_config_from_json(std::string(R"({"latent":)") + latent + "}"),
                      Contains("latent must be an integer"));
  for (const char* dropout : {"1e300", "-3.5e38", "true"})
    CHECK_THROWS_WITH(model_config_from_json(std::string(R"({"dropout":)") + dropout + "}"),
                      Contains("dropout must be a number"));
  CHECK(model_config_from_json(R"({"latent":-0,"dropout":0})").dropout == 0.0f);
}

TEST_CASE("training state round trips Adam moments, counters and extra fields", "[checkpoint]") {
  const std::string path = (scratch_dir() / "state.safetensors").string();
  ModelConfig frozen = config_of(ModelKind::Classifier, 64);
  frozen.freeze_encoder = true;
  for (const ModelConfig& config : {config_of(ModelKind::Autoencoder, 64), frozen}) {
    INFO(describe(config));
    const NetworkSpec spec = build_network(config);
    TrainingState state;
    state.step = 123456789012ull;
    state.epoch = 17;
    state.seed = 0xFEDCBA9876543210ull;
    state.extra_json = R"({"lr":0.001,"best_accuracy":0.91})";
    state.exp_avg = random_values(spec.param_count, 1);
    state.exp_avg_sq = random_values(spec.param_count, 2);
    for (const auto& p : spec.params)
      if (!p.trainable)
        for (std::size_t i = 0; i < p.count; ++i) state.exp_avg[p.offset + i] = state.exp_avg_sq[p.offset + i] = 0.0f;
    save_training_state(path, spec, state);

    const SafetensorsFile file = read_safetensors(path);
    CHECK(file.metadata.at("fmnist.kind") == "training_state");
    const bool classifier = config.kind == ModelKind::Classifier;
    CHECK((file.find("adam.exp_avg.clasiffier.0.weight") != nullptr) == classifier);
    CHECK((file.find("adam.exp_avg_sq.decoder.3.weight") != nullptr) == !classifier);
    CHECK((file.find("adam.exp_avg_sq.encoder.0.weight") != nullptr) == !config.freeze_encoder);
    CHECK(file.tensors.size() == 2 * (config.freeze_encoder ? 2u : spec.params.size()));

    const TrainingState back = load_training_state(path, spec);
    CHECK(back.step == state.step);
    CHECK(back.epoch == state.epoch);
    CHECK(back.seed == state.seed);
    CHECK(back.extra_json == state.extra_json);
    CHECK(back.exp_avg == state.exp_avg);
    CHECK(back.exp_avg_sq == state.exp_avg_sq);
  }
  const NetworkSpec other = build_network(config_of(ModelKind::Classifier, 256));
  REQUIRE_THROWS_WITH(load_training_state(path, other),
                      StartsWith(path + ": training state is for C(64) frozen-encoder but the model is C(256)"));

  const NetworkSpec ae = build_network(config_of(ModelKind::Autoencoder, 64));
  TrainingState bad;
  bad.exp_avg.assign(ae.param_count, 0.0f);
  bad.exp_avg_sq.assign(ae.param_count, 0.0f);
  bad.extra_json = R"({"epoch":3})";
  CHECK_THROWS_AS(save_training_state(path, ae, bad), std::invalid_argument);
  bad.exp_avg.pop_back();
  bad.extra_json = "{}";
  CHECK_THROWS_AS(save_training_state(path, ae, bad), std::invalid_argument);

  const std::string weights = (scratch_dir() / "not_a_state.safetensors").string();
  save_weights(weights, ae, initial_params(ae, 3).data());
  REQUIRE_THROWS_WITH(load_training_state(weights, ae), StartsWith(weights + ": not a training state"));
}

TEST_CASE("counters that do not fit an int are refused, not truncated", "[checkpoint]") {
  // get<int>() would turn 2^32 + 5 into 5: a resume from the wrong place. Each must be refused.
  const std::string path = (scratch_dir() / "counters.safetensors").string();
  const NetworkSpec spec = build_network(config_of(ModelKind::Autoencoder, 16));
  TrainingState state;
  state.epoch = 3;
  state.step = 30;
  state.seed = 1;
  state.exp_avg.assign(spec.param_count, 0.0f);
  state.exp_avg_sq.assign(spec.param_count, 0.0f);
  for (const std::string& extra : {std::string(R"({"step_in_epoch":4294967301})"),
                                   std::string(R"({"batch":-100})"), std::string(R"({"best_epoch":1.5})"),
                                   std::string(R"({"epoch_images":"many"})"),
                                   // The last epoch's metrics: 1e300 steps would convert out of range.
                                   std::string(R"({"metrics":{"epoch":3,"steps":1e300,"train_loss":0.1,"val_loss":0.1,)"
                                               R"("val_accuracy":null,"seconds":1,"images_per_second":1}})"),
                                   std::string(R"({"metrics":{"epoch":3,"steps":-30,"train_loss":0.1,"val_loss":0.1,)"
                                               R"("val_accuracy":null,"seconds":1,"images_per_second":1}})"),
                                   std::string(R"({"metrics":{"epoch":3,"steps":30,"train_loss":"low","val_loss":0.1,)"
                                               R"("val_accuracy":null,"seconds":1,"images_per_second":1}})")}) {
    INFO(extra);
    state.extra_json = extra;
    save_training_state(path, spec, state);
    REQUIRE_NOTHROW(load_training_state(path, spec));
    REQUIRE_THROWS_WITH(load_run_state(path, spec), StartsWith(path + ": metadata fmnist.train is malformed"));
  }
  state.extra_json = "{}";
  save_training_state(path, spec, state);
  REQUIRE_NOTHROW(load_run_state(path, spec));
  state.extra_json = R"({"metrics":{"epoch":3,"steps":30,"train_loss":0.1,"val_loss":0.1,"val_accuracy":0.5,)"
                     R"("seconds":1,"images_per_second":1}})";  // integers read as doubles are fine
  save_training_state(path, spec, state);
  const RunState with_metrics = load_run_state(path, spec);
  CHECK(with_metrics.metrics.steps == 30);
  CHECK(with_metrics.metrics.seconds == 1.0);
  CHECK(with_metrics.metrics.val_accuracy == 0.5);
  SafetensorsFile file = read_safetensors(path);
  file.metadata["fmnist.train"] = R"({"epoch":4294967299,"step":30,"seed":1})";
  write_safetensors(path, file);
  REQUIRE_THROWS_WITH(load_training_state(path, spec), Contains("epoch is not in [0, 2^31)"));
}

TEST_CASE("a training state can hold the weights too, all in one checksummed file", "[checkpoint]") {
  const std::string path = (scratch_dir() / "state_with_weights.safetensors").string();
  const NetworkSpec spec = build_network(config_of(ModelKind::Autoencoder, 16));
  TrainingState state;
  state.step = 40;
  state.epoch = 4;
  state.seed = 9;
  state.exp_avg = random_values(spec.param_count, 4);
  state.exp_avg_sq = random_values(spec.param_count, 5);
  state.params = random_values(spec.param_count, 6);
  save_training_state(path, spec, state);
  const SafetensorsFile file = read_safetensors(path);
  CHECK(file.checksum_verified);
  CHECK(file.find("weights.decoder.5.bias") != nullptr);
  CHECK(file.tensors.size() == 3 * spec.params.size());
  const TrainingState back = load_training_state(path, spec);
  CHECK(back.params == state.params);
  CHECK(back.exp_avg == state.exp_avg);

  state.params.clear();  // without weights (as older fmnist wrote it): params come back empty
  save_training_state(path, spec, state);
  CHECK(load_training_state(path, spec).params.empty());

  state.params.assign(3, 0.0f);
  CHECK_THROWS_AS(save_training_state(path, spec, state), std::invalid_argument);
}

TEST_CASE("a checkpoint of the wrong model or shapes is refused naming the file and the problem", "[checkpoint]") {
  const std::string path = (scratch_dir() / "ae16.safetensors").string();
  const NetworkSpec ae16 = build_network(config_of(ModelKind::Autoencoder, 16));
  save_weights(path, ae16, initial_params(ae16, 1).data());
  std::vector<float> params(build_network(config_of(ModelKind::Autoencoder, 32)).param_count);
  REQUIRE_THROWS_WITH(load_weights(read_safetensors(path), path, build_network(config_of(ModelKind::Autoencoder, 32)),
                                   params.data()),
                      StartsWith(path + ": tensor 'encoder.7.weight' has shape [16, 800] in the file but AE(32) "
                                        "expects [32, 800]"));
  const NetworkSpec c16 = build_network(config_of(ModelKind::Classifier, 16));
  params.assign(c16.param_count, 0.0f);
  REQUIRE_THROWS_WITH(load_weights(read_safetensors(path), path, c16, params.data()),
                      StartsWith(path + ": missing tensor 'clasiffier.0.weight'"));
}

// ---- PyTorch cross-check: our files load with strict load_state_dict, and PyTorch's load here ----
namespace {

using testing::quoted;

std::string interop(const std::string& arguments) { return testing::torch_interop(arguments); }

nlohmann::json torch_eval(const std::string& weights, const fs::path& data_dir) {
  return testing::last_json_line(interop("eval --weights " + quoted(weights) + " --data-dir " +
                                         quoted(data_dir.string()) + " --json"));
}

// A small t10k in raw IDX (not gzip): `count` pseudo-random images and labels.
void write_synthetic_t10k(const fs::path& dir, int count, std::vector<std::uint8_t>& images,
                          std::vector<std::uint8_t>& labels) {
  fs::create_directories(dir);
  SplitMix64 rng(77);
  images.resize(static_cast<std::size_t>(count) * 784);
  labels.resize(static_cast<std::size_t>(count));
  for (auto& p : images) p = static_cast<std::uint8_t>(rng.below(256));
  for (auto& l : labels) l = static_cast<std::uint8_t>(rng.below(10));
  write_idx_images((dir / "t10k-images-idx3-ubyte").string(), count, 28, 28, images.data(), false);
  write_idx_labels((dir / "t10k-labels-idx1-ubyte").string(), labels, false);
}

}  // namespace

TEST_CASE("PyTorch loads fmnist checkpoints strictly, and fmnist loads PyTorch's", "[checkpoint][torch]") {
  testing::require_torch();
  const fs::path dir = scratch_dir() / "torch";
  fs::create_directories(dir);
  std::vector<std::uint8_t> images, labels;
  const int count = 200;
  write_synthetic_t10k(dir / "data", count, images, labels);

  SECTION("fmnist's AE(256) and C(256) load with strict load_state_dict") {
    for (const auto& config : {config_of(ModelKind::Autoencoder, 256), config_of(ModelKind::Classifier, 256)}) {
      const NetworkSpec spec = build_network(config);
      const std::string path = (dir / (describe(config) + ".safetensors")).string();
      save_weights(path, spec, initial_params(spec, 2024).data());
      const auto result = torch_eval(path, dir / "data");
      INFO(result.dump());
      CHECK(result["model"] == describe(config));
      CHECK(result["latent"] == 256);
      CHECK(result["images"] == count);
      if (config.kind == ModelKind::Autoencoder) {
        CHECK(result["mae"].get<double>() > 0.0);
        CHECK(result["mae"].get<double>() < 1.0);
      } else {
        CHECK(result["accuracy"].get<double>() >= 0.0);
        CHECK(result["loss"].get<double>() > 1.0);  // CE of sigmoid outputs is at least ~1.46 when confident
      }
    }
  }
  SECTION("PyTorch computes what fmnist's tensor layout means") {
    // AE: every weight zero and decoder.5.bias = 0.25, so each output pixel is 0.25.
    const NetworkSpec ae = build_network(config_of(ModelKind::Autoencoder, 256));
    std::vector<float> params(ae.param_count, 0.0f);
    params[ae.find_param("decoder.5.bias")->offset] = 0.25f;
    const std::string ae_path = (dir / "constant_ae.safetensors").string();
    save_weights(ae_path, ae, params.data());
    double abs_sum = 0;
    for (auto p : images) abs_sum += std::abs(0.25 - static_cast<double>(static_cast<float>(p) / 255.0f));
    CHECK(torch_eval(ae_path, dir / "data")["mae"].get<double>() == Approx(abs_sum / images.size()).epsilon(1e-6));

    // C(256): a zero encoder with bias b leaves the latent relu(b) for every image; the head's
    // (10, n) weight then gives fixed scores, which reveal whether rows and columns are in place.
    const NetworkSpec c = build_network(config_of(ModelKind::Classifier, 256));
    std::vector<float> cp(c.param_count, 0.0f);
    const auto latent_bias = random_values(256, 5), head = random_values(10 * 256, 6), head_bias = random_values(10, 7);
    std::copy(latent_bias.begin(), latent_bias.end(), cp.begin() + static_cast<long>(c.find_param("encoder.7.bias")->offset));
    std::copy(head.begin(), head.end(), cp.begin() + static_cast<long>(c.find_param("clasiffier.0.weight")->offset));
    std::copy(head_bias.begin(), head_bias.end(), cp.begin() + static_cast<long>(c.find_param("clasiffier.0.bias")->offset));
    const std::string c_path = (dir / "constant_c.safetensors").string();
    save_weights(c_path, c, cp.data());
    double scores[10], log_sum = 0;
    int best = 0;
    for (int k = 0; k < 10; ++k) {
      double z = head_bias[k];
      for (int j = 0; j < 256; ++j) z += head[k * 256 + j] * std::max(0.0f, latent_bias[j]);
      scores[k] = 1.0 / (1.0 + std::exp(-z));
      log_sum += std::exp(scores[k]);
      if (scores[k] > scores[best]) best = k;
    }
    log_sum = std::log(log_sum);
    double loss = 0;
    int correct = 0;
    for (auto y : labels) {
      loss += log_sum - scores[y];
      correct += y == best;
    }
    const auto result = torch_eval(c_path, dir / "data");
    CHECK(result["correct"] == correct);
    CHECK(result["loss"].get<double>() == Approx(loss / count).epsilon(1e-5));
  }
  SECTION("fmnist infers and loads what PyTorch wrote, and writes it back unchanged") {
    const std::pair<const char*, ModelConfig> models[] = {{"ae", config_of(ModelKind::Autoencoder, 64)},
                                                          {"classifier", config_of(ModelKind::Classifier, 256)}};
    for (const auto& [name, config] : models) {
      const std::string path = (dir / (std::string("torch_") + name + ".safetensors")).string();
      interop(std::string("export --model ") + name + " --latent " + std::to_string(config.latent) +
              " --seed 3 --out " + quoted(path));
      const SafetensorsFile file = read_safetensors(path);
      CHECK(file.metadata.empty());
      const ModelConfig inferred = infer_model_config(file, path);
      CHECK(describe(inferred) == describe(config));
      const NetworkSpec spec = build_network(inferred);
      std::vector<float> params(spec.param_count);
      load_weights(file, path, spec, params.data());
      const std::string again = (dir / (std::string("fmnist_") + name + ".safetensors")).string();
      save_weights(again, spec, params.data());
      const SafetensorsFile back = read_safetensors(again);
      REQUIRE(back.tensors.size() == file.tensors.size());
      for (std::size_t i = 0; i < file.tensors.size(); ++i) {
        CHECK(back.tensors[i].name == file.tensors[i].name);
        CHECK(back.tensors[i].shape == file.tensors[i].shape);
        CHECK(back.tensors[i].data == file.tensors[i].data);
      }
      auto theirs = torch_eval(path, dir / "data"), ours = torch_eval(again, dir / "data");
      theirs.erase("weights");
      ours.erase("weights");
      CHECK(theirs == ours);
    }
  }
}
