// Finite-difference gradient checks for the op tests: central differences in double precision,
// an entry passes when |analytic - numeric| <= atol + rtol * |numeric|. Catch2-free, reusable.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "models/rng.h"

namespace fmnist::testing {

struct GradientTolerance {
  double h = 1e-6;     // central-difference step
  double atol = 1e-7;  // absolute tolerance
  double rtol = 1e-5;  // relative tolerance, times |numeric|
};

struct GradientCheckResult {
  bool ok = true;
  std::size_t checked = 0, failed = 0;
  double worst_error = 0.0;  // largest |analytic - numeric| seen
  std::size_t worst_index = 0;
  std::string report;        // first mismatches and the worst error, for INFO()
};

// Checks analytic[i] against (f(p + h e_i) - f(p - h e_i)) / 2h for each i in `indices` (all
// entries when empty). `params` is perturbed in place and restored before returning.
// The noise floor is about 1e-16 * |f| / h: keep |f| moderate (say below 1e3) for atol 1e-7.
inline GradientCheckResult check_gradient(const std::function<double(const std::vector<double>&)>& f,
                                          std::vector<double>& params,
                                          const std::vector<double>& analytic,
                                          std::vector<std::size_t> indices = {},
                                          GradientTolerance tol = {}, int max_reported = 5) {
  GradientCheckResult r;
  std::ostringstream out;
  out.precision(10);
  if (analytic.size() != params.size()) {
    r.ok = false;
    r.report = "analytic gradient has " + std::to_string(analytic.size()) + " entries, params " +
               std::to_string(params.size());
    return r;
  }
  if (indices.empty()) {
    indices.resize(params.size());
    std::iota(indices.begin(), indices.end(), std::size_t{0});
  }
  for (std::size_t i : indices) {
    const double saved = params[i];
    params[i] = saved + tol.h;
    const double plus = f(params);
    params[i] = saved - tol.h;
    const double minus = f(params);
    params[i] = saved;
    const double numeric = (plus - minus) / (2.0 * tol.h);
    const double error = std::fabs(analytic[i] - numeric);
    ++r.checked;
    if (error > r.worst_error || !(error == error)) {
      r.worst_error = error;
      r.worst_index = i;
    }
    if (!(error <= tol.atol + tol.rtol * std::fabs(numeric))) {
      if (static_cast<int>(r.failed) < max_reported)
        out << "  mismatch at " << i << ": analytic " << analytic[i] << ", numeric " << numeric
            << "\n";
      ++r.failed;
    }
  }
  r.ok = r.failed == 0;
  out << (r.ok ? "passed " : "FAILED ") << r.failed << " of " << r.checked
      << " entries; worst |analytic - numeric| = " << r.worst_error << " at " << r.worst_index
      << " (h " << tol.h << ", atol " << tol.atol << ", rtol " << tol.rtol << ")";
  r.report = out.str();
  return r;
}

// Up to `count` distinct indices in [0, n), always with 0 and n-1, the rest drawn from `seed`;
// all of [0, n) when n <= count. For tensors too large to check entry by entry.
inline std::vector<std::size_t> sample_indices(std::size_t n, std::size_t count, std::uint64_t seed) {
  std::vector<std::size_t> all(n);
  std::iota(all.begin(), all.end(), std::size_t{0});
  if (n <= count) return all;
  SplitMix64 g(seed);
  // partial Fisher-Yates over [1, n-1), then the two ends
  for (std::size_t i = 1; i + 1 < count; ++i) std::swap(all[i], all[i + g.below(n - 1 - i)]);
  std::vector<std::size_t> picked(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(count - 1));
  picked.push_back(n - 1);
  return picked;
}

// n values uniform in [lo, hi).
inline std::vector<double> random_vector(std::size_t n, SplitMix64& g, double lo = -1.0,
                                         double hi = 1.0) {
  std::vector<double> v(n);
  for (double& x : v) x = lo + (hi - lo) * g.uniform();
  return v;
}

// sum(a .* b): the random linear functional L = sum(r .* y) that turns an op into a scalar.
// Summed in long double, so that its own rounding stays far below the finite-difference noise.
inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  long double s = 0.0L;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i)
    s += static_cast<long double>(a[i]) * static_cast<long double>(b[i]);
  return static_cast<double>(s);
}

}  // namespace fmnist::testing
