// The start line of runs that begin at once: see start_line.h.
#include "host/reproduce/start_line.h"

namespace fmnist::reproduce {

StartLine::StartLine(int expected) : remaining_(expected > 0 ? expected : 0) {}

void StartLine::count_one() {
  if (remaining_ == 0) return;
  if (--remaining_ == 0) opened_.notify_all();
}

void StartLine::arrive_and_wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (remaining_ == 0) return;
  ++waited_;
  count_one();
  opened_.wait(lock, [this] { return remaining_ == 0; });
}

void StartLine::leave() {
  const std::lock_guard<std::mutex> lock(mutex_);
  count_one();
}

bool StartLine::open() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return remaining_ == 0;
}

int StartLine::waited() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return waited_;
}

StartLinePlace::~StartLinePlace() {
  if (line_ != nullptr && !done_) line_->leave();
}

void StartLinePlace::arrive() {
  if (line_ == nullptr || done_) return;
  done_ = true;
  line_->arrive_and_wait();
}

}  // namespace fmnist::reproduce
