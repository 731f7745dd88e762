// The reproduction's report: the paper's figures drawn from the runs' results (Figs. 4, 5, 7, 8, 9,
// 10, 11, 12, 13), written as PNG files under OUT/figures/ and gathered with the results table and
// the targets into one self-contained OUT/report.html.
//
// Computing and drawing are apart: plan_figures() says what each figure shows (data only, in every
// build); drawing it needs cairo, in builds with it (FMNIST_HAVE_FIGURES, CMake's FMNIST_REPORT).
// Without cairo the report holds the tables, the targets and the settings, and in place of each
// figure a line saying it was not drawn and that `fmnist report OUT` draws it on a build with
// cairo, from OUT's reproduce.json, results.json and figures.json (read_stored_report()).
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/dataset.h"
#include "host/report/figures.h"
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

// Whether this build draws figures (it has cairo).
#ifdef FMNIST_HAVE_FIGURES
inline constexpr bool kCanDrawFigures = true;
#else
inline constexpr bool kCanDrawFigures = false;
#endif

// One figure of the report, described but not drawn.
struct PlannedFigure {
  std::string id, title, caption;  // as ReportFigure's
  std::variant<LinePlot, ImageGrid, ConfusionFigure> content;
};

// The figures the runs allow, described (a figure whose runs are missing is listed in `missing`
// instead). Needs no cairo.
std::vector<PlannedFigure> plan_figures(const ReportInputs& in, std::vector<std::string>* missing);

#ifdef FMNIST_HAVE_FIGURES
// The planned figures drawn as PNG (report_draw.cpp; builds with cairo only).
ReportFigure draw_figure(const PlannedFigure& figure);
std::vector<ReportFigure> make_figures(const ReportInputs& in, std::vector<std::string>* missing);
#endif

// The whole report page for `in`: figures drawn where this build can, else each one a line saying
// it was not drawn and `fmnist report <out_dir>` draws it.
ReportDocument make_document(const ReportInputs& in, const std::string& out_dir);

// Writes OUT/figures/<id>.png for every figure drawn and OUT/report.html, each file atomically
// (written beside, then renamed over); returns the HTML's path. Throws FormatError naming a file
// that cannot be written.
std::string write_report(const std::string& out_dir, const ReportInputs& in);

// OUT's reproduce.json, results.json and figures.json read back into the report's inputs (all but
// `data`, which the caller loads and gives to attach_data). Throws FormatError "PATH: problem" for
// a missing directory or file, a file that is not JSON, or JSON that fmnist reproduce would not
// have written.
struct StoredReport {
  ReportInputs inputs;
  std::vector<int> test_labels;  // the test split's labels, as figures.json recorded them
  std::string settings_path, results_path, figures_path;
};
StoredReport read_stored_report(const std::string& out_dir);

// Points stored.inputs.data at `data` after checking that its t10k labels at the test indices are
// the recorded ones (the same data set); throws DataError naming data_dir otherwise.
void attach_data(StoredReport& stored, const FashionMnist& data, const std::string& data_dir);

// The epochs (1-based, completed) at which Fig. 8 shows the reconstruction: the paper's 0, 20, 40,
// 60, 80 of 100 as epoch 1 (the paper's first, 0-based, epoch) and every fifth of the run, then the
// last: 1, 20, 40, 60, 80, 100 for 100 epochs; 1, 2 for 2.
std::vector<int> snapshot_epochs(int epochs);

}  // namespace fmnist::report
