// The real thing: `fmnist train` run as a child process, killed with SIGKILL at random moments (the
// delays drawn from a seed that is printed; FMNIST_KILL_SEED=S repeats them), stopped with SIGTERM
// and SIGINT, resumed with `fmnist train --resume DIR` each time, must end with files bitwise
// identical to an uninterrupted run: the weights, the Adam state's tensors, the per-epoch weights,
// and metrics.csv/jsonl except their timing columns.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "host/run_state.h"
#include "host/safetensors.h"

extern char** environ;

namespace fs = std::filesystem;
using namespace fmnist;
using Clock = std::chrono::steady_clock;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string scratch(const std::string& name) {
  // Per process: CTest runs this file's test cases in parallel processes.
  const std::string dir = std::string(FMNIST_TEST_TMP_DIR) + "/kill-resume-" +
                          std::to_string(getpid()) + "/" + name;
  fs::remove_all(dir);
  fs::create_directories(fs::path(dir).parent_path());
  return dir;
}

// The device every run of this file trains on: the CPU, or with FMNIST_KILL_RESUME_DEVICE=cuda the
// GPU (tools/gpu_check.sh: the same kills and resumes, every result compared bit for bit, on the
// GPU's deterministic algorithms and CUDA graphs). A resume runs on the device its run started on.
std::string device() {
  const char* d = std::getenv("FMNIST_KILL_RESUME_DEVICE");
  const std::string name = d != nullptr && *d != '\0' ? d : "cpu";
  if (name != "cpu" && name != "cuda") FAIL("FMNIST_KILL_RESUME_DEVICE must be cpu or cuda, not '" << name << "'");
  return name;
}

// A small run: AE(16) with dropout, 3 epochs of 15 steps, 1,000 validation images, the weights of
// every epoch kept (2 of them).
std::vector<std::string> run_args(const std::string& dir) {
  return {FMNIST_BINARY, "train", "--model", "ae", "--latent", "16", "--dropout", "0.2", "--epochs", "3",
          "--max-steps-per-epoch", "15", "--validation-size", "1000", "--seed", "7", "--checkpoint-every", "1",
          "--keep-checkpoints", "2", "--device", device(), "--out", dir};
}
std::vector<std::string> resume_args(const std::string& dir) {
  return {FMNIST_BINARY, "train", "--resume", dir, "--device", device()};
}

struct Child {
  pid_t pid = -1;
  std::string err;  // its stderr, in a file
};

