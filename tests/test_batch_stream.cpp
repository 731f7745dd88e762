// The streaming orchestrator (host/batch_stream.h) on the CPU backend: every image of an epoch
// reaches its step exactly once and in epoch_order's sequence (streamed and resident, several ring
// depths, a partial last batch); the results are bitwise those of the synchronous path (gather,
// copy, train_step by value; the old evaluate) with dropout and a per-step learning rate; runs
// repeat for a seed; resuming mid-epoch; the augmentation hook; the ring's protocol checks; the
// trainer under every placement; and `fmnist bench`'s measurements.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "host/batch_stream.h"
#include "host/bench.h"
#include "host/dataset.h"
#include "host/range_timer.h"
#include "host/reference/cpu_ops.h"
#include "host/step_graphs.h"
#include "host/trainer.h"

using namespace fmnist;

namespace {

// Image i carries its index in pixels 0 and 1 and a pattern elsewhere; its label is i % 10.
Dataset tagged_set(int count, int salt) {
  Dataset d;
  d.images.resize(static_cast<std::size_t>(count) * kImagePixels);
  d.labels.resize(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    std::uint8_t* img = d.images.data() + static_cast<std::size_t>(i) * kImagePixels;
    for (int p = 0; p < kImagePixels; ++p) img[p] = static_cast<std::uint8_t>((i * 37 + p * 11 + salt) % 251);
    img[0] = static_cast<std::uint8_t>(i & 255);
    img[1] = static_cast<std::uint8_t>(i >> 8);
    d.labels[i] = static_cast<std::uint8_t>(i % 10);
  }
  return d;
}

FashionMnist tagged_data(int train, int t10k) {
  FashionMnist data;
  data.train = tagged_set(train, 0);
  data.t10k = tagged_set(t10k, 5);
  return data;
}

ModelConfig model(ModelKind kind, float dropout) {
  ModelConfig m;
  m.kind = kind;
  m.latent = 8;
  m.dropout = dropout;
  return m;
}

StreamOptions options(DataPlacement placement, int slots = 4, bool graphs = true) {
  StreamOptions o;
  o.placement = placement;
  o.slots = slots;
  o.graphs = graphs;
  return o;
}

template <class U> std::vector<U> read(Ops<float>& ops, const U* src, std::size_t n) {
  std::vector<U> host(n);
  ops.copy_to_host(host.data(), src, n * sizeof(U));
  return host;
}

void load_params(Executor<float>& ex, std::uint64_t seed) {
  std::vector<float> params(ex.spec().param_count);
  initialize_parameters(ex.spec(), seed, params.data());
  ex.ops().copy_to_device(ex.params(), params.data(), params.size() * sizeof(float));
}

// A learning rate that changes every step, so a table indexed wrongly shows.
double test_lr(std::uint64_t step) { return 1e-3 * (1.0 + 0.05 * static_cast<double>(step % 7)); }

std::vector<elementwise::AdamStep<float>> adam_table(std::uint64_t first_step, int steps, int first_batch = 0) {
  return adam_step_table<float>(AdamConfig{}, first_step - static_cast<std::uint64_t>(first_batch),
                                static_cast<std::size_t>(steps), test_lr);
}

// Everything a run leaves behind, for bitwise comparisons.
struct Outcome {
  std::vector<float> params, exp_avg, exp_avg_sq;
  std::vector<double> epoch_loss_sums, eval_losses, eval_mses, eval_accuracies;
  std::vector<std::int64_t> confusion;
};

void finish(Outcome& out, Executor<float>& ex) {
  const std::size_t n = ex.spec().param_count;
  out.params = read(ex.ops(), ex.params(), n);
  out.exp_avg = read(ex.ops(), ex.exp_avg(), n);
  out.exp_avg_sq = read(ex.ops(), ex.exp_avg_sq(), n);
}

void record_eval(Outcome& out, const EvalResult& r) {
  out.eval_losses.push_back(r.loss);
  out.eval_mses.push_back(r.mse);
  out.eval_accuracies.push_back(r.accuracy);
  out.confusion.insert(out.confusion.end(), r.confusion.begin(), r.confusion.end());
}

// evaluate() as it was before the streaming orchestrator: synchronous staging, per-batch ops, in
// batches of `batch` images (0: the executor's max_batch()).
EvalResult reference_evaluate(Executor<float>& ex, const Dataset& set, const std::vector<std::int32_t>& indices,
                              int batch = 0) {
  Ops<float>& ops = ex.ops();
  const bool classifier = ex.spec().config.kind == ModelKind::Classifier;
  const int max_batch = batch > 0 ? batch : ex.max_batch(), total = static_cast<int>(indices.size());
  auto* sums = static_cast<double*>(ops.allocate(4 * sizeof(double)));
  std::vector<std::uint8_t> images(static_cast<std::size_t>(max_batch) * kImagePixels), labels(max_batch);
  ex.reset_metrics();
  for (int start = 0; start < total; start += max_batch) {
    const int count = std::min(max_batch, total - start);
    double* s = sums + (count == max_batch ? 0 : 2);
    gather_batch(set, indices.data() + start, count, images.data(), labels.data());
    ops.copy_to_device(ex.batch_images(), images.data(), static_cast<std::size_t>(count) * kImagePixels);
    ops.copy_to_device(ex.batch_labels(), labels.data(), static_cast<std::size_t>(count));
    ex.forward(count, false, 0);
    if (classifier) {
      ex.loss(count, s, false);
      ops.count_predictions(count, kNetworkClasses, ex.output(), ex.batch_labels(), ex.confusion());
    } else {
      ex.reconstruction_loss(PointLoss::L1, count, nullptr, s);
      ex.reconstruction_loss(PointLoss::MSE, count, nullptr, s + 1);
    }
  }
  const auto h = read(ops, sums, 4);
  ops.deallocate(sums);
  const int partial = total % max_batch;
  auto mean = [&](int k) { return (h[k] * max_batch + h[k + 2] * partial) / total; };
  EvalResult r;
  r.images = total;
  r.loss = mean(0);
  if (!classifier) {
    r.mse = mean(1);
    return r;
  }
  r.confusion = read(ops, ex.confusion(), kNetworkClasses * kNetworkClasses);
  std::int64_t correct = 0;
  for (int l = 0; l < kNetworkClasses; ++l) correct += r.confusion[l * kNetworkClasses + l];
  r.accuracy = static_cast<double>(correct) / total;
  return r;
}

constexpr int kBatch = 8;
constexpr int kTrain = 50;  // 6 full batches of 8 and one of 2
constexpr int kSteps = (kTrain + kBatch - 1) / kBatch;

// The synchronous path: gather, copy, train_step(count, step, adam) by value.
Outcome synchronous_run(const ModelConfig& m, const FashionMnist& data, const Splits& splits, int epochs,
                        std::uint64_t seed) {
  CpuOps<float> ops;
  Executor<float> ex(build_network(m), ops, kBatch, seed);
  load_params(ex, seed);
  Outcome out;
  std::vector<std::uint8_t> images(kBatch * kImagePixels), labels(kBatch);
  std::uint64_t step = 0;
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    const auto order = epoch_order(splits.train, seed, epoch);
    ex.reset_metrics();
    for (int b = 0; b < kSteps; ++b) {
      const int count = std::min(kBatch, kTrain - b * kBatch);
      gather_batch(data.train, order.data() + b * kBatch, count, images.data(), labels.data());
      ops.copy_to_device(ex.batch_images(), images.data(), static_cast<std::size_t>(count) * kImagePixels);
      ops.copy_to_device(ex.batch_labels(), labels.data(), static_cast<std::size_t>(count));
      ++step;
      AdamConfig a;
      a.lr = test_lr(step);
      ex.train_step(count, step, a);
    }
    out.epoch_loss_sums.push_back(read(ops, ex.train_loss_sum(), 1)[0]);
    record_eval(out, reference_evaluate(ex, data.t10k, splits.validation));
  }
  finish(out, ex);
  return out;
}

