// The results of a reproduction set against the paper: what each run measured, the paper's own
// figures (../shared/paper/FACTS.md), the targets with pass / fail / n/a, and the table as
// text (terminal), HTML (the report) and JSON (results.json).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/trainer.h"

namespace fmnist::report {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The paper's figures for one run (NaN where the paper gives none). FACTS.md "Results" (final epoch
// of the notebook) and "The paper's own trained weights, evaluated on all 10,000 t10k images".
struct PaperFigures {
  double train_loss = kNaN, val_loss = kNaN;
  double val_accuracy = kNaN, val_accuracy_best = kNaN;
  double t10k_mae = kNaN, t10k_accuracy = kNaN;
  std::string note;  // e.g. "62 epochs"
};

// The paper's figures for a run of the reproduction, by its name ("ae64", "c256-frozen", ...);
// an unknown name (the improved recipe) gives all NaN.
PaperFigures paper_figures(const std::string& run_name);

// One evaluation of a set of weights on a split.
struct SplitEval {
  int images = 0;
  double mae = kNaN;       // autoencoders
  double loss = kNaN;      // classifiers: the head's cross-entropy
  double accuracy = kNaN;  // classifiers
  std::vector<std::int64_t> confusion;  // classifiers, 10 x 10 [label][prediction]
};

SplitEval to_split_eval(const EvalResult& r, bool classifier);

// Everything a run produced that the table and the figures need.
struct RunResult {
  std::string name;    // "ae64"
  std::string title;   // "AE(64)"
  std::string recipe;  // "faithful" or "improved"
  bool classifier = false;
  std::string loss_name;  // the training loss: "MAE", "MSE" or "cross-entropy"
  std::string status = "ok";  // "ok", or "failed: ..." / "skipped: ..."
  std::vector<EpochMetrics> history;
  int best_epoch = 0;
  double wall_seconds = 0;
  std::string backend;
  // Evaluations with the final weights (last epoch) and the best weights (best validation epoch).
  SplitEval test_final, t10k_final, test_best, t10k_best;
  // Figure material. AE: the snapshot image's reconstruction after some epochs (Fig. 8) and the
  // first test images' reconstructions with the final weights (Figs. 4, 9), 784 floats each.
  std::vector<std::pair<int, std::vector<float>>> snapshots;
  std::vector<std::vector<float>> reconstructions;
  // Classifier: predicted class of each test image with the final weights (Fig. 12).
  std::vector<int> test_predictions;
  // The training's CUDA graphs: kinds of step captured, and captures that failed (those steps ran
  // un-captured: the same results, more launch overhead). 0 on the CPU.
  int graphs_captured = 0, graph_capture_failures = 0;

  bool ok() const { return status == "ok"; }
  int epochs_run() const { return history.empty() ? 0 : history.back().epoch; }
  const EpochMetrics* final_epoch() const { return history.empty() ? nullptr : &history.back(); }
  const EpochMetrics* best() const;  // the history entry of best_epoch, or null
};

// The run named `name` if it finished and trained at least one epoch, else null.
const RunResult* find_ok(const std::vector<RunResult>& runs, const std::string& name);

// How a reproduction was run, as far as judging its targets goes.
struct RunScale {
  int epochs = 100;
  bool full_epochs = true;  // no --max-steps-per-epoch
  std::string backend;      // e.g. "cpu", "cuda:NVIDIA H100 80GB HBM3"
  double total_wall_seconds = 0;
};

enum class TargetStatus { Pass, Fail, NotApplicable };
const char* to_string(TargetStatus s);

struct TargetCheck {
  std::string id;           // "ae256-val-mae", ...
  std::string description;  // the words
  TargetStatus status = TargetStatus::NotApplicable;
  std::string detail;       // the measured values, or why it cannot be judged
};

// The targets: AE(256) validation MAE <= 0.0547 and C(256) from scratch >= 0.905 on t10k
// (faithful recipe, 100 epochs, final weights); larger n reconstructs better; frozen encoder below
// scratch; dropout worse; the improved C(256) >= 0.93 on t10k; the whole reproduction <= 60 s on an
// H100. A target is judged only when its runs completed the full 100 epochs (the paper's length);
// otherwise it is n/a and the detail gives what the shorter runs show.
std::vector<TargetCheck> check_targets(const std::vector<RunResult>& runs, const RunScale& scale);

// The results table as aligned text (one block for autoencoders, one for classifiers) and as HTML
// tables; both list, per run, the final and best figures beside the paper's and the wall time.
std::string results_text(const std::vector<RunResult>& runs, const RunScale& scale);
std::string results_html(const std::vector<RunResult>& runs, const RunScale& scale);
std::string targets_text(const std::vector<TargetCheck>& targets);

// results.json: {"scale": ..., "runs": [...], "targets": [...]} with every number of the tables and
// each run's per-epoch history; NaN becomes null.
nlohmann::json results_json(const std::vector<RunResult>& runs, const RunScale& scale,
                            const std::vector<TargetCheck>& targets);

// results.json read back: the inverse of results_json (what it does not hold, the figure material,
// is left empty; results_json of what it returns gives `j` again, keys it ignores aside). Throws
// std::invalid_argument naming the key and the problem on anything results_json would not write.
struct StoredResults {
  std::vector<RunResult> runs;
  RunScale scale;
  std::vector<TargetCheck> targets;
};
StoredResults results_from_json(const nlohmann::json& j);

// figures.json: the figure material of every run, kept so that `fmnist report OUT` can draw the
// figures later (on a build with cairo) exactly as `fmnist reproduce` would have:
//   {"format": "fmnist-figures/1", "pixels": "...", "test_indices": [...], "test_labels": [...],
//    "runs": {"ae64": {"snapshots": [{"epoch": 1, "pixels": B64}, ...], "reconstructions": [B64, ...]},
//             "c64": {"test_predictions": [3, 1, ...]}, ...}}
// Each image is the base64 of its 784 grey levels (uint8, row-major), grey_level() of each value:
// exactly the levels a figure paints, so the redrawn PNGs are the same bytes.
nlohmann::json figures_json(const std::vector<RunResult>& runs, const std::vector<std::int32_t>& test_indices,
                            const std::vector<int>& test_labels);
// Reads figures.json back into the runs of the same names (their snapshots, reconstructions and
// test predictions, images as grey_level / 255) and the test split's indices and labels. Throws
// std::invalid_argument naming the key and the problem (a run it does not know, an image that is
// not 784 levels, an index outside t10k, a class outside 0..9).
void figures_from_json(const nlohmann::json& j, std::vector<RunResult>& runs, std::vector<std::int32_t>& test_indices,
                       std::vector<int>& test_labels);

// A number for a table: fixed decimals, or "-" for NaN.
std::string fixed(double v, int decimals);

}  // namespace fmnist::report
