// The reproduction's report: see report.h.
#include "host/report/report.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

#include "host/idx.h"
#include "host/report/figures.h"
#include "host/run_state.h"
#include "host/safetensors.h"

namespace fmnist::report {
namespace {

std::vector<double> epochs_of(const RunResult& r) {
  std::vector<double> x;
  for (const EpochMetrics& m : r.history) x.push_back(m.epoch);
  return x;
}

template <class F> std::vector<double> column(const RunResult& r, F f) {
  std::vector<double> y;
  for (const EpochMetrics& m : r.history) y.push_back(f(m));
  return y;
}

// Train (solid) and validation (dashed) loss of each run, one colour per run.
LinePlot loss_plot(const std::vector<const RunResult*>& runs, const std::string& title, const std::string& y_label) {
  LinePlot p;
  p.title = title;
  p.x_label = "epoch";
  p.y_label = y_label;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const RunResult& r = *runs[i];
    p.series.push_back({r.title + " train", palette(i), false, epochs_of(r),
                        column(r, [](const EpochMetrics& m) { return m.train_loss; })});
    p.series.push_back({r.title + " validation", palette(i), true, epochs_of(r),
                        column(r, [](const EpochMetrics& m) { return m.val_loss; })});
  }
  return p;
}

std::string scale_note(const RunScale& s) {
  return s.full_epochs ? fmt::format("{} epochs", s.epochs)
                       : fmt::format("{} epochs shortened with --max-steps-per-epoch", s.epochs);
}

PlannedFigure figure(const std::string& id, const std::string& title, const std::string& caption,
                     std::variant<LinePlot, ImageGrid, ConfusionFigure> content) {
  return {id, title, caption, std::move(content)};
}

std::vector<const RunResult*> present(const std::vector<RunResult>& runs, std::initializer_list<const char*> names) {
  std::vector<const RunResult*> out;
  for (const char* n : names)
    if (const RunResult* r = find_ok(runs, n)) out.push_back(r);
  return out;
}

// Figs. 4 and 9: the first `cols` test images (test_image(i)) in a row, then one labelled row per
// run of its reconstructions of them (each run has at least `cols`).
template <class TestImage>
ImageGrid reconstruction_grid(const std::string& title, int cols, const TestImage& test_image,
                              const std::vector<std::pair<std::string, const RunResult*>>& runs) {
  ImageGrid g;
  g.title = title;
  g.rows = 1 + static_cast<int>(runs.size());
  g.cols = cols;
  g.row_labels.push_back("test image");
  for (int c = 0; c < cols; ++c) g.cells.push_back({test_image(c), {}, {}, {}});
  for (const auto& [label, run] : runs) {
    g.row_labels.push_back(label);
    for (int c = 0; c < cols; ++c) g.cells.push_back({run->reconstructions[c], {}, {}, {}});
  }
  return g;
}

}  // namespace

std::vector<int> snapshot_epochs(int epochs) {
  std::vector<int> out;
  if (epochs < 1) return out;
  out.push_back(1);
  for (int k = 1; k <= 4; ++k) out.push_back(static_cast<int>(static_cast<long long>(epochs) * k / 5));
  out.push_back(epochs);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  out.erase(std::remove_if(out.begin(), out.end(), [](int e) { return e < 1; }), out.end());
  return out;
}

