// The host clock of fmnist's wall-time figures (epochs, validation, checkpoint writes, runs):
// std::chrono::steady_clock, and the seconds since a point of it.
#pragma once

#include <chrono>

namespace fmnist {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace fmnist
