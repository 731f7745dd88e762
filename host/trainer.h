// Training and evaluation of one network on the Fashion-MNIST splits: epochs of shuffled batches,
// validation after each epoch, metrics (CSV and JSON lines), checkpoints of the best and last epoch.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <limits>
#include <string>
#include <vector>

#include "host/dataset.h"
#include "models/executor.h"
#include "models/network.h"

namespace fmnist {

struct TrainConfig {
  ModelConfig model;
  int epochs = 100;
  int batch = 100;
  AdamConfig adam;
  std::uint64_t seed = 1;
  int validation_count = 9900;  // of the 10,000 t10k images; the rest is the test split
  bool drop_last = false;       // drop a partial last training batch (never the default)
  // Stop each epoch after this many steps (0 = the whole epoch); for quick checks and tests.
  int max_steps_per_epoch = 0;
  std::string out_dir;          // empty: write nothing
  std::string init_encoder_from;  // classifier: take encoder.* from this AE checkpoint
  std::string resume_from;      // a previous run's out_dir: continue after its last epoch
  // An AE whose initial weights give an all-zero reconstruction (a dead output ReLU: about half
  // of PyTorch's default draws) cannot train; redraw up to this many times (0: keep it, as
  // PyTorch would).
  int init_redraws = 10;
};

struct EpochMetrics {
  int epoch = 0;  // 1-based
  std::uint64_t steps = 0;  // global step count at the end of the epoch
  double train_loss = 0, val_loss = 0;
  double val_accuracy = std::numeric_limits<double>::quiet_NaN();  // classifiers only
  double seconds = 0, images_per_second = 0;
};

// Evaluation of a set of images: mean loss (MAE for an AE whatever it trained with) and, for a
// classifier, accuracy, per-class accuracy and the confusion matrix [label][prediction].
struct EvalResult {
  int images = 0;
  double loss = 0;  // AE: MAE; classifier: mean cross-entropy of the head's outputs
  double mse = std::numeric_limits<double>::quiet_NaN();  // AE only
  double accuracy = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> class_accuracy;             // 10, classifiers only
  std::vector<std::int64_t> confusion;            // 10 x 10, classifiers only
};

struct TrainCallbacks {
  // Called after every step with the batch loss; forces a device sync each step, so only tests
  // and debugging set it.
  std::function<void(std::uint64_t step, float loss)> on_step;
  std::function<void(const EpochMetrics&)> on_epoch;
  // Called with the executor before the first epoch (epoch 0) and after each epoch's validation,
  // e.g. to reconstruct or classify a few images for figures. Its own work must not change state.
  std::function<void(int epoch, Executor<float>& executor)> inspect;
  bool live_progress = false;  // redraw a progress line in place (the output is a terminal)
};

struct TrainResult {
  std::vector<EpochMetrics> epochs;
  int best_epoch = 0;
  int init_draws = 1;  // initialisations drawn (more than 1 when a dead AE was redrawn)
  std::vector<float> final_params;  // spec.param_count, in state_dict order
};

// Trains `config.model` on `data` with `ops`. Progress goes to `progress` (a live line when it is
// a terminal, else one line per epoch). Throws on bad configuration or I/O failure.
TrainResult train(const TrainConfig& config, const FashionMnist& data, Ops<float>& ops,
                  std::ostream& progress, const TrainCallbacks& callbacks = {});

// Evaluates `params` on the images of `data.t10k` (or `.train`) listed in `indices`.
EvalResult evaluate(Executor<float>& executor, const Dataset& set,
                    const std::vector<std::int32_t>& indices);

}  // namespace fmnist
