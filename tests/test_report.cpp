// The report: PNG output (read back with libpng), line plots, image grids, the confusion matrix,
// tick choice, base64 and the page, the paper's numbers in the results table and JSON, and the
// targets judged on either side of each threshold.
#include <catch2/catch.hpp>

#include <cairo.h>
#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "host/report/figures.h"
#include "host/report/html.h"
#include "host/report/report.h"
#include "host/report/results.h"

using namespace fmnist;
using namespace fmnist::report;

namespace {

struct DecodedPng {
  int width = 0, height = 0;
  std::vector<std::uint8_t> rgb;  // width * height * 3
  std::uint32_t at(int x, int y) const {
    const std::size_t i = (static_cast<std::size_t>(y) * width + x) * 3;
    return rgb[i] << 16 | rgb[i + 1] << 8 | rgb[i + 2];
  }
};

DecodedPng decode_png(const std::vector<std::uint8_t>& bytes) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  REQUIRE(png_image_begin_read_from_memory(&image, bytes.data(), bytes.size()) != 0);
  image.format = PNG_FORMAT_RGB;
  DecodedPng out;
  out.width = static_cast<int>(image.width);
  out.height = static_cast<int>(image.height);
  out.rgb.resize(PNG_IMAGE_SIZE(image));
  REQUIRE(png_image_finish_read(&image, nullptr, out.rgb.data(), 0, nullptr) != 0);
  return out;
}

std::uint32_t be32(const std::vector<std::uint8_t>& b, std::size_t at) {
  return std::uint32_t(b[at]) << 24 | std::uint32_t(b[at + 1]) << 16 | std::uint32_t(b[at + 2]) << 8 | b[at + 3];
}

std::size_t count_colour(const Figure& f, std::uint32_t colour) {
  std::size_t n = 0;
  for (int y = 0; y < f.height(); ++y)
    for (int x = 0; x < f.width(); ++x) n += f.pixel(x, y) == colour;
  return n;
}

std::string tmp_dir(const std::string& name) {
  const std::string dir = std::string(FMNIST_TEST_TMP_DIR) + "/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A run with a flat history ending at `epochs` with the given final validation loss / accuracy.
RunResult fake_run(const std::string& name, bool classifier, int epochs, double val, double t10k_acc = kNaN) {
  RunResult r;
  r.name = name;
  r.title = name;
  r.recipe = name == "c256-improved" ? "improved" : "faithful";
  r.classifier = classifier;
  r.loss_name = classifier ? "cross-entropy" : "MAE";
  for (int e = 1; e <= epochs; ++e) {
    EpochMetrics m;
    m.epoch = e;
    m.train_loss = classifier ? 1.5 : val;
    m.val_loss = classifier ? 1.55 : val;
    m.val_accuracy = classifier ? t10k_acc : kNaN;
    r.history.push_back(m);
  }
  r.best_epoch = epochs;
  r.t10k_final.accuracy = t10k_acc;
  r.t10k_final.images = 10000;
  return r;
}

const TargetCheck& target(const std::vector<TargetCheck>& ts, const std::string& id) {
  for (const TargetCheck& t : ts)
    if (t.id == id) return t;
  FAIL("no target " << id);
  throw std::logic_error("unreachable");
}

std::vector<RunResult> all_faithful(int epochs) {
  return {fake_run("ae64", false, epochs, 0.063),        fake_run("ae128", false, epochs, 0.059),
          fake_run("ae256", false, epochs, 0.0545),      fake_run("ae64-mse", false, epochs, 0.01),
          fake_run("ae64-dropout", false, epochs, 0.11), fake_run("c64", true, epochs, 0, 0.898),
          fake_run("c256", true, epochs, 0, 0.906),      fake_run("c64-frozen", true, epochs, 0, 0.79),
          fake_run("c256-frozen", true, epochs, 0, 0.85)};
}

RunScale scale_of(int epochs, bool full = true, const std::string& backend = "cpu", double wall = 100) {
  RunScale s;
  s.epochs = epochs;
  s.full_epochs = full;
  s.backend = backend;
  s.total_wall_seconds = wall;
  return s;
}

}  // namespace

