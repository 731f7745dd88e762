// The reproduction's report: the paper's figures drawn from the runs' results (Figs. 4, 5, 7, 8, 9,
// 10, 11, 12, 13), written as PNG files under OUT/figures/ and gathered with the results table and
// the targets into one self-contained OUT/report.html.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/dataset.h"
#include "host/report/html.h"
#include "host/report/results.h"

namespace fmnist::report {

struct ReportInputs {
  const FashionMnist* data = nullptr;
  std::vector<std::int32_t> test_indices;  // the paper's test split (indices into data->t10k)
  std::vector<RunResult> runs;
  RunScale scale;
  std::vector<TargetCheck> targets;
  nlohmann::json settings;  // reproduce.json's content, shown in the report
};

// The figures the runs allow (a figure whose runs are missing is listed in `missing` instead).
std::vector<ReportFigure> make_figures(const ReportInputs& in, std::vector<std::string>* missing);

// The whole report page for `in` (figures drawn by make_figures).
ReportDocument make_document(const ReportInputs& in);

// Writes OUT/figures/<id>.png for every figure and OUT/report.html; returns the HTML's path.
std::string write_report(const std::string& out_dir, const ReportInputs& in);

// The epochs (1-based, completed) at which Fig. 8 shows the reconstruction: the paper's 0, 20, 40,
// 60, 80 of 100 as epoch 1 (the paper's first, 0-based, epoch) and every fifth of the run, then the
// last: 1, 20, 40, 60, 80, 100 for 100 epochs; 1, 2 for 2.
std::vector<int> snapshot_epochs(int epochs);

}  // namespace fmnist::report