// The same through the streaming orchestrator, with an executor (and upload slots) for batches of
// up to `capacity` images, training batches of kBatch and validation batches of eval_batch (0: capacity).
Outcome streamed_run(const ModelConfig& m, const FashionMnist& data, const Splits& splits, int epochs,
                     std::uint64_t seed, const StreamOptions& o, int capacity = kBatch, int eval_batch = 0) {
  CpuOps<float> ops;
  Executor<float> ex(build_network(m), ops, capacity, seed);
  load_params(ex, seed);
  BatchStream stream(ex, o);
  Outcome out;
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    const auto order = epoch_order(splits.train, seed, epoch);
    const std::uint64_t first = static_cast<std::uint64_t>(epoch - 1) * kSteps + 1;
    const auto table = adam_table(first, kSteps);
    BatchStream::Epoch e;
    e.set = &data.train;
    e.order = &order;
    e.steps = kSteps;
    e.first_step = first;
    e.adam = &table;
    e.batch = kBatch;
    ex.reset_metrics();
    stream.begin_epoch(e);
    for (int b = 0; b < kSteps; ++b) stream.train_step(b);
    out.epoch_loss_sums.push_back(read(ops, ex.train_loss_sum(), 1)[0]);
    const EvalResult streamed = stream.evaluate(data.t10k, splits.validation, eval_batch);
    if (eval_batch > 0) {  // bitwise the synchronous evaluation in the same batches
      const EvalResult direct = reference_evaluate(ex, data.t10k, splits.validation, eval_batch);
      CHECK(std::memcmp(&streamed.loss, &direct.loss, sizeof(double)) == 0);
      CHECK(std::memcmp(&streamed.mse, &direct.mse, sizeof(double)) == 0);
      CHECK(streamed.confusion == direct.confusion);
    }
    record_eval(out, streamed);
  }
  const StepCursor cursor = read(ops, stream.train_cursor(), 1)[0];
  CHECK(cursor.step == static_cast<std::uint64_t>(epochs) * kSteps + 1);
  CHECK(cursor.index == static_cast<std::uint64_t>(kSteps));
  finish(out, ex);
  return out;
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

