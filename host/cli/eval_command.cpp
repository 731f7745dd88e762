// `fmnist eval`: evaluates a checkpoint (ours, or a state_dict PyTorch saved as safetensors) on the
// validation, test or whole t10k split: MAE for an AE; accuracy, per-class accuracy and the
// confusion matrix for a classifier.
#include <iostream>
#include <stdexcept>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "host/backend_select.h"
#include "host/checkpoint.h"
#include "host/cli/cli.h"
#include "host/dataset.h"
#include "host/safetensors.h"
#include "host/trainer.h"

namespace fmnist::cli {
namespace {

const char* const kClassNames[kNetworkClasses] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                                  "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                                  "Bag",         "Ankle boot"};

struct EvalOptions {
  std::string checkpoint;
  std::string split = "t10k";
  std::string data_dir;
  std::string device = "auto";
  PrecisionFlags precision;  // --precision / --tf32
  std::uint64_t seed = 0;      // 0: the seed recorded in the checkpoint, else 1
  int validation_count = 0;    // 0: the value recorded in the checkpoint, else 9900
  int batch = 0;  // by backend (eval_batch_for), with the training batch (the paper's 100) as the CPU's
  bool json = false;
};

std::string metadata_or(const SafetensorsFile& f, const std::string& key, const std::string& fallback) {
  auto it = f.metadata.find(key);
  return it == f.metadata.end() ? fallback : it->second;
}

void print_text(const ModelConfig& model, const std::string& split, const EvalResult& r) {
  std::cout << fmt::format("{} on {} ({} images)\n", describe(model), split, r.images);
  if (model.kind == ModelKind::Autoencoder) {
    std::cout << fmt::format("MAE {:.6f}\nMSE {:.6f}\n", r.loss, r.mse);
    return;
  }
  std::cout << fmt::format("accuracy {:.4f}\ncross-entropy {:.6f}\n\nper class:\n", r.accuracy, r.loss);
  for (int c = 0; c < kNetworkClasses; ++c)
    std::cout << fmt::format("  {} {:<12} {:.4f}\n", c, kClassNames[c], r.class_accuracy[c]);
  std::cout << "\nconfusion matrix (rows: true label, columns: prediction)\n     ";
  for (int p = 0; p < kNetworkClasses; ++p) std::cout << fmt::format("{:>6}", p);
  std::cout << '\n';
  for (int t = 0; t < kNetworkClasses; ++t) {
    std::cout << fmt::format("  {:>2} ", t);
    for (int p = 0; p < kNetworkClasses; ++p)
      std::cout << fmt::format("{:>6}", r.confusion[t * kNetworkClasses + p]);
    std::cout << '\n';
  }
}

void print_json(const ModelConfig& model, const std::string& split, const EvalResult& r,
                Precision precision) {
  nlohmann::json j = {{"model", describe(model)}, {"latent", model.latent}, {"split", split},
                      {"images", r.images}, {"precision", precision_name(precision)}};
  if (model.kind == ModelKind::Autoencoder) {
    j["mae"] = r.loss;
    j["mse"] = r.mse;
  } else {
    j["accuracy"] = r.accuracy;
    j["loss"] = r.loss;
    j["class_accuracy"] = r.class_accuracy;
    j["confusion"] = r.confusion;
  }
  std::cout << j.dump() << '\n';
}

int run_eval(void* p) {
  const auto& o = *static_cast<EvalOptions*>(p);
  const Precision precision = resolve_precision(o.precision);  // a contradiction: refused first
  const SafetensorsFile file = read_safetensors(o.checkpoint);
  const ModelConfig model = infer_model_config(file, o.checkpoint);
  const NetworkSpec spec = build_network(model);
  std::vector<float> params(spec.param_count);
  load_weights(file, o.checkpoint, spec, params.data());

  const std::uint64_t seed =
      o.seed != 0 ? o.seed : std::stoull(metadata_or(file, "fmnist.seed", "1"));
  const int validation_count = o.validation_count != 0
                                   ? o.validation_count
                                   : std::stoi(metadata_or(file, "fmnist.validation_count", "9900"));
  const std::string data_dir = o.data_dir.empty() ? default_data_dir() : o.data_dir;
  const FashionMnist data = load_fashion_mnist(data_dir);
  const Splits splits = make_splits(data, seed, validation_count);
  const std::vector<std::int32_t>& indices =
      o.split == "val" ? splits.validation : o.split == "test" ? splits.test : splits.t10k;

  BackendChoice backend = select_backend(o.device, precision);
  const int batch = eval_batch_for(o.batch, TrainConfig{}.batch, *backend.ops, static_cast<int>(indices.size()));
  Executor<float> executor(spec, *backend.ops, batch, seed);
  backend.ops->copy_to_device(executor.params(), params.data(), params.size() * sizeof(float));
  const EvalResult result = evaluate(executor, data.t10k, indices);
  if (o.json)
    print_json(model, o.split, result, backend.ops->precision());
  else
    print_text(model, o.split, result);
  return 0;
}

}  // namespace

void add_eval_command(CLI::App& app, Command& command) {
  static EvalOptions o;
  CLI::App* sub = app.add_subcommand("eval", "Evaluate a checkpoint: MAE (AE) or accuracy and confusion matrix (classifier)");
  sub->add_option("--checkpoint", o.checkpoint, "a .safetensors file (fmnist's, or a PyTorch state_dict of the paper's model)")->required();
  sub->add_option("--split", o.split, "val, test or t10k (all 10,000)")->check(CLI::IsMember({"val", "test", "t10k"}))->capture_default_str();
  sub->add_option("--data-dir", o.data_dir, "directory of the IDX files (default: $FMNIST_DATA_DIR or " FMNIST_DEFAULT_DATA_DIR ")");
  sub->add_option("--device", o.device, "cpu, cuda or auto")->check(CLI::IsMember({"cpu", "cuda", "auto"}))->capture_default_str();
  add_precision_flags(sub, o.precision);
  sub->add_option("--seed", o.seed, "seed of the val/test split (default: the checkpoint's, else 1)");
  sub->add_option("--validation-size", o.validation_count, "t10k images in the validation split (default: the checkpoint's, else 9900)")->check(CLI::Range(1, 9999));
  sub->add_option("--batch-size", o.batch, "images per evaluated batch (at most the split's; 0: 100 on the CPU, 1000 on a GPU; every figure is a mean over images, so it changes them only by rounding)")->check(CLI::Range(0, 10000))->capture_default_str();
  sub->add_flag("--json", o.json, "print one JSON object instead of text");
  command = {sub, &run_eval, &o};
}

}  // namespace fmnist::cli