std::vector<PlannedFigure> plan_figures(const ReportInputs& in, std::vector<std::string>* missing) {
  std::vector<PlannedFigure> figs;
  auto skip = [&](const std::string& what, const std::string& needs) {
    if (missing) missing->push_back(what + ": needs " + needs + ", not in this reproduction (or failed)");
  };
  const auto& runs = in.runs;
  const std::string length = scale_note(in.scale);
  const int n_test = static_cast<int>(in.test_indices.size());
  auto test_image = [&](int i) { return to_unit(in.data->t10k.image(in.test_indices.at(i))); };

  // Fig. 7: the three AEs.
  if (auto aes = present(runs, {"ae64", "ae128", "ae256"}); !aes.empty()) {
    LinePlot f = loss_plot(aes, "Fig. 7: autoencoder loss per epoch (MAE)", "mean absolute error");
    figs.push_back(figure("fig7", "Fig. 7: train and validation loss of AE(64), AE(128), AE(256)",
                          "L1 (MAE) loss per epoch; solid: training (mean over the epoch's batches), dashed: the "
                          "9,900-image validation split after the epoch. Paper at 100 epochs: validation 0.0630, "
                          "0.0591, 0.0547. This run: " + length + ".",
                          std::move(f)));
  } else {
    skip("Fig. 7", "ae64, ae128 or ae256");
  }

  const int grid_images = std::min(10, n_test);
  // Fig. 4: MSE against MAE.
  {
    const RunResult *mae = find_ok(runs, "ae64"), *mse = find_ok(runs, "ae64-mse");
    if (mae && mse && !mae->reconstructions.empty() && !mse->reconstructions.empty() && grid_images > 0) {
      const int cols = std::min<int>({grid_images, static_cast<int>(mae->reconstructions.size()),
                                      static_cast<int>(mse->reconstructions.size())});
      const ImageGrid g = reconstruction_grid("Fig. 4: AE(64) reconstructions, MAE against MSE loss",
                                              cols, test_image,
                                              {{"MAE (L1) loss", mae}, {"MSE loss", mse}});
      figs.push_back(figure("fig4", "Fig. 4: reconstructions with MAE and with MSE loss",
                            "The first test images (top) reconstructed by AE(64) trained with the L1 loss (the paper's "
                            "choice) and with MSE, final weights. The paper saw edge artefacts with MSE. " + length + ".",
                            g));
    } else {
      skip("Fig. 4", "ae64 and ae64-mse");
    }
  }

  // Fig. 5: with and without dropout.
  if (auto pair = present(runs, {"ae64", "ae64-dropout"}); pair.size() == 2) {
    LinePlot f = loss_plot(pair, "Fig. 5: AE(64) loss with and without dropout 0.2", "mean absolute error");
    figs.push_back(figure("fig5", "Fig. 5: AE(64) with and without dropout",
                          "MAE per epoch of AE(64) and of AE(64) with dropout p = 0.2 after each hidden ReLU; solid: "
                          "training (with dropout active), dashed: validation (dropout off). Paper: dropout trained "
                          "worse (0.1160 validation after 62 epochs against 0.0630). " + length + ".",
                          std::move(f)));
  } else {
    skip("Fig. 5", "ae64 and ae64-dropout");
  }

  // Fig. 8: one test image through training.
  {
    const RunResult* ae = find_ok(runs, "ae256");
    if (!ae || ae->snapshots.empty()) ae = find_ok(runs, "ae128");
    if (!ae || ae->snapshots.empty()) ae = find_ok(runs, "ae64");
    if (ae && !ae->snapshots.empty() && n_test > 0) {
      ImageGrid g;
      g.title = "Fig. 8: " + ae->title + " reconstructing one test image during training";
      g.rows = 1;
      g.cols = 1 + static_cast<int>(ae->snapshots.size());
      g.scale = 5;
      g.column_labels.push_back("test image");
      g.cells.push_back({test_image(0), {}, {}, {}});
      for (const auto& [epoch, pixels] : ae->snapshots) {
        g.column_labels.push_back(fmt::format("after epoch {}", epoch));
        g.cells.push_back({pixels, {}, {}, {}});
      }
      figs.push_back(figure("fig8", "Fig. 8: one test image reconstructed as training goes on",
                            "The first test image and " + ae->title + "'s reconstruction of it after the given number "
                            "of completed epochs (the paper shows its 0-based epochs 0, 20, 40, 60 and 80 of 100). " +
                            length + ".",
                            g));
    } else {
      skip("Fig. 8", "an MAE autoencoder (ae256, ae128 or ae64)");
    }
  }

  // Fig. 9: test reconstructions of every AE(n).
  {
    auto aes = present(runs, {"ae64", "ae128", "ae256"});
    aes.erase(std::remove_if(aes.begin(), aes.end(), [](const RunResult* r) { return r->reconstructions.empty(); }), aes.end());
    if (!aes.empty() && grid_images > 0) {
      int cols = grid_images;
      for (const RunResult* r : aes) cols = std::min<int>(cols, static_cast<int>(r->reconstructions.size()));
      std::vector<std::pair<std::string, const RunResult*>> rows;
      for (const RunResult* r : aes) rows.push_back({r->title, r});
      const ImageGrid g =
          reconstruction_grid("Fig. 9: test images and their reconstructions", cols, test_image, rows);
      figs.push_back(figure("fig9", "Fig. 9: test images and their reconstructions",
                            "The first test images of the paper's 100-image test split and their reconstructions by "
                            "each autoencoder (final weights). " + length + ".",
                            g));
    } else {
      skip("Fig. 9", "ae64, ae128 or ae256");
    }
  }

  // Figs. 10 and 11: the classifiers.
  {
    auto faithful = present(runs, {"c64", "c256", "c64-frozen", "c256-frozen"});
    if (!faithful.empty()) {
      LinePlot f = loss_plot(faithful, "Fig. 10: classifier loss per epoch", "cross-entropy of the Sigmoid outputs");
      figs.push_back(figure("fig10", "Fig. 10: loss of the four classifiers",
                            "Cross-entropy on the Sigmoid outputs (the paper's head; its floor is about 1.46) per "
                            "epoch; solid: training, dashed: validation. 'frozen' = the encoder of the trained AE(n) "
                            "(its final weights), frozen. " + length + ".",
                            std::move(f)));
    } else {
      skip("Fig. 10", "c64, c256, c64-frozen or c256-frozen");
    }
    auto all = present(runs, {"c64", "c256", "c64-frozen", "c256-frozen", "c256-improved"});
    if (!all.empty()) {
      LinePlot p;
      p.title = "Fig. 11: classifier validation accuracy per epoch";
      p.x_label = "epoch";
      p.y_label = "accuracy (9,900 validation images)";
      for (std::size_t i = 0; i < all.size(); ++i)
        p.series.push_back({all[i]->title, palette(i), false, epochs_of(*all[i]),
                            column(*all[i], [](const EpochMetrics& m) { return m.val_accuracy; })});
      figs.push_back(figure("fig11", "Fig. 11: accuracy of the classifiers",
                            "Validation accuracy after each epoch. Paper at 100 epochs: C(64) 0.8946, C(256) 0.9135, "
                            "frozen C(64) 0.7909, frozen C(256) 0.8519. " + length + ".",
                            p));
    } else {
      skip("Fig. 11", "a classifier");
    }
  }

  // Figs. 12 and 13: C(256) from scratch (the paper's headline model).
  {
    // The paper's headline model when it ran, else another classifier.
    const RunResult* c = nullptr;
    for (const char* name : {"c256", "c64", "c256-improved", "c256-frozen", "c64-frozen"})
      if (!c) c = find_ok(runs, name);
    if (c && !c->test_predictions.empty()) {
      const int rows = 4, cols = 6;
      const int count = std::min<int>({rows * cols, n_test, static_cast<int>(c->test_predictions.size())});
      ImageGrid g;
      g.rows = (count + cols - 1) / cols;
      g.cols = cols;
      g.scale = 4;
      int right = 0;
      const auto& names = class_names();
      for (int i = 0; i < g.rows * cols; ++i) {
        if (i >= count) {
          g.cells.push_back({});
          continue;
        }
        const int label = in.data->t10k.labels.at(in.test_indices[i]);
        const int pred = c->test_predictions[i];
        const bool ok = label == pred;
        right += ok;
        GridCell cell{test_image(i), {"true: " + names.at(label), "pred: " + names.at(pred)}, {}, {}};
        if (!ok) {
          cell.frame = Rgb{0.85, 0.1, 0.1};
          cell.caption_colour = Rgb{0.8, 0.05, 0.05};
        }
        g.cells.push_back(cell);
      }
      g.title = fmt::format("Fig. 12: {} on test images: {}/{} right (wrong ones in red)", c->title, right, count);
      figs.push_back(figure("fig12", "Fig. 12: test images with real and predicted labels",
                            "The first images of the paper's test split with their true class and " + c->title +
                            "'s prediction (final weights); red frame and caption: a wrong prediction. " + length + ".",
                            g));
    } else {
      skip("Fig. 12", "a classifier");
    }
    if (c && c->test_final.confusion.size() == 100) {
      const int correct = static_cast<int>(std::lround(c->test_final.accuracy * c->test_final.images));
      figs.push_back(figure(
          "fig13", "Fig. 13: confusion matrix on the test split",
          "Rows: true class; columns: predicted class; each cell shaded by its share of the row. " + c->title +
              ", final weights, on the paper's " + std::to_string(c->test_final.images) + "-image test split. " + length + ".",
          ConfusionFigure{fmt::format("Fig. 13: {} on the test split: {}/{} right", c->title, correct,
                                             c->test_final.images),
                                 c->test_final.confusion, class_names()}));
    } else {
      skip("Fig. 13", "a classifier");
    }
    if (c && c->t10k_final.confusion.size() == 100) {
      figs.push_back(figure(
          "fig13b", "Fig. 13b: confusion matrix on all 10,000 t10k images",
          "As Fig. 13 on all 10,000 t10k images (validation and test splits together), " + c->title +
              ", final weights, accuracy " + fixed(c->t10k_final.accuracy, 4) + ". " + length + ".",
          ConfusionFigure{fmt::format("Fig. 13b: {} on all t10k images: accuracy {}", c->title,
                                             fixed(c->t10k_final.accuracy, 4)),
                                 c->t10k_final.confusion, class_names()}));
    }
  }
  return figs;
}

