// `fmnist reproduce`: the run plan (names, order, --only and its dependencies), the dependency
// scheduler (order, concurrency, failures), the improved recipe's augmentation and learning-rate
// schedule (also inside train()), and a tiny end-to-end reproduction on the real data.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "host/dataset.h"
#include "host/idx.h"
#include "host/report/report.h"
#include "host/reference/cpu_ops.h"
#include "host/reproduce/plan.h"
#include "host/reproduce/reproduce.h"
#include "host/reproduce/start_line.h"
#include "host/safetensors.h"
#include "host/trainer.h"
#include "models/rng.h"
#include "real_data.h"

using namespace fmnist;
using namespace fmnist::reproduce;

using fmnist::testing::real_data;

namespace {

std::vector<std::string> names(const std::vector<PlannedRun>& runs) {
  std::vector<std::string> out;
  for (const PlannedRun& r : runs) out.push_back(r.name);
  return out;
}

std::vector<std::string> plan_names(Recipe recipe, std::vector<std::string> only = {}) {
  PlanOptions o;
  o.recipe = recipe;
  o.only = std::move(only);
  return names(make_plan(o));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string fresh_dir(const std::string& name) {
  const std::string dir = std::string(FMNIST_TEST_TMP_DIR) + "/" + name;
  std::filesystem::remove_all(dir);
  return dir;
}

// 784 pixels with a distinct value at each position (1..255 cycling; never 0).
std::vector<std::uint8_t> pattern_image(int salt = 0) {
  std::vector<std::uint8_t> img(784);
  for (int i = 0; i < 784; ++i) img[i] = static_cast<std::uint8_t>(1 + (i * 7 + salt) % 255);
  return img;
}

}  // namespace

TEST_CASE("every run of the paper is planned, named and configured as FACTS.md says", "[reproduce]") {
  PlanOptions o;
  o.epochs = 7;
  o.max_steps_per_epoch = 3;
  o.seed = 42;
  const auto runs = all_runs(o);
  CHECK(names(runs) == std::vector<std::string>{"ae64", "ae128", "ae256", "ae64-mse", "ae64-dropout", "c64", "c256",
                                                "c64-frozen", "c256-frozen", "c256-improved"});
  for (const PlannedRun& r : runs) {
    CHECK(r.config.epochs == 7);
    CHECK(r.config.max_steps_per_epoch == 3);
    CHECK(r.config.seed == 42);
    CHECK(r.config.validation_count == 9900);
    CHECK(r.config.batch == 100);
    CHECK(r.config.out_dir.empty());
  }
  auto find = [&](const std::string& n) {
    for (const PlannedRun& r : runs)
      if (r.name == n) return r;
    FAIL("no run " << n);
    return runs.front();
  };
  CHECK(find("ae128").config.model.kind == ModelKind::Autoencoder);
  CHECK(find("ae128").config.model.latent == 128);
  CHECK(find("ae64").config.model.ae_loss == PointLoss::L1);
  CHECK(find("ae64-mse").config.model.ae_loss == PointLoss::MSE);
  CHECK(find("ae64-dropout").config.model.dropout == 0.2f);
  CHECK(find("c256").config.model.kind == ModelKind::Classifier);
  CHECK(find("c256").config.model.head == ClassifierHead::Sigmoid);
  CHECK(find("c256").config.adam.lr == 1e-3);
  CHECK(find("c256").config.lr_schedule == LrSchedule::Constant);
  CHECK_FALSE(find("c256").config.augment);
  CHECK_FALSE(find("c256").config.model.freeze_encoder);
  CHECK(find("c64-frozen").config.model.freeze_encoder);
  CHECK(find("c64-frozen").encoder_from == "ae64");
  CHECK(find("c256-frozen").depends_on == std::vector<std::string>{"ae256"});
  const PlannedRun improved = find("c256-improved");
  CHECK(improved.recipe == "improved");
  CHECK(improved.config.model.latent == 256);
  CHECK(improved.config.model.head == ClassifierHead::Logits);
  CHECK(improved.config.lr_schedule == LrSchedule::WarmupCosine);
  CHECK(improved.config.augment);
  CHECK(improved.config.augment_max_shift == 2);
  CHECK(improved.config.augment_flip);
  for (const PlannedRun& r : runs) CHECK(r.recipe == (r.name == "c256-improved" ? "improved" : "faithful"));
}

TEST_CASE("the recipe and --only options select runs, pulling in a frozen classifier's AE", "[reproduce]") {
  CHECK(plan_names(Recipe::Faithful).size() == 9);
  CHECK(plan_names(Recipe::Improved) == std::vector<std::string>{"c256-improved"});
  CHECK(plan_names(Recipe::Both).size() == 10);
  CHECK(plan_names(Recipe::Faithful, {"c256-frozen"}) == std::vector<std::string>{"ae256", "c256-frozen"});
  CHECK(plan_names(Recipe::Faithful, {"c64-frozen", "ae128"}) == std::vector<std::string>{"ae64", "ae128", "c64-frozen"});
  CHECK(plan_names(Recipe::Faithful, {"c256-improved", "c64"}) == std::vector<std::string>{"c64", "c256-improved"});
  CHECK(plan_names(Recipe::Faithful, {"ae64", "ae64"}) == std::vector<std::string>{"ae64"});
  CHECK_THROWS_WITH(plan_names(Recipe::Faithful, {"ae32"}), Catch::Contains("ae32"));
  CHECK(split_names(" ae64 , c256-frozen,,") == std::vector<std::string>{"ae64", "c256-frozen"});
  CHECK(split_names("").empty());
  CHECK(parse_recipe("both") == Recipe::Both);
  CHECK_THROWS_AS(parse_recipe("fast"), std::invalid_argument);
}

TEST_CASE("one worker runs the tasks in index order, each after its dependencies", "[reproduce]") {
  std::vector<int> order;
  // task 0 waits for 2: it starts after 1 and 2 although it has the lowest index
  const auto outcomes = run_with_dependencies({{2}, {}, {}, {0}}, 1, [&](int i) { order.push_back(i); });
  CHECK(order == std::vector<int>{1, 2, 0, 3});
  for (const TaskOutcome& o : outcomes) CHECK((o.ran && o.ok));
}

TEST_CASE("several workers run independent tasks at the same time and respect dependencies", "[reproduce]") {
  std::atomic<int> running{0}, most{0};
  std::mutex m;
  std::vector<int> finished;
  bool dependency_first = false;
  const auto outcomes = run_with_dependencies({{}, {}, {}, {0}}, 3, [&](int i) {
    const int now = ++running;
    int prev = most.load();
    while (now > prev && !most.compare_exchange_weak(prev, now)) {}
    if (i == 3) {
      std::lock_guard<std::mutex> lock(m);
      dependency_first = std::find(finished.begin(), finished.end(), 0) != finished.end();
    }
    // Hold on until another task runs beside this one (or 2 s pass), so overlap is observed.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (most.load() < 2 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    --running;
    std::lock_guard<std::mutex> lock(m);
    finished.push_back(i);
  });
  CHECK(most.load() >= 2);
  CHECK(dependency_first);
  CHECK(finished.size() == 4);
  for (const TaskOutcome& o : outcomes) CHECK(o.ok);
}

TEST_CASE("a failing task skips its dependents, not the others", "[reproduce]") {
  for (int workers : {1, 3}) {
    std::atomic<int> ran{0};
    const auto outcomes = run_with_dependencies({{}, {0}, {1}, {}}, workers, [&](int i) {
      ++ran;
      if (i == 0) throw std::runtime_error("boom");
    });
    CHECK(ran.load() == 2);  // 0 and 3
    CHECK((outcomes[0].ran && !outcomes[0].ok));
    CHECK(outcomes[0].error == "boom");
    CHECK_FALSE(outcomes[1].ran);
    CHECK_FALSE(outcomes[2].ran);
    CHECK(outcomes[3].ok);
  }
  CHECK_THROWS_AS(run_with_dependencies({{1}, {0}}, 1, [](int) {}), std::invalid_argument);
  CHECK_THROWS_AS(run_with_dependencies({{5}}, 1, [](int) {}), std::invalid_argument);
  CHECK(run_with_dependencies({}, 4, [](int) {}).empty());
}

TEST_CASE("start_together counts the tasks the scheduler starts at once", "[reproduce]") {
  const std::vector<std::vector<int>> faithful = {{}, {}, {}, {}, {}, {}, {}, {0}, {2}};  // 7 + 2 frozen
  CHECK(start_together(faithful, 9) == 7);
  CHECK(start_together(faithful, 3) == 3);
  CHECK(start_together(faithful, 0) == 1);
  CHECK(start_together({}, 4) == 0);
}

TEST_CASE("the start line holds every run until the last one arrives or leaves", "[reproduce]") {
  constexpr int kRuns = 4;
  StartLine line(kRuns);
  std::atomic<int> arrived{0}, passed{0};
  std::vector<std::thread> runs;
  for (int i = 0; i < kRuns - 1; ++i)
    runs.emplace_back([&] {
      ++arrived;
      line.arrive_and_wait();
      ++passed;
    });
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (arrived.load() < kRuns - 1 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // time to pass, were the line open
  CHECK(passed.load() == 0);
  CHECK_FALSE(line.open());
  {
    StartLinePlace failed_early(&line);  // a run that ends before it arrives: leaves the line
  }
  for (std::thread& t : runs) t.join();
  CHECK(passed.load() == kRuns - 1);
  CHECK(line.open());
  CHECK(line.waited() == kRuns - 1);
  // A run that comes later (or a second arrival of a place) passes at once.
  line.arrive_and_wait();
  StartLinePlace late(&line);
  late.arrive();
  late.arrive();
  CHECK(line.waited() == kRuns - 1);
  StartLinePlace nowhere(nullptr);  // no line: arriving does nothing
  nowhere.arrive();
}

TEST_CASE("shift_flip_image moves pixels with zero fill and mirrors left-right", "[reproduce]") {
  std::vector<std::uint8_t> in(784, 0), out(784);
  in[5 * 28 + 3] = 200;  // (y=5, x=3)
  shift_flip_image(in.data(), out.data(), 2, -1, false);
  CHECK(out[4 * 28 + 5] == 200);
  CHECK(std::accumulate(out.begin(), out.end(), 0) == 200);
  shift_flip_image(in.data(), out.data(), 0, 0, true);
  CHECK(out[5 * 28 + 24] == 200);
  shift_flip_image(in.data(), out.data(), -4, 0, false);  // shifted out of the image: all zero
  CHECK(std::accumulate(out.begin(), out.end(), 0) == 0);
  const auto p = pattern_image();
  shift_flip_image(p.data(), out.data(), 0, 0, false);
  CHECK(out == p);
  shift_flip_image(p.data(), out.data(), 1, 0, false);
  for (int y = 0; y < 28; ++y) CHECK(out[y * 28] == 0);  // the column shifted in is zero
  CHECK(out[3 * 28 + 10] == p[3 * 28 + 9]);
}

TEST_CASE("augmentation is deterministic per (seed, epoch, image) and flips keep pixel sums", "[reproduce]") {
  const int n = 64;
  std::vector<std::uint8_t> batch;
  std::vector<std::int32_t> indices;
  for (int i = 0; i < n; ++i) {
    const auto img = pattern_image(i);
    batch.insert(batch.end(), img.begin(), img.end());
    indices.push_back(1000 + 17 * i);
  }
  auto augmented = [&](std::uint64_t seed, int epoch, int shift, bool flip) {
    std::vector<std::uint8_t> b = batch;
    augment_images(b.data(), n, indices.data(), seed, epoch, shift, flip);
    return b;
  };
  const auto a = augmented(9, 3, 2, true);
  CHECK(a == augmented(9, 3, 2, true));
  CHECK(a != augmented(9, 4, 2, true));
  CHECK(a != augmented(10, 3, 2, true));
  CHECK(a != batch);
  CHECK(augmented(9, 3, 0, false) == batch);  // nothing to do

  // Flips alone move pixels within their row: every image keeps its pixel sum; about half flip.
  const auto flipped = augmented(9, 3, 0, true);
  int changed = 0;
  for (int i = 0; i < n; ++i) {
    const auto* before = batch.data() + i * 784;
    const auto* after = flipped.data() + i * 784;
    CHECK(std::accumulate(before, before + 784, 0) == std::accumulate(after, after + 784, 0));
    changed += !std::equal(before, before + 784, after);
  }
  CHECK(changed > n / 4);
  CHECK(changed < 3 * n / 4);

  // An image's augmentation depends on its index, not its place in the batch.
  std::vector<std::uint8_t> one(batch.begin() + 5 * 784, batch.begin() + 6 * 784);
  augment_images(one.data(), 1, &indices[5], 9, 3, 2, true);
  CHECK(std::equal(one.begin(), one.end(), a.begin() + 5 * 784));

  // Shifts cover -2..2 both ways: a single bright pixel lands on each of the 25 offsets.
  std::vector<std::uint8_t> dot(784, 0);
  dot[14 * 28 + 14] = 255;
  std::set<std::pair<int, int>> offsets;
  for (int idx = 0; idx < 400; ++idx) {
    std::vector<std::uint8_t> d = dot;
    augment_images(d.data(), 1, &idx, 1, 1, 2, false);
    const int at = static_cast<int>(std::max_element(d.begin(), d.end()) - d.begin());
    offsets.insert({at / 28 - 14, at % 28 - 14});
  }
  CHECK(offsets.size() == 25);
  CHECK_THROWS_AS(augmented(1, 1, 28, true), std::invalid_argument);
}

TEST_CASE("Random Erasing: one rectangle of random grey levels, with its probability, drawn after shifts and flips", "[reproduce]") {
  const int n = 400;
  std::vector<std::uint8_t> batch(static_cast<std::size_t>(n) * 784, 77);  // a flat grey image each
  std::vector<std::int32_t> indices(n);
  for (int i = 0; i < n; ++i) indices[i] = 3 * i;
  auto augmented = [&](int shift, bool flip, double erase) {
    std::vector<std::uint8_t> b = batch;
    augment_images(b.data(), n, indices.data(), 5, 2, shift, flip, erase);
    return b;
  };
  CHECK(augmented(0, true, 0.0) == batch);  // a flat image: flips change nothing, no erasing
  const auto all = augmented(0, true, 1.0);
  CHECK(all == augmented(0, true, 1.0));
  int erased = 0;
  for (int i = 0; i < n; ++i) {
    const auto* img = all.data() + static_cast<std::size_t>(i) * 784;
    int top = 28, bottom = -1, left = 28, right = -1, changed = 0;
    for (int p = 0; p < 784; ++p)
      if (img[p] != 77) {
        ++changed;
        top = std::min(top, p / 28), bottom = std::max(bottom, p / 28);
        left = std::min(left, p % 28), right = std::max(right, p % 28);
      }
    if (changed == 0) continue;  // at most a rare all-77 draw or 10 failed tries
    ++erased;
    // The changed pixels lie in one rectangle of 2-40% of the image (a random fill may keep 77).
    const int box = (bottom - top + 1) * (right - left + 1);
    CHECK(box <= static_cast<int>(0.4 * 784) + 28 + 1);
    CHECK(changed >= box / 2);
  }
  CHECK(erased > n * 9 / 10);  // p = 1: nearly every image (10 tries can all miss, rarely)
  const auto half = augmented(0, false, 0.5);
  int half_erased = 0;
  for (int i = 0; i < n; ++i)
    half_erased += !std::equal(half.begin() + i * 784, half.begin() + (i + 1) * 784, batch.begin());
  CHECK(half_erased > n * 35 / 100);
  CHECK(half_erased < n * 65 / 100);
  // Without erasing, a shifted and flipped batch is what it was before erasing existed.
  std::vector<std::uint8_t> pattern, with_zero_erase;
  for (int i = 0; i < 8; ++i) {
    const auto img = pattern_image(i);
    pattern.insert(pattern.end(), img.begin(), img.end());
  }
  with_zero_erase = pattern;
  augment_images(pattern.data(), 8, indices.data(), 5, 2, 2, true);
  augment_images(with_zero_erase.data(), 8, indices.data(), 5, 2, 2, true, 0.0);
  CHECK(pattern == with_zero_erase);
  CHECK_THROWS_AS(augmented(0, false, 1.5), std::invalid_argument);
}

TEST_CASE("the learning-rate schedule: constant, or linear warm-up then cosine", "[reproduce]") {
  TrainConfig c;
  c.adam.lr = 1e-3;
  CHECK(scheduled_lr(c, 1, 1000) == 1e-3);
  CHECK(scheduled_lr(c, 999, 1000) == 1e-3);
  c.lr_schedule = LrSchedule::WarmupCosine;
  c.lr_warmup_fraction = 0.05;  // 50 of 1,000 steps
  c.lr_final_fraction = 0.01;
  CHECK(scheduled_lr(c, 1, 1000) == Approx(1e-3 / 50));
  CHECK(scheduled_lr(c, 25, 1000) == Approx(0.5e-3));
  CHECK(scheduled_lr(c, 50, 1000) == Approx(1e-3));
  CHECK(scheduled_lr(c, 525, 1000) == Approx((1e-3 + 1e-5) / 2));  // half way down the cosine
  CHECK(scheduled_lr(c, 1000, 1000) == Approx(1e-5));
  CHECK(scheduled_lr(c, 5000, 1000) == Approx(1e-5));
  double previous = scheduled_lr(c, 50, 1000);
  for (std::uint64_t s = 51; s <= 1000; ++s) {
    const double lr = scheduled_lr(c, s, 1000);
    REQUIRE(lr <= previous);
    previous = lr;
  }
  c.lr_warmup_fraction = 0;
  CHECK(scheduled_lr(c, 1, 1000) == Approx(1e-3).epsilon(1e-4));
}

TEST_CASE("train() applies augmentation and the schedule, repeatably, and records them", "[reproduce]") {
  TrainConfig c;
  c.model.kind = ModelKind::Classifier;
  c.model.latent = 64;
  c.model.head = ClassifierHead::Logits;
  c.epochs = 2;
  c.max_steps_per_epoch = 4;
  c.validation_count = 1000;
  c.seed = 3;
  auto losses = [&](const TrainConfig& config) {
    auto ops = make_cpu_ops();
    std::vector<float> out;
    TrainCallbacks cb;
    cb.on_step = [&](std::uint64_t, float loss) { out.push_back(loss); };
    std::ostringstream log;
    train(config, real_data(), *ops, log, cb);
    return out;
  };
  const auto plain = losses(c);
  TrainConfig aug = c;
  aug.augment = true;
  const auto a1 = losses(aug);
  CHECK(a1 == losses(aug));
  CHECK(a1.front() != plain.front());  // the first batch is augmented
  TrainConfig sched = c;
  sched.lr_schedule = LrSchedule::WarmupCosine;
  sched.lr_warmup_fraction = 0.5;
  const auto s1 = losses(sched);
  CHECK(s1.front() == plain.front());  // the first loss comes before any step
  CHECK(s1[1] != plain[1]);            // a smaller first step changes the second

  aug.out_dir = fresh_dir("train-augment");
  aug.lr_schedule = LrSchedule::WarmupCosine;
  auto ops = make_cpu_ops();
  std::ostringstream log;
  train(aug, real_data(), *ops, log);
  std::ifstream f(aug.out_dir + "/config.json");
  const auto j = nlohmann::json::parse(f);
  CHECK(j["augment"] == true);
  CHECK(j["lr_schedule"] == "warmup_cosine");
}

TEST_CASE("a tiny reproduction writes its settings, results, figures and report", "[reproduce]") {
  ReproduceOptions o;
  o.plan.epochs = 2;
  o.plan.max_steps_per_epoch = 3;
  o.plan.seed = 7;
  o.plan.only = {"c64-frozen", "c64"};
  o.device = "cpu";
  o.jobs = 2;  // two CPU workers: ae64 and c64 side by side, then c64-frozen (it needs ae64)
  o.out_dir = fresh_dir("reproduce-tiny");
  std::ostringstream log;
  const ReproduceSummary s = reproduce::reproduce(o, log);
  INFO(log.str());
  REQUIRE(s.runs.size() == 3);
  CHECK(s.all_ok);
  CHECK(s.runs[0].name == "ae64");
  CHECK(s.runs[1].name == "c64");
  CHECK(s.runs[2].name == "c64-frozen");
  CHECK(s.runs[0].history.size() == 2);
  CHECK(s.runs[0].snapshots.size() == 2);  // after epochs 1 and 2
  CHECK(s.runs[0].reconstructions.size() == 10);
  CHECK(s.runs[0].t10k_final.images == 10000);
  CHECK(s.runs[0].test_final.images == 100);
  CHECK(s.runs[2].test_predictions.size() == 100);
  CHECK(s.runs[2].t10k_final.confusion.size() == 100);
  CHECK(s.runs[2].wall_seconds > 0);
  for (const auto& r : s.runs) CHECK(r.history.size() == 2);

  // The frozen classifier's encoder is bitwise the AE's final encoder.
  const SafetensorsFile ae = read_safetensors(o.out_dir + "/ae64/last.safetensors");
  const SafetensorsFile c = read_safetensors(o.out_dir + "/c64-frozen/last.safetensors");
  for (const char* name : {"encoder.0.weight", "encoder.3.bias", "encoder.7.weight"})
    CHECK(ae.find(name)->data == c.find(name)->data);

  const std::vector<std::string> drawn = {"fig7", "fig8", "fig9", "fig10", "fig11", "fig12", "fig13", "fig13b"};
  for (const char* f : {"reproduce.json", "results.json", "figures.json", "report.html"})
    CHECK(std::filesystem::exists(o.out_dir + "/" + f));
  const std::string html = read_file(o.out_dir + "/report.html");
  CHECK(html.find("Fig. 4: needs ae64 and ae64-mse") != std::string::npos);  // listed as missing
  if (report::kCanDrawFigures) {
    for (const std::string& f : drawn) CHECK(std::filesystem::exists(o.out_dir + "/figures/" + f + ".png"));
    CHECK(html.find("Not drawn") == std::string::npos);
  } else {  // no cairo: the tables, and in place of each figure a line saying how to draw it
    CHECK_FALSE(std::filesystem::exists(o.out_dir + "/figures"));
    CHECK(html.find("<img") == std::string::npos);
    for (const std::string& f : drawn) CHECK(html.find("<figure id=\"" + f + "\">") != std::string::npos);
    std::size_t lines = 0;
    for (auto at = html.find("Not drawn: this build of fmnist has no cairo"); at != std::string::npos;
         at = html.find("Not drawn: this build of fmnist has no cairo", at + 1))
      ++lines;
    CHECK(lines == drawn.size());
    CHECK(html.find("`fmnist report " + o.out_dir + "`") != std::string::npos);
    CHECK(html.find("<td>0.8982</td>") != std::string::npos);  // the tables are there (paper's C(64) t10k)
  }
  CHECK_FALSE(std::filesystem::exists(o.out_dir + "/figures/fig4.png"));  // needs ae64-mse
  std::ifstream settings_file(o.out_dir + "/reproduce.json");
  const auto settings = nlohmann::json::parse(settings_file);
  CHECK(settings["seed"] == 7);
  CHECK(settings["epochs"] == 2);
  CHECK(settings["splits"]["test_indices"].size() == 100);
  CHECK(settings["runs"][1]["encoder_from"].is_null());
  CHECK(settings["runs"][2]["encoder_from"] == "ae64/last.safetensors");
  std::ifstream results_file(o.out_dir + "/results.json");
  const auto results = nlohmann::json::parse(results_file);
  CHECK(results["runs"].size() == 3);
  CHECK(results["runs"][2]["paper"]["t10k_accuracy"] == 0.7891);

  // The same OUT again is refused; --overwrite allows it.
  CHECK_THROWS_AS(reproduce::reproduce(o, log), std::invalid_argument);

  // What `fmnist report OUT` does: the report drawn again from the files alone (reproduce.json,
  // results.json, figures.json and the data) is byte for byte the one reproduce wrote, figures too.
  std::map<std::string, std::string> before;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(o.out_dir))
    if (entry.path().extension() == ".png" || entry.path().filename() == "report.html")
      before[entry.path().string()] = read_file(entry.path().string());
  CHECK(before.size() == (report::kCanDrawFigures ? drawn.size() + 1 : 1));
  for (const auto& [path, bytes] : before) std::filesystem::remove(path);
  report::StoredReport stored = report::read_stored_report(o.out_dir);
  report::attach_data(stored, real_data(), default_data_dir());
  CHECK(report::write_report(o.out_dir, stored.inputs) == o.out_dir + "/report.html");
  for (const auto& [path, bytes] : before) {
    INFO(path);
    CHECK(read_file(path) == bytes);
  }
  // Another data set (labels that differ at the test indices) is refused.
  FashionMnist other = real_data();
  other.t10k.labels[stored.inputs.test_indices[0]] = (other.t10k.labels[stored.inputs.test_indices[0]] + 1) % 10;
  CHECK_THROWS_AS(report::attach_data(stored, other, "elsewhere"), DataError);
}
