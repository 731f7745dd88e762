// Per-epoch metrics of a run, appended as they come to metrics.csv and metrics.jsonl in the run's
// output directory (each line flushed, so a killed run keeps every finished epoch).
#pragma once

#include <fstream>
#include <string>

#include "host/trainer.h"

namespace fmnist {

class MetricsLog {
 public:
  // Opens (appending when `append`, else truncating) DIR/metrics.csv and DIR/metrics.jsonl.
  MetricsLog(const std::string& dir, bool append);
  void write(const EpochMetrics& m);

 private:
  std::string csv_path_, jsonl_path_;
  std::ofstream csv_, jsonl_;
};

}  // namespace fmnist
