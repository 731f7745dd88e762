// `fmnist reproduce`, the execution: see reproduce.h.
#include "host/reproduce/reproduce.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <stdexcept>
#include <streambuf>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "host/backend_select.h"
#include "host/checkpoint.h"
#include "host/dataset.h"
#include "host/report/report.h"
#include "host/reproduce/start_line.h"
#include "host/run_state.h"
#include "host/safetensors.h"
#include "host/trainer.h"
#include "host/wall_clock.h"

namespace fmnist::reproduce {
namespace {

using report::RunResult;

// Whole lines, each prefixed with "[run] ", to a shared stream under a shared mutex: runs on
// several threads interleave by line, never within one.
class PrefixedLines : public std::streambuf {
 public:
  PrefixedLines(std::ostream& out, std::mutex& mutex, std::string prefix)
      : out_(out), mutex_(mutex), prefix_(std::move(prefix)) {}
  ~PrefixedLines() override {
    if (!line_.empty()) emit();
  }

 protected:
  int overflow(int c) override {
    if (c == traits_type::eof()) return 0;
    if (c == '\r') return c;  // no in-place redraws in a shared log
    line_ += static_cast<char>(c);
    if (c == '\n') emit();
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    for (std::streamsize i = 0; i < n; ++i) overflow(static_cast<unsigned char>(s[i]));
    return n;
  }

 private:
  void emit() {
    std::lock_guard<std::mutex> lock(mutex_);
    out_ << prefix_ << line_;
    if (line_.back() != '\n') out_ << '\n';
    out_.flush();
    line_.clear();
  }
  std::ostream& out_;
  std::mutex& mutex_;
  std::string prefix_, line_;
};

std::string now_iso8601() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm local{};
  localtime_r(&now, &local);
  char stamp[40];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S%z", &local);
  return stamp;
}

std::uint64_t fnv1a(const std::vector<std::int32_t>& v) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::int32_t x : v) {
    for (int b = 0; b < 4; ++b) {
      h ^= static_cast<std::uint8_t>(static_cast<std::uint32_t>(x) >> (8 * b));
      h *= 1099511628211ull;
    }
  }
  return h;
}

const char* loss_name(const ModelConfig& m) {
  if (m.kind == ModelKind::Classifier) return "cross-entropy";
  return m.ae_loss == PointLoss::L1 ? "MAE" : "MSE";
}

// A planned run in settings.json: its training settings, and its place in the plan.
nlohmann::json run_settings(const PlannedRun& r) {
  nlohmann::json run = training_settings_json(r.config);
  run["name"] = r.name;
  run["title"] = r.title;
  run["recipe"] = r.recipe;
  run["encoder_from"] = r.encoder_from.empty() ? nlohmann::json(nullptr)
                                               : nlohmann::json(r.encoder_from + "/last.safetensors");
  run["depends_on"] = r.depends_on;
  return run;
}

// Runs the forward pass over `count` t10k images (by index) and returns the network's output for
// them. The pass runs `run_batch` rows (the images again, in turn, after the first `count`): a batch
// size the run has already used, so that a GPU plans no new convolution geometry mid-run (its
// algorithm trials synchronise the whole device, stalling every run that shares it). Each image's
// output does not depend on the rows beside it.
std::vector<float> forward_images(Executor<float>& ex, const Dataset& set, const std::int32_t* indices, int count,
                                  int run_batch) {
  run_batch = std::min(std::max(run_batch, count), ex.max_batch());
  std::vector<std::int32_t> rows(static_cast<std::size_t>(run_batch));
  for (int i = 0; i < run_batch; ++i) rows[i] = indices[i % count];
  std::vector<std::uint8_t> images(static_cast<std::size_t>(run_batch) * kImagePixels), labels(run_batch);
  gather_batch(set, rows.data(), run_batch, images.data(), labels.data());
  ex.ops().copy_to_device(ex.batch_images(), images.data(), images.size());
  ex.ops().copy_to_device(ex.batch_labels(), labels.data(), labels.size());
  ex.forward(run_batch, /*training=*/false, 0);
  std::vector<float> out(static_cast<std::size_t>(count) * ex.spec().output().count());
  ex.ops().copy_to_host(out.data(), ex.output(), out.size() * sizeof(float));
  return out;
}

constexpr int kReconstructed = 10;  // test images reconstructed for Figs. 4 and 9
constexpr int kPredicted = 100;      // test images classified for the confusion figure

