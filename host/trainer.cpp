// Training and evaluation of one network: epochs of shuffled batches, validation after each
// epoch, metrics, and checkpoints (best.safetensors, last.safetensors + last.state.safetensors).
#include "trainer.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "host/batch_stream.h"
#include "host/checkpoint.h"
#include "host/checkpoint_writer.h"
#include "host/divergence_guard.h"
#include "host/progress.h"
#include "host/run_state.h"
#include "host/safetensors.h"
#include "host/stop_signal.h"
#include "host/wall_clock.h"
#include "models/rng.h"

namespace fmnist {
namespace {

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

// A run's config.json: its training settings, and how it ran: on which backend, with which
// software (fmnist's version and the backend's libraries, Ops::software) and convolution kernels.
nlohmann::json config_json(const TrainConfig& c, const Ops<float>& ops) {
  nlohmann::json run = training_settings_json(c);
  run["description"] = describe(c.model);
  run["drop_last"] = c.drop_last;
  run["init_encoder_from"] = c.init_encoder_from;
  run["checkpoint_every"] = c.checkpoint_every;
  run["keep_checkpoints"] = c.keep_checkpoints;
  run["guard_every"] = c.guard_every;
  run["eval_batch"] = c.eval_batch;
  run["backend"] = ops.name();
  const std::string software = ops.software();
  run["software"] = std::string("fmnist ") + FMNIST_VERSION + (software.empty() ? "" : "; " + software);
  if (c.gpu_kernels)
    run["conv_kernels"] = {{"forward", conv_kernel_name(c.gpu_kernels->direct_forward)},
                           {"backward_data", conv_kernel_name(c.gpu_kernels->direct_backward_data)},
                           {"backward_filter", conv_kernel_name(c.gpu_kernels->direct_weight_grad)}};
  if (c.gpu_kernels)
    run["linear_kernels"] = {{"forward", linear_kernel_name(c.gpu_kernels->direct_linear_forward)},
                             {"backward_data", linear_kernel_name(c.gpu_kernels->direct_linear_backward_data)},
                             {"backward_filter", linear_kernel_name(c.gpu_kernels->direct_linear_weight_grad)}};
  return run;
}


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

nlohmann::json training_settings_json(const TrainConfig& c) {
  return {{"model", nlohmann::json::parse(model_config_to_json(c.model))},
          {"epochs", c.epochs},
          {"batch", c.batch},
          {"adam", {{"lr", c.adam.lr}, {"beta1", c.adam.beta1}, {"beta2", c.adam.beta2},
                    {"eps", c.adam.eps}}},
          {"seed", c.seed},
          {"validation_count", c.validation_count},
          {"max_steps_per_epoch", c.max_steps_per_epoch},
          {"init_redraws", c.init_redraws},
          {"lr_schedule", lr_schedule_name(c.lr_schedule)},
          {"lr_warmup_fraction", c.lr_warmup_fraction},
          {"lr_final_fraction", c.lr_final_fraction},
          {"augment", c.augment},
          {"augment_max_shift", c.augment_max_shift},
          {"augment_flip", c.augment_flip},
          {"augment_erase", c.augment_erase},
          {"precision", precision_name(c.precision)}};
}

const char* lr_schedule_name(LrSchedule schedule) {
  return schedule == LrSchedule::WarmupCosine ? "warmup_cosine" : "constant";
}

int eval_batch_for(int requested, int train_batch, const Ops<float>& ops, int images) {
  if (requested < 0)
    throw std::invalid_argument("eval_batch must be >= 0 (0: by backend), got " + std::to_string(requested));
  const int wanted = requested > 0 ? requested : ops.computes_on_host() ? train_batch : kDeviceEvalBatch;
  return std::max(1, std::min(wanted, images));
}

int guard_interval(const TrainConfig& config, const Ops<float>& ops) {
  if (config.guard_every > 0) return config.guard_every;
  return ops.computes_on_host() ? 1 : kDeviceGuardEvery;
}

double scheduled_lr(const TrainConfig& config, std::uint64_t step, std::uint64_t total_steps) {
  const double peak = config.adam.lr;
  if (config.lr_schedule == LrSchedule::Constant || total_steps == 0) return peak;
  const double final_lr = peak * config.lr_final_fraction;
  const auto warmup = static_cast<std::uint64_t>(
      std::llround(std::clamp(config.lr_warmup_fraction, 0.0, 1.0) * static_cast<double>(total_steps)));
  if (step <= warmup) return peak * static_cast<double>(step) / static_cast<double>(warmup);
  if (step >= total_steps) return final_lr;
  const double progress =
      static_cast<double>(step - warmup) / static_cast<double>(total_steps - warmup);
  return final_lr + (peak - final_lr) * 0.5 * (1.0 + std::cos(std::acos(-1.0) * progress));
}

void shift_flip_image(const std::uint8_t* in, std::uint8_t* out, int dx, int dy, bool flip) {
  for (int y = 0; y < kImageRows; ++y) {
    for (int x = 0; x < kImageCols; ++x) {
      const int sx = (flip ? kImageCols - 1 - x : x) - dx;  // column of the shifted image, then source
      const int sy = y - dy;
      const bool inside = sx >= 0 && sx < kImageCols && sy >= 0 && sy < kImageRows;
      out[y * kImageCols + x] = inside ? in[sy * kImageCols + sx] : 0;
    }
  }
}

// Random Erasing of one image (Zhong et al. 2017, their defaults): with probability p, a rectangle
// of 2-40% of the area and aspect ratio 0.3-3.3 (log-uniform) at a random place, filled with
// uniform random grey levels; up to 10 tries for a rectangle that fits, as the paper does.
void erase_random_rectangle(std::uint8_t* image, SplitMix64& rng, double p) {
  if (!(rng.uniform() < p)) return;
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double area = (0.02 + rng.uniform() * (0.4 - 0.02)) * kImagePixels;
    const double aspect = std::exp(std::log(0.3) + rng.uniform() * (std::log(1 / 0.3) - std::log(0.3)));
    const int h = static_cast<int>(std::lround(std::sqrt(area * aspect)));
    const int w = static_cast<int>(std::lround(std::sqrt(area / aspect)));
    if (h < 1 || w < 1 || h > kImageRows || w > kImageCols) continue;
    const int top = static_cast<int>(rng.below(static_cast<std::uint64_t>(kImageRows - h + 1)));
    const int left = static_cast<int>(rng.below(static_cast<std::uint64_t>(kImageCols - w + 1)));
    for (int y = top; y < top + h; ++y)
      for (int x = left; x < left + w; ++x) image[y * kImageCols + x] = static_cast<std::uint8_t>(rng.below(256));
    return;
  }
}

void augment_images(std::uint8_t* images, int count, const std::int32_t* indices, std::uint64_t seed,
                    int epoch, int max_shift, bool flip, double erase_probability) {
  if (max_shift < 0 || max_shift >= kImageCols)
    throw std::invalid_argument("augment: shift must be in [0, 27]");
  if (!(erase_probability >= 0.0 && erase_probability <= 1.0))
    throw std::invalid_argument("augment: erase probability must be in [0, 1]");
  std::uint8_t source[kImagePixels];
  for (int i = 0; i < count; ++i) {
    const std::uint64_t key = (static_cast<std::uint64_t>(epoch) << 32) | static_cast<std::uint32_t>(indices[i]);
    SplitMix64 rng(derive_seed(seed, /*purpose=*/5, key));
    const int span = 2 * max_shift + 1;
    const int dx = static_cast<int>(rng.below(span)) - max_shift;
    const int dy = static_cast<int>(rng.below(span)) - max_shift;
    const bool mirror = flip && (rng.next() >> 63) != 0;
    std::uint8_t* image = images + static_cast<std::size_t>(i) * kImagePixels;
    std::copy(image, image + kImagePixels, source);
    shift_flip_image(source, image, dx, dy, mirror);
    // Drawn after the shift and flip, so a run without erasing repeats the earlier runs bitwise.
    if (erase_probability > 0) erase_random_rectangle(image, rng, erase_probability);
  }
}

EvalResult evaluate(Executor<float>& ex, const Dataset& set, const std::vector<std::int32_t>& indices,
                    int batch_size) {
  BatchStream stream(ex, StreamOptions{});  // streamed as training is (host/batch_stream.h)
  return stream.evaluate(set, indices, batch_size);
}

TrainResult train(const TrainConfig& config, const FashionMnist& data, Ops<float>& ops,
                  std::ostream& progress_out, const TrainCallbacks& callbacks) {
  if (config.epochs < 1) throw std::invalid_argument("epochs must be >= 1");
  if (config.batch < 1) throw std::invalid_argument("batch size must be >= 1");
  const NetworkSpec spec = build_network(config.model);
  const bool classifier = config.model.kind == ModelKind::Classifier;
  if (ops.precision() != config.precision)
    throw std::invalid_argument(std::string("the run asks for precision ") +
                                precision_name(config.precision) + " but its backend (" + ops.name() +
                                ") computes in " + precision_name(ops.precision()));
  if (config.guard_every < 0) throw std::invalid_argument("guard_every must be >= 0 (0: by backend)");
  const int guard_every = guard_interval(config, ops);
  const int eval_batch = eval_batch_for(config.eval_batch, config.batch, ops, config.validation_count);
  const Splits splits = make_splits(data, config.seed, config.validation_count);
  const int train_count = static_cast<int>(splits.train.size());
  int steps_per_epoch = config.drop_last ? train_count / config.batch
                                         : (train_count + config.batch - 1) / config.batch;
  if (config.max_steps_per_epoch > 0) steps_per_epoch = std::min(steps_per_epoch, config.max_steps_per_epoch);
  if (steps_per_epoch < 1) throw std::invalid_argument("batch size larger than the training set with drop_last");
  if (!config.init_encoder_from.empty() && !classifier)
    throw std::invalid_argument("--init-from applies to a classifier only");
  Executor<float> ex(spec, ops, std::max(config.batch, eval_batch), config.seed);

  // Initial state: PyTorch-style init, optionally an AE's encoder, or a previous run's checkpoint
  // (host/run_state.h: weights, Adam moments, counters, a partial epoch's sums).
  std::vector<float> params(spec.param_count);
  initialize_parameters(spec, config.seed, params.data());
  int init_draws = 1;
  RunState resume;
  const bool resumed = load_resume_state(config, spec, steps_per_epoch, resume);
  if (resumed) {
    params = resume.params;
    ops.copy_to_device(ex.exp_avg(), resume.exp_avg.data(), spec.param_count * sizeof(float));
    ops.copy_to_device(ex.exp_avg_sq(), resume.exp_avg_sq.data(), spec.param_count * sizeof(float));
  } else if (!config.init_encoder_from.empty()) {
    load_encoder_weights(read_safetensors(config.init_encoder_from), config.init_encoder_from, spec,
                         params.data());
  }
  ops.copy_to_device(ex.params(), params.data(), spec.param_count * sizeof(float));
  if (config.model.kind == ModelKind::Autoencoder && !resumed) {
    init_draws = redraw_dead_autoencoder(ex, spec, data.train, splits.train, config, params, progress_out);
  }

  const bool writing = !config.out_dir.empty();
  const RunFiles files(writing ? config.out_dir : std::string("."));
  const CheckpointPolicy policy{config.checkpoint_every, config.keep_checkpoints};
  const std::map<std::string, std::string> weights_metadata = {
      {"fmnist.config", model_config_to_json(config.model)},
      {"fmnist.seed", std::to_string(config.seed)},
      {"fmnist.validation_count", std::to_string(config.validation_count)}};
  if (writing) {
    prepare_output_directory(config.out_dir);
    if (resumed) {  // redo what a kill between the state and the rest of its checkpoint left undone
      finish_checkpoint(files, spec, resume, weights_metadata, policy);
    } else {  // a new run (or one killed before its first checkpoint): nothing of an older one stays
      std::filesystem::remove(files.state);
      for (const int e : epoch_checkpoints(config.out_dir)) std::filesystem::remove(files.epoch_weights(e));
      nlohmann::json run = config_json(config, ops);
      run["init_draws"] = init_draws;
      write_file_atomically(files.config, run.dump(2) + "\n");
      reconcile_metrics(files, RunState{});
    }
  }
  const std::uint64_t total_steps = static_cast<std::uint64_t>(config.epochs) * steps_per_epoch;
  const AdamConfig adam = config.adam;

  Progress progress(progress_out, callbacks.live_progress, config.epochs, classifier);
  TrainResult result;
  result.validation_batch = eval_batch;
  result.init_draws = init_draws;
  result.best_epoch = resume.best_epoch;
  double best_metric = resume.best_metric;
  std::uint64_t step = resume.step;
  GradientGuard gradient_guard(spec, ops);
  BatchStream batches(ex, config.stream, &progress_out);  // gets batches on, runs steps (graphs)
  // Checkpoints are written on a background thread while the next epoch trains (one in flight).
  CheckpointWriter writer([&](const RunState& st) { write_checkpoint(files, spec, st, weights_metadata, policy); },
                          resumed && writing ? describe_checkpoint(files, resume) : "");
  auto run_summary = [&] {
    result.graphs_captured = batches.graphs().captured();
    result.graph_capture_failures = batches.graphs().failures();
    result.graph_replays = batches.graphs().replays();
    result.checkpoints_written = writer.written();
    result.checkpoint_write_seconds = writer.write_seconds();
    result.checkpoint_wait_seconds = writer.wait_seconds();
  };

  // The divergence guard: the last step's loss, then its gradients (host/divergence_guard.h).
  auto diverged = [&](int epoch, int s, const std::string& what) {
    writer.settle();  // the write in flight, if any, decides which checkpoint is the last good one
    const std::string& last_checkpoint = writer.last_written();
    std::string kept = !writing ? "nothing is written for this run"
                       : last_checkpoint.empty() ? "no checkpoint was written yet"
                                                 : "the last good checkpoint " + last_checkpoint + " is untouched";
    return DivergenceError(fmt::format("training diverged at epoch {}, step {} of {} (global step {}): {}; {} "
                                       "(try a lower --lr)", epoch, s, steps_per_epoch, step, what, kept));
  };
  auto guard = [&](int epoch, int s) {
    float loss = 0;
    ops.copy_to_host(&loss, ex.batch_loss(), sizeof loss);
    if (!std::isfinite(loss)) throw diverged(epoch, s, "the loss is " + value_text(loss));
    std::string bad;
    const std::string layer = gradient_guard.check(ex.grads(), &bad);
    if (!layer.empty()) throw diverged(epoch, s, "the gradient of " + layer + " holds " + bad);
  };
  // A checkpoint of the executor's state after `s` steps of `epoch` (s == steps_per_epoch: its end),
  // refused when a weight or moment is not finite.
  auto capture = [&](int epoch, int s) {
    RunState st;
    st.epoch = s == steps_per_epoch ? epoch : epoch - 1;
    st.step_in_epoch = s == steps_per_epoch ? 0 : s;
    st.step = step;
    st.seed = config.seed;
    st.batch = config.batch;
    st.steps_per_epoch = steps_per_epoch;
    st.best_epoch = result.best_epoch;
    st.best_metric = best_metric;
    st.params = download(ops, ex.params(), spec.param_count);
    st.exp_avg = download(ops, ex.exp_avg(), spec.param_count);
    st.exp_avg_sq = download(ops, ex.exp_avg_sq(), spec.param_count);
    const std::pair<const char*, const std::vector<float>*> parts[] = {
        {"weights", &st.params}, {"Adam exp_avg", &st.exp_avg}, {"Adam exp_avg_sq", &st.exp_avg_sq}};
    for (const auto& [what, values] : parts) {
      std::string bad;
      const std::string name = first_nonfinite_tensor(spec, values->data(), /*trainable_only=*/false, &bad);
      if (!name.empty()) throw diverged(epoch, s, fmt::format("the {} of {} hold {}", what, name, bad));
    }
    return st;
  };
  auto checkpoint = [&](RunState st) {
    std::string description = describe_checkpoint(files, st);
    writer.submit(std::move(st), std::move(description));
  };
  auto stop_requested = [&] { return callbacks.stop_signal != nullptr && *callbacks.stop_signal != 0; };

  if (resumed && resume.epoch == config.epochs)
    progress_out << fmt::format("fmnist: the run is already complete ({} of {} epochs); nothing to train\n",
                                resume.epoch, config.epochs);
  if (callbacks.inspect && !resumed) callbacks.inspect(0, ex);
  bool warm_up_pending = static_cast<bool>(callbacks.warmed_up) && total_steps > step;
  if (warm_up_pending) (void)batches.evaluate(data.t10k, splits.validation, eval_batch);
  for (int epoch = resume.epoch + 1; epoch <= config.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    const std::vector<std::int32_t> order = epoch_order(splits.train, config.seed, epoch);
    // Resuming mid-epoch: skip the batches done, and carry on the epoch's sums where they were.
    const bool partial = epoch == resume.epoch + 1 && resume.step_in_epoch > 0;
    const double earlier_seconds = partial ? resume.epoch_seconds : 0.0;
    ex.reset_metrics();
    if (partial) ops.copy_to_device(ex.train_loss_sum(), &resume.epoch_loss_sum, sizeof(double));
    progress.epoch_started(epoch, steps_per_epoch);
    int images_seen = partial ? resume.epoch_images : 0;
    float last_batch_loss = 0;
    int last_batch = config.batch;
    // The epoch's batches and each step's Adam constants (its learning rate), uploaded once.
    const int first_batch = partial ? resume.step_in_epoch : 0;
    const std::vector<elementwise::AdamStep<float>> adam_steps = adam_step_table<float>(
        adam, step + 1 - static_cast<std::uint64_t>(first_batch), static_cast<std::size_t>(steps_per_epoch),
        [&](std::uint64_t t) { return scheduled_lr(config, t, total_steps); });
    BatchStream::Epoch plan;
    plan.set = &data.train;
    plan.order = &order;
    plan.steps = steps_per_epoch;
    plan.first_batch = first_batch;
    plan.first_step = step + 1;
    plan.adam = &adam_steps;
    plan.batch = config.batch;
    if (config.augment)  // on the host, between gather and upload
      plan.gather = [&](const std::int32_t* indices, int count, std::uint8_t* images, std::uint8_t* labels) {
        gather_batch(data.train, indices, count, images, labels);
        augment_images(images, count, indices, config.seed, epoch, config.augment_max_shift, config.augment_flip,
                       config.augment_erase);
      };
    batches.begin_epoch(plan);
    for (int s = first_batch; s < steps_per_epoch; ++s) {
      const int count = std::min(config.batch, train_count - s * config.batch);
      ++step;
      batches.train_step(s);  // step `step` on batch s, without waiting for the device
      if (warm_up_pending) {
        warm_up_pending = false;
        callbacks.warmed_up();
      }
      images_seen += count;
      last_batch = count;
      if (callbacks.after_step) callbacks.after_step(step, ex);
      if (step % static_cast<std::uint64_t>(guard_every) == 0) guard(epoch, s + 1);
      if (callbacks.on_step) {
        ops.copy_to_host(&last_batch_loss, ex.batch_loss(), sizeof(float));
        callbacks.on_step(step, last_batch_loss);
      }
      progress.step_done(s + 1, images_seen);
      if (stop_requested() && s + 1 < steps_per_epoch) {  // a signal: checkpoint mid-epoch and return
        guard(epoch, s + 1);
        if (writing) {
          RunState st = capture(epoch, s + 1);
          ops.copy_to_host(&st.epoch_loss_sum, ex.train_loss_sum(), sizeof(double));
          st.epoch_images = images_seen;
          st.epoch_seconds = earlier_seconds + seconds_since(epoch_start);
          checkpoint(std::move(st));
          writer.wait();
        }
        run_summary();
        progress_out << (callbacks.live_progress ? "\r\033[K" : "")
                     << fmt::format("fmnist: {}: stopped after step {} of {} of epoch {} (global step {}); {}\n",
                                    signal_name(*callbacks.stop_signal), s + 1, steps_per_epoch, epoch, step,
                                    writing ? "checkpoint written: " + writer.last_written() : "nothing is written for this run");
        result.stopped_by = *callbacks.stop_signal;
        result.final_params = download(ops, ex.params(), spec.param_count);
        return result;
      }
    }
    guard(epoch, steps_per_epoch);  // before anything reads the epoch's loss (evaluation reuses the buffer)
    // Mean over images: each batch mean weighs by its size (only the last batch may be partial).
    double batch_means = 0;
    ops.copy_to_host(&batch_means, ex.train_loss_sum(), sizeof batch_means);
    const double this_call_seconds = seconds_since(epoch_start);
    result.training_seconds += this_call_seconds;
    const double train_seconds = earlier_seconds + this_call_seconds;
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
    const auto validation_start = Clock::now();
    const EvalResult val = batches.evaluate(data.t10k, splits.validation, eval_batch);
    result.validation_seconds += seconds_since(validation_start);
    m.val_loss = classifier || config.model.ae_loss == PointLoss::L1 ? val.loss : val.mse;
    m.val_accuracy = val.accuracy;
    m.seconds = earlier_seconds + seconds_since(epoch_start);
    m.images_per_second = images_seen / train_seconds;
    if (!std::isfinite(m.train_loss))
      throw diverged(epoch, steps_per_epoch, "the epoch's training loss is " + value_text(m.train_loss));
    if (!std::isfinite(m.val_loss))
      throw diverged(epoch, steps_per_epoch, "the validation loss is " + value_text(m.val_loss));
    progress.epoch_done(m);
    result.epochs.push_back(m);

    // Best: lowest validation loss for an AE, highest validation accuracy for a classifier.
    const double metric = classifier ? -m.val_accuracy : m.val_loss;
    const bool is_best = result.best_epoch == 0 || metric < best_metric;
    if (is_best) {
      best_metric = metric;
      result.best_epoch = epoch;
    }
    if (writing) {  // the state (the commit point), last, best, epoch-NNNN, then the metrics row
      RunState st = capture(epoch, steps_per_epoch);
      st.has_metrics = true;
      st.metrics = m;
      checkpoint(std::move(st));
    }
    if (callbacks.on_epoch) {
      writer.wait();  // on_epoch sees the epoch's checkpoint on disk
      callbacks.on_epoch(m);
    }
    if (callbacks.inspect) callbacks.inspect(epoch, ex);
    if (stop_requested() && epoch < config.epochs) {
      writer.wait();
      progress_out << fmt::format("fmnist: {}: stopped after epoch {} (global step {}); {}\n",
                                  signal_name(*callbacks.stop_signal), epoch, step,
                                  writing ? "checkpoint written: " + writer.last_written() : "nothing is written for this run");
      result.stopped_by = *callbacks.stop_signal;
      break;
    }
  }
  writer.wait();  // the last checkpoint is on disk, or its failure is thrown, before train returns
  run_summary();
  result.final_params = download(ops, ex.params(), spec.param_count);
  return result;
}

}  // namespace fmnist
