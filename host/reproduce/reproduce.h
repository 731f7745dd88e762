// `fmnist reproduce`, the execution: trains every planned run through train() into OUT/<run>/
// (concurrently on a GPU, one after another on the CPU), evaluates each with its final and best
// weights on the paper's 100-image test split and on all 10,000 t10k images, gathers the figures'
// material, and writes OUT/reproduce.json (settings, seed, splits, plan), OUT/results.json,
// OUT/figures.json (the figures' material) and OUT/report.html with OUT/figures/*.png; a build
// without cairo draws no figure (report.html says so in place of each, and `fmnist report OUT`
// draws them on a build with cairo).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "host/report/results.h"
#include "host/reproduce/plan.h"

namespace fmnist::reproduce {

struct ReproduceOptions {
  PlanOptions plan;
  std::string recipe_name = "faithful";  // as given, for the record
  std::string device = "auto";
  Precision precision = Precision::FP32;  // of every run (models/precision.h)
  std::string data_dir;  // empty: default_data_dir()
  std::string out_dir;   // required
  int jobs = 0;          // runs at the same time; 0: one on the CPU, every ready run on a GPU
  bool overwrite = false;  // write into an OUT that already holds a reproduction
};

struct ReproduceSummary {
  std::vector<report::RunResult> runs;
  report::RunScale scale;
  std::vector<report::TargetCheck> targets;
  std::string report_path, results_path, figures_path;
  bool figures_drawn = false;  // this build has cairo
  bool all_ok = true;
};

// Throws std::invalid_argument on bad options (unknown run, OUT already used) and DataError on
// missing data before anything trains; a failing run does not stop the others (its dependents are
// skipped) and is reported with its error.
ReproduceSummary reproduce(const ReproduceOptions& options, std::ostream& log);

}  // namespace fmnist::reproduce
