// `fmnist bench`: training-step throughput (images per second) of the paper's networks on one
// backend: warm-up steps, then the median of repeated timed runs. Prints a table; --json writes it.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "host/backend_select.h"
#include "host/cli/cli.h"
#include "host/dataset.h"
#include "models/executor.h"
#include "models/rng.h"

namespace fmnist::cli {
namespace {

struct BenchOptions {
  std::string models = "ae64,ae128,ae256,c64,c256";
  std::vector<int> batches{100};
  int warmup = 10;
  int steps = 50;
  int repeats = 5;
  std::string device = "auto";
  std::string json_path;
  std::uint64_t seed = 1;
};

ModelConfig parse_model(const std::string& name) {
  const std::size_t digits = name.find_first_of("0123456789");
  const std::string kind = name.substr(0, digits);
  const bool number = digits != std::string::npos && digits + 6 > name.size() &&
                      name.find_first_not_of("0123456789", digits) == std::string::npos;
  if ((kind != "ae" && kind != "c") || !number)
    throw std::invalid_argument("--models: '" + name + "' is not aeN or cN (e.g. ae256, c64)");
  ModelConfig m;
  m.kind = kind == "ae" ? ModelKind::Autoencoder : ModelKind::Classifier;
  m.latent = std::stoi(name.substr(digits));
  return m;
}

struct BenchRow {
  std::string model;
  int batch = 0;
  double median_images_per_second = 0, min_images_per_second = 0, max_images_per_second = 0;
};

BenchRow bench_one(Ops<float>& ops, const ModelConfig& model, int batch, const BenchOptions& o) {
  const NetworkSpec spec = build_network(model);
  Executor<float> ex(spec, ops, batch, o.seed);
  std::vector<float> params(spec.param_count);
  initialize_parameters(spec, o.seed, params.data());
  ops.copy_to_device(ex.params(), params.data(), params.size() * sizeof(float));
  // Synthetic images and labels: the step's cost does not depend on the pixel values.
  SplitMix64 rng(o.seed);
  std::vector<std::uint8_t> images(static_cast<std::size_t>(batch) * spec.input.count());
  std::vector<std::uint8_t> labels(batch);
  for (auto& px : images) px = static_cast<std::uint8_t>(rng.below(256));
  for (auto& l : labels) l = static_cast<std::uint8_t>(rng.below(kNetworkClasses));
  ops.copy_to_device(ex.batch_images(), images.data(), images.size());
  ops.copy_to_device(ex.batch_labels(), labels.data(), labels.size());
  AdamConfig adam;
  std::uint64_t step = 0;
  for (int i = 0; i < o.warmup; ++i) ex.train_step(batch, ++step, adam);
  ops.synchronize();
  std::vector<double> rates;
  for (int r = 0; r < o.repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < o.steps; ++i) ex.train_step(batch, ++step, adam);
    ops.synchronize();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rates.push_back(static_cast<double>(o.steps) * batch / seconds);
  }
  std::sort(rates.begin(), rates.end());
  BenchRow row;
  row.model = describe(model);
  row.batch = batch;
  row.median_images_per_second = rates[rates.size() / 2];
  row.min_images_per_second = rates.front();
  row.max_images_per_second = rates.back();
  return row;
}

int run_bench(void* p) {
  const auto& o = *static_cast<BenchOptions*>(p);
  std::vector<ModelConfig> models;
  std::stringstream list(o.models);
  for (std::string name; std::getline(list, name, ',');) models.push_back(parse_model(name));
  for (const auto& m : models) build_network(m);  // validate before timing anything
  BackendChoice backend = select_backend(o.device);
  std::cerr << "fmnist bench on " << backend.ops->name() << " (" << backend.note << ")\n";
  std::vector<BenchRow> rows;
  std::cout << fmt::format("{:<10} {:>6} {:>14} {:>14} {:>14}\n", "model", "batch", "median img/s",
                           "min img/s", "max img/s");
  for (const auto& m : models)
    for (int batch : o.batches) {
      rows.push_back(bench_one(*backend.ops, m, batch, o));
      const auto& r = rows.back();
      std::cout << fmt::format("{:<10} {:>6} {:>14.0f} {:>14.0f} {:>14.0f}\n", r.model, r.batch,
                               r.median_images_per_second, r.min_images_per_second,
                               r.max_images_per_second)
                << std::flush;
    }
  if (!o.json_path.empty()) {
    nlohmann::json j = {{"backend", backend.ops->name()}, {"warmup", o.warmup},
                        {"steps", o.steps},               {"repeats", o.repeats},
                        {"results", nlohmann::json::array()}};
    for (const auto& r : rows)
      j["results"].push_back({{"model", r.model},
                              {"batch", r.batch},
                              {"median_images_per_second", r.median_images_per_second},
                              {"min_images_per_second", r.min_images_per_second},
                              {"max_images_per_second", r.max_images_per_second}});
    std::ofstream f(o.json_path, std::ios::trunc);
    f << j.dump(2) << '\n';
    if (!f) throw std::runtime_error(o.json_path + ": write failed");
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, Command& command) {
  static BenchOptions o;
  CLI::App* sub = app.add_subcommand("bench", "Measure training-step throughput (images per second)");
  sub->add_option("--models", o.models, "comma-separated aeN / cN")->capture_default_str();
  sub->add_option("--batch-size", o.batches, "one or more batch sizes")->check(CLI::Range(1, 65536))->capture_default_str();
  sub->add_option("--warmup", o.warmup, "untimed steps first")->check(CLI::Range(0, 100000))->capture_default_str();
  sub->add_option("--steps", o.steps, "steps per timed run")->check(CLI::Range(1, 1000000))->capture_default_str();
  sub->add_option("--repeats", o.repeats, "timed runs; the median is reported")->check(CLI::Range(1, 1000))->capture_default_str();
  sub->add_option("--device", o.device, "cpu, cuda or auto")->check(CLI::IsMember({"cpu", "cuda", "auto"}))->capture_default_str();
  sub->add_option("--json", o.json_path, "also write the results to this JSON file");
  sub->add_option("--seed", o.seed, "seed of the weights and synthetic batch")->capture_default_str();
  command = {sub, &run_bench, &o};
}

}  // namespace fmnist::cli
