// The checkpoint side of a training run: what last.state.safetensors holds (everything an exact
// resume needs, mid-epoch included), the order in which a checkpoint's files are written, pruning
// of per-epoch weights, reconciling metrics.csv/jsonl with the state after a kill, the run's
// config.json read back for `--resume`, and the checks of the output directory before any work.
//
// A checkpoint is committed by ONE atomic rename, that of last.state.safetensors (weights, Adam
// moments, counters, the partial epoch's sums, the epoch's metrics row). Then, in this order:
// last.safetensors, best.safetensors (when this epoch is the best), epoch-NNNN.safetensors (every
// `checkpoint_every` epochs), pruning, and the metrics row. A run killed anywhere in between resumes
// from the state and first redoes those steps (finish_checkpoint), so no file is stale or missing
// and no metrics row is duplicated or lost.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "host/trainer.h"
#include "models/network.h"

namespace fmnist {

// The files of a run directory.
struct RunFiles {
  explicit RunFiles(const std::string& dir);
  std::string dir, config, state, last, best, metrics_csv, metrics_jsonl;
  std::string epoch_weights(int epoch) const;  // DIR/epoch-0007.safetensors
};

// Where a run stands at a checkpoint.
struct RunState {
  int epoch = 0;            // epochs completed
  int step_in_epoch = 0;    // steps done of epoch + 1 (0: the checkpoint is at the end of `epoch`)
  std::uint64_t step = 0;   // global steps done
  std::uint64_t seed = 0;
  int batch = 0, steps_per_epoch = 0;  // of the run, checked on resume
  int best_epoch = 0;
  double best_metric = 0;   // lowest validation loss (AE) or minus the highest accuracy (classifier)
  // A partial epoch (step_in_epoch > 0): the sum of its batch mean losses, images trained on and
  // training seconds so far, so that its metrics come out as if it had not been interrupted.
  double epoch_loss_sum = 0;
  int epoch_images = 0;
  double epoch_seconds = 0;
  // At an epoch end: that epoch's metrics row (rewritten on resume when the kill came before it).
  bool has_metrics = false;
  EpochMetrics metrics;
  std::vector<float> params, exp_avg, exp_avg_sq;  // spec.param_count each
};

// last.state.safetensors: the tensors of TrainingState (weights included) and the counters above
// in its "fmnist.train" metadata. Throws FormatError naming the file.
void save_run_state(const std::string& path, const NetworkSpec& spec, const RunState& state);
// A state saved by an older fmnist holds no weights: `params` then comes back empty.
RunState load_run_state(const std::string& path, const NetworkSpec& spec);

// When config.resume_from holds a checkpoint (last.state.safetensors): loads it into `state` (the
// weights from last.safetensors for a state of an older fmnist), checks that it belongs to this
// run (model, seed, batch, steps per epoch, epochs) and returns true. Without one (a run killed
// before its first checkpoint, or no resume_from) returns false: the run starts from scratch.
// Throws std::invalid_argument for a checkpoint of another run, FormatError for a bad file.
bool load_resume_state(const TrainConfig& config, const NetworkSpec& spec, int steps_per_epoch,
                       RunState& state);

// "DIR/last.state.safetensors (end of epoch 3, step 180)" or "(epoch 4, step 17 of 60, ...)".
std::string describe_checkpoint(const RunFiles& files, const RunState& state);

// How often per-epoch weights are kept: epoch-NNNN.safetensors every `every` epochs (0: never),
// the newest `keep` of them kept (0: all).
struct CheckpointPolicy {
  int every = 10;
  int keep = 3;
};

// Writes a checkpoint of `state` into `files` (see the order above); `weights_metadata` goes into
// every weights file, with fmnist.epoch and fmnist.step added. Throws FormatError when a file
// cannot be written; the files of the previous checkpoint are then untouched (atomic renames).
void write_checkpoint(const RunFiles& files, const NetworkSpec& spec, const RunState& state,
                      const std::map<std::string, std::string>& weights_metadata,
                      const CheckpointPolicy& policy);
// Everything a checkpoint writes after the state (idempotent): for a resume after a kill.
void finish_checkpoint(const RunFiles& files, const NetworkSpec& spec, const RunState& state,
                       const std::map<std::string, std::string>& weights_metadata,
                       const CheckpointPolicy& policy);

// The epochs of DIR/epoch-NNNN.safetensors files, ascending.
std::vector<int> epoch_checkpoints(const std::string& dir);
// Removes all but the newest `keep` epoch-NNNN.safetensors (keep 0: removes none).
void prune_epoch_checkpoints(const std::string& dir, int keep);

// Makes metrics.csv and metrics.jsonl agree with a checkpoint: rows of epochs after state.epoch go
// (an epoch whose row was written after a checkpoint that was not), and state.metrics is appended
// when its row is missing (the kill came between the state and the row). Rewrites atomically.
void reconcile_metrics(const RunFiles& files, const RunState& state);

// Creates `dir` (and parents) and proves it writable by creating and removing a file in it.
// Throws FormatError("DIR: ...") in one line otherwise: run before any work is done.
void prepare_output_directory(const std::string& dir);

// Writes `text` to PATH through PATH.tmp-<pid>, fsync and rename. Throws FormatError naming PATH.
void write_file_atomically(const std::string& path, const std::string& text);

// The TrainConfig that a run's config.json records (the fields TrainConfig has; out_dir and
// resume_from are left empty). Throws FormatError("PATH: ...") for a missing file, bad JSON, a
// missing or mistyped field, or a field it does not know.
TrainConfig read_run_config(const std::string& path);

// TrainConfig's recorded fields as "key" -> value text (model.latent, adam.lr, epochs, ...), the
// form in which a resumed run's flags are compared with its config.json.
std::map<std::string, std::string> flatten_run_config(const TrainConfig& config);

}  // namespace fmnist
