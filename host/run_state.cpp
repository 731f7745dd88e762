// Checkpoints of a run: the state file, the order of a checkpoint's writes, pruning, metrics rows
// reconciled after a kill, config.json read back, and the output directory checked before work.
#include "host/run_state.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "host/checkpoint.h"
#include "host/json_exact.h"
#include "host/metrics_log.h"
#include "host/one_line.h"
#include "host/safetensors.h"

namespace fmnist {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw FormatError(one_line(path + ": " + problem));
}

json metrics_to_json(const EpochMetrics& m) {
  return {{"epoch", m.epoch},
          {"steps", m.steps},
          {"train_loss", m.train_loss},
          {"val_loss", m.val_loss},
          {"val_accuracy", std::isnan(m.val_accuracy) ? json(nullptr) : json(m.val_accuracy)},
          {"seconds", m.seconds},
          {"images_per_second", m.images_per_second}};
}

// j[key] as an int when it is an integer in [0, INT_MAX], `fallback` when absent; anything else
// (a string, a fraction, 1e12 that get<int>() would silently truncate) throws.
int counter(const json& j, const char* key, std::optional<int> fallback = std::nullopt) {
  if (!j.contains(key)) {
    if (fallback) return *fallback;
    throw std::out_of_range(std::string("no '") + key + "'");
  }
  const json& v = j[key];
  const std::optional<int> count = exact_json_value<int>(v);
  if (!count || *count < 0) throw std::out_of_range(std::string("'") + key + "' is not a count in [0, 2^31): " + v.dump());
  return *count;
}

EpochMetrics metrics_from_json(const json& j) {
  EpochMetrics m;
  m.epoch = counter(j, "epoch");
  auto read = [&](const char* key, auto& out) {
    using T = std::remove_reference_t<decltype(out)>;
    const json& v = j.at(key);
    const std::optional<T> value = exact_json_value<T>(v);
    if (!value) throw std::out_of_range(exact_json_refusal<T>(key, v));
    out = *value;
  };
  read("steps", m.steps);
  read("train_loss", m.train_loss);
  read("val_loss", m.val_loss);
  if (j.at("val_accuracy").is_null())  // a run without accuracy (an autoencoder's)
    m.val_accuracy = std::numeric_limits<double>::quiet_NaN();
  else
    read("val_accuracy", m.val_accuracy);
  read("seconds", m.seconds);
  read("images_per_second", m.images_per_second);
  return m;
}

// The epoch of a metrics.csv data row ("7,420,..."), or -1 when the line is not one.
int csv_row_epoch(const std::string& line) {
  const auto comma = line.find(',');
  if (comma == 0 || comma == std::string::npos) return -1;
  int epoch = 0;
  for (std::size_t i = 0; i < comma; ++i) {
    if (line[i] < '0' || line[i] > '9') return -1;
    epoch = epoch * 10 + (line[i] - '0');
    if (epoch > 100000000) return -1;
  }
  return epoch;
}

int jsonl_row_epoch(const std::string& line) {
  try {
    const json j = json::parse(line);
    if (j.is_object() && j.contains("epoch") && j["epoch"].is_number_integer()) return j["epoch"].get<int>();
  } catch (const json::exception&) {
  }
  return -1;
}

// Lines of a text file; a last line without its newline (a torn write) is dropped.
std::vector<std::string> complete_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  if (!in) return lines;
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  std::size_t start = 0;
  for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(text.substr(start, nl - start));
  return lines;
}

// Keeps the lines whose epoch is at most `epoch` (and, for the CSV, its header); returns the
// largest epoch kept (0 when none).
int keep_rows_through(const std::string& path, int epoch, bool csv) {
  if (!fs::exists(path)) return 0;
  const std::vector<std::string> lines = complete_lines(path);
  std::string kept;
  int last = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (csv && i == 0 && csv_row_epoch(lines[i]) < 0) {  // the header
      kept += lines[i] + "\n";
      continue;
    }
    const int row = csv ? csv_row_epoch(lines[i]) : jsonl_row_epoch(lines[i]);
    if (row < 1 || row > epoch || row <= last) continue;  // beyond the checkpoint, torn or repeated
    kept += lines[i] + "\n";
    last = row;
  }
  write_file_atomically(path, kept);
  return last;
}

double number_or(const json& j, const char* key, double fallback) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : fallback;
}

}  // namespace

RunFiles::RunFiles(const std::string& d)
    : dir(d),
      config(d + "/config.json"),
      state(d + "/last.state.safetensors"),
      last(d + "/last.safetensors"),
      best(d + "/best.safetensors"),
      metrics_csv(d + "/metrics.csv"),
      metrics_jsonl(d + "/metrics.jsonl") {}