// Trains one planned run and evaluates it; fills `out` (its own slot: no other thread touches it).
// line: where the runs that start together wait for one another after warming up (nullptr: none).
void execute_run(const PlannedRun& plan, const ReproduceOptions& options, const FashionMnist& data,
                 const Splits& splits, std::ostream& log, std::mutex& log_mutex, StartLine* line,
                 RunResult& out) {
  // First: whatever throws from here on (the backend's set-up included) leaves the line on the
  // way out, so that a run failing before its warm-up holds up no other.
  StartLinePlace place(line);
  const auto start = Clock::now();
  PrefixedLines buffer(log, log_mutex, fmt::format("[{}] ", plan.name));
  std::ostream run_log(&buffer);

  TrainConfig config = plan.config;
  config.out_dir = options.out_dir + "/" + plan.name;
  if (!plan.encoder_from.empty())
    config.init_encoder_from = options.out_dir + "/" + plan.encoder_from + "/last.safetensors";
  const GpuKernels kernels = gpu_kernels_for_run(gpu_kernels_requested(), std::nullopt, config.out_dir);
  BackendChoice backend = select_backend(options.device, options.precision, kernels);
  Ops<float>& ops = *backend.ops;
  if (!ops.computes_on_host()) config.gpu_kernels = kernels;
  out.backend = ops.name();
  run_log << fmt::format("training {} on {}{}\n", describe(config.model), ops.name(),
                         config.init_encoder_from.empty() ? "" : ", encoder from " + config.init_encoder_from);

  const bool classifier = config.model.kind == ModelKind::Classifier;
  TrainCallbacks callbacks;
  if (line != nullptr) callbacks.warmed_up = [&place] { place.arrive(); };
  const std::vector<int> snapshot_at = report::snapshot_epochs(config.epochs);
  if (!classifier && !splits.test.empty()) {
    callbacks.inspect = [&](int epoch, Executor<float>& ex) {
      if (!std::binary_search(snapshot_at.begin(), snapshot_at.end(), epoch)) return;
      out.snapshots.emplace_back(epoch, forward_images(ex, data.t10k, splits.test.data(), 1, config.batch));
    };
  }
  const TrainResult trained = train(config, data, ops, run_log, callbacks);
  out.history = trained.epochs;
  out.best_epoch = trained.best_epoch;
  out.graphs_captured = trained.graphs_captured;
  out.graph_capture_failures = trained.graph_capture_failures;

  // Evaluation with the final weights, then the best epoch's (when they differ).
  const NetworkSpec spec = build_network(config.model);
  const int eval_batch = eval_batch_for(config.eval_batch, config.batch, ops, static_cast<int>(splits.t10k.size()));
  Executor<float> ex(spec, ops, std::max(eval_batch, kPredicted), config.seed);
  ops.copy_to_device(ex.params(), trained.final_params.data(), spec.param_count * sizeof(float));
  out.test_final = report::to_split_eval(evaluate(ex, data.t10k, splits.test, eval_batch), classifier);
  out.t10k_final = report::to_split_eval(evaluate(ex, data.t10k, splits.t10k, eval_batch), classifier);
  const int figure_images = std::min<int>(classifier ? kPredicted : kReconstructed, static_cast<int>(splits.test.size()));
  if (figure_images > 0) {
    // evaluate() above ran the test split in one batch of this size
    const int test_batch = std::min<int>(eval_batch, static_cast<int>(splits.test.size()));
    const std::vector<float> y = forward_images(ex, data.t10k, splits.test.data(), figure_images, test_batch);
    if (classifier) {
      for (int i = 0; i < figure_images; ++i) {
        const float* row = y.data() + static_cast<std::size_t>(i) * kNetworkClasses;
        out.test_predictions.push_back(static_cast<int>(std::max_element(row, row + kNetworkClasses) - row));
      }
    } else {
      for (int i = 0; i < figure_images; ++i)
        out.reconstructions.emplace_back(y.begin() + static_cast<std::ptrdiff_t>(i) * kImagePixels,
                                         y.begin() + static_cast<std::ptrdiff_t>(i + 1) * kImagePixels);
    }
  }
  if (!trained.epochs.empty() && trained.best_epoch != trained.epochs.back().epoch) {
    const std::string best_path = config.out_dir + "/best.safetensors";
    std::vector<float> best(spec.param_count);
    load_weights(read_safetensors(best_path), best_path, spec, best.data());
    ops.copy_to_device(ex.params(), best.data(), best.size() * sizeof(float));
    out.test_best = report::to_split_eval(evaluate(ex, data.t10k, splits.test, eval_batch), classifier);
    out.t10k_best = report::to_split_eval(evaluate(ex, data.t10k, splits.t10k, eval_batch), classifier);
  } else {
    out.test_best = out.test_final;
    out.t10k_best = out.t10k_final;
  }
  out.wall_seconds = seconds_since(start);
  if (classifier)
    run_log << fmt::format("done in {:.1f} s: t10k accuracy {:.4f} (final weights), {:.4f} (best, epoch {})\n",
                           out.wall_seconds, out.t10k_final.accuracy, out.t10k_best.accuracy, out.best_epoch);
  else
    run_log << fmt::format("done in {:.1f} s: t10k MAE {:.4f} (final weights), {:.4f} (best, epoch {})\n",
                           out.wall_seconds, out.t10k_final.mae, out.t10k_best.mae, out.best_epoch);
}

