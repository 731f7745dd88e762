// `fmnist bench`: throughput (images per second) of the paper's networks on one backend
// (host/bench.h): training steps of each model at each batch size ("step"), a batch-size sweep of
// one model ("sweep"), whole epochs with validation ("epoch"), and where a step's time goes, range by
// range ("layers", not in the default list). Prints tables; --json writes the figures in the format
// tools/torch_baseline.py writes (tools/bench_compare.py joins them), the ranges under "layers".
#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "host/backend_select.h"
#include "host/bench.h"
#include "host/cli/cli.h"

namespace fmnist::cli {
namespace {

struct BenchOptions {
  std::string models = "ae64,ae128,ae256,c64,c256";
  std::vector<int> batches{100};
  std::string measure = "step,epoch,sweep";
  std::string sweep_model = "ae256";
  std::vector<int> sweep_batches{100, 128, 256, 512, 1024, 2048, 4096};
  int warmup = 10;
  int steps = 50;
  int repeats = 5;
  int epoch_warmup = 1;
  int epoch_repeats = 3;
  int epoch_images = 60000;
  int val_images = 9900;
  int eval_batch = BenchSettings{}.epoch_eval_batch;
  std::string device = "auto";
  PrecisionFlags precision;  // --precision / --tf32
  bool no_graph = false;
  std::string placement = "auto";
  int slots = 4;
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

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// The sweep keeps the images per timed run of batch 100: fewer steps for larger batches.
int scaled(int count, int batch, int floor) {
  return batch <= 100 ? count : std::max(floor, static_cast<int>(static_cast<long long>(count) * 100 / batch));
}

nlohmann::json step_json(const StepRate& r, const char* measure) {
  return {{"model", r.model},           {"batch", r.batch},
          {"measure", measure},         {"mode", "fmnist"},
          {"warmup", r.warmup},         {"steps", r.steps},
          {"graphs", r.graphs},         {"median_images_per_second", r.median},
          {"min_images_per_second", r.min}, {"max_images_per_second", r.max},
          {"median_step_ms", r.median_step_ms}};
}

nlohmann::json layers_json(const LayerTimes& t) {
  nlohmann::json ranges = nlohmann::json::array();
  for (const auto& r : t.ranges)
    ranges.push_back({{"path", r.path}, {"depth", r.depth}, {"steps", r.steps}, {"median_us", r.median_us},
                      {"min_us", r.min_us}, {"max_us", r.max_us}});
  return {{"model", t.model}, {"batch", t.batch}, {"warmup", t.warmup}, {"steps", t.steps}, {"graphs", t.graphs},
          {"timing", t.clock}, {"median_step_us", t.median_step_us}, {"ranges", ranges}};
}

void print_layers(const LayerTimes& t) {
  std::cout << fmt::format("{} batch {}: {:.1f} us a step with its ranges timed (graph: {})\n", t.model, t.batch,
                           t.median_step_us, t.graphs ? "yes" : "no");
  std::cout << fmt::format("  {:<52} {:>10} {:>10} {:>10} {:>7}\n", "range", "median us", "min us", "max us", "step");
  for (const auto& r : t.ranges) {
    const std::size_t cut = r.path.rfind(" / ");
    const std::string name = std::string(2 * r.depth, ' ') + (cut == std::string::npos ? r.path : r.path.substr(cut + 3));
    std::cout << fmt::format("  {:<52} {:>10.1f} {:>10.1f} {:>10.1f} {:>6.1f}%\n", name, r.median_us, r.min_us,
                             r.max_us, t.median_step_us > 0 ? 100.0 * r.median_us / t.median_step_us : 0.0);
  }
  std::cout << std::flush;
}

void print_step_header() {
  std::cout << fmt::format("{:<10} {:>6} {:>14} {:>12} {:>12} {:>10} {:>6}\n", "model", "batch",
                           "median img/s", "min img/s", "max img/s", "ms/step", "graph");
}
void print_step(const StepRate& r) {
  std::cout << fmt::format("{:<10} {:>6} {:>14.0f} {:>12.0f} {:>12.0f} {:>10.3f} {:>6}\n", r.model,
                           r.batch, r.median, r.min, r.max, r.median_step_ms, r.graphs ? "yes" : "no")
            << std::flush;
}

int run_bench(void* p) {
  const auto& o = *static_cast<BenchOptions*>(p);
  std::vector<ModelConfig> models;
  for (const std::string& name : split(o.models)) models.push_back(parse_model(name));
  const ModelConfig sweep_model = parse_model(o.sweep_model);
  for (const auto& m : models) build_network(m);  // validate before timing anything
  const auto measures = split(o.measure);
  auto measuring = [&](const char* what) { return std::find(measures.begin(), measures.end(), what) != measures.end(); };
  for (const auto& m : measures)
    if (m != "step" && m != "epoch" && m != "sweep" && m != "layers")
      throw std::invalid_argument("--measure: '" + m + "' is not step, epoch, sweep or layers");

  BenchSettings settings;
  settings.warmup = o.warmup;
  settings.steps = o.steps;
  settings.repeats = o.repeats;
  settings.seed = o.seed;
  settings.stream.graphs = !o.no_graph;
  settings.stream.placement = parse_placement(o.placement);
  settings.stream.slots = o.slots;
  settings.epoch_warmup = o.epoch_warmup;
  settings.epoch_repeats = o.epoch_repeats;
  settings.epoch_train_images = o.epoch_images;
  settings.epoch_val_images = o.val_images;
  settings.epoch_eval_batch = o.eval_batch;

  BackendChoice backend = select_backend(o.device, resolve_precision(o.precision));
  Ops<float>& ops = *backend.ops;
  const std::string clock = ops.make_stopwatch()->clock();
  const char* precision = precision_name(ops.precision());
  std::cerr << "fmnist bench on " << ops.name() << " (" << backend.note << "); precision "
            << precision << "; timing: " << clock << "; graphs "
            << (settings.stream.graphs ? "on" : "off") << "\n";
  std::cout << "precision: " << precision << "\n";
  nlohmann::json results = nlohmann::json::array(), epochs = nlohmann::json::array(),
                 layers = nlohmann::json::array();

  if (measuring("step")) {
    std::cout << fmt::format("training step: median of {} runs of {} steps after {} warm-up steps\n",
                             o.repeats, o.steps, o.warmup);
    print_step_header();
    for (const auto& m : models)
      for (int batch : o.batches) {
        const StepRate r = bench_step(ops, m, batch, o.warmup, o.steps, settings);
        print_step(r);
        results.push_back(step_json(r, "step"));
      }
  }
  if (measuring("sweep")) {
    std::cout << fmt::format("\nbatch-size sweep of {}: as many images per timed run as {} steps of 100\n",
                             describe(sweep_model), o.steps);
    print_step_header();
    for (int batch : o.sweep_batches) {
      const StepRate r = bench_step(ops, sweep_model, batch, scaled(o.warmup, batch, 2),
                                    scaled(o.steps, batch, 5), settings);
      print_step(r);
      results.push_back(step_json(r, "sweep"));
    }
  }
  if (measuring("epoch")) {
    const FashionMnist data = synthetic_fashion_mnist(o.epoch_images, std::max(10000, o.val_images + 100), o.seed);
    std::cout << fmt::format("\nwhole epoch: {} training images and {} validation images, median of {} "
                             "after {} warm-up epoch(s)\n", o.epoch_images, o.val_images, o.epoch_repeats, o.epoch_warmup);
    std::cout << fmt::format("{:<10} {:>6} {:>9} {:>9} {:>10} {:>10} {:>10} {:>12} {:>14} {:>6}\n", "model",
                             "batch", "val batch", "placement", "epoch s", "of it val", "wall s", "train img/s",
                             "100 epochs s", "graph");
    for (const auto& m : models)
      for (int batch : o.batches) {
        const EpochRate r = bench_epoch(ops, m, batch, data, settings);
        std::cout << fmt::format("{:<10} {:>6} {:>9} {:>9} {:>10.3f} {:>10.3f} {:>10.3f} {:>12.0f} {:>14.1f} {:>6}\n",
                                 r.model, r.batch, r.eval_batch, r.placement, r.median_seconds,
                                 r.median_validation_seconds, r.median_wall_seconds,
                                 r.images_per_second, 100 * r.median_seconds, r.graphs ? "yes" : "no")
                  << std::flush;
        epochs.push_back({{"model", r.model}, {"batch", r.batch}, {"placement", r.placement},
                          {"train_images", r.train_images}, {"val_images", r.val_images}, {"eval_batch", r.eval_batch},
                          {"median_seconds", r.median_seconds}, {"min_seconds", r.min_seconds},
                          {"max_seconds", r.max_seconds}, {"median_wall_seconds", r.median_wall_seconds},
                          {"median_validation_seconds", r.median_validation_seconds},
                          {"images_per_second", r.images_per_second},
                          {"projected_100_epochs_seconds", 100 * r.median_seconds}, {"graphs", r.graphs}});
      }
  }
  if (measuring("layers")) {
    std::cout << fmt::format("\nwhere a training step's time goes: each NVTX range (phase, layer) timed by {} in "
                             "{} steps after {} warm-up steps, medians; a range's time includes its inner ones'\n",
                             clock, o.steps, o.warmup);
    for (const auto& m : models)
      for (int batch : o.batches) {
        const LayerTimes t = bench_layers(ops, m, batch, o.warmup, o.steps, settings);
        print_layers(t);
        layers.push_back(layers_json(t));
      }
  }
  if (!o.json_path.empty()) {
    nlohmann::json j = {{"backend", ops.name()},   {"tool", "fmnist bench"},
                        {"backend_note", backend.note},
                        {"precision", precision},
                        {"tf32", ops.precision() == Precision::TF32},
                        {"graphs", settings.stream.graphs},
                        {"placement", o.placement}, {"timing", clock},
                        {"warmup", o.warmup},       {"steps", o.steps},
                        {"repeats", o.repeats},     {"seed", o.seed},
                        {"results", results},       {"epochs", epochs},
                        {"layers", layers}};
    std::ofstream f(o.json_path, std::ios::trunc);
    f << j.dump(2) << '\n';
    if (!f) throw std::runtime_error(o.json_path + ": write failed");
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, Command& command) {
  static BenchOptions o;
  CLI::App* sub = app.add_subcommand("bench", "Measure training throughput (images per second): steps, a batch-size sweep, whole epochs");
  sub->add_option("--models", o.models, "comma-separated aeN / cN (step and epoch measures)")->capture_default_str();
  sub->add_option("--batch-size", o.batches, "one or more batch sizes (step and epoch measures)")->delimiter(',')->check(CLI::Range(1, 65536))->capture_default_str();
  sub->add_option("--measure", o.measure, "comma-separated: step, sweep, epoch, layers (each NVTX range of a training step timed, inside its CUDA graph on a GPU)")->capture_default_str();
  sub->add_option("--sweep-model", o.sweep_model, "the model of the batch-size sweep")->capture_default_str();
  sub->add_option("--sweep-batches", o.sweep_batches, "batch sizes of the sweep")->delimiter(',')->check(CLI::Range(1, 65536))->capture_default_str();
  sub->add_option("--warmup", o.warmup, "untimed steps first")->check(CLI::Range(0, 100000))->capture_default_str();
  sub->add_option("--steps", o.steps, "steps per timed run")->check(CLI::Range(1, 1000000))->capture_default_str();
  sub->add_option("--repeats", o.repeats, "timed runs; the median is reported")->check(CLI::Range(1, 1000))->capture_default_str();
  sub->add_option("--epoch-warmup", o.epoch_warmup, "untimed epochs first")->check(CLI::Range(0, 100))->capture_default_str();
  sub->add_option("--epoch-repeats", o.epoch_repeats, "timed epochs; the median is reported")->check(CLI::Range(1, 100))->capture_default_str();
  sub->add_option("--epoch-images", o.epoch_images, "training images per epoch (synthetic)")->check(CLI::Range(1, 1000000))->capture_default_str();
  sub->add_option("--eval-batch-size", o.eval_batch, "images per validation batch in the epoch measure (0: by backend: the training batch on the CPU, 1000 on a GPU)")->check(CLI::Range(0, 1000000))->capture_default_str();
  sub->add_option("--validation-images", o.val_images, "validation images per epoch (synthetic)")->check(CLI::Range(1, 1000000))->capture_default_str();
  sub->add_option("--device", o.device, "cpu, cuda or auto")->check(CLI::IsMember({"cpu", "cuda", "auto"}))->capture_default_str();
  add_precision_flags(sub, o.precision);
  sub->add_flag("--no-graph", o.no_graph, "launch every op of every step (no CUDA graphs)");
  sub->add_option("--data-placement", o.placement, "epochs: auto, resident or stream")->check(CLI::IsMember({"auto", "resident", "stream"}))->capture_default_str();
  sub->add_option("--stream-slots", o.slots, "batches in flight when streaming")->check(CLI::Range(2, 64))->capture_default_str();
  sub->add_option("--json", o.json_path, "also write the results to this JSON file");
  sub->add_option("--seed", o.seed, "seed of the weights and synthetic data")->capture_default_str();
  command = {sub, &run_bench, &o};
}

}  // namespace fmnist::cli
