// Per-epoch metrics as CSV and JSON lines.
#include "metrics_log.h"

#include <cmath>
#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace fmnist {

MetricsLog::MetricsLog(const std::string& dir, bool append)
    : csv_path_(dir + "/metrics.csv"), jsonl_path_(dir + "/metrics.jsonl") {
  const bool csv_existed = append && std::filesystem::exists(csv_path_);
  const auto mode = append ? std::ios::app : std::ios::trunc;
  csv_.open(csv_path_, std::ios::out | mode);
  jsonl_.open(jsonl_path_, std::ios::out | mode);
  if (!csv_) throw std::runtime_error(csv_path_ + ": cannot open for writing");
  if (!jsonl_) throw std::runtime_error(jsonl_path_ + ": cannot open for writing");
  if (!csv_existed) {
    csv_ << "epoch,steps,train_loss,val_loss,val_accuracy,seconds,images_per_second\n";
    csv_.flush();
  }
}

void MetricsLog::write(const EpochMetrics& m) {
  const bool has_accuracy = !std::isnan(m.val_accuracy);
  csv_ << fmt::format("{},{},{:.9g},{:.9g},{},{:.4f},{:.1f}\n", m.epoch, m.steps, m.train_loss,
                      m.val_loss, has_accuracy ? fmt::format("{:.6f}", m.val_accuracy) : "",
                      m.seconds, m.images_per_second);
  nlohmann::json j = {{"epoch", m.epoch},         {"steps", m.steps},
                      {"train_loss", m.train_loss}, {"val_loss", m.val_loss},
                      {"seconds", m.seconds},     {"images_per_second", m.images_per_second}};
  if (has_accuracy) j["val_accuracy"] = m.val_accuracy;
  jsonl_ << j.dump() << '\n';
  csv_.flush();
  jsonl_.flush();
  if (!csv_) throw std::runtime_error(csv_path_ + ": write failed (disk full?)");
  if (!jsonl_) throw std::runtime_error(jsonl_path_ + ": write failed (disk full?)");
}

}  // namespace fmnist