Child spawn(const std::vector<std::string>& args, const std::string& log_stem) {
  Child c;
  c.err = log_stem + ".err";
  const std::string out = log_stem + ".out";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, c.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const int rc = posix_spawn(&c.pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  return c;
}

// Waits for the child; returns its wait status.
int wait_for(const Child& c) {
  int status = 0;
  while (waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// Whether the child has ended (its status in *status), without waiting.
bool ended(const Child& c, int* status) { return waitpid(c.pid, status, WNOHANG) == c.pid; }

// Waits until the child says it is training (after loading the data), or ends; false when it ended.
bool wait_until_training(const Child& c, int* status) {
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < deadline) {
    if (read_text(c.err).find("fmnist: training") != std::string::npos) return true;
    if (ended(c, status)) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  FAIL("the child did not start training within 120 s: " << read_text(c.err));
  return false;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// Where the run's checkpoint stands, from its state file's metadata.
std::string checkpoint_position(const std::string& dir) {
  const std::string path = dir + "/last.state.safetensors";
  if (!fs::exists(path)) return "no checkpoint yet";
  const auto train = nlohmann::json::parse(read_safetensors(path).metadata.at("fmnist.train"));
  const int epoch = train.at("epoch"), in_epoch = train.value("step_in_epoch", 0);
  const std::uint64_t step = train.at("step");
  if (in_epoch == 0) return "end of epoch " + std::to_string(epoch) + " (step " + std::to_string(step) + ")";
  return "epoch " + std::to_string(epoch + 1) + ", step " + std::to_string(in_epoch) + " (global step " +
         std::to_string(step) + ")";
}

// The global step of the run's checkpoint (0 when there is none yet).
std::uint64_t checkpoint_step(const std::string& dir) {
  const std::string path = dir + "/last.state.safetensors";
  if (!fs::exists(path)) return 0;
  return nlohmann::json::parse(read_safetensors(path).metadata.at("fmnist.train")).at("step").get<std::uint64_t>();
}

// Lines of a metrics file with the timing fields removed.
std::vector<std::string> metrics_without_timing(const std::string& path, bool csv) {
  std::vector<std::string> rows;
  std::istringstream in(read_text(path));
  for (std::string line; std::getline(in, line);) {
    if (csv) {
      std::size_t cut = 0;
      for (int commas = 0; commas < 5 && cut != std::string::npos; ++commas) cut = line.find(',', cut + 1);
      rows.push_back(line.substr(0, cut));
    } else {
      auto j = nlohmann::json::parse(line);
      j.erase("seconds");
      j.erase("images_per_second");
      rows.push_back(j.dump());
    }
  }
  return rows;
}

void require_same_run(const std::string& reference, const std::string& dir) {
  for (const char* f : {"last.safetensors", "best.safetensors", "epoch-0002.safetensors", "epoch-0003.safetensors"}) {
    INFO(f);
    REQUIRE(fs::exists(dir + "/" + f));
    CHECK(read_text(dir + "/" + f) == read_text(reference + "/" + f));  // byte for byte
  }
  CHECK_FALSE(fs::exists(dir + "/epoch-0001.safetensors"));  // pruned (--keep-checkpoints 2)
  // The state's tensors (weights, Adam moments); its metadata holds timings.
  const SafetensorsFile a = read_safetensors(reference + "/last.state.safetensors");
  const SafetensorsFile b = read_safetensors(dir + "/last.state.safetensors");
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    INFO(a.tensors[i].name);
    CHECK(a.tensors[i].name == b.tensors[i].name);
    CHECK(a.tensors[i].data == b.tensors[i].data);
  }
  CHECK(metrics_without_timing(dir + "/metrics.csv", true) == metrics_without_timing(reference + "/metrics.csv", true));
  CHECK(metrics_without_timing(dir + "/metrics.jsonl", false) ==
        metrics_without_timing(reference + "/metrics.jsonl", false));
  CHECK(metrics_without_timing(dir + "/metrics.csv", true).size() == 4);  // header + 3 epochs, no duplicates
  CHECK(read_text(dir + "/config.json") == read_text(reference + "/config.json"));
}

// The uninterrupted run (once per process) and how long its training took after the data loaded.
struct Reference {
  std::string dir;
  double training_seconds = 0;
};
const Reference& reference_run() {
  static const Reference ref = [] {
    Reference r;
    r.dir = scratch("reference");
    const Child c = spawn(run_args(r.dir), r.dir + "-log");
    int status = 0;
    const bool training = wait_until_training(c, &status);
    INFO(describe_status(status) << "; its stderr: " << read_text(c.err));  // e.g. no such device
    REQUIRE(training);
    const auto start = Clock::now();
    status = wait_for(c);
    r.training_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    INFO(read_text(c.err));
    REQUIRE(describe_status(status) == "exit 0");
    return r;
  }();
  return ref;
}

std::uint64_t kill_seed() {
  if (const char* s = std::getenv("FMNIST_KILL_SEED"); s != nullptr && *s != '\0') return std::strtoull(s, nullptr, 10);
  return std::random_device{}();
}

}  // namespace

TEST_CASE("fmnist train killed with SIGKILL at random moments and resumed ends bitwise equal", "[resume][kill]") {
  const Reference& ref = reference_run();
  const std::uint64_t seed = kill_seed();
  std::cout << "kill-and-resume (--device " << device() << "): seed " << seed << " (FMNIST_KILL_SEED=" << seed << " repeats it); the "
            << "uninterrupted run trained for " << ref.training_seconds << " s\n";
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> fraction(0.0, 1.0);
  constexpr double kTotalSteps = 3 * 15;
  const std::string dir = scratch("killed");
  // SIGKILL, SIGKILL, SIGTERM (a mid-epoch checkpoint, usually), SIGKILL; then a run to the end.
  const int signals[] = {SIGKILL, SIGKILL, SIGTERM, SIGKILL};
  int interruptions = 0;
  // A run killed before it wrote its config.json (a GPU's setup can take longer than a whole CPU
  // run) left nothing to resume: the user starts it again, and so does the next attempt.
  auto begun = [&dir] { return fs::exists(dir + "/config.json"); };
  for (std::size_t i = 0; i < std::size(signals); ++i) {
    const Child c = spawn(begun() ? resume_args(dir) : run_args(dir), dir + "-log-" + std::to_string(i));
    int status = 0;
    if (!wait_until_training(c, &status)) {
      INFO(read_text(c.err));
      FAIL("the run ended before training: " << describe_status(status));
    }
    // Somewhere in what is left to train (from the checkpoint), so that most attempts are cut short.
    const double left = 1.0 - static_cast<double>(checkpoint_step(dir)) / kTotalSteps;
    const double seconds = fraction(rng) * left * ref.training_seconds;
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    if (ended(c, &status)) {  // it finished first
      std::cout << "  attempt " << i + 1 << ": finished (" << describe_status(status) << ") within "
                << seconds << " s, before its " << strsignal(signals[i]) << "\n";
      INFO(read_text(c.err));
      REQUIRE(describe_status(status) == "exit 0");
      break;
    }
    kill(c.pid, signals[i]);
    status = wait_for(c);
    ++interruptions;
    const std::string err = read_text(c.err);
    INFO(err);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      // It finished as the signal came: after the check above, before kill(), or (SIGTERM) in
      // its last step. Nothing to check; the final comparison covers the run.
    } else if (signals[i] == SIGKILL) {
      CHECK(describe_status(status) == "killed by Killed");
    } else {
      CHECK(describe_status(status) == "exit 143");
      CHECK(err.find("fmnist: SIGTERM received: the run stopped early; continue it with: fmnist train --resume " +
                     dir + "\n") != std::string::npos);
    }
    std::cout << "  attempt " << i + 1 << ": " << strsignal(signals[i]) << " after " << seconds
              << " s of training (" << describe_status(status) << "); last checkpoint: " << checkpoint_position(dir)
              << (begun() ? "" : " (no config.json yet: the next attempt starts the run again)") << "\n";
  }
  const Child last = spawn(begun() ? resume_args(dir) : run_args(dir), dir + "-log-final");
  const int status = wait_for(last);
  INFO(read_text(last.err));
  REQUIRE(describe_status(status) == "exit 0");
  std::cout << "  then resumed to the end: " << interruptions << " interruptions, files compared with the "
            << "uninterrupted run\n";
  require_same_run(ref.dir, dir);
}

TEST_CASE("SIGTERM and SIGINT finish the step, checkpoint, say how to resume, and exit 143 / 130", "[resume][kill]") {
  const Reference& ref = reference_run();
  std::mt19937_64 rng(kill_seed());
  for (const int sig : {SIGTERM, SIGINT}) {
    const std::string name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
    DYNAMIC_SECTION(name) {
      const std::string dir = scratch(name);
      // Within the first two epochs' training, so that there is something left to resume; should
      // the run be faster than the reference was (a machine less busy), again with less delay.
      const double at = std::uniform_real_distribution<double>(0.1, 0.6)(rng);
      Child c;
      int status = 0;
      for (int attempt = 0;; ++attempt) {
        REQUIRE(attempt < 5);
        fs::remove_all(dir);
        c = spawn(run_args(dir), dir + "-log");
        REQUIRE(wait_until_training(c, &status));
        std::this_thread::sleep_for(std::chrono::duration<double>(at * ref.training_seconds / (1 << attempt)));
        if (ended(c, &status)) continue;
        kill(c.pid, sig);
        status = wait_for(c);
        // The run may still finish between that check and the signal (an H100 machine's ctest -j16
        // saw it): then the signal came too late to test anything; again, sooner.
        if (describe_status(status) != "exit 0") break;
      }
      const std::string err = read_text(c.err);
      INFO(err);
      REQUIRE(describe_status(status) == "exit " + std::to_string(128 + sig));
      CHECK(err.find("fmnist: " + name + ": stopped after ") != std::string::npos);
      CHECK(err.find("checkpoint written: " + dir + "/last.state.safetensors (") != std::string::npos);
      CHECK(err.find("fmnist: " + name + " received: the run stopped early; continue it with: fmnist train --resume " +
                     dir + "\n") != std::string::npos);
      std::cout << name << " -> " << describe_status(status) << ", checkpoint at " << checkpoint_position(dir) << "\n";
      const Child resumed = spawn(resume_args(dir), dir + "-log-resumed");
      status = wait_for(resumed);
      INFO(read_text(resumed.err));
      REQUIRE(describe_status(status) == "exit 0");
      require_same_run(ref.dir, dir);
    }
  }
}