std::string RunFiles::epoch_weights(int epoch) const { return fmt::format("{}/epoch-{:04d}.safetensors", dir, epoch); }

void save_run_state(const std::string& path, const NetworkSpec& spec, const RunState& s) {
  TrainingState t;
  t.step = s.step;
  t.epoch = s.epoch;
  t.seed = s.seed;
  json extra = {{"step_in_epoch", s.step_in_epoch},
                {"batch", s.batch},
                {"steps_per_epoch", s.steps_per_epoch},
                {"best_epoch", s.best_epoch},
                {"best_metric", s.best_metric},
                {"epoch_loss_sum", s.epoch_loss_sum},
                {"epoch_images", s.epoch_images},
                {"epoch_seconds", s.epoch_seconds}};
  if (s.has_metrics) extra["metrics"] = metrics_to_json(s.metrics);
  t.extra_json = extra.dump();
  t.exp_avg = s.exp_avg;
  t.exp_avg_sq = s.exp_avg_sq;
  t.params = s.params;
  save_training_state(path, spec, t);
}

RunState load_run_state(const std::string& path, const NetworkSpec& spec) {
  TrainingState t = load_training_state(path, spec);
  RunState s;
  s.epoch = t.epoch;
  s.step = t.step;
  s.seed = t.seed;
  s.exp_avg = std::move(t.exp_avg);
  s.exp_avg_sq = std::move(t.exp_avg_sq);
  s.params = std::move(t.params);
  try {
    const json extra = json::parse(t.extra_json);
    s.step_in_epoch = counter(extra, "step_in_epoch", 0);
    s.batch = counter(extra, "batch", 0);
    s.steps_per_epoch = counter(extra, "steps_per_epoch", 0);
    s.best_epoch = counter(extra, "best_epoch", 0);
    s.best_metric = number_or(extra, "best_metric", 0.0);
    s.epoch_loss_sum = number_or(extra, "epoch_loss_sum", 0.0);
    s.epoch_images = counter(extra, "epoch_images", 0);
    s.epoch_seconds = number_or(extra, "epoch_seconds", 0.0);
    if (extra.contains("metrics")) {
      s.metrics = metrics_from_json(extra["metrics"]);
      s.has_metrics = true;
    }
  } catch (const std::exception& e) {  // json's own exceptions and counter()'s
    fail(path, std::string("metadata fmnist.train is malformed: ") + e.what());
  }
  if (s.epoch < 0 || s.step_in_epoch < 0 || s.epoch_images < 0 || s.best_epoch < 0 || s.best_epoch > s.epoch)
    fail(path, "metadata fmnist.train holds impossible counters: " + t.extra_json);
  if (s.has_metrics && (s.step_in_epoch != 0 || s.metrics.epoch != s.epoch))
    fail(path, fmt::format("metadata fmnist.train: the metrics row is of epoch {} but the state is at epoch {}",
                           s.metrics.epoch, s.epoch));
  return s;
}

bool load_resume_state(const TrainConfig& config, const NetworkSpec& spec, int steps_per_epoch,
                       RunState& state) {
  if (config.resume_from.empty()) return false;
  const RunFiles files(config.resume_from);
  if (!fs::exists(files.state)) return false;
  RunState s = load_run_state(files.state, spec);
  const std::string& path = files.state;
  if (s.seed != config.seed)
    throw std::invalid_argument(fmt::format("{}: was trained with seed {}, not {}", path, s.seed, config.seed));
  if (s.batch != 0 && s.batch != config.batch)
    throw std::invalid_argument(fmt::format("{}: was trained with batch size {}, not {}", path, s.batch, config.batch));
  if (s.steps_per_epoch != 0 && s.steps_per_epoch != steps_per_epoch)
    throw std::invalid_argument(fmt::format("{}: has {} steps per epoch, this run {} (another --max-steps-per-epoch, "
                                            "--batch-size or --drop-last?)", path, s.steps_per_epoch, steps_per_epoch));
  if (s.steps_per_epoch != 0 &&
      (s.step_in_epoch >= steps_per_epoch ||
       s.step != static_cast<std::uint64_t>(s.epoch) * steps_per_epoch + static_cast<std::uint64_t>(s.step_in_epoch)))
    fail(path, fmt::format("inconsistent counters: step {} is not epoch {} x {} steps + {}", s.step, s.epoch,
                           steps_per_epoch, s.step_in_epoch));
  if (s.epoch > config.epochs || (s.epoch == config.epochs && s.step_in_epoch > 0))
    throw std::invalid_argument(fmt::format("{}: the run is already at epoch {}, past the {} epochs asked for", path,
                                            s.epoch, config.epochs));
  if (s.params.empty()) {  // a state of an older fmnist: the weights are in last.safetensors
    s.params.assign(spec.param_count, 0.0f);
    load_weights(read_safetensors(files.last), files.last, spec, s.params.data());
  }
  state = std::move(s);
  return true;
}

