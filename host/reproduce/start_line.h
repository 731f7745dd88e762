// The start line of the runs that begin at once in one process (fmnist reproduce on a GPU): each
// waits there, after its warm-up, until every other has warmed up too, so that no run trains while
// another still loads its kernels.
#pragma once

#include <condition_variable>
#include <mutex>

namespace fmnist::reproduce {

// Why: CUDA loads a kernel at its first launch (lazy loading, the default since CUDA 12.2), and a
// load may have to wait until the device is idle, which runs training beside it can put off for
// long. On the H100 the AE runs' first validations (new cuDNN kernels at batch 1,000) sat 25-30 s
// until the runs beside them had finished (bench/RESULTS.md, "Third H100 session"); lazy loading is
// the explanation that fits, not yet confirmed by a timeline. Held here, the runs load their
// kernels while the device has nothing else to do.
//
// `expected` runs take part. Each calls arrive_and_wait() once it has warmed up, or leave() when it
// ends (fails, or trains no step) before it arrived; a run that arrives after the line opened, or
// beyond the expected count, passes at once. The line opens when every expected run arrived or left,
// and stays open.
class StartLine {
 public:
  explicit StartLine(int expected);
  StartLine(const StartLine&) = delete;
  StartLine& operator=(const StartLine&) = delete;

  void arrive_and_wait();
  void leave();
  bool open() const;
  int waited() const;  // runs that arrived before the line opened (the tests read it)

 private:
  void count_one();  // with mutex_ held

  mutable std::mutex mutex_;
  std::condition_variable opened_;
  int remaining_;
  int waited_ = 0;
};

// One run's place at a StartLine (nullptr: none): arrive() once, after the warm-up; if it never
// arrived, it leaves the line when destroyed, so a run that fails early holds up no other.
class StartLinePlace {
 public:
  explicit StartLinePlace(StartLine* line) : line_(line) {}
  ~StartLinePlace();
  StartLinePlace(const StartLinePlace&) = delete;
  StartLinePlace& operator=(const StartLinePlace&) = delete;

  void arrive();

 private:
  StartLine* line_;
  bool done_ = false;
};

}  // namespace fmnist::reproduce
