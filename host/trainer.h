// Training and evaluation of one network on the Fashion-MNIST splits: epochs of shuffled batches,
// validation after each epoch, metrics (CSV and JSON lines), checkpoints of the best and last epoch.
#pragma once

#include <csignal>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "host/gpu_kernels.h"
#include "host/dataset.h"
#include "host/stream_options.h"
#include "models/executor.h"
#include "models/network.h"

namespace fmnist {

// The learning rate over a run: constant (the paper's), or a linear warm-up to adam.lr followed by
// a cosine decay (see scheduled_lr).
enum class LrSchedule { Constant, WarmupCosine };
// Its name in config.json and the reproduction's records: "constant" or "warmup_cosine" (the
// command line takes that spelling and warmup-cosine, its documented one).
const char* lr_schedule_name(LrSchedule schedule);

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
  // Learning rate per step; adam.lr is the peak. WarmupCosine: linear from 0 over
  // lr_warmup_fraction of all steps, then cosine down to adam.lr * lr_final_fraction.
  LrSchedule lr_schedule = LrSchedule::Constant;
  double lr_warmup_fraction = 0.05;
  double lr_final_fraction = 0.01;
  // Training batches only (never validation or evaluation): each image shifted by up to
  // augment_max_shift pixels each way (zero fill) and flipped left-right with p = 0.5, drawn from
  // (seed, epoch, image index) so that a run repeats bitwise.
  // With augment_erase > 0, also Random Erasing (Zhong et al. 2017) with that probability: one
  // rectangle of 2-40% of the image, aspect 0.3-3.3, filled with uniform random grey levels.
  bool augment = false;
  int augment_max_shift = 2;
  bool augment_flip = true;
  double augment_erase = 0.0;
  // Robustness (host/run_state.h): last/best and last.state are written every epoch; the weights
  // also as epoch-NNNN.safetensors every checkpoint_every epochs (0: never), the newest
  // keep_checkpoints of those kept (0: all). The divergence guard checks the loss and gradients
  // every guard_every steps and always before a checkpoint (so a checkpoint is never written
  // from a diverged state, whatever the interval); 0 picks by backend (guard_interval).
  // The precision of the convolutions' and Linear products (models/precision.h). The backend
  // computes it (select_backend); train() checks that the backend's is this one, and config.json
  // records it.
  Precision precision = Precision::FP32;
  int checkpoint_every = 10;
  int keep_checkpoints = 3;
  int guard_every = 0;
  // Images per validation batch, at most the validation set; 0 picks by backend (eval_batch_for).
  // The validation figures are means over images, so this changes them only by rounding (an
  // image's output may round differently in another batch; the tests bound it at 1e-6 relative),
  // never what is trained.
  int eval_batch = 0;
  // A GPU run's convolution kernels (host/gpu_kernels.h): config.json records them, and a resumed
  // run computes with them. Empty for a run on the CPU, which has one implementation.
  std::optional<GpuKernels> gpu_kernels;
  // The backend a resumed run began on, as its config.json records it (read_run_config); empty
  // for a new run. Not a setting: a resumed run may continue on another (--device).
  std::string began_on;
  // How batches reach the backend and steps are launched (resident/streamed data, CUDA graphs):
  // never changes a result (host/batch_stream.h).
  StreamOptions stream;
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
  // Called after each epoch, once its checkpoint is on disk (it waits for the background write).
  std::function<void(const EpochMetrics&)> on_epoch;
  // Called with the executor before the first epoch (epoch 0) and after each epoch's validation,
  // e.g. to reconstruct or classify a few images for figures. Its own work must not change state.
  std::function<void(int epoch, Executor<float>& executor)> inspect;
  bool live_progress = false;  // redraw a progress line in place (the output is a terminal)
  // When it becomes non-zero (a signal's number, see host/stop_signal.h): finish the step, write a
  // mid-epoch checkpoint and return with TrainResult::stopped_by set.
  const volatile std::sig_atomic_t* stop_signal = nullptr;
  // Tests only: called after each step's update, before the divergence guard looks at it.
  std::function<void(std::uint64_t step, Executor<float>& executor)> after_step;
  // When set, the run warms up first: a validation pass (its result not kept) before its first
  // step, so that the kernels of both passes are loaded once that step is enqueued; then it calls
  // warmed_up, once, before its second step (not at all when it trains no step). fmnist reproduce
  // holds its runs there (host/reproduce/start_line.h). The run's results are the same bits.
  std::function<void()> warmed_up;
};

