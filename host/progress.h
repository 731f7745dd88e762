// What a training run shows while it works: a live line redrawn in place on a terminal, plain
// lines (one per epoch) when the output is a file or a pipe.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>

#include "host/trainer.h"

namespace fmnist {

class Progress {
 public:
  Progress(std::ostream& out, bool live, int epochs, bool classifier);
  void epoch_started(int epoch, int steps_in_epoch);
  void step_done(int step_in_epoch, int images_so_far);  // cheap; redraws at most ~10 times a second
  void epoch_done(const EpochMetrics& m);

 private:
  std::ostream& out_;
  bool live_;
  int epochs_;
  bool classifier_;
  int epoch_ = 0, steps_in_epoch_ = 0;
  std::chrono::steady_clock::time_point epoch_start_, last_draw_;
};

}  // namespace fmnist
