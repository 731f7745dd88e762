// The live progress line and the per-epoch lines of a training run.
#include "progress.h"

#include <cmath>
#include <ostream>
#include <string>

#include <fmt/format.h>

namespace fmnist {

Progress::Progress(std::ostream& out, bool live, int epochs, bool classifier)
    : out_(out), live_(live), epochs_(epochs), classifier_(classifier) {}

void Progress::epoch_started(int epoch, int steps_in_epoch) {
  epoch_ = epoch;
  steps_in_epoch_ = steps_in_epoch;
  epoch_start_ = last_draw_ = std::chrono::steady_clock::now();
}

void Progress::step_done(int step_in_epoch, int images_so_far) {
  if (!live_) return;
  const auto now = std::chrono::steady_clock::now();
  if (step_in_epoch != steps_in_epoch_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double seconds = std::chrono::duration<double>(now - epoch_start_).count();
  constexpr int width = 30;
  const int filled = steps_in_epoch_ > 0 ? width * step_in_epoch / steps_in_epoch_ : width;
  out_ << fmt::format("\r\033[Kepoch {}/{} [{}{}] {}/{} steps  {:.0f} img/s", epoch_, epochs_,
                      std::string(filled, '#'), std::string(width - filled, '.'), step_in_epoch,
                      steps_in_epoch_, seconds > 0 ? images_so_far / seconds : 0.0)
       << std::flush;
}

void Progress::epoch_done(const EpochMetrics& m) {
  if (live_) out_ << "\r\033[K";
  std::string line = fmt::format("epoch {:>3}/{}  train loss {:.5f}  val loss {:.5f}", m.epoch,
                                 epochs_, m.train_loss, m.val_loss);
  if (classifier_ && !std::isnan(m.val_accuracy))
    line += fmt::format("  val acc {:.4f}", m.val_accuracy);
  line += fmt::format("  {:.1f} s  {:.0f} img/s", m.seconds, m.images_per_second);
  out_ << line << std::endl;
}

}  // namespace fmnist