struct TrainResult {
  std::vector<EpochMetrics> epochs;
  int best_epoch = 0;
  int init_draws = 1;  // initialisations drawn (more than 1 when a dead AE was redrawn)
  std::vector<float> final_params;  // spec.param_count, in state_dict order
  int stopped_by = 0;  // the signal that stopped the run early (its checkpoint is written), or 0
  // Checkpoints written by this call, the seconds their writes took on the writer's thread (beside
  // the next epoch's training), and the seconds training waited for them.
  int checkpoints_written = 0;
  double checkpoint_write_seconds = 0, checkpoint_wait_seconds = 0;
  // This call's seconds in its epochs' training (from an epoch's start until its loss sum is read
  // back, so the device has finished its steps) and in their validation (host clock; evaluation
  // ends with a read of the device). The rest of a run's wall time is set-up and checkpoints.
  double training_seconds = 0, validation_seconds = 0;
  int validation_batch = 0;  // images per validation batch (eval_batch_for)
  // The training's CUDA graphs (host/step_graphs.h): kinds of step captured, their replays, and
  // captures that failed (those steps ran un-captured: the same results). All 0 on the CPU.
  int graphs_captured = 0, graph_capture_failures = 0;
  long long graph_replays = 0;
};

// Trains `config.model` on `data` with `ops`. Progress goes to `progress` (a live line when it is
// a terminal, else one line per epoch). Throws on bad configuration or I/O failure.
TrainResult train(const TrainConfig& config, const FashionMnist& data, Ops<float>& ops,
                  std::ostream& progress, const TrainCallbacks& callbacks = {});

// The batch of an evaluation: `requested` when positive, else (0) by backend: the training batch
// on the CPU (1,000 gave it no steady gain and doubles its memory, bench/RESULTS.md), and
// kDeviceEvalBatch on a GPU (fewer, fuller launches); at most `images`, so that a small set does
// not size the executor for images it lacks. A negative `requested` is refused
// (std::invalid_argument).
inline constexpr int kDeviceEvalBatch = 1000;
int eval_batch_for(int requested, int train_batch, const Ops<float>& ops, int images);

// The steps between two divergence-guard checks: config.guard_every when it is positive, else
// (0, the default) every step on the CPU, where a check is cheap, and every kDeviceGuardEvery
// steps on a GPU, where each check waits for the device (a host sync that would otherwise stall
// the stream of captured steps every step; the loss and the gradients stay on the device).
inline constexpr int kDeviceGuardEvery = 100;
int guard_interval(const TrainConfig& config, const Ops<float>& ops);

// The settings that decide what a run trains (model, epochs, batch, Adam, learning-rate schedule,
// augmentation, seed, validation split, step limit, init redraws) as a JSON object: what a run's
// config.json and `fmnist reproduce`'s settings.json both record of it.
nlohmann::json training_settings_json(const TrainConfig& config);

// The learning rate of 1-based `step` of a run of `total_steps` steps under config's schedule
// (steps past the end keep the final rate).
double scheduled_lr(const TrainConfig& config, std::uint64_t step, std::uint64_t total_steps);

// One image (28x28) shifted right by dx and down by dy (zero fill), then mirrored left-right when
// `flip`: out[y][x] = shifted[y][27 - x]. `in` and `out` must not overlap.
void shift_flip_image(const std::uint8_t* in, std::uint8_t* out, int dx, int dy, bool flip);

// Augments `count` gathered images in place as TrainConfig::augment describes; image i is the
// dataset image indices[i], whose shift and flip depend only on (seed, epoch, indices[i]).
void augment_images(std::uint8_t* images, int count, const std::int32_t* indices, std::uint64_t seed,
                    int epoch, int max_shift, bool flip, double erase_probability = 0.0);

// Evaluates the executor's parameters on the images of `set` listed in `indices`, in batches of
// batch_size images (0: the executor's max_batch()).
EvalResult evaluate(Executor<float>& executor, const Dataset& set,
                    const std::vector<std::int32_t>& indices, int batch_size = 0);

}  // namespace fmnist
