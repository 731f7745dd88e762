// `fmnist reproduce` on the GPU, shortened: the runs that start together warm up and meet at the
// start line (host/reproduce/start_line.h), keep every CUDA graph capture and finish, and give the
// bits they give one after another. On the real data (the test data folder, as the CLI tests).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gpu_test_support.h"
#include "host/reproduce/reproduce.h"

using namespace fmnist;
using namespace fmnist::gputest;

namespace {

std::string out_dir_for(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("fmnist-gpu-reproduce-" + std::to_string(::getpid()) + "-" + name)).string();
}

// blocker: a run whose directory is taken by a file (it fails before its warm-up), or empty.
reproduce::ReproduceSummary tiny_reproduction(int jobs, const std::string& name, std::string& log_text,
                                              const std::string& blocker = "") {
  reproduce::ReproduceOptions o;
  o.plan.epochs = 2;
  o.plan.max_steps_per_epoch = 3;
  o.plan.seed = 7;
  o.plan.only = {"ae64", "c64"};
  o.device = "cuda";
  o.jobs = jobs;  // 0: both at once, as fmnist reproduce runs them on a GPU
  o.overwrite = true;
  o.out_dir = out_dir_for(name);
  std::filesystem::remove_all(o.out_dir);
  if (!blocker.empty()) {
    std::filesystem::create_directories(o.out_dir);
    std::ofstream(o.out_dir + "/" + blocker) << "not a run directory\n";
  }
  std::ostringstream log;
  reproduce::ReproduceSummary s = reproduce::reproduce(o, log);
  log_text = log.str();
  std::filesystem::remove_all(o.out_dir);
  return s;
}

}  // namespace

TEST_CASE("GPU reproduce: the runs that start together meet at the start line, keep their captures and bits",
          "[gpu][reproduce][threads]") {
  if (on_cpu_stand_in()) {
    // fmnist reproduce picks its backend itself (--device cuda): the stand-in cannot stand in.
    WARN("not checked on the CPU stand-in");
    return;
  }
  std::string together_log, alone_log;
  const reproduce::ReproduceSummary together = tiny_reproduction(0, "together", together_log);
  INFO(together_log);
  REQUIRE(together.all_ok);
  CHECK(together_log.find("the 2 runs that start at once warm up (load their kernels), then train together") !=
        std::string::npos);
  const reproduce::ReproduceSummary alone = tiny_reproduction(1, "alone", alone_log);
  INFO(alone_log);
  REQUIRE(alone.all_ok);
  CHECK(alone_log.find("start at once") == std::string::npos);  // one at a time: no start line
  REQUIRE(together.runs.size() == 2);
  REQUIRE(alone.runs.size() == 2);
  for (std::size_t i = 0; i < together.runs.size(); ++i) {
    const report::RunResult& t = together.runs[i];
    const report::RunResult& a = alone.runs[i];
    INFO(t.name);
    CHECK(t.graph_capture_failures == 0);
    CHECK(t.graphs_captured > 0);
    REQUIRE(t.history.size() == a.history.size());
    for (std::size_t e = 0; e < t.history.size(); ++e) {  // the warm-up and the wait change no bit
      CHECK(t.history[e].train_loss == a.history[e].train_loss);
      CHECK(t.history[e].val_loss == a.history[e].val_loss);
    }
    if (t.classifier) {
      CHECK(t.t10k_final.loss == a.t10k_final.loss);
      CHECK(t.t10k_final.accuracy == a.t10k_final.accuracy);
    } else {
      CHECK(t.t10k_final.mae == a.t10k_final.mae);
    }
  }
}

TEST_CASE("GPU reproduce: a run that fails before its warm-up holds up none that started with it",
          "[gpu][reproduce][threads]") {
  if (on_cpu_stand_in()) {
    WARN("not checked on the CPU stand-in");
    return;
  }
  std::string log_text;
  const reproduce::ReproduceSummary s = tiny_reproduction(0, "blocked", log_text, "ae64");
  INFO(log_text);
  REQUIRE(s.runs.size() == 2);
  CHECK_FALSE(s.all_ok);
  CHECK(s.runs[0].name == "ae64");
  CHECK(s.runs[0].status.rfind("failed: ", 0) == 0);
  CHECK(s.runs[1].name == "c64");
  CHECK(s.runs[1].status == "ok");
  CHECK(s.runs[1].history.size() == 2);  // it trained on past the start line
}