ReportDocument make_document(const ReportInputs& in, const std::string& out_dir) {
  ReportDocument doc;
  doc.title = "fmnist reproduce: Salomon (2024), Fashion-MNIST autoencoder and classifier";
  std::string intro = "<p>Every run of the paper (../shared/paper/FACTS.md) trained by fmnist and set against the "
                      "paper's numbers. Figures are numbered as in the paper.</p>\n<table class=\"kv\">\n";
  auto row = [&](const std::string& k, const std::string& v) {
    intro += "<tr><th>" + html_escape(k) + "</th><td>" + html_escape(v) + "</td></tr>\n";
  };
  const auto& s = in.settings;
  auto str = [&](const char* key) -> std::string {
    if (!s.contains(key)) return "-";
    return s[key].is_string() ? s[key].get<std::string>() : s[key].dump();
  };
  row("date", str("date"));
  row("fmnist version", str("version"));
  row("backend", in.scale.backend);
  row("epochs", std::to_string(in.scale.epochs) + (in.scale.full_epochs ? "" : " (each cut to --max-steps-per-epoch " + str("max_steps_per_epoch") + " steps)"));
  row("seed", str("seed"));
  row("splits", "train: 60,000 training images; validation: 9,900 of the t10k images, test: the other 100 (shuffled with the seed, as the paper)");
  row("recipe", str("recipe"));
  row("runs", str("run_names"));
  row("frozen classifiers", "encoder taken from the final (last.safetensors) weights of the trained AE(n), as the paper did");
  row("results on t10k", "evaluated with the final weights and, in 'best-w' columns, with the weights of the best validation epoch");
  row("whole reproduction", fmt::format("{:.1f} s wall time", in.scale.total_wall_seconds));
  intro += "</table>\n";
  doc.intro_html = intro;

  std::string t = "<table class=\"results\">\n<thead><tr><th>target</th><th>status</th><th>detail</th></tr></thead>\n<tbody>\n";
  for (const TargetCheck& c : in.targets) {
    const char* cls = c.status == TargetStatus::Pass ? "pass" : c.status == TargetStatus::Fail ? "FAIL" : "na";
    t += "<tr><th scope=\"row\">" + html_escape(c.description) + "</th><td class=\"" + cls + "\">" +
         to_string(c.status) + "</td><td style=\"text-align:left\">" + html_escape(c.detail) + "</td></tr>\n";
  }
  t += "</tbody></table>\n";
  doc.targets_html = t;
  doc.results_html = results_html(in.runs, in.scale);
#ifdef FMNIST_HAVE_FIGURES
  (void)out_dir;
  doc.figures = make_figures(in, &doc.missing);
#else
  for (const PlannedFigure& f : plan_figures(in, &doc.missing)) {
    ReportFigure undrawn{f.id, f.title, f.caption, {}, {}};
    undrawn.not_drawn = "Not drawn: this build of fmnist has no cairo (CMake's FMNIST_REPORT). Its material is in "
                        "figures.json; `fmnist report " + out_dir + "` on a build with cairo draws it into this report.";
    doc.figures.push_back(std::move(undrawn));
  }
#endif
  return doc;
}

