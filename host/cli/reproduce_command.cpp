// `fmnist reproduce`: every run of the paper in one command, with its figures, a self-contained
// HTML report and a results table set against the paper's numbers. Every build trains and writes
// the results and the report; the figures are drawn where the build has cairo, else later by
// `fmnist report OUT` (report_command.cpp) on one that has.
#include <iostream>
#include <stdexcept>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "host/cli/cli.h"
#include "host/report/results.h"
#include "host/reproduce/reproduce.h"

namespace fmnist::cli {
namespace {

struct ReproduceCliOptions {
  int epochs = 100;
  std::string only;
  int max_steps = 0;
  std::uint64_t seed = 1;
  std::string device = "auto";
  PrecisionFlags precision;  // --precision / --tf32
  std::string data_dir;
  std::string out_dir;
  std::string recipe = "faithful";
  int jobs = 0;
  bool overwrite = false;
};

int run_reproduce(void* p) {
  const auto& o = *static_cast<ReproduceCliOptions*>(p);
  reproduce::ReproduceOptions options;
  options.plan.epochs = o.epochs;
  options.plan.max_steps_per_epoch = o.max_steps;
  options.plan.seed = o.seed;
  options.plan.recipe = reproduce::parse_recipe(o.recipe);
  options.plan.only = reproduce::split_names(o.only);
  options.recipe_name = o.only.empty() ? o.recipe : o.recipe + " (--only " + o.only + ")";
  options.device = o.device;
  options.precision = resolve_precision(o.precision);
  options.data_dir = o.data_dir;
  options.out_dir = o.out_dir.empty() ? default_run_dir("reproduce") : o.out_dir;
  options.jobs = o.jobs;
  options.overwrite = o.overwrite;

  const reproduce::ReproduceSummary s = reproduce::reproduce(options, std::cerr);
  std::cout << "\n" << report::results_text(s.runs, s.scale) << "\nTargets\n" << report::targets_text(s.targets);
  std::cout << fmt::format("\nreport: {}\nresults: {}\nfigure material: {}\nsettings: {}/reproduce.json\n",
                           s.report_path, s.results_path, s.figures_path, options.out_dir);
  if (!s.figures_drawn)
    std::cout << fmt::format("figures: not drawn, this build has no cairo; `fmnist report {}` on a build with cairo "
                             "draws them into the report\n", options.out_dir);
  if (!s.all_ok) {
    std::cerr << "fmnist: error: some runs failed or were skipped (see the table and " << s.results_path << ")\n";
    return kExitFailure;
  }
  return 0;
}
}  // namespace

void add_reproduce_command(CLI::App& app, Command& command) {
  static ReproduceCliOptions o;
  CLI::App* sub = app.add_subcommand(
      "reproduce", "Train every run of the paper (AE(64/128/256), MSE, dropout, C(64/256) from scratch and with a "
                   "frozen encoder; optionally the improved C(256)), compare with its numbers and draw its figures (where "
                   "this build has cairo; else `fmnist report OUT` draws them later)");
  sub->add_option("--epochs", o.epochs, "epochs of every run (the paper: 100)")->check(CLI::Range(1, 1000000))->capture_default_str();
  sub->add_option("--only", o.only, "comma list of runs: ae64,ae128,ae256,ae64-mse,ae64-dropout,c64,c256,c64-frozen,c256-frozen,c256-improved (a frozen classifier pulls in its AE)");
  sub->add_option("--max-steps-per-epoch", o.max_steps, "stop each epoch after this many steps (0: whole epochs), for quick checks")->check(CLI::Range(0, 1000000))->capture_default_str();
  sub->add_option("--seed", o.seed, "seed of initialisation, splits, shuffles, dropout and augmentation")->capture_default_str();
  sub->add_option("--device", o.device, "cpu, cuda or auto (the GPU when there is one)")->check(CLI::IsMember({"cpu", "cuda", "auto"}))->capture_default_str();
  add_precision_flags(sub, o.precision);
  sub->add_option("--data-dir", o.data_dir, "directory of the IDX files (default: $FMNIST_DATA_DIR or " FMNIST_DEFAULT_DATA_DIR ")");
  sub->add_option("--out", o.out_dir, "output directory (default: runs/reproduce-<time>)");
  sub->add_option("--recipe", o.recipe, "faithful (the paper's runs), improved (C(256) with logits head, warm-up + cosine lr, shifts and flips) or both")->check(CLI::IsMember({"faithful", "improved", "both"}))->capture_default_str();
  sub->add_option("--jobs", o.jobs, "runs trained at the same time (0: one on the CPU, all ready runs on a GPU)")->check(CLI::Range(0, 64))->capture_default_str();
  sub->add_flag("--overwrite", o.overwrite, "write into an --out that already holds a reproduction");
  command = {sub, &run_reproduce, &o};
}

}  // namespace fmnist::cli