void require_identical(const Outcome& a, const Outcome& b) {
  CHECK(a.params == b.params);
  CHECK(a.exp_avg == b.exp_avg);
  CHECK(a.exp_avg_sq == b.exp_avg_sq);
  CHECK(same_bits(a.epoch_loss_sums, b.epoch_loss_sums));
  CHECK(same_bits(a.eval_losses, b.eval_losses));
  CHECK(same_bits(a.eval_mses, b.eval_mses));          // NaN for a classifier: compared by bits
  CHECK(same_bits(a.eval_accuracies, b.eval_accuracies));
  CHECK(a.confusion == b.confusion);
}

Splits small_splits(const FashionMnist& data, std::uint64_t seed) {
  Splits s = make_splits(data, seed, 19);  // 19 validation images: batches of 8, 8 and 3
  REQUIRE(s.train.size() == static_cast<std::size_t>(kTrain));
  return s;
}

// train() on the CPU: 2 epochs of `kind` (dropout 0.2) in batches of 16, seed 11.
TrainResult train_two_epochs(const FashionMnist& data, ModelKind kind, int validation_count,
                             const StreamOptions& stream, int eval_batch = 0) {
  TrainConfig c;
  c.model = model(kind, 0.2f);
  c.epochs = 2;
  c.batch = 16;
  c.seed = 11;
  c.validation_count = validation_count;
  c.guard_every = 1000;
  c.stream = stream;
  c.eval_batch = eval_batch;
  CpuOps<float> ops;
  std::ostringstream log;
  return train(c, data, ops, log);
}

// The whole epoch of kSteps batches of `set` in `order`, with Adam's `table`, from step 1.
BatchStream::Epoch whole_epoch(const Dataset& set, const std::vector<std::int32_t>& order,
                               const std::vector<elementwise::AdamStep<float>>& table) {
  BatchStream::Epoch e;
  e.set = &set;
  e.order = &order;
  e.steps = kSteps;
  e.adam = &table;
  return e;
}

}  // namespace

