// Times the NVTX ranges of a training step (models/nvtx.h's RangeListener) with the backend's
// stopwatches: CUDA events on the GPU, the host clock on the CPU. A step whose ops are captured as a
// CUDA graph records its events as nodes of the graph, so each replay times its ranges as they run
// in the graph; `fmnist bench --measure layers` (host/bench.h) reads them after every step.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/nvtx.h"
#include "models/ops.h"

namespace fmnist {

class RangeTimer final : public RangeListener {
 public:
  explicit RangeTimer(Ops<float>& ops) : ops_(ops) {}

  // Before each step: the ranges its work opens (none when a graph replays: its capture's events
  // fire instead) replace the last ones recorded. The k-th range of a step reuses the k-th
  // stopwatch, so a capture that follows an un-captured step of the same ops creates none.
  void begin_step() { fresh_ = true; }
  // After the step's work is enqueued: waits for it and adds each recorded range's time to its
  // samples. Throws what a stopwatch threw while the ranges were recorded, or a range left open.
  void add_step_times();

  struct Range {
    std::string path;  // "backward / decoder.5 ConvTranspose2d": the enclosing ranges' names, then its own
    int depth = 0;     // enclosing ranges
    std::vector<double> seconds;  // one sample per step read (the sum where the step opened it more than once)
  };
  // In the order of their first opening.
  const std::vector<Range>& ranges() const { return ranges_; }

  void enter(const char* name) noexcept override;
  void leave() noexcept override;

 private:
  Ops<float>& ops_;
  std::vector<std::unique_ptr<Stopwatch>> stopwatches_;
  std::vector<std::size_t> recorded_;  // the recorded step's ranges, in opening order: indices in ranges_
  std::vector<std::size_t> open_;      // the open ranges: indices in recorded_ (and stopwatches_)
  std::vector<std::string> names_;     // of the open ranges
  std::vector<Range> ranges_;
  bool fresh_ = true;
  std::string error_;
};

}  // namespace fmnist