void write_json(const std::string& path, const nlohmann::json& j, int indent = 2) {
  write_file_atomically(path, j.dump(indent) + "\n");
}

}  // namespace

ReproduceSummary reproduce(const ReproduceOptions& options, std::ostream& log) {
  const auto start = Clock::now();
  if (options.out_dir.empty()) throw std::invalid_argument("reproduce: no output directory");
  if (options.plan.epochs < 1) throw std::invalid_argument("--epochs must be >= 1");
  std::vector<PlannedRun> plan = make_plan(options.plan);
  if (plan.empty()) throw std::invalid_argument("reproduce: no runs selected");
  for (PlannedRun& r : plan) r.config.precision = options.precision;  // recorded and checked by train()
  for (const PlannedRun& r : plan) build_network(r.config.model);  // validates before any work
  const std::string settings_path = options.out_dir + "/reproduce.json";
  if (!options.overwrite && std::filesystem::exists(settings_path))
    throw std::invalid_argument(settings_path + " already exists: choose another --out, or --overwrite");

  const std::string data_dir = options.data_dir.empty() ? default_data_dir() : options.data_dir;
  const FashionMnist data = load_fashion_mnist(data_dir);
  const Splits splits = make_splits(data, options.plan.seed, 9900);

  // Concurrent runs hold two CUDA streams each (compute and copy); over CUDA's default 8 hardware
  // work queues, streams alias and can wait on one another's work (false dependencies). 32 queues,
  // the most CUDA allows, unless the user chose; CUDA reads it when it creates its context, later
  // than this. (It was first set against the AE runs' stalls beside the classifiers on the H100; the
  // third H100 session saw them with it: they come from lazy kernel loading, start_line.h.)
  setenv("CUDA_DEVICE_MAX_CONNECTIONS", "32", /*overwrite=*/0);

  // Which backend the runs get, and how many run at once.
  std::string backend_name;
  bool gpu = false;
  {
    BackendChoice probe = select_backend(options.device, options.precision);
    backend_name = probe.ops->name();
    gpu = !probe.ops->computes_on_host();
    log << fmt::format("fmnist reproduce: {} run(s) on {} ({}); data {}; output {}\n", plan.size(), backend_name,
                       probe.note, data_dir, options.out_dir);
  }
  const int workers = options.jobs > 0 ? options.jobs : (gpu ? static_cast<int>(plan.size()) : 1);

  std::error_code ec;
  std::filesystem::create_directories(options.out_dir, ec);
  if (ec) throw std::runtime_error(options.out_dir + ": cannot create output directory: " + ec.message());

  nlohmann::json settings;
  std::string run_names;
  for (const PlannedRun& r : plan) run_names += (run_names.empty() ? "" : ", ") + r.name;
  settings["date"] = now_iso8601();
  settings["version"] = FMNIST_VERSION;
  settings["command"] = "fmnist reproduce";
  settings["recipe"] = options.recipe_name;
  settings["epochs"] = options.plan.epochs;
  settings["max_steps_per_epoch"] = options.plan.max_steps_per_epoch;
  settings["seed"] = options.plan.seed;
  settings["device"] = options.device;
  settings["backend"] = backend_name;
  settings["precision"] = precision_name(options.precision);
  settings["tf32"] = options.precision == Precision::TF32;
  settings["workers"] = workers;
  settings["data_dir"] = data_dir;
  settings["run_names"] = run_names;
  settings["splits"] = {{"train", splits.train.size()},
                        {"validation", splits.validation.size()},
                        {"test", splits.test.size()},
                        {"split_seed", options.plan.seed},
                        {"validation_fnv1a64", fmt::format("{:016x}", fnv1a(splits.validation))},
                        {"test_indices", splits.test}};
  nlohmann::json runs_json = nlohmann::json::array();
  for (const PlannedRun& r : plan) runs_json.push_back(run_settings(r));
  settings["runs"] = runs_json;
  write_json(settings_path, settings);

  // The runs, each on its own backend object (its own CUDA stream) and thread.
  std::vector<RunResult> results(plan.size());
  std::map<std::string, int> index;
  for (std::size_t i = 0; i < plan.size(); ++i) {
    index[plan[i].name] = static_cast<int>(i);
    results[i].name = plan[i].name;
    results[i].title = plan[i].title;
    results[i].recipe = plan[i].recipe;
    results[i].classifier = plan[i].config.model.kind == ModelKind::Classifier;
    results[i].loss_name = loss_name(plan[i].config.model);
    results[i].backend = backend_name;
  }
  std::vector<std::vector<int>> deps(plan.size());
  for (std::size_t i = 0; i < plan.size(); ++i)
    for (const std::string& d : plan[i].depends_on) deps[i].push_back(index.at(d));
  std::mutex log_mutex;
  // The runs that start at once on a GPU warm up, then wait for one another (start_line.h).
  std::unique_ptr<StartLine> line;
  if (gpu && workers > 1) {
    const int together = start_together(deps, workers);
    line = std::make_unique<StartLine>(together);
    log << fmt::format("fmnist reproduce: the {} runs that start at once warm up (load their kernels), then train "
                       "together\n", together);
  }
  const auto runs_start = Clock::now();
  const std::vector<TaskOutcome> outcomes = run_with_dependencies(deps, workers, [&](int i) {
    execute_run(plan[i], options, data, splits, log, log_mutex, line.get(), results[i]);
  });
  const double runs_seconds = seconds_since(runs_start);

  ReproduceSummary summary;
  for (std::size_t i = 0; i < plan.size(); ++i) {
    if (outcomes[i].ok) continue;
    summary.all_ok = false;
    if (outcomes[i].ran) {
      results[i].status = "failed: " + outcomes[i].error;
    } else {
      std::string failed;
      for (int d : deps[i]) failed += (failed.empty() ? "" : ", ") + plan[d].name;
      results[i].status = "skipped: " + failed + " did not finish";
    }
    std::lock_guard<std::mutex> lock(log_mutex);
    log << fmt::format("[{}] {}\n", plan[i].name, results[i].status);
  }

  summary.scale.epochs = options.plan.epochs;
  summary.scale.full_epochs = options.plan.max_steps_per_epoch == 0;
  summary.scale.backend = backend_name;
  summary.scale.total_wall_seconds = seconds_since(start);
  summary.targets = report::check_targets(results, summary.scale);
  summary.results_path = options.out_dir + "/results.json";
  nlohmann::json results_json = report::results_json(results, summary.scale, summary.targets);
  results_json["runs_wall_seconds"] = runs_seconds;
  results_json["workers"] = workers;
  write_json(summary.results_path, results_json);
  // The figures' material, so that `fmnist report OUT` can draw them later (a build without cairo
  // draws none now); compact: one line, images as base64 grey levels.
  std::vector<int> test_labels;
  for (const std::int32_t i : splits.test) test_labels.push_back(data.t10k.labels.at(i));
  summary.figures_path = options.out_dir + "/figures.json";
  write_json(summary.figures_path, report::figures_json(results, splits.test, test_labels), -1);

  report::ReportInputs inputs;
  inputs.data = &data;
  inputs.test_indices = splits.test;
  inputs.runs = results;
  inputs.scale = summary.scale;
  inputs.targets = summary.targets;
  inputs.settings = settings;
  summary.report_path = report::write_report(options.out_dir, inputs);
  summary.figures_drawn = report::kCanDrawFigures;
  summary.runs = std::move(results);
  return summary;
}

}  // namespace fmnist::reproduce