TEST_CASE("stream: every image of an epoch reaches its step exactly once, in epoch_order's sequence",
          "[stream]") {
  const FashionMnist data = tagged_data(kTrain, 20);
  const Splits splits = small_splits(data, 3);
  const auto order = epoch_order(splits.train, 3, 2);
  for (DataPlacement placement : {DataPlacement::Stream, DataPlacement::Resident})
    for (int slots : {2, 3, 5}) {
      INFO(placement_name(placement) << ", " << slots << " slots");
      CpuOps<float> ops;
      Executor<float> ex(build_network(model(ModelKind::Autoencoder, 0)), ops, kBatch, 3);
      load_params(ex, 3);
      BatchStream stream(ex, options(placement, slots));
      CHECK(stream.placement_of(data.train) == placement);
      const auto table = adam_table(1, kSteps);
      stream.begin_epoch(whole_epoch(data.train, order, table));
      std::vector<std::int32_t> seen;
      for (int b = 0; b < kSteps; ++b) {
        stream.train_step(b);
        const int count = stream.batch_count(b);
        CHECK(count == (b + 1 < kSteps ? kBatch : kTrain % kBatch));  // the partial last batch
        const auto images = read(ops, ex.batch_images(), static_cast<std::size_t>(count) * kImagePixels);
        const auto labels = read(ops, ex.batch_labels(), static_cast<std::size_t>(count));
        for (int r = 0; r < count; ++r) {
          const std::uint8_t* img = images.data() + static_cast<std::size_t>(r) * kImagePixels;
          const int index = img[0] | (img[1] << 8);
          seen.push_back(index);
          CHECK(labels[r] == index % 10);
          CHECK(std::memcmp(img, data.train.image(index), kImagePixels) == 0);
        }
      }
      CHECK(seen == order);  // the epoch's order, batch by batch
      std::sort(seen.begin(), seen.end());
      std::vector<std::int32_t> all(kTrain);
      std::iota(all.begin(), all.end(), 0);
      CHECK(seen == all);  // every image exactly once
      CHECK_THROWS_AS(stream.train_step(kSteps), std::logic_error);  // past the end
    }
}

TEST_CASE("stream: results are bitwise those of the synchronous path", "[stream]") {
  const FashionMnist data = tagged_data(kTrain, 20);
  const Splits splits = small_splits(data, 4);
  for (const ModelConfig& m : {model(ModelKind::Autoencoder, 0.2f), model(ModelKind::Classifier, 0.2f)}) {
    INFO(describe(m));
    const Outcome reference = synchronous_run(m, data, splits, 2, 4);
    for (const StreamOptions& o : {options(DataPlacement::Stream, 2), options(DataPlacement::Stream, 4, false),
                                   options(DataPlacement::Resident, 3), options(DataPlacement::Auto)}) {
      INFO(placement_name(o.placement) << ", " << o.slots << " slots, graphs " << o.graphs);
      require_identical(streamed_run(m, data, splits, 2, 4, o), reference);
    }
  }
}

TEST_CASE("stream: validation batches of any size give the same figures, and training is untouched", "[stream]") {
  // An executor sized for 32 images trains in batches of 8 (its upload slots hold 32: a batch
  // starts at its slot's first row) and validates 19 images in batches of 5, 19 or 1. Training
  // is bitwise that of an executor of 8. The validation figures are means over images whatever
  // the batch, summed in double; an image's output may round differently in another batch (a
  // GEMM's blocking follows its row count), by a few FP32 ulps, so the means agree to 1e-6
  // (relative, about 8 ulps). The confusion matrix is the same counts.
  const FashionMnist data = tagged_data(kTrain, 20);
  const Splits splits = small_splits(data, 4);
  for (const ModelConfig& m : {model(ModelKind::Autoencoder, 0.2f), model(ModelKind::Classifier, 0.2f)}) {
    const Outcome reference = synchronous_run(m, data, splits, 2, 4);
    for (const StreamOptions& o : {options(DataPlacement::Stream, 3), options(DataPlacement::Resident, 2)})
      for (int eval_batch : {5, 19, 1}) {
        INFO(describe(m) << ", " << placement_name(o.placement) << ", validation batches of " << eval_batch);
        const Outcome run = streamed_run(m, data, splits, 2, 4, o, 32, eval_batch);
        CHECK(run.params == reference.params);
        CHECK(run.exp_avg == reference.exp_avg);
        CHECK(run.exp_avg_sq == reference.exp_avg_sq);
        CHECK(same_bits(run.epoch_loss_sums, reference.epoch_loss_sums));
        REQUIRE(run.eval_losses.size() == reference.eval_losses.size());
        for (std::size_t i = 0; i < run.eval_losses.size(); ++i) {
          CHECK(run.eval_losses[i] == Approx(reference.eval_losses[i]).epsilon(1e-6));
          if (m.kind == ModelKind::Autoencoder) CHECK(run.eval_mses[i] == Approx(reference.eval_mses[i]).epsilon(1e-6));
        }
        CHECK(same_bits(run.eval_accuracies, reference.eval_accuracies));
        CHECK(run.confusion == reference.confusion);
      }
  }
}

