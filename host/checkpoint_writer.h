// Writes a run's checkpoints (host/run_state.h) on a background thread, so that the next epoch
// trains while the files are written and fsynced: at most one write is in flight, writes happen in
// submission order, and a failed write reaches the trainer at its next submit() or wait().
#pragma once

#include <exception>
#include <functional>
#include <future>
#include <string>

#include "host/run_state.h"

namespace fmnist {

class CheckpointWriter {
 public:
  using Write = std::function<void(const RunState&)>;
  // `write` writes one checkpoint (write_checkpoint with the run's files and policy); it runs on
  // the writer's thread, so whatever it refers to must outlive the writer. `last_written` names
  // the checkpoint already on disk ("" for none: describe_checkpoint's text otherwise).
  explicit CheckpointWriter(Write write, std::string last_written = "");
  // Waits for the write in flight; a failure is logged to stderr, never thrown.
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Waits for the previous write (rethrowing its failure, which leaves its files as they were),
  // then starts writing `state`, which `description` names.
  void submit(RunState state, std::string description);
  // Waits for the write in flight; rethrows its failure (once).
  void wait();
  // Waits and never throws: for error paths that must name the last good checkpoint. A failure is
  // kept, and the next wait() or submit() rethrows it.
  void settle() noexcept;

  // The newest checkpoint completely written: its description, or the constructor's.
  const std::string& last_written() const { return last_written_; }
  int written() const { return written_; }
  // Seconds the writes took on the writer's thread, and seconds the trainer waited for them.
  double write_seconds() const { return write_seconds_; }
  double wait_seconds() const { return wait_seconds_; }

 private:
  Write write_;
  std::future<double> in_flight_;  // the write's own duration in seconds
  std::string in_flight_description_;
  std::exception_ptr failure_;
  std::string last_written_;
  int written_ = 0;
  double write_seconds_ = 0, wait_seconds_ = 0;
};

}  // namespace fmnist
