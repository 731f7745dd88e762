// `fmnist report OUT`: draws the figures of a finished `fmnist reproduce` and writes its report
// again, from OUT's reproduce.json, results.json and figures.json and the data set (for the test
// images), exactly as `fmnist reproduce` would have on this build. For a reproduction run where
// there was no cairo (a GPU machine): its figures are drawn afterwards, here.
#include <iostream>
#include <stdexcept>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "host/cli/cli.h"
#include "host/dataset.h"
#include "host/report/report.h"

namespace fmnist::cli {
namespace {

struct ReportCliOptions {
  std::string out_dir;
  std::string data_dir;
};

int run_report(void* p) {
  const auto& o = *static_cast<ReportCliOptions*>(p);
  if (!report::kCanDrawFigures)
    throw std::invalid_argument("this build has no cairo (CMake's FMNIST_REPORT), so it cannot draw the figures: run "
                                "`fmnist report " + o.out_dir + "` with a build that has cairo");
  // Everything is read and checked, and every figure drawn, before any file is written: a bad input
  // leaves OUT as it was.
  report::StoredReport stored = report::read_stored_report(o.out_dir);
  const std::string data_dir = o.data_dir.empty() ? default_data_dir() : o.data_dir;
  const FashionMnist data = load_fashion_mnist(data_dir);
  report::attach_data(stored, data, data_dir);
  const std::string html = report::write_report(o.out_dir, stored.inputs);
  std::cout << fmt::format("report: {} (figures in {}/figures)\n", html, o.out_dir);
  return 0;
}

}  // namespace

void add_report_command(CLI::App& app, Command& command) {
  static ReportCliOptions o;
  CLI::App* sub = app.add_subcommand(
      "report", "Draw the figures of a finished `fmnist reproduce` OUT and write its report.html again (from "
                "OUT/reproduce.json, results.json and figures.json; needs a build with cairo)");
  sub->add_option("out", o.out_dir, "the reproduction's output directory (its --out)")->required();
  sub->add_option("--data-dir", o.data_dir,
                  "directory of the IDX files, for the test images (default: $FMNIST_DATA_DIR or " FMNIST_DEFAULT_DATA_DIR ")");
  command = {sub, &run_report, &o};
}

}  // namespace fmnist::cli