TEST_CASE("a figure is written as a valid PNG of its size, read back with libpng", "[report]") {
  Figure f(123, 45);
  cairo_set_source_rgb(f.context(), 1.0, 0.0, 0.0);
  cairo_rectangle(f.context(), 10, 5, 20, 10);
  cairo_fill(f.context());
  const std::vector<std::uint8_t> png = f.png();
  REQUIRE(png.size() > 33);
  const std::uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  CHECK(std::equal(signature, signature + 8, png.begin()));
  CHECK(std::string(png.begin() + 12, png.begin() + 16) == "IHDR");
  CHECK(be32(png, 16) == 123);
  CHECK(be32(png, 20) == 45);
  const DecodedPng d = decode_png(png);
  CHECK(d.width == 123);
  CHECK(d.height == 45);
  CHECK(d.at(15, 10) == 0xFF0000);
  CHECK(d.at(0, 0) == 0xFFFFFF);
  CHECK(d.at(31, 10) == 0xFFFFFF);

  const std::string dir = tmp_dir("report-png");
  f.write_png(dir + "/f.png");
  std::ifstream in(dir + "/f.png", std::ios::binary);
  std::vector<std::uint8_t> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(file == png);
  CHECK_THROWS_AS(f.write_png(dir + "/no/such/dir/f.png"), std::runtime_error);
  CHECK_THROWS_AS(Figure(0, 10), std::invalid_argument);
}

TEST_CASE("a line plot draws every series in its colour, at its data points", "[report]") {
  LinePlot p;
  p.title = "loss";
  p.x_label = "epoch";
  p.y_label = "MAE";
  p.series.push_back({"a", palette(0), false, {1, 2, 3, 4}, {0.30, 0.20, 0.15, 0.12}});
  p.series.push_back({"b", palette(1), true, {1, 2, 3, 4}, {0.25, 0.22, 0.20, 0.19}});
  PlotArea area;
  const Figure f = draw_line_plot(p, &area);
  CHECK(f.width() == p.width);
  CHECK(f.height() == p.height);
  const std::uint32_t a = palette(0).hex(), b = palette(1).hex();
  REQUIRE(a != b);
  CHECK(count_colour(f, a) > 200);
  CHECK(count_colour(f, b) > 100);
  CHECK(count_colour(f, 0xFF00FF) == 0);  // a colour no series has
  // The marker of a's third point (a filled disc) sits where the area maps (3, 0.15).
  CHECK(f.pixel(static_cast<int>(std::lround(area.px(3))), static_cast<int>(std::lround(area.py(0.15)))) == a);
  CHECK(area.y_min < 0.12);
  CHECK(area.y_max > 0.30);
  // A series whose x and y differ in length is refused.
  p.series[1].y.pop_back();
  CHECK_THROWS_AS(draw_line_plot(p), std::invalid_argument);
}

TEST_CASE("ticks are round numbers inside the range, labelled with the decimals they need", "[report]") {
  CHECK(nice_ticks(0, 1, 5) == std::vector<double>{0, 0.2, 0.4, 0.6, 0.8, 1.0});
  const auto t = nice_ticks(0.0531, 0.2712, 6);
  REQUIRE(t.size() >= 4);
  CHECK(t.front() >= 0.0531);
  CHECK(t.back() <= 0.2712);
  CHECK(t[1] - t[0] == Approx(0.05));
  CHECK(nice_ticks(0.5, 2.5, 8, true) == std::vector<double>{1, 2});
  CHECK(nice_ticks(0, 100, 5, true) == std::vector<double>{0, 20, 40, 60, 80, 100});
  CHECK(tick_label(0.05, 0.05) == "0.05");
  CHECK(tick_label(0.25, 0.25) == "0.25");
  CHECK(tick_label(1.5, 0.5) == "1.5");
  CHECK(tick_label(20, 20) == "20");
  CHECK(tick_label(0.025, 0.025) == "0.025");
}

