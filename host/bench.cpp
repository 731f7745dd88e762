// The measurements of `fmnist bench` (see bench.h).
#include "host/bench.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "host/batch_stream.h"
#include "host/range_timer.h"
#include "host/step_graphs.h"
#include "host/wall_clock.h"
#include "models/executor.h"
#include "models/nvtx.h"
#include "models/rng.h"

namespace fmnist {
namespace {

// A buffer in backend memory, freed with the scope.
class BackendBuffer {
 public:
  BackendBuffer(Ops<float>& ops, std::size_t bytes) : ops_(ops), ptr_(ops.allocate(bytes)) {}
  ~BackendBuffer() { ops_.deallocate(ptr_); }
  BackendBuffer(const BackendBuffer&) = delete;
  BackendBuffer& operator=(const BackendBuffer&) = delete;
  template <class T> T* as() const { return static_cast<T*>(ptr_); }

 private:
  Ops<float>& ops_;
  void* ptr_;
};

void fill_random(std::vector<std::uint8_t>& bytes, SplitMix64& rng) {
  for (std::size_t i = 0; i < bytes.size(); i += 8) {
    const std::uint64_t word = rng.next();
    std::memcpy(bytes.data() + i, &word, std::min<std::size_t>(8, bytes.size() - i));
  }
}

void load_initial_params(Executor<float>& ex, std::uint64_t seed) {
  std::vector<float> params(ex.spec().param_count);
  initialize_parameters(ex.spec(), seed, params.data());
  ex.ops().copy_to_device(ex.params(), params.data(), params.size() * sizeof(float));
}

template <class V> V median_of(std::vector<V> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

FashionMnist synthetic_fashion_mnist(int train_count, int t10k_count, std::uint64_t seed) {
  if (train_count < 1 || t10k_count < 2) throw std::invalid_argument("synthetic data: too few images");
  SplitMix64 rng(derive_seed(seed, /*purpose=*/90));
  FashionMnist data;
  data.directory = "(synthetic)";
  for (auto [set, count] : {std::pair{&data.train, train_count}, std::pair{&data.t10k, t10k_count}}) {
    set->images.resize(static_cast<std::size_t>(count) * kImagePixels);
    set->labels.resize(static_cast<std::size_t>(count));
    fill_random(set->images, rng);
    for (auto& l : set->labels) l = static_cast<std::uint8_t>(rng.below(kClassCount));
  }
  return data;
}

namespace {

// What bench_step and bench_layers time: the training step of `model` at `batch` on one synthetic
// batch kept on the device (as the PyTorch baseline keeps its batch), with Adam's constants for
// `total` steps indexed by the cursor, run through StepGraphs (captured from its second run).
class StepRig {
 public:
  StepRig(Ops<float>& ops, const ModelConfig& model, int batch, std::size_t total, const BenchSettings& settings)
      : spec_(build_network(model)),
        ex_(spec_, ops, batch, settings.seed),
        batch_(batch),
        table_(adam_step_table<float>(AdamConfig{}, 1, total)),
        device_table_(ops, total * sizeof(table_[0])),
        cursor_(ops, sizeof(StepCursor)),
        graphs_(ops, settings.stream.graphs) {
    load_initial_params(ex_, settings.seed);
    SplitMix64 rng(settings.seed);
    std::vector<std::uint8_t> images(static_cast<std::size_t>(batch) * spec_.input.count());
    std::vector<std::uint8_t> labels(static_cast<std::size_t>(batch));
    fill_random(images, rng);
    for (auto& l : labels) l = static_cast<std::uint8_t>(rng.below(kNetworkClasses));
    ops.copy_to_device(ex_.batch_images(), images.data(), images.size());
    ops.copy_to_device(ex_.batch_labels(), labels.data(), labels.size());
    ops.copy_to_device(device_table_.as<void>(), table_.data(), total * sizeof(table_[0]));
    ops.set_cursor(cursor_.as<StepCursor>(), 1, 0);
  }
  void step() {
    graphs_.run({StepGraphs::Phase::Bench, batch_, batch_, nullptr}, [&] {
      ex_.train_step_at(batch_, device_table_.as<const elementwise::AdamStep<float>>(), cursor_.as<StepCursor>());
    });
  }
  long long replays() const { return graphs_.replays(); }

 private:
  const NetworkSpec spec_;
  Executor<float> ex_;
  const int batch_;
  const std::vector<elementwise::AdamStep<float>> table_;
  BackendBuffer device_table_, cursor_;
  StepGraphs graphs_;
};

void check_step_counts(int batch, int warmup, int steps, int repeats) {
  if (batch < 1 || steps < 1 || warmup < 0 || repeats < 1)
    throw std::invalid_argument("bench: batch, steps and repeats must be positive");
}

}  // namespace

StepRate bench_step(Ops<float>& ops, const ModelConfig& model, int batch, int warmup, int steps,
                    const BenchSettings& settings) {
  check_step_counts(batch, warmup, steps, settings.repeats);
  StepRig rig(ops, model, batch, static_cast<std::size_t>(warmup) + static_cast<std::size_t>(settings.repeats) * steps,
              settings);
  {
    NvtxRange range("bench warm-up");
    for (int i = 0; i < warmup; ++i) rig.step();
    ops.synchronize();
  }
  auto watch = ops.make_stopwatch();
  std::vector<double> rates;
  const long long replays_before = rig.replays();
  for (int r = 0; r < settings.repeats; ++r) {
    NvtxRange range("bench timed run");
    watch->start();
    for (int i = 0; i < steps; ++i) rig.step();
    watch->stop();
    rates.push_back(static_cast<double>(steps) * batch / watch->seconds());
  }
  StepRate out;
  out.model = describe(model);
  out.batch = batch;
  out.warmup = warmup;
  out.steps = steps;
  out.median = median_of(rates);
  out.min = *std::min_element(rates.begin(), rates.end());
  out.max = *std::max_element(rates.begin(), rates.end());
  out.median_step_ms = 1000.0 * batch / out.median;
  out.graphs = rig.replays() - replays_before == static_cast<long long>(settings.repeats) * steps;
  return out;
}

LayerTimes bench_layers(Ops<float>& ops, const ModelConfig& model, int batch, int warmup, int steps,
                        const BenchSettings& settings) {
  check_step_counts(batch, warmup, steps, 1);
  StepRig rig(ops, model, batch, static_cast<std::size_t>(warmup) + static_cast<std::size_t>(steps), settings);
  RangeTimer timer(ops);
  auto watch = ops.make_stopwatch();
  std::vector<double> step_seconds;
  const auto run = [&](bool timed) {
    timer.begin_step();
    watch->start();
    {
      const ListenToRanges listening(timer);  // from the first step: its stopwatches serve the capture
      rig.step();
    }
    watch->stop();
    if (!timed) return;
    step_seconds.push_back(watch->seconds());
    timer.add_step_times();
  };
  for (int i = 0; i < warmup; ++i) run(false);
  ops.synchronize();
  const long long replays_before = rig.replays();
  for (int i = 0; i < steps; ++i) run(true);
  LayerTimes out;
  out.model = describe(model);
  out.batch = batch;
  out.warmup = warmup;
  out.steps = steps;
  out.clock = watch->clock();
  out.graphs = rig.replays() - replays_before == steps;
  out.median_step_us = 1e6 * median_of(step_seconds);
  for (const RangeTimer::Range& r : timer.ranges()) {
    if (r.seconds.empty()) continue;  // opened by warm-up steps only
    LayerTimes::Range range;
    range.path = r.path;
    range.depth = r.depth;
    range.steps = static_cast<int>(r.seconds.size());
    range.median_us = 1e6 * median_of(r.seconds);
    range.min_us = 1e6 * *std::min_element(r.seconds.begin(), r.seconds.end());
    range.max_us = 1e6 * *std::max_element(r.seconds.begin(), r.seconds.end());
    out.ranges.push_back(range);
  }
  return out;
}

EpochRate bench_epoch(Ops<float>& ops, const ModelConfig& model, int batch, const FashionMnist& data,
                      const BenchSettings& settings) {
  if (settings.epoch_train_images < 1 || settings.epoch_train_images > data.train.count() ||
      settings.epoch_val_images < 1 || settings.epoch_val_images > data.t10k.count() - 1)
    throw std::invalid_argument("bench: the epoch's image counts do not fit the data");
  if (settings.epoch_repeats < 1 || settings.epoch_warmup < 0)
    throw std::invalid_argument("bench: epoch repeats must be positive");
  const NetworkSpec spec = build_network(model);
  Splits splits = make_splits(data, settings.seed, settings.epoch_val_images);
  splits.train.resize(static_cast<std::size_t>(settings.epoch_train_images));
  const int eval_batch = eval_batch_for(settings.epoch_eval_batch, batch, ops, settings.epoch_val_images);
  Executor<float> ex(spec, ops, std::max(batch, eval_batch), settings.seed);
  load_initial_params(ex, settings.seed);
  BatchStream stream(ex, settings.stream);
  const int steps = (settings.epoch_train_images + batch - 1) / batch;

  // One epoch as the trainer runs it: the shuffled order, the Adam table, every step, the loss
  // sum read once, then validation (timed by validation_watch when it is given).
  auto run_epoch = [&](int epoch, Stopwatch* validation_watch) {
    NvtxRange range("bench epoch");
    const std::vector<std::int32_t> order = epoch_order(splits.train, settings.seed, epoch);
    const std::uint64_t first = static_cast<std::uint64_t>(epoch - 1) * steps + 1;
    const std::vector<elementwise::AdamStep<float>> table =
        adam_step_table<float>(AdamConfig{}, first, static_cast<std::size_t>(steps));
    BatchStream::Epoch e;
    e.set = &data.train;
    e.order = &order;
    e.steps = steps;
    e.first_step = first;
    e.adam = &table;
    e.batch = batch;
    ex.reset_metrics();
    stream.begin_epoch(e);
    for (int b = 0; b < steps; ++b) stream.train_step(b);
    double loss_sum = 0;
    ops.copy_to_host(&loss_sum, ex.train_loss_sum(), sizeof loss_sum);
    if (validation_watch != nullptr) validation_watch->start();
    stream.evaluate(data.t10k, splits.validation, eval_batch);
    if (validation_watch != nullptr) validation_watch->stop();
  };
  int epoch = 0;
  for (int i = 0; i < settings.epoch_warmup; ++i) run_epoch(++epoch, nullptr);
  auto watch = ops.make_stopwatch();
  auto validation_watch = ops.make_stopwatch();
  std::vector<double> seconds, validation_seconds, wall;
  const long long replays_before = stream.graphs().replays();
  for (int r = 0; r < settings.epoch_repeats; ++r) {
    const auto start = Clock::now();
    watch->start();
    run_epoch(++epoch, validation_watch.get());
    watch->stop();
    seconds.push_back(watch->seconds());
    validation_seconds.push_back(validation_watch->seconds());
    wall.push_back(seconds_since(start));
  }
  EpochRate out;
  out.model = describe(model);
  out.batch = batch;
  out.train_images = settings.epoch_train_images;
  out.val_images = settings.epoch_val_images;
  out.eval_batch = eval_batch;
  out.placement = placement_name(stream.placement_of(data.train));
  out.median_seconds = median_of(seconds);
  out.min_seconds = *std::min_element(seconds.begin(), seconds.end());
  out.max_seconds = *std::max_element(seconds.begin(), seconds.end());
  out.median_wall_seconds = median_of(wall);
  out.median_validation_seconds = median_of(validation_seconds);
  out.images_per_second = out.train_images / out.median_seconds;
  out.graphs = stream.graphs().replays() > replays_before;
  return out;
}

}  // namespace fmnist
