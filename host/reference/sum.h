// Deterministic sums in double for the CPU reference: 8 interleaved partial sums (independent
// chains the compiler can vectorize), combined in a fixed order. Same bits on every run.
#pragma once

#include <cstddef>

namespace fmnist::reference {

template <class T> double sum_in_double(const T* x, std::size_t n) {
  constexpr std::size_t kLanes = 8;
  double lane[kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (std::size_t j = 0; j < kLanes; ++j) lane[j] += static_cast<double>(x[i + j]);
  double sum = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  for (; i < n; ++i) sum += static_cast<double>(x[i]);
  return sum;
}

}  // namespace fmnist::reference