TEST_CASE("an image grid paints each image at its cell, pixel for pixel, with frames", "[report]") {
  ImageGrid g;
  g.title = "grid";
  g.rows = 1;
  g.cols = 2;
  g.scale = 4;
  g.row_labels = {"row"};
  std::vector<float> img(784, 0.0f);
  img[0] = 1.0f;          // (0,0) white
  img[27 * 28 + 27] = 0.5f;  // (27,27) mid grey
  g.cells.push_back({img, {"true: Coat"}, {}, {}});
  g.cells.push_back({img, {"pred: Shirt"}, Rgb{1, 0, 0}, Rgb{1, 0, 0}});
  std::vector<CellRect> rects;
  const Figure f = draw_image_grid(g, &rects);
  REQUIRE(rects.size() == 2);
  for (const CellRect& r : rects) {
    CHECK(r.size == 112);
    CHECK(f.pixel(r.x + 1, r.y + 1) == 0xFFFFFF);
    CHECK(f.pixel(r.x + 10, r.y + 10) == 0x000000);
    CHECK(f.pixel(r.x + 27 * 4 + 2, r.y + 27 * 4 + 2) == 0x808080);
  }
  CHECK(f.pixel(rects[1].x - 2, rects[1].y + 50) == 0xFF0000);  // the frame of the second cell
  CHECK(f.pixel(rects[0].x - 2, rects[0].y + 50) == 0xFFFFFF);  // none around the first
  g.cells.pop_back();
  CHECK_THROWS_AS(draw_image_grid(g), std::invalid_argument);
}

TEST_CASE("the confusion matrix shades each cell by its row share and names the classes", "[report]") {
  std::vector<std::int64_t> m(100, 0);
  for (int i = 0; i < 10; ++i) m[i * 10 + i] = 9;
  m[0 * 10 + 6] = 1;   // one T-shirt taken for a shirt
  m[6 * 10 + 6] = 4;   // shirts: 4 right, 6 taken for T-shirts
  m[6 * 10 + 0] = 6;
  ConfusionFigure cf{"confusion", m, class_names()};
  std::vector<CellRect> cells;
  const Figure f = draw_confusion_matrix(cf, &cells);
  REQUIRE(cells.size() == 100);
  auto corner = [&](int t, int p) {
    const CellRect& c = cells[t * 10 + p];
    return f.pixel(c.x + 3, c.y + 3);
  };
  auto luminance = [](std::uint32_t c) { return ((c >> 16) & 255) + ((c >> 8) & 255) + (c & 255); };
  // full-row diagonal cells: the darkest colour, (1-0.92, 1-0.75, 1-0.38)
  CHECK(corner(1, 1) == Rgb{0.08, 0.25, 0.62}.hex());
  CHECK(corner(3, 4) == 0xFFFFFF);  // an empty cell stays white
  CHECK(luminance(corner(0, 0)) < luminance(corner(0, 6)));  // 9/10 darker than 1/10
  CHECK(luminance(corner(6, 0)) < luminance(corner(6, 6)));  // 6/10 darker than 4/10
  CHECK(luminance(corner(0, 6)) < luminance(corner(0, 5)));  // 1/10 darker than 0
  // The class names widen the figure: the matrix starts right of the longest name.
  CHECK(cells[0].x > 80);
  CHECK(f.height() > cells[99].y + cells[99].size + 50);  // room for the rotated names below
  CHECK_THROWS_AS(draw_confusion_matrix({"bad", std::vector<std::int64_t>(99, 0), class_names()}), std::invalid_argument);
}

TEST_CASE("base64 and HTML escaping follow their standards", "[report]") {
  auto b64 = [](const std::string& s) { return base64_encode(std::vector<std::uint8_t>(s.begin(), s.end())); };
  CHECK(b64("") == "");
  CHECK(b64("f") == "Zg==");
  CHECK(b64("fo") == "Zm8=");
  CHECK(b64("foo") == "Zm9v");
  CHECK(b64("foobar") == "Zm9vYmFy");
  CHECK(base64_encode({0xFF, 0xFE, 0xFD}) == "//79");
  CHECK(html_escape("<a href=\"x\">T&C's</a>") == "&lt;a href=&quot;x&quot;&gt;T&amp;C&#39;s&lt;/a&gt;");
}

TEST_CASE("the page embeds every figure as a data URI and counts them once loaded", "[report]") {
  ReportDocument doc;
  doc.title = "t <1>";
  Figure a(10, 10), b(20, 10);
  doc.figures.push_back({"fig1", "Fig. 1: a", "first", a.png(), {}});
  doc.figures.push_back({"fig2", "Fig. 2: b", "second", b.png(), {}});
  doc.missing.push_back("Fig. 3: needs x");
  const std::string html = render_report_html(doc);
  std::size_t imgs = 0;
  for (std::size_t at = html.find("<img "); at != std::string::npos; at = html.find("<img ", at + 1)) ++imgs;
  CHECK(imgs == 2);
  CHECK(html.find("data:image/png;base64," + base64_encode(a.png())) != std::string::npos);
  CHECK(html.find("data:image/png;base64," + base64_encode(b.png())) != std::string::npos);
  CHECK(html.find("figures-loaded") != std::string::npos);
  CHECK(html.find("id=\"figures-status\"") != std::string::npos);
  CHECK(html.find("<title>t &lt;1&gt;</title>") != std::string::npos);
  CHECK(html.find("Fig. 3: needs x") != std::string::npos);
  CHECK(html.find("http") == std::string::npos);  // nothing from the network
}