std::string describe_checkpoint(const RunFiles& files, const RunState& s) {
  if (s.step_in_epoch == 0) return fmt::format("{} (end of epoch {}, step {})", files.state, s.epoch, s.step);
  return fmt::format("{} (epoch {}, step {} of {}, global step {})", files.state, s.epoch + 1, s.step_in_epoch,
                     s.steps_per_epoch, s.step);
}

void write_checkpoint(const RunFiles& files, const NetworkSpec& spec, const RunState& state,
                      const std::map<std::string, std::string>& weights_metadata,
                      const CheckpointPolicy& policy) {
  save_run_state(files.state, spec, state);  // the commit point
  finish_checkpoint(files, spec, state, weights_metadata, policy);
}

void finish_checkpoint(const RunFiles& files, const NetworkSpec& spec, const RunState& state,
                       const std::map<std::string, std::string>& weights_metadata,
                       const CheckpointPolicy& policy) {
  if (state.params.size() != spec.param_count) {  // an older state: its weights files are as they were
    reconcile_metrics(files, state);
    return;
  }
  std::map<std::string, std::string> metadata = weights_metadata;
  metadata["fmnist.epoch"] = std::to_string(state.epoch);
  metadata["fmnist.step"] = std::to_string(state.step);
  if (state.step_in_epoch > 0) metadata["fmnist.step_in_epoch"] = std::to_string(state.step_in_epoch);
  save_weights(files.last, spec, state.params.data(), metadata);
  const bool epoch_end = state.step_in_epoch == 0 && state.epoch > 0;
  if (epoch_end && state.best_epoch == state.epoch) save_weights(files.best, spec, state.params.data(), metadata);
  if (epoch_end && policy.every > 0 && state.epoch % policy.every == 0) {
    save_weights(files.epoch_weights(state.epoch), spec, state.params.data(), metadata);
    prune_epoch_checkpoints(files.dir, policy.keep);
  }
  reconcile_metrics(files, state);
}

std::vector<int> epoch_checkpoints(const std::string& dir) {
  std::vector<int> epochs;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const std::string prefix = "epoch-", suffix = ".safetensors";
    if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
    if (digits.size() < 4 || digits.size() > 9 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    epochs.push_back(std::stoi(digits));
  }
  std::sort(epochs.begin(), epochs.end());
  return epochs;
}

void prune_epoch_checkpoints(const std::string& dir, int keep) {
  if (keep <= 0) return;
  const std::vector<int> epochs = epoch_checkpoints(dir);
  const RunFiles files(dir);
  for (std::size_t i = 0; i + static_cast<std::size_t>(keep) < epochs.size(); ++i) {
    std::error_code ec;
    fs::remove(files.epoch_weights(epochs[i]), ec);
    if (ec) fail(files.epoch_weights(epochs[i]), "cannot remove an old checkpoint: " + ec.message());
  }
}

void reconcile_metrics(const RunFiles& files, const RunState& state) {
  // Rows of the epoch in progress or later (from a run that went on past this checkpoint) go.
  const int csv_last = keep_rows_through(files.metrics_csv, state.epoch, /*csv=*/true);
  const int jsonl_last = keep_rows_through(files.metrics_jsonl, state.epoch, /*csv=*/false);
  if (!state.has_metrics || state.metrics.epoch != state.epoch) return;
  if (csv_last == state.epoch && jsonl_last == state.epoch) return;
  // The kill came between the state and the row: write it now (to whichever file lacks it).
  if (csv_last != state.epoch && jsonl_last == state.epoch) keep_rows_through(files.metrics_jsonl, state.epoch - 1, false);
  if (jsonl_last != state.epoch && csv_last == state.epoch) keep_rows_through(files.metrics_csv, state.epoch - 1, true);
  MetricsLog log(files.dir, /*append=*/true);
  log.write(state.metrics);
}