TEST_CASE("stream: a pass's batch must fit the executor", "[stream]") {
  const FashionMnist data = tagged_data(kTrain, 20);
  const Splits splits = small_splits(data, 4);
  CpuOps<float> ops;
  Executor<float> ex(build_network(model(ModelKind::Autoencoder, 0)), ops, kBatch, 4);
  BatchStream stream(ex, options(DataPlacement::Stream, 2));
  CHECK_THROWS_WITH(stream.evaluate(data.t10k, splits.validation, kBatch + 1),
                    Catch::Contains("a batch of 9 images, outside 1..8"));
  CHECK_THROWS_AS(stream.evaluate(data.t10k, splits.validation, -1), std::invalid_argument);
  const auto order = epoch_order(splits.train, 4, 1);
  const auto table = adam_table(1, kSteps);
  BatchStream::Epoch e = whole_epoch(data.train, order, table);
  e.batch = kBatch + 1;
  CHECK_THROWS_WITH(stream.begin_epoch(e), Catch::Contains("begin_epoch: a batch of 9 images"));
}

TEST_CASE("stream: a staged batch is scaled once, and images written after it are scaled again", "[stream]") {
  // stage() gathers and scales in one op, and the forward pass then skips images_to_float; the
  // outputs must be those of the images copied in and scaled by the forward pass, and images
  // written through batch_images() after a stage() must be the ones the next forward pass sees.
  const Dataset set = tagged_set(9, 3);
  const std::vector<std::int32_t> order = {7, 2, 5, 0};
  const RowSource source{set.images.data(), set.labels.data(), static_cast<std::size_t>(kImagePixels), 1};
  const RowOrder rows{order.data(), order.size(), 0};
  const StepCursor cursor{1, 0};
  CpuOps<float> ops;
  const NetworkSpec spec = build_network(model(ModelKind::Autoencoder, 0));
  Executor<float> staged(spec, ops, 4, 5), copied(spec, ops, 4, 5);
  load_params(staged, 5);
  load_params(copied, 5);
  const std::size_t out = 4 * spec.output().count();
  staged.stage(4, source, rows, &cursor);
  staged.forward(4, /*training=*/false, 0);
  std::vector<std::uint8_t> images(4 * kImagePixels), labels(4);
  gather_batch(set, order.data(), 4, images.data(), labels.data());
  ops.copy_to_device(copied.batch_images(), images.data(), images.size());
  copied.forward(4, false, 0);
  CHECK(read(ops, staged.output(), out) == read(ops, copied.output(), out));
  CHECK(read(ops, staged.input(), images.size()) == read(ops, copied.input(), images.size()));
  // Staged, then other images written: the forward pass scales those.
  staged.stage(4, source, rows, &cursor);
  std::vector<std::uint8_t> dark(images.size(), 0);
  ops.copy_to_device(staged.batch_images(), dark.data(), dark.size());
  ops.copy_to_device(copied.batch_images(), dark.data(), dark.size());
  staged.forward(4, false, 0);
  copied.forward(4, false, 0);
  CHECK(read(ops, staged.input(), dark.size()) == std::vector<float>(dark.size(), 0.0f));
  CHECK(read(ops, staged.output(), out) == read(ops, copied.output(), out));
}

