// Training and evaluation of one network: epochs of shuffled batches, validation after each
// epoch, metrics, and checkpoints (best.safetensors, last.safetensors + last.state.safetensors).
#include "trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "host/checkpoint.h"
#include "host/metrics_log.h"
#include "host/progress.h"
#include "host/safetensors.h"
#include "models/rng.h"

namespace fmnist {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Copies the listed images (and labels) into the executor's batch buffers.
void stage_batch(Executor<float>& ex, const Dataset& set, const std::int32_t* indices, int count,
                 std::vector<std::uint8_t>& images, std::vector<std::uint8_t>& labels) {
  images.resize(static_cast<std::size_t>(count) * kImagePixels);
  labels.resize(static_cast<std::size_t>(count));
  gather_batch(set, indices, count, images.data(), labels.data());
  ex.ops().copy_to_device(ex.batch_images(), images.data(), images.size());
  ex.ops().copy_to_device(ex.batch_labels(), labels.data(), labels.size());
}

template <class U> std::vector<U> download(Ops<float>& ops, const U* src, std::size_t n) {
  std::vector<U> host(n);
  ops.copy_to_host(host.data(), src, n * sizeof(U));
  return host;
}

nlohmann::json config_json(const TrainConfig& c, const std::string& backend) {
  return {{"model", nlohmann::json::parse(model_config_to_json(c.model))},
          {"description", describe(c.model)},
          {"epochs", c.epochs},
          {"batch", c.batch},
          {"adam", {{"lr", c.adam.lr}, {"beta1", c.adam.beta1}, {"beta2", c.adam.beta2},
                    {"eps", c.adam.eps}}},
          {"seed", c.seed},
          {"validation_count", c.validation_count},
          {"drop_last", c.drop_last},
          {"max_steps_per_epoch", c.max_steps_per_epoch},
          {"init_encoder_from", c.init_encoder_from},
          {"init_redraws", c.init_redraws},
          {"backend", backend}};
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
  f.flush();
  if (!f) throw std::runtime_error(path + ": write failed");
}

// The run's training state as last.state.safetensors holds it.
struct ResumePoint {
  int epoch = 0;
  std::uint64_t step = 0;
  int best_epoch = 0;
  double best_metric = 0;
};

// About half of PyTorch's default initialisations of this AE leave the reconstruction's ReLU at
// zero for every pixel (decoder.5.bias is one scalar in +-1/3, larger than the signal reaching it
// when negative): no gradient ever flows and the loss stays at the mean pixel value. Such a draw
// is replaced by the next one (seeded from the run's seed), at most config.init_redraws times.
// Returns the number of draws made (1 when the first was alive).
int redraw_dead_autoencoder(Executor<float>& ex, const NetworkSpec& spec, const Dataset& train_set,
                            const std::vector<std::int32_t>& train_indices, const TrainConfig& config,
                            std::vector<float>& params, std::ostream& log) {
  const std::vector<std::int32_t> order = epoch_order(train_indices, config.seed, 1);
  const int count = std::min<int>(config.batch, static_cast<int>(order.size()));
  std::vector<std::uint8_t> images, labels;
  std::vector<float> output(static_cast<std::size_t>(count) * spec.output().count());
  stage_batch(ex, train_set, order.data(), count, images, labels);
  for (int draw = 1;; ++draw) {
    ex.forward(count, /*training=*/false, 0);
    ex.ops().copy_to_host(output.data(), ex.output(), output.size() * sizeof(float));
    const bool alive = std::any_of(output.begin(), output.end(), [](float v) { return v > 0; });
    if (alive || draw > config.init_redraws) return draw;
    log << "fmnist: initial weights " << draw << " give an all-zero reconstruction (its ReLU is "
        << "dead, nothing would train); drawing again\n";
    initialize_parameters(spec, derive_seed(config.seed, /*purpose=*/4, draw), params.data());
    ex.ops().copy_to_device(ex.params(), params.data(), params.size() * sizeof(float));
  }
}

}  // namespace

