// The one host-side random generator of fmnist (initialisation, splits, epoch shuffles): SplitMix64,
// fully specified here so that a seed gives the same numbers with any compiler or standard library.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace fmnist {

class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  // Uniform integer in [0, bound) without modulo bias (Lemire's rejection method).
  std::uint64_t below(std::uint64_t bound) {
    std::uint64_t threshold = (0 - bound) % bound;
    for (;;) {
      std::uint64_t r = next();
      if (r >= threshold) return r % bound;
    }
  }
  std::uint64_t state() const { return state_; }

 private:
  std::uint64_t state_;
};

// A stream of its own for each purpose, so that adding draws to one never shifts another.
inline std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t purpose, std::uint64_t index = 0) {
  SplitMix64 g(seed ^ (purpose * 0xD1B54A32D192ED03ull) ^ (index * 0x8CB92BA72F3D8DD7ull));
  g.next();
  return g.next();
}

// Fisher-Yates shuffle of `items` driven by `rng`.
template <class U> void shuffle_in_place(std::vector<U>& items, SplitMix64& rng) {
  for (std::size_t i = items.size(); i > 1; --i) {
    std::size_t j = static_cast<std::size_t>(rng.below(i));
    std::swap(items[i - 1], items[j]);
  }
}

}  // namespace fmnist
