// The divergence guard: a NaN or Inf in the loss, the gradients or (before a checkpoint) the weights
// and Adam moments stops a run with one line naming the epoch, the step and the tensor, so that no
// checkpoint is ever written from a diverged state.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "models/network.h"
#include "models/ops.h"

namespace fmnist {

// Training diverged; what() is one line. The CLI reports it as a failure (exit code 1).
class DivergenceError : public std::runtime_error {
 public:
  using runtime_error::runtime_error;
};

// The first parameter tensor, in backward order (the last layer's first), whose values (a flat
// buffer of spec.param_count floats, e.g. the gradients) hold a NaN or an Inf, and that value in
// `bad` ("nan", "inf", "-inf"); "" when all are finite. Frozen parameters are skipped when
// `trainable_only` (their gradients are never computed).
std::string first_nonfinite_tensor(const NetworkSpec& spec, const float* values, bool trainable_only,
                                   std::string* bad = nullptr);

// "nan", "inf" or "-inf" (or the number) for messages.
std::string value_text(double v);

// Checks a backend's gradient buffer cheaply: one l1_loss of the trainable gradients against zeros
// (a reduction on the device; NaN or Inf when any gradient is) and one float read back. Only when
// that is not finite are the gradients downloaded, to name the tensor (a huge but finite mean is
// then found to be no divergence).
class GradientGuard {
 public:
  GradientGuard(const NetworkSpec& spec, Ops<float>& ops);
  ~GradientGuard();
  GradientGuard(const GradientGuard&) = delete;
  GradientGuard& operator=(const GradientGuard&) = delete;
  // first_nonfinite_tensor of the trainable gradients in `grads` (backend memory).
  std::string check(const float* grads, std::string* bad = nullptr);

 private:
  const NetworkSpec& spec_;
  Ops<float>& ops_;
  std::vector<std::pair<std::size_t, std::size_t>> ranges_;  // trainable (offset, count), merged
  float* zeros_ = nullptr;
  float* mean_ = nullptr;
  std::vector<float> host_;
};

}  // namespace fmnist
