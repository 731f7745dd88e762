// The report's files read back, in every build (with or without cairo): results.json through
// results_from_json (the inverse of results_json), figures.json (the figures' material, grey
// levels that redraw identically), base64 both ways, and read_stored_report's one-line errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "host/report/figures.h"
#include "host/report/html.h"
#include "host/report/report.h"
#include "host/report/results.h"
#include "host/safetensors.h"

using namespace fmnist;
using namespace fmnist::report;

namespace {

// A run with every field results.json holds set to something distinct.
RunResult full_run(const std::string& name, bool classifier, int epochs) {
  RunResult r;
  r.name = name;
  r.title = "T(" + name + ")";
  r.recipe = name == "c256-improved" ? "improved" : "faithful";
  r.classifier = classifier;
  r.loss_name = classifier ? "cross-entropy" : "MAE";
  r.backend = "cuda:NVIDIA H100 80GB HBM3";
  r.wall_seconds = 1.0 / 3.0;
  for (int e = 1; e <= epochs; ++e) {
    EpochMetrics m;
    m.epoch = e;
    m.steps = 600ull * e;
    m.train_loss = 0.1 / (e + 0.7);
    m.val_loss = 0.11 / (e + 0.3);
    m.val_accuracy = classifier ? 0.8 + 0.01 * e + 1e-13 : kNaN;
    m.seconds = 0.123456789 * e;
    m.images_per_second = 60000 / m.seconds;
    r.history.push_back(m);
  }
  r.best_epoch = epochs > 1 ? epochs - 1 : epochs;
  auto split = [&](int images, double v) {
    SplitEval s;
    s.images = images;
    if (classifier) {
      s.loss = 1.5 + v;
      s.accuracy = 0.9 - v;
      s.confusion.assign(100, 0);
      for (int i = 0; i < 10; ++i) s.confusion[i * 11] = images / 10;
    } else {
      s.mae = 0.06 + v;
    }
    return s;
  };
  r.test_final = split(100, 0.001);
  r.t10k_final = split(10000, 0.002);
  r.test_best = split(100, 0.003);
  r.t10k_best = split(10000, 0.004);
  return r;
}

void check_same(const RunResult& a, const RunResult& b) {
  auto same = [](double x, double y) { return (std::isnan(x) && std::isnan(y)) || x == y; };
  CHECK(a.name == b.name);
  CHECK(a.title == b.title);
  CHECK(a.recipe == b.recipe);
  CHECK(a.classifier == b.classifier);
  CHECK(a.loss_name == b.loss_name);
  CHECK(a.status == b.status);
  CHECK(a.best_epoch == b.best_epoch);
  CHECK(a.wall_seconds == b.wall_seconds);
  CHECK(a.backend == b.backend);
  CHECK(a.graphs_captured == b.graphs_captured);
  CHECK(a.graph_capture_failures == b.graph_capture_failures);
  REQUIRE(a.history.size() == b.history.size());
  for (std::size_t i = 0; i < a.history.size(); ++i) {
    CHECK(a.history[i].epoch == b.history[i].epoch);
    CHECK(a.history[i].steps == b.history[i].steps);
    CHECK(same(a.history[i].train_loss, b.history[i].train_loss));
    CHECK(same(a.history[i].val_loss, b.history[i].val_loss));
    CHECK(same(a.history[i].val_accuracy, b.history[i].val_accuracy));
    CHECK(same(a.history[i].seconds, b.history[i].seconds));
    CHECK(same(a.history[i].images_per_second, b.history[i].images_per_second));
  }
  for (auto [x, y] : {std::pair{&a.test_final, &b.test_final}, {&a.t10k_final, &b.t10k_final},
                      {&a.test_best, &b.test_best}, {&a.t10k_best, &b.t10k_best}}) {
    CHECK(x->images == y->images);
    CHECK(same(x->mae, y->mae));
    CHECK(same(x->loss, y->loss));
    CHECK(same(x->accuracy, y->accuracy));
    CHECK(x->confusion == y->confusion);
  }
}

std::string fresh_dir(const std::string& name) {
  const std::string dir = std::string(FMNIST_TEST_TMP_DIR) + "/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::trunc) << text; }

}  // namespace

TEST_CASE("results.json reads back into the same runs, scale and targets (results_from_json)", "[report][files]") {
  std::vector<RunResult> runs = {full_run("ae64", false, 3), full_run("c256", true, 3), full_run("c64-frozen", true, 0)};
  runs[0].history[1].train_loss = kNaN;  // a NaN survives as null
  runs[2].status = "skipped: ae64 did not finish";
  runs[2].test_final = runs[2].t10k_final = runs[2].test_best = runs[2].t10k_best = SplitEval{};
  runs[0].graphs_captured = 4;  // as on a GPU: one capture failed and was tried again
  runs[0].graph_capture_failures = 1;
  runs[1].graphs_captured = 3;
  RunScale scale;
  scale.epochs = 3;
  scale.full_epochs = false;
  scale.backend = "cpu";
  scale.total_wall_seconds = 12.0 / 7.0;
  const auto targets = check_targets(runs, scale);
  const nlohmann::json j = results_json(runs, scale, targets);

  // Through text, as the file goes.
  const StoredResults back = results_from_json(nlohmann::json::parse(j.dump(2)));
  REQUIRE(back.runs.size() == runs.size());
  for (std::size_t i = 0; i < runs.size(); ++i) check_same(runs[i], back.runs[i]);
  CHECK(std::isnan(back.runs[0].history[1].train_loss));
  CHECK(back.scale.epochs == 3);
  CHECK_FALSE(back.scale.full_epochs);
  CHECK(back.scale.backend == "cpu");
  CHECK(back.scale.total_wall_seconds == scale.total_wall_seconds);
  REQUIRE(back.targets.size() == targets.size());
  for (std::size_t i = 0; i < targets.size(); ++i) {
    CHECK(back.targets[i].id == targets[i].id);
    CHECK(back.targets[i].description == targets[i].description);
    CHECK(back.targets[i].status == targets[i].status);
    CHECK(back.targets[i].detail == targets[i].detail);
  }
  CHECK_THAT(results_text(runs, scale),
             Catch::Contains("CUDA graphs: 7 kinds of step captured, 1 failed capture (those steps ran un-captured"));
  // And round again: the same JSON, and the same tables.
  CHECK(results_json(back.runs, back.scale, back.targets) == j);
  CHECK(results_text(back.runs, back.scale) == results_text(runs, scale));
  CHECK(results_html(back.runs, back.scale) == results_html(runs, scale));

  // What results_json would not write is refused, naming the key.
  nlohmann::json bad = j;
  bad["runs"][1]["kind"] = "gan";
  CHECK_THROWS_WITH(results_from_json(bad), Catch::Contains("runs[c256].kind") && Catch::Contains("gan"));
  bad = j;
  bad["runs"][0]["history"][0].erase("val_loss");
  CHECK_THROWS_WITH(results_from_json(bad), Catch::Contains("runs[ae64].history[0].val_loss: missing"));
  bad = j;
  bad["targets"][0]["status"] = "maybe";
  CHECK_THROWS_WITH(results_from_json(bad), Catch::Contains("targets[0].status"));
  bad = j;
  bad["runs"][1]["final_weights"]["t10k"]["confusion"] = {1, 2, 3};
  CHECK_THROWS_WITH(results_from_json(bad), Catch::Contains("confusion"));
  bad = j;
  bad["runs"][0]["graphs"]["failed_captures"] = -1;
  CHECK_THROWS_WITH(results_from_json(bad), Catch::Contains("runs[ae64].graphs"));
  bad = j;  // written by an fmnist that did not record the graphs: none
  bad["runs"][0].erase("graphs");
  CHECK(results_from_json(bad).runs[0].graph_capture_failures == 0);
  bad = j;
  bad["runs"][0]["epochs"] = 7;
  CHECK_THROWS_WITH(results_from_json(bad), Catch::Contains("runs[ae64].epochs"));
  CHECK_THROWS_AS(results_from_json(nlohmann::json::array()), std::invalid_argument);
}

TEST_CASE("grey levels redraw as themselves, and base64 decodes what it encodes", "[report][files]") {
  for (int g = 0; g < 256; ++g) {
    const std::uint8_t level = static_cast<std::uint8_t>(g);
    CHECK(grey_level(to_unit(std::vector<std::uint8_t>(784, level).data())[0]) == level);
  }
  CHECK(grey_level(-0.5f) == 0);
  CHECK(grey_level(2.0f) == 255);
  CHECK(grey_level(std::nanf("")) == 0);
  for (std::size_t n : {0, 1, 2, 3, 4, 5, 784}) {
    std::vector<std::uint8_t> bytes(n), back;
    for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<std::uint8_t>(i * 37 + 11);
    REQUIRE(base64_decode(base64_encode(bytes), back));
    CHECK(back == bytes);
  }
  std::vector<std::uint8_t> out;
  CHECK_FALSE(base64_decode("abc", out));    // not a multiple of 4
  CHECK_FALSE(base64_decode("ab=c", out));   // padding inside
  CHECK_FALSE(base64_decode("a*cd", out));   // not the alphabet
  CHECK_FALSE(base64_decode("YQ==YQ==", out));  // padding before the end
  CHECK(base64_decode("YQ==", out));
  CHECK(out == std::vector<std::uint8_t>{'a'});
}

TEST_CASE("figures.json keeps each run's figure material as the grey levels a figure paints", "[report][files]") {
  std::vector<RunResult> runs = {full_run("ae64", false, 2), full_run("c64", true, 2)};
  std::vector<float> image(784);
  for (int i = 0; i < 784; ++i) image[i] = (i % 300) / 299.0f - 0.1f;  // some below 0, some above 1
  image[5] = std::nanf("");
  runs[0].snapshots = {{1, image}, {2, std::vector<float>(784, 0.5f)}};
  runs[0].reconstructions = {image, image, image};
  runs[1].test_predictions = {3, 1, 9};
  const std::vector<std::int32_t> indices = {17, 4, 9999};
  const std::vector<int> labels = {3, 1, 8};
  const nlohmann::json j = nlohmann::json::parse(figures_json(runs, indices, labels).dump());

  std::vector<RunResult> back = {full_run("ae64", false, 2), full_run("c64", true, 2)};
  std::vector<std::int32_t> back_indices;
  std::vector<int> back_labels;
  figures_from_json(j, back, back_indices, back_labels);
  CHECK(back_indices == indices);
  CHECK(back_labels == labels);
  REQUIRE(back[0].snapshots.size() == 2);
  CHECK(back[0].snapshots[1].first == 2);
  REQUIRE(back[0].reconstructions.size() == 3);
  for (int i = 0; i < 784; ++i) CHECK(grey_level(back[0].reconstructions[2][i]) == grey_level(image[i]));
  CHECK(back[1].test_predictions == runs[1].test_predictions);
  CHECK(back[1].reconstructions.empty());
  CHECK(figures_json(back, back_indices, back_labels) == j);  // stable once in grey levels

  auto refused = [&](nlohmann::json bad, const std::string& what) {
    std::vector<RunResult> r = {full_run("ae64", false, 2), full_run("c64", true, 2)};
    std::vector<std::int32_t> i;
    std::vector<int> l;
    CHECK_THROWS_WITH(figures_from_json(bad, r, i, l), Catch::Contains(what));
  };
  nlohmann::json bad = j;
  bad["runs"]["ae64"]["reconstructions"][0] = base64_encode(std::vector<std::uint8_t>(783, 1));
  refused(bad, "runs.ae64.reconstructions[0]: 783 grey levels, not 784");
  bad = j;
  bad["runs"]["c64"]["test_predictions"][1] = 10;
  refused(bad, "runs.c64.test_predictions[1]: not a class 0..9");
  bad = j;
  bad["runs"]["c256"] = nlohmann::json::object();
  refused(bad, "runs.c256: no such run in results.json");
  bad = j;
  bad["runs"].erase("c64");
  refused(bad, "runs.c64: missing");
  bad = j;
  bad["test_indices"][0] = 10000;
  refused(bad, "test_indices[0]");
  bad = j;
  bad["format"] = "fmnist-figures/9";
  refused(bad, "fmnist-figures/9");
  // The file's own strings and keys are quoted in one line, control characters escaped (a
  // fuzzer's format string with a newline in it once split the message).
  bad = j;
  bad["format"] = std::string("fmnist\nfigures\t/\x01");
  refused(bad, "format: 'fmnist\\nfigures\\t/\\x01' is not fmnist-figures/1");
  bad = j;
  bad["runs"]["c2\r56"] = nlohmann::json::object();
  refused(bad, "runs.c2\\r56: no such run in results.json");
}

TEST_CASE("read_stored_report names the file and the problem in one line", "[report][files]") {
  const std::string dir = fresh_dir("stored-report");
  CHECK_THROWS_WITH(read_stored_report(dir + "/nowhere"), Catch::Contains("nowhere: no such directory"));
  CHECK_THROWS_AS(read_stored_report(dir + "/nowhere"), FormatError);
  CHECK_THROWS_WITH(read_stored_report(dir), Catch::Contains("reproduce.json: cannot open"));
  write_text(dir + "/reproduce.json", "{\"seed\": 1}");
  write_text(dir + "/results.json", "{\"scale\": ");
  CHECK_THROWS_WITH(read_stored_report(dir), Catch::Contains("results.json: not valid JSON"));
  const std::vector<RunResult> runs = {full_run("ae64", false, 1)};
  RunScale scale;
  write_text(dir + "/results.json", results_json(runs, scale, {}).dump());
  CHECK_THROWS_WITH(read_stored_report(dir), Catch::Contains("figures.json: cannot open"));
  write_text(dir + "/figures.json", "[]");
  CHECK_THROWS_WITH(read_stored_report(dir), Catch::Contains("figures.json: figures: not an object"));
  write_text(dir + "/figures.json", figures_json(runs, {5}, {2}).dump());
  const StoredReport s = read_stored_report(dir);
  CHECK(s.inputs.runs.size() == 1);
  CHECK(s.inputs.test_indices == std::vector<std::int32_t>{5});
  CHECK(s.test_labels == std::vector<int>{2});
  CHECK(s.inputs.settings["seed"] == 1);
  CHECK(s.inputs.data == nullptr);
}