void prepare_output_directory(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, "cannot create the output directory: " + ec.message());
  if (!fs::is_directory(dir, ec)) fail(dir, "the output path exists and is not a directory");
  const std::string probe = dir + "/.fmnist-write-test-" + std::to_string(static_cast<long>(::getpid()));
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(dir, "the output directory is not writable: " + errno_text(errno));
  const char byte = 0;
  const bool wrote = ::write(fd, &byte, 1) == 1 && ::fsync(fd) == 0;
  const int error = errno;
  ::close(fd);
  ::unlink(probe.c_str());
  if (!wrote) fail(dir, "the output directory is not writable: " + errno_text(error));
}

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string temp = path + ".tmp-" + std::to_string(static_cast<long>(::getpid()));
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, "cannot create temporary file " + temp + ": " + errno_text(errno));
  const char* data = text.data();
  std::size_t left = text.size();
  int error = 0;
  while (left > 0 && error == 0) {
    const ssize_t n = ::write(fd, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = n == 0 ? EIO : errno;
      break;
    }
    data += n;
    left -= static_cast<std::size_t>(n);
  }
  if (error == 0 && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error == 0 && ::rename(temp.c_str(), path.c_str()) != 0) error = errno;
  if (error != 0) {
    ::unlink(temp.c_str());
    fail(path, "cannot write it: " + errno_text(error) + " (the previous version, if any, is untouched)");
  }
}

TrainConfig read_run_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, std::string("cannot open: ") + errno_text(errno) + " (not a run directory?)");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    fail(path, std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(path, "not a JSON object");
  TrainConfig c;
  auto field = [&](const char* key, auto& out) {
    using T = std::remove_reference_t<decltype(out)>;
    if (!j.contains(key)) return;
    const std::optional<T> value = exact_json_value<T>(j[key]);
    if (!value) fail(path, exact_json_refusal<T>(key, j[key]));
    out = *value;
  };
  const std::vector<std::string> known = {
      "model", "description", "epochs", "batch", "adam", "seed", "validation_count", "drop_last",
      "max_steps_per_epoch", "init_encoder_from", "init_redraws", "lr_schedule", "lr_warmup_fraction",
      "lr_final_fraction", "augment", "augment_max_shift", "augment_flip", "augment_erase", "backend", "init_draws",
      "checkpoint_every", "keep_checkpoints", "guard_every", "eval_batch", "precision", "conv_kernels", "linear_kernels",
      "software"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::find(known.begin(), known.end(), it.key()) == known.end())
      fail(path, "unknown field '" + it.key() + "' (written by a newer fmnist?)");
  if (!j.contains("model")) fail(path, "no 'model' field: not an fmnist run configuration");
  try {
    c.model = model_config_from_json(j["model"].dump());
  } catch (const std::invalid_argument& e) {
    fail(path, e.what());
  }
  field("epochs", c.epochs);
  field("batch", c.batch);
  if (j.contains("adam")) {
    const json& a = j["adam"];
    if (!a.is_object()) fail(path, "field 'adam' is not an object");
    const std::pair<const char*, double*> settings[] = {
        {"lr", &c.adam.lr}, {"beta1", &c.adam.beta1}, {"beta2", &c.adam.beta2}, {"eps", &c.adam.eps}};
    for (const auto& [key, out] : settings) {
      if (!a.contains(key)) continue;
      const std::optional<double> value = exact_json_value<double>(a[key]);
      if (!value) fail(path, exact_json_refusal<double>(std::string("adam.") + key, a[key]));
      *out = *value;
    }
  }
  field("seed", c.seed);
  field("validation_count", c.validation_count);
  field("drop_last", c.drop_last);
  field("max_steps_per_epoch", c.max_steps_per_epoch);
  field("init_encoder_from", c.init_encoder_from);
  field("init_redraws", c.init_redraws);
  std::string schedule = "constant";
  field("lr_schedule", schedule);
  if (schedule == lr_schedule_name(LrSchedule::Constant))
    c.lr_schedule = LrSchedule::Constant;
  else if (schedule == lr_schedule_name(LrSchedule::WarmupCosine))
    c.lr_schedule = LrSchedule::WarmupCosine;
  else
    fail(path, "field 'lr_schedule' is '" + schedule + "', not constant or warmup_cosine");
  field("lr_warmup_fraction", c.lr_warmup_fraction);
  field("lr_final_fraction", c.lr_final_fraction);
  field("augment", c.augment);
  field("augment_max_shift", c.augment_max_shift);
  field("augment_flip", c.augment_flip);
  field("augment_erase", c.augment_erase);
  field("checkpoint_every", c.checkpoint_every);
  field("keep_checkpoints", c.keep_checkpoints);
  field("guard_every", c.guard_every);
  field("eval_batch", c.eval_batch);  // absent (an older fmnist): today's default
  field("backend", c.began_on);
  std::string precision = "fp32";  // a run of an fmnist that did not record it ran in FP32 or TF32
  field("precision", precision);
  if (!parse_precision(precision, c.precision))
    fail(path, "field 'precision' is '" + precision + "', not fp32, tf32 or bf16");
  // Absent: a CPU run (none: its kernels set no result), or a GPU run of an fmnist that recorded
  // none, which computed with cuDNN's for every pass (not today's default_gpu_kernels()).
  if (!j.contains("conv_kernels") && c.began_on.rfind("cuda", 0) == 0) c.gpu_kernels = GpuKernels{};
  // Each pass of `field` (conv_kernels, linear_kernels) named `library` (its kernel_name(false))
  // or fmnist.
  auto kernel_choices = [&](const char* field, const char* (*kernel_name)(bool),
                            std::initializer_list<std::pair<const char*, bool*>> passes) {
    const json& k = j[field];
    if (!k.is_object()) fail(path, std::string("field '") + field + "' is not an object");
    for (const auto& [key, direct] : passes) {
      const std::string name = k.contains(key) && k[key].is_string() ? k[key].get<std::string>() : "";
      if (name != kernel_name(false) && name != kernel_name(true))
        fail(path, std::string("field '") + field + "." + key + "' must be " + kernel_name(false) +
                       " or fmnist, got " + (k.contains(key) ? k[key].dump() : "nothing"));
      *direct = name == kernel_name(true);
    }
  };
  if (j.contains("conv_kernels")) {
    GpuKernels kernels;
    kernel_choices("conv_kernels", conv_kernel_name,
                   {{"forward", &kernels.direct_forward},
                    {"backward_data", &kernels.direct_backward_data},
                    {"backward_filter", &kernels.direct_weight_grad}});
    c.gpu_kernels = kernels;
  }
  // Absent beside conv_kernels: a GPU run of an fmnist that had cuBLAS's Linear products alone.
  if (j.contains("linear_kernels")) {
    if (!c.gpu_kernels) fail(path, "field 'linear_kernels' without 'conv_kernels': not a GPU run's configuration");
    kernel_choices("linear_kernels", linear_kernel_name,
                   {{"forward", &c.gpu_kernels->direct_linear_forward},
                    {"backward_data", &c.gpu_kernels->direct_linear_backward_data},
                    {"backward_filter", &c.gpu_kernels->direct_linear_weight_grad}});
  }
  return c;
}