TEST_CASE("the results table and JSON carry the paper's numbers beside the runs'", "[report]") {
  CHECK(paper_figures("ae256").val_loss == 0.0547);
  CHECK(paper_figures("ae256").t10k_mae == 0.0548);
  CHECK(paper_figures("c256").t10k_accuracy == 0.9054);
  CHECK(paper_figures("c64-frozen").val_accuracy_best == 0.8021);
  CHECK(paper_figures("ae64-dropout").note == "62 epochs");
  CHECK(std::isnan(paper_figures("c256-improved").t10k_accuracy));

  auto runs = all_faithful(3);
  runs[2].wall_seconds = 12.34;
  const RunScale scale = scale_of(3);
  const std::string text = results_text(runs, scale);
  for (const char* s : {"0.0547", "0.0548", "0.9054", "0.8479", "0.7891", "0.8946 (0.9058)", "0.0545", "12.3"})
    CHECK(text.find(s) != std::string::npos);
  const std::string html = results_html(runs, scale);
  CHECK(html.find("<td>0.9054</td>") != std::string::npos);

  const auto targets = check_targets(runs, scale);
  const nlohmann::json j = results_json(runs, scale, targets);
  REQUIRE(j["runs"].size() == 9);
  CHECK(j["runs"][2]["name"] == "ae256");
  CHECK(j["runs"][2]["paper"]["val_loss"] == 0.0547);
  CHECK(j["runs"][2]["final"]["val_loss"] == 0.0545);
  CHECK(j["runs"][2]["history"].size() == 3);
  CHECK(j["runs"][3]["paper"]["val_loss"].is_null());  // NaN: the paper gives no MSE figure
  CHECK(j["runs"][6]["final_weights"]["t10k"]["accuracy"] == 0.906);
  CHECK(j["targets"].size() == targets.size());
  CHECK(j["scale"]["epochs"] == 3);
}

TEST_CASE("targets pass or fail on either side of their thresholds at 100 epochs", "[report]") {
  const RunScale full = scale_of(100);
  auto runs = all_faithful(100);
  auto ts = check_targets(runs, full);
  CHECK(target(ts, "ae256-val-mae").status == TargetStatus::Pass);        // 0.0545 <= 0.0547
  CHECK(target(ts, "c256-t10k-accuracy").status == TargetStatus::Pass);   // 0.906 >= 0.905
  CHECK(target(ts, "order-latent").status == TargetStatus::Pass);         // 0.063 > 0.059 > 0.0545
  CHECK(target(ts, "order-frozen").status == TargetStatus::Pass);
  CHECK(target(ts, "order-dropout").status == TargetStatus::Pass);
  CHECK(target(ts, "improved-t10k-accuracy").status == TargetStatus::NotApplicable);  // not run

  runs[2] = fake_run("ae256", false, 100, 0.0549);   // above 0.0547
  runs[6] = fake_run("c256", true, 100, 0, 0.904);   // below 0.905
  runs[4] = fake_run("ae64-dropout", false, 100, 0.06);  // dropout better than 0.063
  runs[8] = fake_run("c256-frozen", true, 100, 0, 0.91);  // frozen above scratch
  ts = check_targets(runs, full);
  CHECK(target(ts, "ae256-val-mae").status == TargetStatus::Fail);
  CHECK(target(ts, "c256-t10k-accuracy").status == TargetStatus::Fail);
  CHECK(target(ts, "order-dropout").status == TargetStatus::Fail);
  CHECK(target(ts, "order-frozen").status == TargetStatus::Fail);
  CHECK(target(ts, "order-latent").status == TargetStatus::Pass);  // 0.063 > 0.059 > 0.0549

  runs[1] = fake_run("ae128", false, 100, 0.050);  // AE(128) better than AE(256)
  CHECK(target(check_targets(runs, full), "order-latent").status == TargetStatus::Fail);

  runs.push_back(fake_run("c256-improved", true, 100, 0, 0.931));
  CHECK(target(check_targets(runs, full), "improved-t10k-accuracy").status == TargetStatus::Pass);
  runs.back() = fake_run("c256-improved", true, 100, 0, 0.929);
  CHECK(target(check_targets(runs, full), "improved-t10k-accuracy").status == TargetStatus::Fail);
}