EvalResult evaluate(Executor<float>& ex, const Dataset& set, const std::vector<std::int32_t>& indices) {
  const NetworkSpec& spec = ex.spec();
  const bool classifier = spec.config.kind == ModelKind::Classifier;
  const int max_batch = ex.max_batch();
  const int total = static_cast<int>(indices.size());
  if (total == 0) throw std::invalid_argument("evaluate: no images to evaluate");
  Ops<float>& ops = ex.ops();
  // Sums of batch means, of the full batches [0,1] and of a partial last batch [2,3]:
  // AE: MAE, MSE; classifier: cross-entropy, unused.
  auto* sums = static_cast<double*>(ops.allocate(4 * sizeof(double)));
  std::vector<std::uint8_t> images, labels;
  try {
    ex.reset_metrics();
    for (int start = 0; start < total; start += max_batch) {
      const int count = std::min(max_batch, total - start);
      double* s = sums + (count == max_batch ? 0 : 2);
      stage_batch(ex, set, indices.data() + start, count, images, labels);
      ex.forward(count, /*training=*/false, 0);
      if (classifier) {
        ex.loss(count, s, /*with_gradient=*/false);
        ops.count_predictions(count, kNetworkClasses, ex.output(), ex.batch_labels(), ex.confusion());
      } else {
        ex.reconstruction_loss(AeLoss::MAE, count, nullptr, s);
        ex.reconstruction_loss(AeLoss::MSE, count, nullptr, s + 1);
      }
    }
  } catch (...) {
    ops.deallocate(sums);
    throw;
  }
  auto host_sums = download(ops, sums, 4);
  ops.deallocate(sums);
  const int partial = total % max_batch;
  auto mean = [&](int k) {
    return (host_sums[k] * max_batch + host_sums[k + 2] * partial) / total;
  };
  EvalResult r;
  r.images = total;
  r.loss = mean(0);
  if (!classifier) {
    r.mse = mean(1);
    return r;
  }
  r.confusion = download(ops, ex.confusion(), kNetworkClasses * kNetworkClasses);
  std::int64_t correct = 0;
  r.class_accuracy.assign(kNetworkClasses, 0.0);
  for (int label = 0; label < kNetworkClasses; ++label) {
    std::int64_t row = 0;
    for (int p = 0; p < kNetworkClasses; ++p) row += r.confusion[label * kNetworkClasses + p];
    correct += r.confusion[label * kNetworkClasses + label];
    r.class_accuracy[label] =
        row > 0 ? static_cast<double>(r.confusion[label * kNetworkClasses + label]) / row : std::nan("");
  }
  r.accuracy = static_cast<double>(correct) / total;
  return r;
}