std::string write_report(const std::string& out_dir, const ReportInputs& in) {
  const ReportDocument doc = make_document(in, out_dir);  // everything drawn before any file is written
  const std::string fig_dir = out_dir + "/figures";
  bool any_png = false;
  for (const ReportFigure& f : doc.figures) any_png = any_png || !f.png.empty();
  if (any_png) {
    std::error_code ec;
    std::filesystem::create_directories(fig_dir, ec);
    if (ec) throw FormatError(fig_dir + ": cannot create the directory: " + ec.message());
  }
  for (const ReportFigure& f : doc.figures)
    if (!f.png.empty()) write_file_atomically(fig_dir + "/" + f.id + ".png", std::string(f.png.begin(), f.png.end()));
  const std::string html_path = out_dir + "/report.html";
  write_file_atomically(html_path, render_report_html(doc));
  return html_path;
}

namespace {

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError(path + ": cannot open: " + std::strerror(errno) + " (not the output of fmnist reproduce?)");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path + ": not valid JSON: " + e.what());
  }
}

}  // namespace

StoredReport read_stored_report(const std::string& out_dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(out_dir, ec))
    throw FormatError(out_dir + ": no such directory (give the --out of an fmnist reproduce)");
  StoredReport s;
  s.settings_path = out_dir + "/reproduce.json";
  s.results_path = out_dir + "/results.json";
  s.figures_path = out_dir + "/figures.json";
  s.inputs.settings = read_json_file(s.settings_path);
  if (!s.inputs.settings.is_object()) throw FormatError(s.settings_path + ": not a JSON object");
  const nlohmann::json results = read_json_file(s.results_path);
  const nlohmann::json figures = read_json_file(s.figures_path);
  StoredResults stored;
  try {
    stored = results_from_json(results);
  } catch (const std::exception& e) {  // invalid_argument from the checks, nlohmann's from get<>
    throw FormatError(s.results_path + ": " + e.what());
  }
  try {
    figures_from_json(figures, stored.runs, s.inputs.test_indices, s.test_labels);
  } catch (const std::exception& e) {
    throw FormatError(s.figures_path + ": " + e.what());
  }
  s.inputs.runs = std::move(stored.runs);
  s.inputs.scale = stored.scale;
  s.inputs.targets = std::move(stored.targets);
  return s;
}

void attach_data(StoredReport& stored, const FashionMnist& data, const std::string& data_dir) {
  for (std::size_t i = 0; i < stored.inputs.test_indices.size(); ++i) {
    const std::int32_t index = stored.inputs.test_indices[i];
    if (index >= data.t10k.count() || data.t10k.labels[index] != stored.test_labels[i])
      throw DataError(fmt::format("{}: its t10k labels are not those figures.json recorded for the test split "
                                  "(t10k image {}): not the data set the reproduction ran on",
                                  data_dir, index));
  }
  stored.inputs.data = &data;
}

}  // namespace fmnist::report