TEST_CASE("stream: a seed gives bitwise identical runs, another seed does not", "[stream]") {
  const FashionMnist data = tagged_data(kTrain, 20);
  const Splits splits = small_splits(data, 7);
  const ModelConfig m = model(ModelKind::Autoencoder, 0.2f);
  const Outcome a = streamed_run(m, data, splits, 1, 7, options(DataPlacement::Stream, 3));
  const Outcome b = streamed_run(m, data, splits, 1, 7, options(DataPlacement::Stream, 3));
  require_identical(a, b);
  const Outcome c = streamed_run(m, data, splits, 1, 8, options(DataPlacement::Stream, 3));
  CHECK(c.params != a.params);
}

TEST_CASE("stream: an epoch resumed mid-way ends as the whole epoch does", "[stream]") {
  const FashionMnist data = tagged_data(kTrain, 20);
  const Splits splits = small_splits(data, 9);
  const ModelConfig m = model(ModelKind::Autoencoder, 0.2f);
  const auto order = epoch_order(splits.train, 9, 1);
  const auto table = adam_table(1, kSteps);
  for (DataPlacement placement : {DataPlacement::Stream, DataPlacement::Resident}) {
    INFO(placement_name(placement));
    auto run = [&](int split_at) {
      CpuOps<float> ops;
      Executor<float> ex(build_network(m), ops, kBatch, 9);
      load_params(ex, 9);
      ex.reset_metrics();
      BatchStream::Epoch e;
      e.set = &data.train;
      e.order = &order;
      e.steps = kSteps;
      e.adam = &table;
      {
        BatchStream first(ex, options(placement, 3));
        first.begin_epoch(e);
        for (int b = 0; b < split_at; ++b) first.train_step(b);
      }  // a new stream (a new process, in a real resume) continues at batch split_at
      BatchStream rest(ex, options(placement, 3));
      e.first_batch = split_at;
      e.first_step = 1 + static_cast<std::uint64_t>(split_at);
      rest.begin_epoch(e);
      for (int b = split_at; b < kSteps; ++b) rest.train_step(b);
      return read(ops, ex.params(), ex.spec().param_count);
    };
    CHECK(run(3) == run(0));
  }
}

TEST_CASE("stream: the host gather hook sees each batch's indices, resident refuses it", "[stream]") {
  const FashionMnist data = tagged_data(kTrain, 20);
  const Splits splits = small_splits(data, 2);
  const auto order = epoch_order(splits.train, 2, 1);
  const auto table = adam_table(1, kSteps);
  CpuOps<float> ops;
  Executor<float> ex(build_network(model(ModelKind::Autoencoder, 0)), ops, kBatch, 2);
  load_params(ex, 2);
  std::vector<std::int32_t> asked;
  BatchStream::Epoch e;
  e.set = &data.train;
  e.order = &order;
  e.steps = kSteps;
  e.adam = &table;
  e.gather = [&](const std::int32_t* indices, int count, std::uint8_t* images, std::uint8_t* labels) {
    asked.insert(asked.end(), indices, indices + count);
    gather_batch(data.train, indices, count, images, labels);
    for (int i = 0; i < count * kImagePixels; ++i) images[i] = 255 - images[i];  // an "augmentation"
  };
  {
    BatchStream stream(ex, options(DataPlacement::Auto, 2));
    stream.begin_epoch(e);
    for (int b = 0; b < kSteps; ++b) {
      stream.train_step(b);
      const auto first = read(ops, ex.batch_images(), kImagePixels);
      CHECK(first[0] == 255 - (order[static_cast<std::size_t>(b) * kBatch] & 255));
    }
    CHECK(asked == order);
  }
  BatchStream resident(ex, options(DataPlacement::Resident));
  CHECK_THROWS_AS(resident.begin_epoch(e), std::invalid_argument);
}

TEST_CASE("stream: the CPU upload ring refuses an out-of-order protocol", "[stream]") {
  CpuOps<float> ops;
  auto ring = ops.make_upload_ring(2, 16);
  CHECK(ring->slots() == 2);
  CHECK_THROWS_AS(ring->acquire(0), std::logic_error);  // nothing uploaded
  ring->upload(0, 16);
  CHECK_THROWS_AS(ring->upload(0, 16), std::logic_error);  // not yet released
  CHECK_THROWS_AS(ring->release(0), std::logic_error);     // not acquired
  ring->acquire(0);
  ring->release(0);
  ring->upload(0, 8);
  CHECK_THROWS_AS(ring->upload(1, 17), std::invalid_argument);
  CHECK_THROWS_AS(ring->upload(2, 1), std::out_of_range);
  CHECK_THROWS_AS(ops.make_upload_ring(1, 16), std::invalid_argument);
  CHECK_FALSE(StepGraphs(ops, true).active());  // the CPU captures nothing: steps simply run
}

