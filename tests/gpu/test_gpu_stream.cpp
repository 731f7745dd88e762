// The streaming orchestrator and CUDA graphs on the GPU (host/batch_stream.h, host/step_graphs.h):
// graph replay gives bitwise the losses, parameters, Adam moments and evaluations of the same
// steps launched op by op, and of the synchronous path (copy, train_step by value); streamed and
// resident data give identical results; a partial last batch (its own graph from the second
// epoch) is trained and weighed; the graphs really are captured (none failed) and replayed; the
// bench's step measure replays a graph. Synthetic data of Fashion-MNIST's shape (host/bench.h).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gpu_test_support.h"
#include "host/batch_stream.h"
#include "host/bench.h"
#include "host/dataset.h"
#include "host/trainer.h"
#include "models/executor.h"
#include "models/network.h"

using namespace fmnist;
using namespace fmnist::gputest;

namespace {

// Everything a run leaves behind, compared bit for bit.
struct Outcome {
  std::vector<float> params, exp_avg, exp_avg_sq, step_losses;
  std::vector<double> epoch_loss_sums, eval;  // eval: loss, mse (AE) or accuracy per epoch
  std::vector<std::int64_t> confusion;
  int graphs_captured = 0, graph_failures = 0;
  long long graph_replays = 0;
};

template <class T> std::vector<T> read(Ops<float>& ops, const T* src, std::size_t n) {
  std::vector<T> host(n);
  ops.copy_to_host(host.data(), src, n * sizeof(T));
  return host;
}

double test_lr(std::uint64_t step) { return 1e-3 * (1.0 + 0.05 * static_cast<double>(step % 7)); }

struct Setup {
  ModelConfig model;
  int batch = 100;
  int epochs = 3;  // the partial batch: un-captured, captured, replayed
  std::uint64_t seed = 1;
};

void load_params(Executor<float>& ex, std::uint64_t seed) {
  std::vector<float> params(ex.spec().param_count);
  initialize_parameters(ex.spec(), seed, params.data());
  ex.ops().copy_to_device(ex.params(), params.data(), params.size() * sizeof(float));
}

void record_eval(Outcome& out, const EvalResult& r) {
  out.eval.push_back(r.loss);
  out.eval.push_back(r.mse);
  out.eval.push_back(r.accuracy);
  out.confusion.insert(out.confusion.end(), r.confusion.begin(), r.confusion.end());
}

void finish(Outcome& out, Executor<float>& ex) {
  const std::size_t n = ex.spec().param_count;
  out.params = read(ex.ops(), ex.params(), n);
  out.exp_avg = read(ex.ops(), ex.exp_avg(), n);
  out.exp_avg_sq = read(ex.ops(), ex.exp_avg_sq(), n);
}

// Through the orchestrator; `per_step` reads each step's loss (a sync per step: tests only). The
// executor holds batches of up to `capacity` images (0: s.batch), training runs in batches of
// s.batch, validation in batches of eval_batch (0: capacity).
Outcome streamed(const Setup& s, const FashionMnist& data, const Splits& splits, const StreamOptions& o,
                 bool per_step = true, const CudaOptions& backend = CudaOptions{}, int capacity = 0,
                 int eval_batch = 0) {
  auto ops = make_backend(backend);
  Outcome out;
  {
    Executor<float> ex(build_network(s.model), *ops, capacity > 0 ? capacity : s.batch, s.seed);
    load_params(ex, s.seed);
    BatchStream stream(ex, o);
    const int total = static_cast<int>(splits.train.size());
    const int steps = (total + s.batch - 1) / s.batch;
    for (int epoch = 1; epoch <= s.epochs; ++epoch) {
      const auto order = epoch_order(splits.train, s.seed, epoch);
      const std::uint64_t first = static_cast<std::uint64_t>(epoch - 1) * steps + 1;
      const std::vector<elementwise::AdamStep<float>> table =
          adam_step_table<float>(AdamConfig{}, first, static_cast<std::size_t>(steps), test_lr);
      BatchStream::Epoch e;
      e.set = &data.train;
      e.order = &order;
      e.steps = steps;
      e.first_step = first;
      e.adam = &table;
      e.batch = s.batch;
      ex.reset_metrics();
      stream.begin_epoch(e);
      for (int b = 0; b < steps; ++b) {
        stream.train_step(b);
        if (per_step) out.step_losses.push_back(read(*ops, ex.batch_loss(), 1)[0]);
      }
      out.epoch_loss_sums.push_back(read(*ops, ex.train_loss_sum(), 1)[0]);
      record_eval(out, stream.evaluate(data.t10k, splits.validation, eval_batch));
    }
    finish(out, ex);
    out.graphs_captured = stream.graphs().captured();
    out.graph_failures = stream.graphs().failures();
    out.graph_replays = stream.graphs().replays();
  }
  ops.reset();
  return out;
}

// The synchronous path on the same backend: gather, copy, train_step(count, step, adam) by value.
Outcome synchronous(const Setup& s, const FashionMnist& data, const Splits& splits) {
  auto ops = make_backend(CudaOptions{});
  Outcome out;
  {
    Executor<float> ex(build_network(s.model), *ops, s.batch, s.seed);
    load_params(ex, s.seed);
    const int total = static_cast<int>(splits.train.size());
    const int steps = (total + s.batch - 1) / s.batch;
    std::vector<std::uint8_t> images(static_cast<std::size_t>(s.batch) * kImagePixels), labels(s.batch);
    std::uint64_t step = 0;
    for (int epoch = 1; epoch <= s.epochs; ++epoch) {
      const auto order = epoch_order(splits.train, s.seed, epoch);
      ex.reset_metrics();
      for (int b = 0; b < steps; ++b) {
        const int count = std::min(s.batch, total - b * s.batch);
        gather_batch(data.train, order.data() + static_cast<std::size_t>(b) * s.batch, count, images.data(), labels.data());
        ops->copy_to_device(ex.batch_images(), images.data(), static_cast<std::size_t>(count) * kImagePixels);
        ops->copy_to_device(ex.batch_labels(), labels.data(), static_cast<std::size_t>(count));
        ++step;
        AdamConfig a;
        a.lr = test_lr(step);
        ex.train_step(count, step, a);
        out.step_losses.push_back(read(*ops, ex.batch_loss(), 1)[0]);
      }
      out.epoch_loss_sums.push_back(read(*ops, ex.train_loss_sum(), 1)[0]);
      // Evaluation through a stream without graphs (its op-by-op path equals the old evaluate()
      // bit for bit on the CPU: tests/test_batch_stream.cpp).
      BatchStream eval(ex, [] {
        StreamOptions o;
        o.graphs = false;
        o.placement = DataPlacement::Stream;
        return o;
      }());
      record_eval(out, eval.evaluate(data.t10k, splits.validation));
    }
    finish(out, ex);
  }
  ops.reset();
  return out;
}

template <class T> std::vector<double> bits_as_double(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

void require_identical(const std::string& what, const Outcome& got, const Outcome& ref) {
  compare_exact(what + ": params", got.params, ref.params);
  compare_exact(what + ": exp_avg", got.exp_avg, ref.exp_avg);
  compare_exact(what + ": exp_avg_sq", got.exp_avg_sq, ref.exp_avg_sq);
  if (!got.step_losses.empty() && !ref.step_losses.empty())
    compare_exact(what + ": per-step losses", got.step_losses, ref.step_losses);
  compare_exact(what + ": epoch loss sums", got.epoch_loss_sums, ref.epoch_loss_sums);
  // NaN stands for "not measured" here (mse of a classifier, accuracy of an AE): same bits.
  CHECK(got.eval.size() == ref.eval.size());
  CHECK(std::memcmp(got.eval.data(), ref.eval.data(), std::min(got.eval.size(), ref.eval.size()) * sizeof(double)) == 0);
  CHECK(got.confusion == ref.confusion);
}

StreamOptions opts(DataPlacement placement, bool graphs, int slots = 4) {
  StreamOptions o;
  o.placement = placement;
  o.graphs = graphs;
  o.slots = slots;
  return o;
}

ModelConfig ae(int latent, float dropout) {
  ModelConfig c;
  c.kind = ModelKind::Autoencoder;
  c.latent = latent;
  c.dropout = dropout;
  return c;
}
ModelConfig classifier(int latent, float dropout) {
  ModelConfig c = ae(latent, dropout);
  c.kind = ModelKind::Classifier;
  return c;
}

// 1,050 training images (10 batches of 100 and one of 50), 230 validation images (2 + 30).
struct Data {
  FashionMnist data = synthetic_fashion_mnist(1050, 250, 77);
  Splits splits = make_splits(data, 77, 230);
};
const Data& shared_data() {
  static const Data d;
  return d;
}

void check_graphs_used(const std::string& what, const Outcome& o, int expected_graphs) {
  INFO(what << ": " << o.graphs_captured << " graphs captured, " << o.graph_failures
            << " failed captures, " << o.graph_replays << " replays");
  if (on_cpu_stand_in()) {
    CHECK(o.graphs_captured == 0);  // the stand-in cannot capture: steps ran op by op
    return;
  }
  CHECK(o.graph_failures == 0);
  CHECK(o.graphs_captured == expected_graphs);
  CHECK(o.graph_replays > 0);
  if (verbose())
    std::printf("  ok %s: %d graphs, %lld replays\n", what.c_str(), o.graphs_captured, o.graph_replays);
}

// check(setup, name) for AE(256) and C(256), both with dropout 0.2, trained with `seed`.
template <class Check> void for_ae_and_classifier(std::uint64_t seed, Check check) {
  for (const ModelConfig& m : {ae(256, 0.2f), classifier(256, 0.2f)}) {
    const std::string name = describe(m);
    INFO(name);
    Setup s;
    s.model = m;
    s.seed = seed;
    check(s, name);
  }
}

}  // namespace

TEST_CASE("GPU graph replay equals op-by-op steps and the synchronous path, bit for bit",
          "[gpu][stream][graph]") {
  const Data& d = shared_data();
  for_ae_and_classifier(5, [&](const Setup& s, const std::string& name) {
    const Outcome graphed = streamed(s, d.data, d.splits, opts(DataPlacement::Resident, true));
    const Outcome op_by_op = streamed(s, d.data, d.splits, opts(DataPlacement::Resident, false));
    const Outcome reference = synchronous(s, d.data, d.splits);
    // Train: full and partial batch; eval: full and partial batch.
    check_graphs_used(name + " graphed", graphed, 4);
    CHECK(op_by_op.graphs_captured == 0);
    REQUIRE(graphed.step_losses.size() == 33);
    require_identical(name + " graphs vs op by op", graphed, op_by_op);
    require_identical(name + " graphs vs synchronous", graphed, reference);
    // The partial last batch trained: its loss is a real number, different from the batch before.
    CHECK(std::isfinite(graphed.step_losses[10]));
    CHECK(graphed.step_losses[10] != graphed.step_losses[9]);
  });
}

TEST_CASE("GPU graphs with the parameter gradients on side streams equal one stream, bit for bit",
          "[gpu][stream][graph][streams]") {
  const Data& d = shared_data();
  for_ae_and_classifier(7, [&](const Setup& s, const std::string& name) {
    const Outcome one = streamed(s, d.data, d.splits, opts(DataPlacement::Resident, true), false);
    for (int streams : {2, kMaxBackwardStreams}) {
      const std::string what = name + ", " + std::to_string(streams) + " backward streams";
      // No per-step reads: replays follow each other with nothing between them but the graphs.
      const Outcome several = streamed(s, d.data, d.splits, opts(DataPlacement::Resident, true), false,
                                       with_backward_streams(streams));
      const Outcome op_by_op = streamed(s, d.data, d.splits, opts(DataPlacement::Resident, false), false,
                                        with_backward_streams(streams));
      check_graphs_used(what + ", graphed", several, 4);
      require_identical(what + " vs one, graphed", several, one);
      require_identical(what + ", op by op vs graphed", op_by_op, several);
    }
  });
}

TEST_CASE("GPU graphs with fmnist's split-K Linear products equal op-by-op streamed steps, bit for bit",
          "[gpu][stream][graph][linear-split]") {
  const Data& d = shared_data();
  for_ae_and_classifier(10, [&](const Setup& s, const std::string& name) {
    // Its slices' sums live in the workspace, grown at each Linear shape's first (un-captured) step.
    const Outcome graphed =
        streamed(s, d.data, d.splits, opts(DataPlacement::Resident, true), true, direct_linear_options());
    const Outcome op_by_op =
        streamed(s, d.data, d.splits, opts(DataPlacement::Stream, false, 3), true, direct_linear_options());
    check_graphs_used(name + " graphed with the split-K Linear products", graphed, 4);
    require_identical(name + " split-K Linear products, graphed vs streamed op by op", graphed, op_by_op);
  });
}

TEST_CASE("GPU validation in larger batches leaves training bitwise the same, its figures within rounding",
          "[gpu][stream][graph]") {
  const Data& d = shared_data();
  if (!on_cpu_stand_in()) {  // by backend: a GPU validates 1,000 images a batch
    auto ops = make_backend(CudaOptions{});
    CHECK(eval_batch_for(0, 100, *ops, 9900) == kDeviceEvalBatch);
  }
  for_ae_and_classifier(8, [&](const Setup& s, const std::string& name) {
    const Outcome base = streamed(s, d.data, d.splits, opts(DataPlacement::Resident, true));
    for (const StreamOptions& o : {opts(DataPlacement::Resident, true), opts(DataPlacement::Stream, true, 3)}) {
      // An executor of 230 images: training in batches of 100 (and 50), validation in two of 115.
      const Outcome wide = streamed(s, d.data, d.splits, o, true, CudaOptions{}, 230, 115);
      const std::string what = name + ", validation in batches of 115, " + placement_name(o.placement);
      check_graphs_used(what, wide, 3);  // train: full and partial batch; eval: one size
      compare_exact(what + ": params", wide.params, base.params);
      compare_exact(what + ": exp_avg", wide.exp_avg, base.exp_avg);
      compare_exact(what + ": exp_avg_sq", wide.exp_avg_sq, base.exp_avg_sq);
      compare_exact(what + ": per-step losses", wide.step_losses, base.step_losses);
      compare_exact(what + ": epoch loss sums", wide.epoch_loss_sums, base.epoch_loss_sums);
      // Means over the same images; cuBLAS and cuDNN may round an image's output differently at
      // another batch size (their kernels follow the row count): 1e-6 relative, about 8 FP32 ulps.
      REQUIRE(wide.eval.size() == base.eval.size());
      for (std::size_t i = 0; i < base.eval.size(); ++i) {
        if (std::isnan(base.eval[i])) {
          CHECK(std::isnan(wide.eval[i]));
          continue;
        }
        INFO(what << ": figure " << i);
        CHECK(wide.eval[i] == Approx(base.eval[i]).epsilon(1e-6));
      }
      CHECK(wide.confusion == base.confusion);
    }
  });
}

TEST_CASE("GPU graphs with programmatic dependent launch equal plain launches, bit for bit",
          "[gpu][stream][graph][pdl]") {
  const Data& d = shared_data();
  for_ae_and_classifier(9, [&](const Setup& s, const std::string& name) {
    const Outcome plain = streamed(s, d.data, d.splits, opts(DataPlacement::Resident, true), false);
    const Outcome pdl = streamed(s, d.data, d.splits, opts(DataPlacement::Resident, true), false,
                                 with_programmatic_launch());
    const Outcome pdl_op_by_op = streamed(s, d.data, d.splits, opts(DataPlacement::Stream, false, 3), false,
                                          with_programmatic_launch(with_backward_streams(2)));
    check_graphs_used(name + " graphed with programmatic dependent launch", pdl, 4);
    require_identical(name + " programmatic dependent launch vs plain, graphed", pdl, plain);
    require_identical(name + " programmatic dependent launch, streamed op by op on two streams vs plain",
                      pdl_op_by_op, plain);
  });
}

TEST_CASE("GPU runs trained at once in threads of one process keep their captures and their bits",
          "[gpu][stream][graph][threads]") {
  // As in fmnist reproduce: an AE and a classifier, each on its own backend and thread, the
  // classifier shorter so that it tears down (cudaFree, handle teardown) while the AE still
  // captures, and a third thread freeing memory all along. CUDA invalidates a capture when any
  // thread synchronises the device; cuda/device_gate.h makes those calls wait for the captures.
  // Whether a free lands inside a capture is left to timing here (the kernel emulator's
  // test_capture_gate.cpp forces it); what this checks on a GPU is that nothing deadlocks, no
  // capture fails and every run keeps the bits it has alone.
  const Data& d = shared_data();
  Setup a;
  a.model = ae(256, 0.2f);
  a.seed = 11;
  Setup c;
  c.model = classifier(64, 0.2f);
  c.seed = 12;
  c.epochs = 1;
  const StreamOptions o = opts(DataPlacement::Resident, true);
  const Outcome ae_alone = streamed(a, d.data, d.splits, o, false);
  const Outcome classifier_alone = streamed(c, d.data, d.splits, o, false);

  Outcome ae_together, classifier_together;
  std::string errors;  // Catch's macros are for the main thread: threads report here
  std::mutex errors_mutex;
  auto guarded = [&](const char* who, auto body) {
    try {
      body();
    } catch (const std::exception& e) {
      const std::lock_guard<std::mutex> lock(errors_mutex);
      errors += std::string(who) + ": " + e.what() + "\n";
    }
  };
  std::atomic<bool> ae_done{false};
  std::atomic<int> churned{0};
  std::thread ae_thread([&] {
    guarded("AE", [&] { ae_together = streamed(a, d.data, d.splits, o, false); });
    ae_done = true;
  });
  std::thread classifier_thread(
      [&] { guarded("classifier", [&] { classifier_together = streamed(c, d.data, d.splits, o, false); }); });
  std::thread churn([&] {  // a free (a device-wide synchronisation) as often as it can, a new backend now and then
    guarded("churn", [&] {
      do {
        auto ops = make_backend(CudaOptions{});
        for (int i = 0; i < 64 && !ae_done; ++i) ops->deallocate(ops->allocate(4096));
        ++churned;
      } while (!ae_done);
    });
  });
  ae_thread.join();
  classifier_thread.join();
  churn.join();
  INFO(errors);
  REQUIRE(errors.empty());
  CHECK(churned > 0);
  check_graphs_used("AE(256) beside a classifier and a backend churn", ae_together, 4);
  CHECK(classifier_together.graph_failures == 0);
  require_identical("AE(256) trained beside others vs alone", ae_together, ae_alone);
  require_identical("C(64) trained beside others vs alone", classifier_together, classifier_alone);
}

TEST_CASE("GPU streamed and resident data give identical results", "[gpu][stream]") {
  const Data& d = shared_data();
  Setup s;
  s.model = ae(128, 0.2f);
  s.seed = 6;
  s.epochs = 2;
  const Outcome resident = streamed(s, d.data, d.splits, opts(DataPlacement::Resident, true), false);
  for (int slots : {2, 4}) {
    const Outcome stream = streamed(s, d.data, d.splits, opts(DataPlacement::Stream, true, slots), false);
    check_graphs_used("AE(128) streamed", stream, 4);
    require_identical("AE(128) streamed (" + std::to_string(slots) + " slots) vs resident", stream, resident);
  }
  // Auto keeps 1,300 images resident on any GPU (and streams on the stand-in): same results.
  const Outcome automatic = streamed(s, d.data, d.splits, opts(DataPlacement::Auto, true), false);
  require_identical("AE(128) auto vs resident", automatic, resident);
}

TEST_CASE("GPU streaming at a small batch (for compute-sanitizer)", "[gpu][stream][sanitize]") {
  const FashionMnist data = synthetic_fashion_mnist(21, 12, 9);
  const Splits splits = make_splits(data, 9, 9);
  Setup s;
  s.model = classifier(16, 0.2f);
  s.batch = 8;  // 8, 8, 5 and 8, 1
  s.epochs = 3;
  const Outcome a = streamed(s, data, splits, opts(DataPlacement::Stream, true, 2));
  const Outcome b = streamed(s, data, splits, opts(DataPlacement::Resident, true));
  require_identical("C(16) batch 8 streamed vs resident", a, b);
  require_identical("C(16) batch 8 vs synchronous", a, synchronous(s, data, splits));
  const Outcome c = streamed(s, data, splits, opts(DataPlacement::Stream, true, 2), true, with_backward_streams(2));
  require_identical("C(16) batch 8 streamed, two backward streams vs one", c, a);
  const Outcome e = streamed(s, data, splits, opts(DataPlacement::Stream, true, 2), true,
                             with_backward_streams(kMaxBackwardStreams));
  require_identical("C(16) batch 8 streamed, four backward streams vs one", e, a);
}

TEST_CASE("GPU bench layers times each range inside the replayed graph", "[gpu][stream][bench][sanitize]") {
  auto ops = make_backend(CudaOptions{});
  BenchSettings settings;
  const LayerTimes t = bench_layers(*ops, ae(16, 0.0f), 8, 3, 4, settings);
  CHECK(t.graphs == !on_cpu_stand_in());
  CHECK(t.clock == (on_cpu_stand_in() ? "host-clock" : "cuda-events"));
  CHECK(t.median_step_us > 0);
  bool conv_backward = false;
  for (const auto& r : t.ranges) {
    INFO(r.path);
    CHECK(r.steps == 4);  // every replay fired the events its capture recorded
    CHECK(r.median_us >= 0);
    if (r.depth == 0) CHECK(r.median_us <= t.median_step_us);
    conv_backward = conv_backward || r.path == "backward / encoder.3 Conv2d backward";
  }
  CHECK(conv_backward);
  if (verbose())
    for (const auto& r : t.ranges) std::printf("  %-50s %8.1f us\n", r.path.c_str(), r.median_us);
  ops.reset();
}

TEST_CASE("GPU bench step replays a captured graph", "[gpu][stream][bench]") {
  auto ops = make_backend(CudaOptions{});
  BenchSettings settings;
  settings.repeats = 2;
  const StepRate r = bench_step(*ops, ae(64, 0.0f), 100, 3, 5, settings);
  CHECK(r.median > 0);
  CHECK(r.graphs == !on_cpu_stand_in());
  if (verbose()) std::printf("  ok bench step AE(64) batch 100: %.0f images/s\n", r.median);
  ops.reset();
}
