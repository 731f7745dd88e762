// fmnist's evaluation against PyTorch's on real data: checkpoints trained here are loaded by the
// paper's PyTorch model (strict load_state_dict) and both evaluate the same t10k images; MAE and
// cross-entropy agree to 1e-5 and the classifier's correct count exactly.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "host/checkpoint.h"
#include "host/dataset.h"
#include "host/reference/cpu_ops.h"
#include "host/safetensors.h"
#include "host/trainer.h"
#include "torch_bridge.h"

using namespace fmnist;
namespace fs = std::filesystem;

namespace {

// Trains `steps` steps of `model` on the real data into a fresh directory; returns its checkpoint.
std::string train_briefly(const ModelConfig& model, int steps, const std::string& name,
                          const FashionMnist& data) {
  TrainConfig c;
  c.model = model;
  c.epochs = 1;
  c.max_steps_per_epoch = steps;
  c.validation_count = 1000;
  c.seed = 9;
  c.out_dir = std::string(FMNIST_TEST_TMP_DIR) + "/eval-torch/" + name;
  fs::remove_all(c.out_dir);
  auto ops = make_cpu_ops();
  std::ostringstream log;
  train(c, data, *ops, log);
  return c.out_dir + "/last.safetensors";
}

// fmnist's evaluation of a checkpoint file, as `fmnist eval` does it.
EvalResult fmnist_eval(const std::string& path, const FashionMnist& data,
                       const std::vector<std::int32_t>& indices) {
  const SafetensorsFile file = read_safetensors(path);
  const NetworkSpec spec = build_network(infer_model_config(file, path));
  std::vector<float> params(spec.param_count);
  load_weights(file, path, spec, params.data());
  auto ops = make_cpu_ops();
  Executor<float> ex(spec, *ops, 100, 1);
  ops->copy_to_device(ex.params(), params.data(), params.size() * sizeof(float));
  return evaluate(ex, data.t10k, indices);
}

nlohmann::json torch_eval(const std::string& path, const FashionMnist& data,
                          const std::vector<std::int32_t>& indices, const std::string& name) {
  const std::string list = std::string(FMNIST_TEST_TMP_DIR) + "/eval-torch/" + name + ".json";
  std::ofstream(list) << nlohmann::json(indices).dump();
  return testing::last_json_line(testing::torch_interop(
      "eval --weights " + testing::quoted(path) + " --data-dir " + testing::quoted(data.directory) +
      " --indices-file " + testing::quoted(list) + " --json"));
}

}  // namespace

TEST_CASE("fmnist eval matches PyTorch on the same weights and images", "[eval][torch]") {
  testing::require_torch();
  const FashionMnist data = load_fashion_mnist(default_data_dir());
  const Splits splits = make_splits(data, 9, 9900);
  // The paper's 100-image test split, and 1,000 validation images (a partial batch included).
  const std::vector<std::int32_t> many(splits.validation.begin(), splits.validation.begin() + 1050);

  SECTION("AE(64): MAE") {
    ModelConfig m;
    m.latent = 64;
    const std::string ckpt = train_briefly(m, 100, "ae64", data);
    for (const auto* indices : {&splits.test, &many}) {
      const EvalResult ours = fmnist_eval(ckpt, data, *indices);
      const auto theirs = torch_eval(ckpt, data, *indices, "ae64");
      const double torch_mae = theirs.at("mae"), torch_mse = theirs.at("mse");
      INFO("fmnist MAE " << ours.loss << ", PyTorch MAE " << torch_mae);
      CHECK(std::abs(ours.loss - torch_mae) <= 1e-5);
      CHECK(std::abs(ours.mse - torch_mse) <= 1e-5);
      CHECK(ours.loss > 0.0);
    }
  }
  SECTION("C(64), the paper's Sigmoid head: accuracy and cross-entropy") {
    ModelConfig m;
    m.kind = ModelKind::Classifier;
    m.latent = 64;
    const std::string ckpt = train_briefly(m, 100, "c64", data);
    for (const auto* indices : {&splits.test, &many}) {
      const EvalResult ours = fmnist_eval(ckpt, data, *indices);
      const auto theirs = torch_eval(ckpt, data, *indices, "c64");
      INFO("fmnist accuracy " << ours.accuracy << " loss " << ours.loss << "; PyTorch "
                              << theirs.dump());
      const long torch_correct = theirs.at("correct");
      const double torch_loss = theirs.at("loss");
      CHECK(std::lround(ours.accuracy * ours.images) == torch_correct);
      CHECK(std::abs(ours.loss - torch_loss) <= 1e-5);
      CHECK(ours.accuracy > 0.3);  // 100 steps learn something: chance is 0.1
    }
  }
}
