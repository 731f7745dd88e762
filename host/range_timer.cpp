// RangeTimer (see range_timer.h).
#include "host/range_timer.h"

#include <exception>
#include <stdexcept>

namespace fmnist {

void RangeTimer::enter(const char* name) noexcept {
  try {
    if (fresh_) {
      recorded_.clear();
      fresh_ = false;
    }
    std::string path;
    for (const std::string& open : names_) path += open + " / ";
    path += name;
    std::size_t index = 0;
    while (index < ranges_.size() && ranges_[index].path != path) ++index;
    if (index == ranges_.size()) ranges_.push_back({path, static_cast<int>(names_.size()), {}});
    const std::size_t k = recorded_.size();
    if (k == stopwatches_.size()) stopwatches_.push_back(ops_.make_stopwatch());
    recorded_.push_back(index);
    open_.push_back(k);
    names_.emplace_back(name);
    stopwatches_[k]->start();
  } catch (const std::exception& e) {
    if (error_.empty()) error_ = std::string("range timer: ") + name + ": " + e.what();
  }
}

void RangeTimer::leave() noexcept {
  try {
    if (open_.empty()) throw std::logic_error("a range closed that was not opened");
    const std::size_t k = open_.back();
    open_.pop_back();
    names_.pop_back();
    stopwatches_[k]->stop();
  } catch (const std::exception& e) {
    if (error_.empty()) error_ = std::string("range timer: ") + e.what();
  }
}

void RangeTimer::add_step_times() {
  if (!error_.empty()) throw std::runtime_error(error_);
  if (!open_.empty()) throw std::logic_error("range timer: a step ended inside the range '" + names_.back() + "'");
  // A path opened more than once in the step gets the sum of its times.
  std::vector<double> step_seconds(ranges_.size(), -1.0);
  for (std::size_t k = 0; k < recorded_.size(); ++k) {
    double& sum = step_seconds[recorded_[k]];
    sum = (sum < 0 ? 0.0 : sum) + stopwatches_[k]->seconds();
  }
  for (std::size_t i = 0; i < ranges_.size(); ++i)
    if (step_seconds[i] >= 0) ranges_[i].seconds.push_back(step_seconds[i]);
}

}  // namespace fmnist