TrainResult train(const TrainConfig& config, const FashionMnist& data, Ops<float>& ops,
                  std::ostream& progress_out, const TrainCallbacks& callbacks) {
  if (config.epochs < 1) throw std::invalid_argument("epochs must be >= 1");
  if (config.batch < 1) throw std::invalid_argument("batch size must be >= 1");
  const NetworkSpec spec = build_network(config.model);
  const bool classifier = config.model.kind == ModelKind::Classifier;
  const Splits splits = make_splits(data, config.seed, config.validation_count);
  Executor<float> ex(spec, ops, config.batch, config.seed);

  // Initial state: PyTorch-style init, optionally an AE's encoder, or a previous run's state.
  std::vector<float> params(spec.param_count);
  initialize_parameters(spec, config.seed, params.data());
  int init_draws = 1;
  ResumePoint resume;
  if (!config.init_encoder_from.empty()) {
    if (!classifier) throw std::invalid_argument("--init-from applies to a classifier only");
    load_encoder_weights(read_safetensors(config.init_encoder_from), config.init_encoder_from, spec,
                         params.data());
  }
  if (!config.resume_from.empty()) {
    const std::string weights = config.resume_from + "/last.safetensors";
    const std::string state_path = config.resume_from + "/last.state.safetensors";
    load_weights(read_safetensors(weights), weights, spec, params.data());
    TrainingState state = load_training_state(state_path, spec);
    if (state.seed != config.seed)
      throw std::invalid_argument(state_path + ": was trained with seed " +
                                  std::to_string(state.seed) + ", not " + std::to_string(config.seed));
    ops.copy_to_device(ex.exp_avg(), state.exp_avg.data(), spec.param_count * sizeof(float));
    ops.copy_to_device(ex.exp_avg_sq(), state.exp_avg_sq.data(), spec.param_count * sizeof(float));
    const auto extra = nlohmann::json::parse(state.extra_json);
    resume.epoch = state.epoch;
    resume.step = state.step;
    resume.best_epoch = extra.value("best_epoch", 0);
    resume.best_metric = extra.value("best_metric", 0.0);
  }
  ops.copy_to_device(ex.params(), params.data(), spec.param_count * sizeof(float));
  if (config.model.kind == ModelKind::Autoencoder && config.resume_from.empty()) {
    init_draws = redraw_dead_autoencoder(ex, spec, data.train, splits.train, config, params, progress_out);
  }

  const bool writing = !config.out_dir.empty();
  std::unique_ptr<MetricsLog> metrics_log;
  if (writing) {
    std::error_code ec;
    std::filesystem::create_directories(config.out_dir, ec);
    if (ec) throw std::runtime_error(config.out_dir + ": cannot create output directory: " + ec.message());
    nlohmann::json run = config_json(config, ops.name());
    run["init_draws"] = init_draws;
    write_text_file(config.out_dir + "/config.json", run.dump(2) + "\n");
    metrics_log = std::make_unique<MetricsLog>(config.out_dir, /*append=*/resume.epoch > 0);
  }

  const int train_count = static_cast<int>(splits.train.size());
  int steps_per_epoch = config.drop_last ? train_count / config.batch
                                         : (train_count + config.batch - 1) / config.batch;
  if (config.max_steps_per_epoch > 0) steps_per_epoch = std::min(steps_per_epoch, config.max_steps_per_epoch);
  if (steps_per_epoch < 1) throw std::invalid_argument("batch size larger than the training set with drop_last");

  Progress progress(progress_out, callbacks.live_progress, config.epochs, classifier);
  TrainResult result;
  result.init_draws = init_draws;
  result.best_epoch = resume.best_epoch;
  double best_metric = resume.best_metric;
  std::uint64_t step = resume.step;
  std::vector<std::uint8_t> images, labels;
  const std::map<std::string, std::string> weights_metadata = {
      {"fmnist.config", model_config_to_json(config.model)},
      {"fmnist.seed", std::to_string(config.seed)},
      {"fmnist.validation_count", std::to_string(config.validation_count)}};

  if (callbacks.inspect && resume.epoch == 0) callbacks.inspect(0, ex);
  for (int epoch = resume.epoch + 1; epoch <= config.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    const std::vector<std::int32_t> order = epoch_order(splits.train, config.seed, epoch);
    ex.reset_metrics();
    progress.epoch_started(epoch, steps_per_epoch);
    int images_seen = 0;
    float last_batch_loss = 0;
    int last_batch = config.batch;
    for (int s = 0; s < steps_per_epoch; ++s) {
      const int count = std::min(config.batch, train_count - s * config.batch);
      stage_batch(ex, data.train, order.data() + static_cast<std::size_t>(s) * config.batch, count,
                  images, labels);
      ex.train_step(count, ++step, config.adam);
      images_seen += count;
      last_batch = count;
      if (callbacks.on_step) {
        ops.copy_to_host(&last_batch_loss, ex.batch_loss(), sizeof(float));
        callbacks.on_step(step, last_batch_loss);
      }
      progress.step_done(s + 1, images_seen);
    }
    // Mean over images: each batch mean weighs by its size (only the last batch may be partial).
    double batch_means = 0;
    ops.copy_to_host(&batch_means, ex.train_loss_sum(), sizeof batch_means);
    const double train_seconds = seconds_since(epoch_start);
    double image_loss_sum = batch_means * config.batch;
    if (last_batch != config.batch) {
      float partial_mean = 0;
      ops.copy_to_host(&partial_mean, ex.batch_loss(), sizeof partial_mean);
      image_loss_sum = (batch_means - partial_mean) * config.batch + double(partial_mean) * last_batch;
    }

    EpochMetrics m;
    m.epoch = epoch;
    m.steps = step;
    m.train_loss = image_loss_sum / images_seen;
    const EvalResult val = evaluate(ex, data.t10k, splits.validation);
    m.val_loss = classifier || config.model.ae_loss == AeLoss::MAE ? val.loss : val.mse;
    m.val_accuracy = val.accuracy;
    m.seconds = seconds_since(epoch_start);
    m.images_per_second = images_seen / train_seconds;
    if (!std::isfinite(m.train_loss) || !std::isfinite(m.val_loss))
      throw std::runtime_error("epoch " + std::to_string(epoch) + ": the loss is not finite (" +
                               std::to_string(m.train_loss) + "); training diverged");
    progress.epoch_done(m);
    result.epochs.push_back(m);

    // Best: lowest validation loss for an AE, highest validation accuracy for a classifier.
    const double metric = classifier ? -m.val_accuracy : m.val_loss;
    const bool is_best = result.best_epoch == 0 || metric < best_metric;
    if (is_best) {
      best_metric = metric;
      result.best_epoch = epoch;
    }
    if (writing) {
      ops.copy_to_host(params.data(), ex.params(), spec.param_count * sizeof(float));
      if (is_best) save_weights(config.out_dir + "/best.safetensors", spec, params.data(), weights_metadata);
      save_weights(config.out_dir + "/last.safetensors", spec, params.data(), weights_metadata);
      TrainingState state;
      state.step = step;
      state.epoch = epoch;
      state.seed = config.seed;
      state.extra_json = nlohmann::json{{"best_epoch", result.best_epoch}, {"best_metric", best_metric}}.dump();
      state.exp_avg = download(ops, ex.exp_avg(), spec.param_count);
      state.exp_avg_sq = download(ops, ex.exp_avg_sq(), spec.param_count);
      save_training_state(config.out_dir + "/last.state.safetensors", spec, state);
      metrics_log->write(m);
    }
    if (callbacks.on_epoch) callbacks.on_epoch(m);
    if (callbacks.inspect) callbacks.inspect(epoch, ex);
  }
  result.final_params = download(ops, ex.params(), spec.param_count);
  return result;
}

}  // namespace fmnist
