// The captured steps of one executor: each kind of step (phase, batch size, data source) runs
// un-captured the first time (a warm-up: a GPU plans its convolutions and loads its kernels then,
// which a capture cannot hold), is captured as a CUDA graph the second time and replayed from
// then on. Where the backend cannot capture (the CPU) or graphs are off (--no-graph), the work
// simply runs. A capture that fails is logged and that step runs un-captured (same results); the
// kind is captured again at its next step, up to kCaptureAttempts times in all, then runs
// un-captured for the rest of the run. A failure may be passing (in CUDA, a device-wide
// synchronisation anywhere in the process invalidates a capture; cuda/device_gate.h keeps fmnist's
// own away) or lasting (a call that may not be captured): the retries tell the two apart.
#pragma once

#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "models/ops.h"

namespace fmnist {

class StepGraphs {
 public:
  enum class Phase { Train, Eval, Bench };
  static constexpr int kCaptureAttempts = 3;
  struct Key {
    Phase phase;
    int count;           // the batch size of the step
    int pass_batch;      // the full batch of its pass (where its rows start in the pass's order)
    const void* source;  // where its rows come from (a resident set or the upload ring)
    bool operator<(const Key& o) const {
      return std::tie(phase, count, pass_batch, source) < std::tie(o.phase, o.count, o.pass_batch, o.source);
    }
  };

  StepGraphs(Ops<float>& ops, bool enabled, std::ostream* log = nullptr);
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  // Runs (or replays) the ops that `enqueue` enqueues for `key`; `enqueue` must enqueue the same
  // ops on the same buffers every time it is called with the same key.
  void run(const Key& key, const std::function<void()>& enqueue);
  // Forgets every graph (a buffer they use has moved); the next runs capture again.
  void clear() { entries_.clear(); }
  // Forgets the graphs of one phase only (a buffer only that phase uses has moved).
  void clear(Phase phase);

  bool active() const { return enabled_ && ops_.can_capture(); }
  int captured() const { return captured_; }  // graphs made so far
  int failures() const { return failures_; }  // captures that failed (those steps ran un-captured)
  long long replays() const { return replays_; }

 private:
  struct Entry {
    int runs = 0;
    int failed_captures = 0;
    std::unique_ptr<CapturedWork> graph;
  };
  Ops<float>& ops_;
  const bool enabled_;
  std::ostream* log_;
  std::map<Key, Entry> entries_;
  int captured_ = 0, failures_ = 0;
  long long replays_ = 0;
};

// "3 kinds of step captured, 1 failed capture (those steps ran un-captured: ...)": what a run's
// graphs did, as fmnist train and a reproduction's report say it.
std::string graph_counts_text(int captured, int failed_captures);

}  // namespace fmnist
