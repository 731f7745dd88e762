// Checkpoints and resume in-process (host/run_state.h): a run stopped mid-epoch resumes bitwise, a
// kill between a checkpoint's files is repaired on resume, per-epoch weights are pruned, a full disk
// keeps the previous checkpoint (also when the failing write runs beside the next epoch),
// checkpoints of another run are refused, config.json reads back, and the divergence guard names
// the epoch, step and tensor without touching the last checkpoint.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "host/backend_select.h"
#include "host/checkpoint.h"
#include "host/dataset.h"
#include "host/divergence_guard.h"
#include "host/reference/cpu_ops.h"
#include "host/run_state.h"
#include "host/safetensors.h"
#include "host/trainer.h"
#include "real_data.h"

namespace fs = std::filesystem;
using namespace fmnist;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

using fmnist::testing::real_data;

namespace {

// AE(16) with dropout (its masks must repeat too), 1,000 validation images: a short run, most of
// whose time is its validation.
TrainConfig tiny_run(const std::string& name, int epochs, int steps_per_epoch) {
  TrainConfig c;
  c.model.kind = ModelKind::Autoencoder;
  c.model.latent = 16;
  c.model.dropout = 0.2f;
  c.epochs = epochs;
  c.max_steps_per_epoch = steps_per_epoch;
  c.validation_count = 1000;
  c.seed = 11;
  c.checkpoint_every = 0;
  c.out_dir = std::string(FMNIST_TEST_TMP_DIR) + "/resume/" + name;
  fs::remove_all(c.out_dir);
  return c;
}

TrainResult run(const TrainConfig& c, const TrainCallbacks& callbacks = {}) {
  auto ops = make_cpu_ops();
  std::ostringstream log;
  return train(c, real_data(), *ops, log, callbacks);
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// metrics.csv without the timing columns (seconds, images_per_second).
std::vector<std::string> metric_rows(const std::string& dir) {
  std::vector<std::string> rows;
  std::ifstream in(dir + "/metrics.csv");
  for (std::string line; std::getline(in, line);) {
    std::size_t cut = 0;
    for (int commas = 0; commas < 5 && cut != std::string::npos; ++commas) cut = line.find(',', cut + 1);
    rows.push_back(line.substr(0, cut));
  }
  return rows;
}

std::size_t line_count(const std::string& path) {
  std::ifstream in(path);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

TrainConfig resumed(TrainConfig c) {
  c.resume_from = c.out_dir;
  return c;
}

}  // namespace

TEST_CASE("a run stopped mid-epoch by a signal resumes bitwise equal to an uninterrupted one", "[resume]") {
  const TrainConfig whole = tiny_run("whole", 3, 12);
  const TrainResult uninterrupted = run(whole);

  TrainConfig split = tiny_run("stopped", 3, 12);
  volatile std::sig_atomic_t flag = 0;
  TrainCallbacks cb;
  cb.stop_signal = &flag;
  cb.on_step = [&](std::uint64_t step, float) {
    if (step == 17) flag = SIGTERM;  // epoch 2, step 5 of 12
  };
  const TrainResult first = run(split, cb);
  CHECK(first.stopped_by == SIGTERM);
  REQUIRE(first.epochs.size() == 1);
  const NetworkSpec spec = build_network(split.model);
  const RunState at_stop = load_run_state(split.out_dir + "/last.state.safetensors", spec);
  CHECK(at_stop.epoch == 1);
  CHECK(at_stop.step_in_epoch == 5);
  CHECK(at_stop.step == 17);
  CHECK(at_stop.epoch_images == 500);
  CHECK(at_stop.params == first.final_params);
  CHECK(metric_rows(split.out_dir).size() == 2);  // header + epoch 1

  const TrainResult rest = run(resumed(split));
  CHECK(rest.stopped_by == 0);
  REQUIRE(rest.epochs.size() == 2);
  CHECK(rest.epochs.front().train_loss == uninterrupted.epochs[1].train_loss);  // the split epoch's mean
  CHECK(rest.epochs.back().val_loss == uninterrupted.epochs.back().val_loss);
  CHECK(rest.final_params == uninterrupted.final_params);
  CHECK(rest.best_epoch == uninterrupted.best_epoch);
  CHECK(metric_rows(split.out_dir) == metric_rows(whole.out_dir));
  CHECK(line_count(split.out_dir + "/metrics.jsonl") == 3);
  for (const char* f : {"last.safetensors", "best.safetensors"}) {
    INFO(f);
    CHECK(file_bytes(split.out_dir + "/" + f) == file_bytes(whole.out_dir + "/" + f));
  }
}

TEST_CASE("a kill between a checkpoint's files is repaired on resume", "[resume]") {
  const TrainConfig c = tiny_run("repair", 2, 4);
  run(c);
  const std::string csv = file_bytes(c.out_dir + "/metrics.csv");
  const std::string jsonl = file_bytes(c.out_dir + "/metrics.jsonl");
  const std::string last = file_bytes(c.out_dir + "/last.safetensors");
  const std::string best = file_bytes(c.out_dir + "/best.safetensors");

  SECTION("killed after the state, before last/best and the metrics row") {
    fs::remove(c.out_dir + "/last.safetensors");
    fs::remove(c.out_dir + "/best.safetensors");
    const auto drop_last_line = [](const std::string& path) {
      std::string text = file_bytes(path);
      text.pop_back();
      text.erase(text.rfind('\n') + 1);
      std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    };
    drop_last_line(c.out_dir + "/metrics.csv");
    drop_last_line(c.out_dir + "/metrics.jsonl");
  }
  SECTION("a torn row and a row of an epoch past the checkpoint") {
    std::ofstream(c.out_dir + "/metrics.csv", std::ios::app) << "3,12,0.5,0.5,,1.0,100.0\n4,16,0.4";
    std::ofstream(c.out_dir + "/metrics.jsonl", std::ios::app) << "{\"epoch\":3}\n";
  }
  const TrainResult again = run(resumed(c));  // the run is complete: only the repair happens
  CHECK(again.epochs.empty());
  CHECK(file_bytes(c.out_dir + "/metrics.csv") == csv);  // timing columns too: the row comes from the state
  CHECK(file_bytes(c.out_dir + "/metrics.jsonl") == jsonl);
  CHECK(file_bytes(c.out_dir + "/last.safetensors") == last);
  CHECK(file_bytes(c.out_dir + "/best.safetensors") == best);
}

TEST_CASE("a directory with config.json but no checkpoint starts the run from scratch", "[resume]") {
  const TrainConfig whole = tiny_run("scratch-whole", 1, 4);
  const TrainResult uninterrupted = run(whole);
  const TrainConfig c = tiny_run("scratch", 1, 4);
  run(c);
  fs::remove(c.out_dir + "/last.state.safetensors");  // as if killed before its first checkpoint
  const TrainResult again = run(resumed(c));
  REQUIRE(again.epochs.size() == 1);
  CHECK(again.final_params == uninterrupted.final_params);
  CHECK(metric_rows(c.out_dir) == metric_rows(whole.out_dir));
}

TEST_CASE("epoch checkpoints are written every N epochs and pruned to the newest K", "[resume]") {
  TrainConfig c = tiny_run("prune", 5, 2);
  c.checkpoint_every = 2;
  c.keep_checkpoints = 1;
  run(c);
  CHECK(epoch_checkpoints(c.out_dir) == std::vector<int>{4});
  const SafetensorsFile four = read_safetensors(c.out_dir + "/epoch-0004.safetensors");
  CHECK(four.checksum_verified);
  CHECK(four.metadata.at("fmnist.epoch") == "4");
  CHECK(four.metadata.at("fmnist.step") == "8");
  CHECK(read_safetensors(c.out_dir + "/last.safetensors").metadata.at("fmnist.epoch") == "5");

  TrainConfig every = tiny_run("prune-every", 4, 1);
  every.checkpoint_every = 1;
  every.keep_checkpoints = 2;
  run(every);
  CHECK(epoch_checkpoints(every.out_dir) == std::vector<int>{3, 4});
  prune_epoch_checkpoints(every.out_dir, 0);  // 0 keeps all
  CHECK(epoch_checkpoints(every.out_dir).size() == 2);
  std::ofstream(every.out_dir + "/epoch-12.safetensors") << "not ours";  // fewer than 4 digits: ignored
  CHECK(epoch_checkpoints(every.out_dir).size() == 2);
}

TEST_CASE("a checkpoint that cannot be written (full disk) leaves the previous one whole", "[resume]") {
  TrainConfig c = tiny_run("full-disk", 1, 3);
  run(c);
  const std::string state = file_bytes(c.out_dir + "/last.state.safetensors");
  const std::string last = file_bytes(c.out_dir + "/last.safetensors");
  TrainConfig more = resumed(c);
  const std::string temp = safetensors_temp_path(c.out_dir + "/last.state.safetensors");
  REQUIRE(fs::exists("/dev/full"));
  fs::create_symlink("/dev/full", temp);
  std::uint64_t last_step = 0;
  TrainCallbacks cb;
  cb.after_step = [&](std::uint64_t step, Executor<float>&) { last_step = step; };
  std::uint64_t expected_last_step = 0;
  SECTION("the run's last checkpoint") {
    more.epochs = 2;
    expected_last_step = 6;
  }
  SECTION("a checkpoint written in the background while the next epoch trains") {
    // Epoch 2's checkpoint fails while epoch 3 trains; the run stops when epoch 3's is due.
    more.epochs = 4;
    expected_last_step = 9;  // epochs 2 and 3 trained (3 steps each), epoch 4 never started
  }
  try {
    run(more, cb);
    FAIL("a checkpoint written to /dev/full did not fail");
  } catch (const FormatError& e) {
    const std::string what = e.what();
    CHECK_THAT(what, StartsWith(c.out_dir + "/last.state.safetensors: cannot write temporary file"));
    CHECK_THAT(what, Contains("No space left on device"));
    CHECK(what.find('\n') == std::string::npos);
  }
  CHECK(last_step == expected_last_step);
  CHECK_FALSE(fs::exists(fs::symlink_status(temp)));
  CHECK(file_bytes(c.out_dir + "/last.state.safetensors") == state);
  CHECK(file_bytes(c.out_dir + "/last.safetensors") == last);
  CHECK(metric_rows(c.out_dir).size() == 2);  // the header and epoch 1
  CHECK(run(more).epochs.size() == static_cast<std::size_t>(more.epochs - 1));  // with room again, from epoch 1
}

TEST_CASE("resume refuses the checkpoint of another run", "[resume]") {
  const TrainConfig c = tiny_run("other-run", 1, 3);
  run(c);
  TrainConfig other = resumed(c);
  other.epochs = 2;
  SECTION("another seed") {
    other.seed = 12;
    REQUIRE_THROWS_WITH(run(other), Contains("was trained with seed 11, not 12"));
  }
  SECTION("another number of steps per epoch") {
    other.max_steps_per_epoch = 4;
    REQUIRE_THROWS_WITH(run(other), Contains("has 3 steps per epoch, this run 4"));
  }
  SECTION("another model") {
    other.model.latent = 32;
    REQUIRE_THROWS_WITH(run(other), Contains("last.state.safetensors: training state is for AE(16)"));
  }
  SECTION("a corrupt state file") {
    const std::string path = c.out_dir + "/last.state.safetensors";
    std::string bytes = file_bytes(path);
    bytes[bytes.size() - 100] ^= 0x01;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    REQUIRE_THROWS_WITH(run(other), StartsWith(path + ": checksum mismatch"));
  }
}

TEST_CASE("config.json reads back as the configuration that wrote it", "[resume]") {
  TrainConfig c = tiny_run("config", 1, 1);
  c.lr_schedule = LrSchedule::WarmupCosine;
  c.adam.lr = 3e-4;
  c.augment = true;
  c.augment_erase = 0.25;
  c.checkpoint_every = 7;
  c.guard_every = 5;
  c.gpu_kernels = GpuKernels{true, false, true, true, false, true};  // as a GPU run on three of fmnist's kernels records them
  run(c);
  const TrainConfig back = read_run_config(c.out_dir + "/config.json");
  CHECK(flatten_run_config(back) == flatten_run_config(c));
  CHECK(back.checkpoint_every == 7);
  CHECK(back.guard_every == 5);
  CHECK(back.keep_checkpoints == c.keep_checkpoints);
  REQUIRE(back.gpu_kernels.has_value());
  CHECK(*back.gpu_kernels == *c.gpu_kernels);
  TrainConfig cpu_run = tiny_run("config-cpu", 1, 1);  // a CPU run records none
  run(cpu_run);
  CHECK_FALSE(read_run_config(cpu_run.out_dir + "/config.json").gpu_kernels.has_value());
  // A GPU run of an fmnist that recorded no kernels computed with cuDNN's for every pass.
  const std::string older_gpu_run = c.out_dir + "/older-gpu-config.json";
  std::ofstream(older_gpu_run) << R"({"model":{"kind":"autoencoder","latent":16},"backend":"cuda:Some GPU"})";
  const TrainConfig older = read_run_config(older_gpu_run);
  REQUIRE(older.gpu_kernels.has_value());
  CHECK(*older.gpu_kernels == GpuKernels{});
  // One that recorded its convolutions only computed its Linear forward with cuBLAS's.
  const std::string conv_only_run = c.out_dir + "/conv-only-config.json";
  std::ofstream(conv_only_run) << R"({"model":{"kind":"autoencoder","latent":16},"backend":"cuda:Some GPU",)"
                               << R"("conv_kernels":{"forward":"fmnist","backward_data":"cudnn","backward_filter":"fmnist"}})";
  const TrainConfig conv_only = read_run_config(conv_only_run);
  REQUIRE(conv_only.gpu_kernels.has_value());
  CHECK(*conv_only.gpu_kernels == GpuKernels{true, false, true, false, false, false});

  const std::string path = c.out_dir + "/bad-config.json";
  std::ofstream(path) << R"({"model":{"kind":"autoencoder","latent":16},"epochs":"three"})";
  REQUIRE_THROWS_WITH(read_run_config(path),
                      StartsWith(path + ": field 'epochs' must be an integer in [-2147483648, 2147483647], got \"three\""));
  // Numbers a field's type cannot hold exactly are refused, not truncated, wrapped or (1e300)
  // converted out of range.
  for (const char* value : {"1e300", "2.5", "4294967297", "18446744073709551615"}) {
    std::ofstream(path, std::ios::trunc) << R"({"model":{"kind":"autoencoder","latent":16},"epochs":)" << value << "}";
    REQUIRE_THROWS_WITH(read_run_config(path), StartsWith(path + ": field 'epochs' must be an integer in"));
  }
  std::ofstream(path, std::ios::trunc) << R"({"model":{"kind":"autoencoder","latent":16},"seed":-1})";
  REQUIRE_THROWS_WITH(read_run_config(path), Contains("field 'seed' must be an integer in [0, 18446744073709551615], got -1"));
  std::ofstream(path, std::ios::trunc) << R"({"model":{"kind":"autoencoder","latent":16},"adam":{"lr":true}})";
  REQUIRE_THROWS_WITH(read_run_config(path), Contains("field 'adam.lr' must be a finite number, got true"));
  std::ofstream(path, std::ios::trunc) << R"({"model":{"kind":"autoencoder","latent":16},"adam":{"eps":"tiny"}})";
  REQUIRE_THROWS_WITH(read_run_config(path), Contains("field 'adam.eps' must be a finite number, got \"tiny\""));
  std::ofstream(path, std::ios::trunc) << R"({"model":{"kind":"autoencoder","latent":16},"augment":1})";
  REQUIRE_THROWS_WITH(read_run_config(path), Contains("field 'augment' must be true or false, got 1"));
  std::ofstream(path, std::ios::trunc)
      << R"({"model":{"kind":"autoencoder","latent":16},"seed":18446744073709551615,"augment_erase":1,"epochs":-0})";
  const TrainConfig extremes = read_run_config(path);
  CHECK(extremes.seed == std::numeric_limits<std::uint64_t>::max());
  CHECK(extremes.augment_erase == 1.0);
  CHECK(extremes.epochs == 0);
  std::ofstream(path, std::ios::trunc) << R"({"model":{"kind":"autoencoder"},"warp_drive":true})";
  REQUIRE_THROWS_WITH(read_run_config(path), Contains("unknown field 'warp_drive'"));
  std::ofstream(path, std::ios::trunc) << "{\"model\":";
  REQUIRE_THROWS_WITH(read_run_config(path), Contains("not valid JSON"));
  std::ofstream(path, std::ios::trunc)
      << R"({"model":{"kind":"autoencoder"},"conv_kernels":{"forward":"cudnn","backward_data":"fast","backward_filter":"cudnn"}})";
  REQUIRE_THROWS_WITH(read_run_config(path),
                      StartsWith(path + ": field 'conv_kernels.backward_data' must be cudnn or fmnist, got \"fast\""));
  std::ofstream(path, std::ios::trunc) << R"({"model":{"kind":"autoencoder"},"conv_kernels":{"forward":"cudnn"}})";
  REQUIRE_THROWS_WITH(read_run_config(path), Contains("field 'conv_kernels.backward_data' must be cudnn or fmnist, got nothing"));
  const char* conv = R"("conv_kernels":{"forward":"cudnn","backward_data":"cudnn","backward_filter":"cudnn"})";
  std::ofstream(path, std::ios::trunc) << R"({"model":{"kind":"autoencoder"},)" << conv
                                       << R"(,"linear_kernels":{"forward":"cudnn","backward_data":"cublas","backward_filter":"cublas"}})";
  REQUIRE_THROWS_WITH(read_run_config(path),
                      StartsWith(path + ": field 'linear_kernels.forward' must be cublas or fmnist, got \"cudnn\""));
  std::ofstream(path, std::ios::trunc) << R"({"model":{"kind":"autoencoder"},)" << conv
                                       << R"(,"linear_kernels":{"forward":"fmnist"}})";
  REQUIRE_THROWS_WITH(read_run_config(path),
                      Contains("field 'linear_kernels.backward_data' must be cublas or fmnist, got nothing"));
  std::ofstream(path, std::ios::trunc) << R"({"model":{"kind":"autoencoder"},)" << conv << R"(,"linear_kernels":[]})";
  REQUIRE_THROWS_WITH(read_run_config(path), Contains("field 'linear_kernels' is not an object"));
  std::ofstream(path, std::ios::trunc) << R"({"model":{"kind":"autoencoder"},"linear_kernels":{"forward":"fmnist"}})";
  REQUIRE_THROWS_WITH(read_run_config(path), Contains("field 'linear_kernels' without 'conv_kernels'"));
  REQUIRE_THROWS_WITH(read_run_config(c.out_dir + "/none.json"), Contains("not a run directory"));
}

TEST_CASE("a resumed run keeps its recorded GPU kernels and refuses a variable set otherwise", "[resume]") {
  const GpuKernels recorded{false, true, true};
  GpuKernelRequest none;
  // A new run: fmnist's direct backward-filter, cuDNN's forward and backward-data, by default.
  CHECK(gpu_kernels_for_run(none, std::nullopt, "runs/a") == GpuKernels{false, false, true});
  CHECK(gpu_kernels_for_run(none, std::nullopt, "runs/a") == default_gpu_kernels());
  GpuKernelRequest wgrad;
  wgrad.weight_grad = true;
  CHECK(gpu_kernels_for_run(wgrad, std::nullopt, "runs/a") == GpuKernels{false, false, true});
  GpuKernelRequest cudnn_wgrad;  // FMNIST_CONV_WGRAD=cudnn: cuDNN for every pass
  cudnn_wgrad.weight_grad = false;
  CHECK(gpu_kernels_for_run(cudnn_wgrad, std::nullopt, "runs/a") == GpuKernels{});
  CHECK(gpu_kernels_for_run(none, GpuKernels{}, "runs/a") == GpuKernels{});  // recorded cuDNN stays cuDNN
  CHECK(gpu_kernels_for_run(none, recorded, "runs/a") == recorded);  // resumed: the recorded ones, unasked
  CHECK(gpu_kernels_for_run(wgrad, recorded, "runs/a") == recorded);  // asked for what was recorded
  GpuKernelRequest cudnn_dgrad;
  cudnn_dgrad.backward_data = false;
  REQUIRE_THROWS_WITH(gpu_kernels_for_run(cudnn_dgrad, recorded, "runs/a"),
                      "FMNIST_CONV_DGRAD=cudnn disagrees with the run being resumed: its convolution backward-data "
                      "is fmnist there (runs/a/config.json); a resumed run keeps its kernels: unset FMNIST_CONV_DGRAD, "
                      "or start a new run with --out");
  GpuKernelRequest direct_forward;
  direct_forward.forward = true;
  REQUIRE_THROWS_WITH(gpu_kernels_for_run(direct_forward, recorded, "runs/a"),
                      StartsWith("FMNIST_CONV_FWD=fmnist disagrees with the run being resumed: its convolution forward "
                                 "is cudnn there"));
  // The Linear forward: cuBLAS's unless asked for (new runs), the recorded one on resume.
  GpuKernelRequest linear;
  linear.linear_forward = true;
  CHECK(gpu_kernels_for_run(linear, std::nullopt, "runs/a") == GpuKernels{false, false, true, true, false, false});
  linear.linear_backward_data = true;
  linear.linear_weight_grad = true;
  const GpuKernels all_linear{false, false, true, true, true, true};
  CHECK(gpu_kernels_for_run(linear, std::nullopt, "runs/a") == all_linear);
  CHECK(gpu_kernels_for_run(none, all_linear, "runs/a") == all_linear);
  // A Linear variable set against a resumed run's record is refused, naming the pass.
  const struct {
    std::optional<bool> GpuKernelRequest::*variable;
    bool asked;
    GpuKernels recorded;
    const char* refusal;
  } refusals[] = {
      {&GpuKernelRequest::linear_forward, true, recorded,
       "FMNIST_LINEAR_FWD=fmnist disagrees with the run being resumed: its Linear forward is cublas there "
       "(runs/a/config.json)"},
      {&GpuKernelRequest::linear_backward_data, false, all_linear,
       "FMNIST_LINEAR_DGRAD=cublas disagrees with the run being resumed: its Linear backward-data is fmnist there"},
      {&GpuKernelRequest::linear_weight_grad, false, all_linear,
       "FMNIST_LINEAR_WGRAD=cublas disagrees with the run being resumed: its Linear backward-filter is fmnist there"},
  };
  for (const auto& r : refusals) {
    GpuKernelRequest request;
    request.*r.variable = r.asked;
    REQUIRE_THROWS_WITH(gpu_kernels_for_run(request, r.recorded, "runs/a"), StartsWith(r.refusal));
  }
}

TEST_CASE("the guard names the first non-finite gradient in backward order", "[guard]") {
  const NetworkSpec spec = build_network(ModelConfig{ModelKind::Autoencoder, 16});
  std::vector<float> grads(spec.param_count, 0.5f);
  CHECK(first_nonfinite_tensor(spec, grads.data(), true).empty());
  grads[spec.find_param("encoder.3.weight")->offset + 7] = std::numeric_limits<float>::quiet_NaN();
  std::string bad;
  CHECK(first_nonfinite_tensor(spec, grads.data(), true, &bad) == "encoder.3.weight");
  CHECK(bad == "nan");
  grads[spec.find_param("decoder.0.bias")->offset] = -std::numeric_limits<float>::infinity();
  CHECK(first_nonfinite_tensor(spec, grads.data(), true, &bad) == "decoder.0.bias");  // later layer first
  CHECK(bad == "-inf");
  grads[spec.params.back().offset + spec.params.back().count - 1] = std::numeric_limits<float>::infinity();
  CHECK(first_nonfinite_tensor(spec, grads.data(), true, &bad) == spec.params.back().name);
  CHECK(bad == "inf");
  CHECK(first_nonfinite_tensor(spec, grads.data(), true, &bad) == spec.params.back().name);

  ModelConfig frozen{ModelKind::Classifier, 16};
  frozen.freeze_encoder = true;
  const NetworkSpec classifier = build_network(frozen);
  std::vector<float> g(classifier.param_count, 0.0f);
  g[classifier.find_param("encoder.0.weight")->offset] = std::numeric_limits<float>::quiet_NaN();
  CHECK(first_nonfinite_tensor(classifier, g.data(), /*trainable_only=*/true).empty());  // never computed
  CHECK(first_nonfinite_tensor(classifier, g.data(), /*trainable_only=*/false) == "encoder.0.weight");
}

TEST_CASE("guard-every 0 (the default) checks every step on the CPU, a positive N is kept", "[guard]") {
  TrainConfig c;
  CHECK(c.guard_every == 0);
  CHECK(guard_interval(c, *make_cpu_ops()) == 1);
  c.guard_every = 7;
  CHECK(guard_interval(c, *make_cpu_ops()) == 7);
  // The GPU's default (kDeviceGuardEvery) is checked in tests/gpu/test_gpu_runtime.cpp.
}

TEST_CASE("a diverging run stops naming epoch, step and tensor, and keeps the last checkpoint", "[guard]") {
  TrainConfig c = tiny_run("diverge", 3, 10);
  std::string state_after_epoch_1, last_after_epoch_1;
  TrainCallbacks cb;
  cb.on_epoch = [&](const EpochMetrics& m) {
    if (m.epoch != 1) return;
    state_after_epoch_1 = file_bytes(c.out_dir + "/last.state.safetensors");
    last_after_epoch_1 = file_bytes(c.out_dir + "/last.safetensors");
  };
  const NetworkSpec spec = build_network(c.model);
  std::string what;
  auto expect_divergence = [&](const TrainConfig& config) {
    try {
      run(config, cb);
      FAIL("the run did not stop");
    } catch (const DivergenceError& e) {
      what = e.what();
    }
    INFO(what);
    CHECK(what.find('\n') == std::string::npos);
    CHECK(file_bytes(c.out_dir + "/last.state.safetensors") == state_after_epoch_1);
    CHECK(file_bytes(c.out_dir + "/last.safetensors") == last_after_epoch_1);
    CHECK(metric_rows(c.out_dir).size() == 2);
  };
  SECTION("a NaN gradient") {
    cb.after_step = [&](std::uint64_t step, Executor<float>& ex) {
      if (step == 15) ex.grads()[spec.find_param("decoder.0.weight")->offset + 3] = std::nanf("");
    };
    expect_divergence(c);
    CHECK_THAT(what, StartsWith("training diverged at epoch 2, step 5 of 10 (global step 15): the gradient of "
                                "decoder.0.weight holds nan; the last good checkpoint " +
                                c.out_dir + "/last.state.safetensors (end of epoch 1, step 10) is untouched"));
  }
  SECTION("a non-finite loss") {
    cb.after_step = [&](std::uint64_t step, Executor<float>& ex) {
      if (step == 12) ex.batch_loss()[0] = std::numeric_limits<float>::infinity();
    };
    expect_divergence(c);
    CHECK_THAT(what, StartsWith("training diverged at epoch 2, step 2 of 10 (global step 12): the loss is inf"));
  }
  SECTION("--guard-every 4 looks at steps 4, 8, 12, ... and always before a checkpoint") {
    c.guard_every = 4;
    cb.after_step = [&](std::uint64_t step, Executor<float>& ex) {
      if (step == 13 || step == 16) ex.grads()[0] = std::nanf("");  // only the guard sees these
    };
    expect_divergence(c);
    CHECK_THAT(what, Contains("(global step 16): the gradient of encoder.0.weight holds nan"));
  }
  SECTION("a learning rate of 1e6 after a good first epoch") {
    TrainConfig first = c;
    first.epochs = 1;
    run(first, cb);  // epoch 1 at the paper's rate, then the rest at an absurd one
    TrainConfig wild = resumed(c);
    wild.adam.lr = 1e6;
    expect_divergence(wild);
    CHECK_THAT(what, StartsWith("training diverged at epoch 2, step "));
    CHECK_THAT(what, Contains("(end of epoch 1, step 10) is untouched"));
  }
}
