// The streaming orchestrator: gets every batch of an epoch or an evaluation onto the backend and
// runs its step without the host waiting for the device.
//
// Data placement (stream_options.h), per data set:
// - resident: the set's uint8 images and labels are uploaded once; a batch is a gather by index
//   on the device (Ops::gather_rows), reading the epoch's order, uploaded once per epoch;
// - streamed: the host gathers each batch (and augments it, for training) into a pinned slot of
//   an upload ring as 785-byte records (784 pixels, then the label), copied on a copy stream
//   ordered by events (UploadRing), so the copy of the next batches overlaps the current step;
//   the step gathers its rows from the ring slot the same way. The host fills up to slots - 1
//   batches ahead; it waits only when it is that far ahead of the device.
// Scaling to float happens on the device (the executor's images_to_float).
//
// Steps: each step reads its per-step values from a StepCursor in device memory (the global step
// for dropout, the batch index for the order and Adam's table), which the step itself advances,
// and Adam's constants from a table the host computes for the whole epoch (adam_step_constants of
// each step's learning rate) and uploads once per epoch. So one CUDA graph per (phase, batch
// size, source) replays every step (StepGraphs), a partial last batch gets its own, and the step
// allocates nothing and never synchronises the host. Losses, loss sums and the confusion matrix
// stay on the device; evaluate() reads them once at its end.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <vector>

#include "host/dataset.h"
#include "host/step_graphs.h"
#include "host/stream_options.h"
#include "host/trainer.h"
#include "models/executor.h"

namespace fmnist {

class BatchStream {
 public:
  // Host-side gather of a training batch: the rows indices[0..count) of the set into `images`
  // (count * 784) and `labels` (count). The trainer's augmentation hooks in here.
  using HostGather = std::function<void(const std::int32_t* indices, int count, std::uint8_t* images,
                                        std::uint8_t* labels)>;

  // One training epoch (or the rest of one, when resuming).
  struct Epoch {
    const Dataset* set = nullptr;
    const std::vector<std::int32_t>* order = nullptr;  // indices into *set, kept alive all epoch
    int steps = 0;                  // batches in the epoch; the last may be partial
    int first_batch = 0;            // batches before it are skipped (resume)
    std::uint64_t first_step = 1;   // the 1-based global step of batch first_batch
    // adam[b]: the Adam constants of batch b (adam_step_constants of its step and rate), steps of them.
    const std::vector<elementwise::AdamStep<float>>* adam = nullptr;
    int batch = 0;      // images per batch (the last may be fewer); 0: the executor's max_batch()
    HostGather gather;  // empty: plain gather_batch; set: the set is streamed through the host
  };

  // Batches of up to ex.max_batch() images (an upload slot holds that many); each pass (an epoch
  // or an evaluation) says its own batch size.
  BatchStream(Executor<float>& executor, const StreamOptions& options, std::ostream* log = nullptr);
  ~BatchStream();
  BatchStream(const BatchStream&) = delete;
  BatchStream& operator=(const BatchStream&) = delete;

  // Resident or Stream: where `set` is served from (decided, and uploaded, on its first use).
  DataPlacement placement_of(const Dataset& set);

  void begin_epoch(const Epoch& epoch);
  // Runs training batch `b` of the epoch: b = first_batch, first_batch + 1, ... in order.
  void train_step(int b);
  // Images in batch b of the current pass.
  int batch_count(int b) const;

  // evaluate() of trainer.h, streamed the same way: the mean loss (MAE and MSE for an AE), and for
  // a classifier accuracy, per-class accuracy and the confusion matrix. Reads the device once.
  // Batches of batch_size images (0: the executor's max_batch()); every figure is a mean over
  // images, so the batch size changes it only by rounding (a library's product may round an
  // image's output differently at another batch size).
  EvalResult evaluate(const Dataset& set, const std::vector<std::int32_t>& indices, int batch_size = 0);

  const StepGraphs& graphs() const { return graphs_; }
  // The training cursor, in backend memory (tests read it back).
  const StepCursor* train_cursor() const { return cursors_; }

 private:
  struct Resident {
    std::uint8_t* images = nullptr;
    std::uint8_t* labels = nullptr;
  };
  // The pass now running (an epoch or an evaluation).
  struct Pass {
    const Dataset* set = nullptr;
    const std::int32_t* indices = nullptr;
    int total = 0;       // images in the pass
    int batch = 0;       // images per batch (the last may be fewer)
    int end = 0;         // batches in the pass
    int next = 0;        // the batch expected next
    int issued = 0;      // streamed: batches handed to the ring so far
    bool streamed = false;
    HostGather gather;
    RowSource source;
    RowOrder order;
  };

  // `requested` images a batch (0: capacity_), checked against capacity_; `what` names the caller.
  int pass_batch(int requested, const char* what) const;
  void start_pass(const Dataset& set, const std::int32_t* indices, int total, int batch, int first, int end,
                  bool streamed, HostGather gather, std::int32_t* device_order, StepCursor* cursor,
                  std::uint64_t first_step);
  void make_ring();
  void prefetch(int b);
  void issue(int b);
  void drain();
  // Grows a device buffer to hold `bytes`; a moved buffer invalidates the graphs of `user`, the
  // one phase that reads it.
  void reserve(void** buffer, std::size_t* capacity, std::size_t bytes, StepGraphs::Phase user);
  void check_indices(const Dataset& set, const std::int32_t* indices, int total) const;

  Executor<float>& ex_;
  Ops<float>& ops_;
  const StreamOptions options_;
  std::ostream* log_;
  const int capacity_;  // the executor's max_batch(): the most images a batch or upload slot holds
  StepGraphs graphs_;
  StepCursor* cursors_ = nullptr;  // [0] training, [1] evaluation
  double* eval_sums_ = nullptr;    // full batches [0,1], partial batch [2,3]
  void *adam_table_ = nullptr, *train_order_ = nullptr, *eval_order_ = nullptr;
  std::size_t adam_capacity_ = 0, train_order_capacity_ = 0, eval_order_capacity_ = 0;
  std::unique_ptr<UploadRing> ring_;
  std::int32_t* ring_order_ = nullptr;  // iota(slots * capacity_): slot s holds rows s*capacity_..
  std::vector<bool> pending_;           // ring slots uploaded but not yet released
  std::map<const Dataset*, Resident> resident_;
  std::map<const Dataset*, DataPlacement> placement_;
  std::vector<std::uint8_t> host_images_, host_labels_;  // one batch, gathered on the host
  Pass pass_;
};

}  // namespace fmnist