TEST_CASE("targets are n/a, with what the short run shows, below 100 full epochs", "[report]") {
  const auto runs = all_faithful(2);
  const auto ts = check_targets(runs, scale_of(2));
  for (const TargetCheck& t : ts) CHECK(t.status == TargetStatus::NotApplicable);
  CHECK(target(ts, "ae256-val-mae").detail.find("n/a at 2 epochs") != std::string::npos);
  CHECK(target(ts, "ae256-val-mae").detail.find("0.0545") != std::string::npos);
  CHECK(target(ts, "order-latent").detail.find("holds so far") != std::string::npos);
  // 100 epochs cut short with --max-steps-per-epoch are not the paper's 100 epochs either
  const auto cut = check_targets(all_faithful(100), scale_of(100, /*full=*/false));
  CHECK(target(cut, "ae256-val-mae").status == TargetStatus::NotApplicable);
  CHECK(target(cut, "ae256-val-mae").detail.find("shortened") != std::string::npos);
  // a failed run is not judged
  auto failed = all_faithful(100);
  failed[2].status = "failed: out of memory";
  CHECK(target(check_targets(failed, scale_of(100)), "ae256-val-mae").status == TargetStatus::NotApplicable);
}

TEST_CASE("the H100 wall-time target is judged only for the full reproduction on an H100", "[report]") {
  const auto runs = all_faithful(100);
  const std::string h100 = "cuda:NVIDIA H100 80GB HBM3";
  CHECK(target(check_targets(runs, scale_of(100, true, h100, 55)), "wall-h100").status == TargetStatus::Pass);
  CHECK(target(check_targets(runs, scale_of(100, true, h100, 61)), "wall-h100").status == TargetStatus::Fail);
  CHECK(target(check_targets(runs, scale_of(100, true, "cpu", 30)), "wall-h100").status == TargetStatus::NotApplicable);
  auto eight = runs;
  eight.pop_back();
  CHECK(target(check_targets(eight, scale_of(100, true, h100, 30)), "wall-h100").status == TargetStatus::NotApplicable);
}

TEST_CASE("Fig. 8 shows the paper's epochs, or evenly spaced ones of a shorter run", "[report]") {
  CHECK(snapshot_epochs(100) == std::vector<int>{1, 20, 40, 60, 80, 100});
  CHECK(snapshot_epochs(10) == std::vector<int>{1, 2, 4, 6, 8, 10});
  CHECK(snapshot_epochs(2) == std::vector<int>{1, 2});
  CHECK(snapshot_epochs(1) == std::vector<int>{1});
  CHECK(snapshot_epochs(0).empty());
}

TEST_CASE("the browser check passes a report whose figures load and fails one with a broken figure", "[report][browser]") {
  const std::string dir = tmp_dir("browser-check");
  const std::string script = std::string(FMNIST_SOURCE_DIR) + "/tools/browser_check.sh";
  ReportDocument doc;
  doc.title = "browser check";
  LinePlot p;
  p.title = "a plot";
  p.series.push_back({"a", palette(0), false, {1, 2}, {1, 2}});
  doc.figures.push_back({"fig1", "Fig. 1: plot", "", draw_line_plot(p).png(), {}});
  doc.figures.push_back({"fig2", "Fig. 2: blank", "", Figure(40, 30).png(), {}});
  auto check = [&](const std::string& name, const ReportDocument& d) {
    const std::string html = dir + "/" + name + ".html";
    std::ofstream(html) << render_report_html(d);
    const std::string command = "bash '" + script + "' '" + html + "' --min-figures 2 --screenshot '" + dir + "/" +
                                name + ".png' > '" + dir + "/" + name + ".log' 2>&1";
    return std::system(command.c_str());
  };
  CHECK(check("good", doc) == 0);
  CHECK(std::filesystem::file_size(dir + "/good.png") > 1000);
  ReportDocument broken = doc;
  broken.figures[1].png.resize(broken.figures[1].png.size() / 2);  // a truncated PNG does not decode
  CHECK(check("broken", broken) != 0);
  ReportDocument one = doc;
  one.figures.pop_back();
  CHECK(check("too-few", one) != 0);  // fewer figures than --min-figures
}
