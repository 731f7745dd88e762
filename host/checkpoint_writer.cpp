// CheckpointWriter (checkpoint_writer.h): one std::async task per checkpoint, each started only
// after the previous one has finished, so the files of two checkpoints never interleave.
#include "host/checkpoint_writer.h"

#include <iostream>
#include <utility>

#include "host/wall_clock.h"

namespace fmnist {

CheckpointWriter::CheckpointWriter(Write write, std::string last_written)
    : write_(std::move(write)), last_written_(std::move(last_written)) {}

CheckpointWriter::~CheckpointWriter() {
  settle();
  if (failure_) {
    try {
      std::rethrow_exception(failure_);
    } catch (const std::exception& e) {
      std::cerr << "fmnist: warning: a checkpoint was not written: " << e.what() << "\n";
    } catch (...) {
      std::cerr << "fmnist: warning: a checkpoint was not written\n";
    }
  }
}

void CheckpointWriter::settle() noexcept {
  if (!in_flight_.valid()) return;
  const auto start = Clock::now();
  try {
    write_seconds_ += in_flight_.get();
    last_written_ = std::move(in_flight_description_);
    ++written_;
  } catch (...) {
    if (!failure_) failure_ = std::current_exception();
  }
  wait_seconds_ += seconds_since(start);
}

void CheckpointWriter::wait() {
  settle();
  if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
}

void CheckpointWriter::submit(RunState state, std::string description) {
  wait();
  in_flight_description_ = std::move(description);
  in_flight_ = std::async(std::launch::async, [this, state = std::move(state)] {
    const auto start = Clock::now();
    write_(state);
    return seconds_since(start);
  });
}

}  // namespace fmnist
