// Finding the tensor where a run diverged.
#include "host/divergence_guard.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include <fmt/format.h>

namespace fmnist {

std::string value_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{}", v);
}

std::string first_nonfinite_tensor(const NetworkSpec& spec, const float* values, bool trainable_only,
                                   std::string* bad) {
  for (auto p = spec.params.rbegin(); p != spec.params.rend(); ++p) {
    if (trainable_only && !p->trainable) continue;
    const float* v = values + p->offset;
    // NaN and +-Inf are the floats whose exponent bits are all ones: an integer pass the compiler
    // vectorises, and the element loop only for the tensor that has one.
    std::uint32_t all_ones = 0;
    for (std::size_t i = 0; i < p->count; ++i) {
      std::uint32_t bits;
      std::memcpy(&bits, v + i, sizeof bits);
      all_ones |= static_cast<std::uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
    if (all_ones == 0) continue;
    for (std::size_t i = 0; i < p->count; ++i) {
      if (!std::isfinite(v[i])) {
        if (bad) *bad = value_text(v[i]);
        return p->name;
      }
    }
  }
  return "";
}

GradientGuard::GradientGuard(const NetworkSpec& spec, Ops<float>& ops) : spec_(spec), ops_(ops) {
  std::size_t largest = 0;
  for (const auto& p : spec.params) {
    if (!p.trainable) continue;
    if (!ranges_.empty() && ranges_.back().first + ranges_.back().second == p.offset)
      ranges_.back().second += p.count;
    else
      ranges_.emplace_back(p.offset, p.count);
    largest = std::max(largest, ranges_.back().second);
  }
  if (largest == 0) return;
  zeros_ = static_cast<float*>(ops_.allocate(largest * sizeof(float)));
  try {
    mean_ = static_cast<float*>(ops_.allocate(sizeof(float)));
    const std::vector<float> zeros(largest, 0.0f);
    ops_.copy_to_device(zeros_, zeros.data(), largest * sizeof(float));
  } catch (...) {
    ops_.deallocate(zeros_);
    if (mean_ != nullptr) ops_.deallocate(mean_);
    throw;
  }
}

GradientGuard::~GradientGuard() {
  if (zeros_ != nullptr) ops_.deallocate(zeros_);
  if (mean_ != nullptr) ops_.deallocate(mean_);
}

std::string GradientGuard::check(const float* grads, std::string* bad) {
  bool suspect = false;
  for (const auto& [offset, count] : ranges_) {
    ops_.l1_loss(count, grads + offset, zeros_, nullptr, mean_, nullptr);
    float mean = 0;
    ops_.copy_to_host(&mean, mean_, sizeof mean);
    suspect = suspect || !std::isfinite(mean);
  }
  if (!suspect) return "";
  host_.resize(spec_.param_count);
  ops_.copy_to_host(host_.data(), grads, spec_.param_count * sizeof(float));
  return first_nonfinite_tensor(spec_, host_.data(), /*trainable_only=*/true, bad);
}

}  // namespace fmnist