TEST_CASE("stream: train() gives the same run under every placement, graphs on or off", "[stream]") {
  const FashionMnist data = tagged_data(40, 12);  // batches of 16: 16, 16, 8
  auto run = [&](DataPlacement placement, bool graphs) {
    return train_two_epochs(data, ModelKind::Classifier, 10, options(placement, 2, graphs));
  };
  const TrainResult a = run(DataPlacement::Stream, true);
  REQUIRE(a.epochs.size() == 2);
  for (auto [placement, graphs] : {std::pair{DataPlacement::Resident, true}, std::pair{DataPlacement::Auto, false}}) {
    const TrainResult b = run(placement, graphs);
    CHECK(b.final_params == a.final_params);
    REQUIRE(b.epochs.size() == 2);
    for (int i = 0; i < 2; ++i) {
      CHECK(b.epochs[i].train_loss == a.epochs[i].train_loss);
      CHECK(b.epochs[i].val_loss == a.epochs[i].val_loss);
      CHECK(b.epochs[i].val_accuracy == a.epochs[i].val_accuracy);
    }
  }
}

TEST_CASE("stream: train()'s validation batch changes no weight, and its figures only by rounding", "[stream]") {
  const FashionMnist data = tagged_data(40, 12);  // training batches of 16: 16, 16, 8
  auto run = [&](int eval_batch) {
    return train_two_epochs(data, ModelKind::Autoencoder, 11, StreamOptions{}, eval_batch);
  };
  const TrainResult a = run(0);  // by backend: the CPU's training batch, so 11 images in one batch
  REQUIRE(a.epochs.size() == 2);
  for (int eval_batch : {4, 1000}) {  // 4, 4, 3; 1000: at most the 11 images
    INFO("validation batches of " << eval_batch);
    const TrainResult b = run(eval_batch);
    CHECK(b.final_params == a.final_params);
    REQUIRE(b.epochs.size() == 2);
    for (int i = 0; i < 2; ++i) {
      CHECK(b.epochs[i].train_loss == a.epochs[i].train_loss);
      CHECK(b.epochs[i].val_loss == Approx(a.epochs[i].val_loss).epsilon(1e-6));  // as above
    }
  }
  TrainConfig bad;
  bad.eval_batch = -1;
  CpuOps<float> ops;
  std::ostringstream log;
  CHECK_THROWS_WITH(train(bad, data, ops, log), Catch::Contains("eval_batch must be >= 0"));
  CHECK(eval_batch_for(0, 100, ops, 9900) == 100);  // by backend: the CPU's is the training batch
  CHECK(eval_batch_for(0, 100, ops, 30) == 30);     // at most the images
  CHECK(eval_batch_for(1000, 100, ops, 9900) == 1000);
  CHECK(eval_batch_for(1000, 100, ops, 900) == 900);
}

TEST_CASE("stream: fmnist bench measures steps and epochs on the CPU", "[stream][bench]") {
  CpuOps<float> ops;
  BenchSettings s;
  s.repeats = 2;
  s.epoch_warmup = 0;
  s.epoch_repeats = 1;
  s.epoch_train_images = 20;
  s.epoch_val_images = 10;
  const ModelConfig m = model(ModelKind::Autoencoder, 0);
  const StepRate step = bench_step(ops, m, 4, 1, 2, s);
  CHECK(step.model == "AE(8)");
  CHECK(step.median > 0);
  CHECK(step.min <= step.median);
  CHECK(step.median <= step.max);
  CHECK_FALSE(step.graphs);
  const FashionMnist data = synthetic_fashion_mnist(20, 12, 1);
  const EpochRate epoch = bench_epoch(ops, m, 8, data, s);  // batches of 8, 8 and 4
  CHECK(epoch.images_per_second > 0);
  CHECK(epoch.placement == "stream");
  CHECK(epoch.train_images == 20);
  CHECK(epoch.eval_batch == 8);  // by backend: the CPU validates in training batches
  CHECK(epoch.median_validation_seconds > 0);
  CHECK(epoch.median_validation_seconds < epoch.median_seconds);  // a part of the epoch
  s.epoch_eval_batch = 3;
  CHECK(bench_epoch(ops, m, 8, data, s).eval_batch == 3);
  s.epoch_eval_batch = 1000;
  CHECK(bench_epoch(ops, m, 8, data, s).eval_batch == 10);  // at most the 10 validation images
}