std::map<std::string, std::string> flatten_run_config(const TrainConfig& c) {
  const ModelConfig& m = c.model;
  return {{"model.kind", m.kind == ModelKind::Autoencoder ? "autoencoder" : "classifier"},
          {"model.latent", std::to_string(m.latent)},
          {"model.dropout", fmt::format("{}", m.dropout)},
          {"model.ae_loss", m.ae_loss == PointLoss::L1 ? "mae" : "mse"},
          {"model.head", m.head == ClassifierHead::Sigmoid ? "sigmoid" : "logits"},
          {"model.freeze_encoder", m.freeze_encoder ? "true" : "false"},
          {"epochs", std::to_string(c.epochs)},
          {"batch", std::to_string(c.batch)},
          {"adam.lr", fmt::format("{}", c.adam.lr)},
          {"adam.beta1", fmt::format("{}", c.adam.beta1)},
          {"adam.beta2", fmt::format("{}", c.adam.beta2)},
          {"adam.eps", fmt::format("{}", c.adam.eps)},
          {"seed", std::to_string(c.seed)},
          {"validation_count", std::to_string(c.validation_count)},
          {"drop_last", c.drop_last ? "true" : "false"},
          {"max_steps_per_epoch", std::to_string(c.max_steps_per_epoch)},
          {"init_encoder_from", c.init_encoder_from},
          {"init_redraws", std::to_string(c.init_redraws)},
          {"lr_schedule", lr_schedule_name(c.lr_schedule)},
          {"lr_warmup_fraction", fmt::format("{}", c.lr_warmup_fraction)},
          {"lr_final_fraction", fmt::format("{}", c.lr_final_fraction)},
          {"augment", c.augment ? "true" : "false"},
          {"augment_max_shift", std::to_string(c.augment_max_shift)},
          {"augment_flip", c.augment_flip ? "true" : "false"},
          {"augment_erase", fmt::format("{}", c.augment_erase)},
          {"precision", precision_name(c.precision)}};
}

}  // namespace fmnist
