// The measurements of `fmnist bench`, on any backend: training-step throughput (one batch kept on
// the device, the step replayed as a CUDA graph where possible, as tools/torch_baseline.py keeps
// its batch on the device) and whole-epoch throughput (a full epoch through the streaming
// orchestrator, validation included, on synthetic data of Fashion-MNIST's shape). Warm-up first,
// then the median of repeated runs timed where the work runs (Ops::make_stopwatch: CUDA events on
// the GPU, the host clock on the CPU). Pixel values do not change the cost of a step.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "host/dataset.h"
#include "host/stream_options.h"
#include "models/network.h"
#include "models/ops.h"

namespace fmnist {

struct BenchSettings {
  int warmup = 10;   // un-timed steps first (the first runs un-captured, the second is captured)
  int steps = 50;    // steps per timed run
  int repeats = 5;   // timed runs; the median is reported
  std::uint64_t seed = 1;
  StreamOptions stream;
  int epoch_warmup = 1;           // un-timed epochs first
  int epoch_repeats = 3;          // timed epochs
  int epoch_train_images = 60000;
  int epoch_val_images = 9900;
  int epoch_eval_batch = 0;       // validation batch (at most epoch_val_images; 0: by backend, eval_batch_for)
};

struct StepRate {
  std::string model;
  int batch = 0, warmup = 0, steps = 0;
  double median = 0, min = 0, max = 0;  // images per second
  double median_step_ms = 0;
  bool graphs = false;  // the timed steps were graph replays
};

// Training steps of `model` at `batch` (warmup un-timed, then settings.repeats runs of `steps`).
StepRate bench_step(Ops<float>& ops, const ModelConfig& model, int batch, int warmup, int steps,
                    const BenchSettings& settings);

// Where the step's time goes (`fmnist bench --measure layers`): each NVTX range of the training
// step (phases and layers, models/nvtx.h) timed by the backend's stopwatch in every one of `steps`
// steps after `warmup` (RangeTimer, host/range_timer.h), inside the replayed CUDA graph where the
// step is one. The events in the graph add nodes: the whole step timed beside them (median_step_us)
// says what they cost against bench_step's figure. The events are on the main stream: work on side
// streams (CudaOptions::backward_streams) is timed where the main stream waits for it.
struct LayerTimes {
  std::string model, clock;  // clock: "cuda-events" or "host-clock"
  int batch = 0, warmup = 0, steps = 0;
  bool graphs = false;  // the timed steps were graph replays
  double median_step_us = 0;
  struct Range {
    std::string path;  // "forward / encoder.0 Conv2d"
    int depth = 0;     // of the enclosing ranges
    int steps = 0;     // steps that opened it
    double median_us = 0, min_us = 0, max_us = 0;
  };
  std::vector<Range> ranges;  // in the order the step opens them
};
LayerTimes bench_layers(Ops<float>& ops, const ModelConfig& model, int batch, int warmup, int steps,
                        const BenchSettings& settings);

struct EpochRate {
  std::string model;
  int batch = 0, train_images = 0, val_images = 0;
  int eval_batch = 0;     // images per validation batch
  std::string placement;  // of the training set: resident or stream
  double median_seconds = 0, min_seconds = 0, max_seconds = 0;  // one epoch, validation included
  double median_wall_seconds = 0;                                // the host clock around the same
  double median_validation_seconds = 0;                          // of which validation
  double images_per_second = 0;                                  // train_images / median_seconds
  bool graphs = false;
};

// Whole epochs of `model` at `batch` on `data` (settings.epoch_* images of it).
EpochRate bench_epoch(Ops<float>& ops, const ModelConfig& model, int batch, const FashionMnist& data,
                      const BenchSettings& settings);

// Seeded random images and labels of Fashion-MNIST's shape: train_count and t10k_count images.
FashionMnist synthetic_fashion_mnist(int train_count, int t10k_count, std::uint64_t seed);

}  // namespace fmnist