TEST_CASE("stream: fmnist bench times each NVTX range of a training step on the CPU", "[stream][bench]") {
  CpuOps<float> ops;
  BenchSettings s;
  const LayerTimes t = bench_layers(ops, model(ModelKind::Autoencoder, 0), 4, 1, 3, s);
  CHECK(t.model == "AE(8)");
  CHECK(t.clock == "host-clock");
  CHECK_FALSE(t.graphs);
  CHECK(t.median_step_us > 0);
  std::vector<std::string> paths;
  for (const auto& r : t.ranges) {
    INFO(r.path);
    paths.push_back(r.path);
    CHECK(r.steps == 3);
    CHECK(r.min_us <= r.median_us);
    CHECK(r.median_us <= r.max_us);
    CHECK(r.depth == static_cast<int>(std::count(r.path.begin(), r.path.end(), '/')));
    if (r.depth == 0) CHECK(r.median_us <= t.median_step_us);  // a phase is a part of the step
  }
  // The phases in the order a step opens them, each layer inside its phase; the output layer with
  // the loss (Executor::training_forward_and_loss); names without a module are the kind alone.
  const std::vector<std::string> expected_in_order{"forward", "forward / encoder.0 Conv2d", "loss",
                                                   "loss / decoder.5 ConvTranspose2d", "backward",
                                                   "backward / decoder.0 Linear backward",
                                                   "backward / encoder.7 Linear backward",
                                                   "backward / MaxPool2d backward",
                                                   "backward / encoder.0 Conv2d backward",
                                                   "optimizer"};
  std::size_t at = 0;
  for (const std::string& want : expected_in_order) {
    INFO(want);
    const auto found = std::find(paths.begin() + static_cast<std::ptrdiff_t>(at), paths.end(), want);
    REQUIRE(found != paths.end());
    at = static_cast<std::size_t>(found - paths.begin());
  }
  CHECK_THROWS_WITH(bench_layers(ops, model(ModelKind::Autoencoder, 0), 4, 1, 0, s), Catch::Contains("positive"));
}

TEST_CASE("stream: the range timer sums a path opened twice, re-reads a step that opened none, reports misuse",
          "[stream][bench]") {
  CpuOps<float> ops;
  RangeTimer timer(ops);
  const auto step = [&] {
    timer.begin_step();
    timer.enter("outer");
    timer.enter("inner");
    timer.leave();
    timer.enter("inner");
    timer.leave();
    timer.leave();
  };
  step();
  timer.add_step_times();
  REQUIRE(timer.ranges().size() == 2);
  CHECK(timer.ranges()[0].path == "outer");
  CHECK(timer.ranges()[1].path == "outer / inner");
  CHECK(timer.ranges()[1].depth == 1);
  CHECK(timer.ranges()[1].seconds.size() == 1);  // the two openings, summed
  // A step that opens no range (a CUDA graph's replay) is timed by the last recorded step's stopwatches.
  timer.begin_step();
  timer.add_step_times();
  CHECK(timer.ranges()[0].seconds.size() == 2);
  CHECK(timer.ranges()[0].seconds[1] == timer.ranges()[0].seconds[0]);  // host clocks do not move again
  timer.begin_step();
  timer.enter("open");
  CHECK_THROWS_WITH(timer.add_step_times(), Catch::Contains("inside the range 'open'"));
  timer.leave();
  timer.leave();  // one more than opened: kept, then reported
  CHECK_THROWS_WITH(timer.add_step_times(), Catch::Contains("a range closed that was not opened"));
}
