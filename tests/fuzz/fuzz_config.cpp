// libFuzzer harness: the configuration parsing. The input is JSON text, given to
// - model_config_from_json (what it accepts must round-trip through model_config_to_json),
// - read_run_config as a run's config.json,
// - load_run_state as the "fmnist.train" metadata of a training state, the rest of that file being
//   what save_training_state writes;
// the last two read a path: a memfd's.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "host/checkpoint.h"
#include "host/run_state.h"
#include "host/safetensors.h"
#include "models/network.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/memory_file.h"

namespace {

fmnist::NetworkSpec smallest_model() {
  fmnist::ModelConfig config;
  config.kind = fmnist::ModelKind::Classifier;
  config.latent = 1;
  return fmnist::build_network(config);
}

// What save_training_state writes for `spec` (zero moments), read back.
fmnist::SafetensorsFile saved_training_state(const fmnist::NetworkSpec& spec) {
  char dir[] = "/tmp/fmnist-fuzz-XXXXXX";
  if (!mkdtemp(dir)) fmnist::fuzz::fail("mkdtemp failed");
  const std::string path = std::string(dir) + "/state.safetensors";
  fmnist::TrainingState state;
  state.exp_avg.assign(spec.param_count, 0.0f);
  state.exp_avg_sq.assign(spec.param_count, 0.0f);
  fmnist::save_training_state(path, spec, state);
  fmnist::SafetensorsFile file = fmnist::read_safetensors(path);
  ::unlink(path.c_str());
  ::rmdir(dir);
  return file;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace fmnist;
  const std::string text(reinterpret_cast<const char*>(data), size);

  fuzz::expect_documented_errors("", [&] {
    const ModelConfig config = model_config_from_json(text);
    const std::string json = model_config_to_json(config);
    ModelConfig again;
    try {
      again = model_config_from_json(json);
    } catch (const std::exception& e) {
      fuzz::fail("model_config_to_json wrote JSON that model_config_from_json refuses: " + json + ": " + e.what());
    }
    if (model_config_to_json(again) != json) fuzz::fail("model config does not round-trip: " + json);
  });

  const fuzz::MemoryFile config_json(std::vector<std::uint8_t>(data, data + size));
  fuzz::expect_documented_errors(config_json.path(), [&] { read_run_config(config_json.path()); });

  // A training state of the smallest model as save_training_state writes it, with `text` as its
  // "fmnist.train" metadata.
  static const NetworkSpec spec = smallest_model();
  static const SafetensorsFile base = saved_training_state(spec);
  SafetensorsFile file = base;
  file.metadata["fmnist.train"] = text;
  std::vector<std::uint8_t> bytes;
  fuzz::expect_documented_errors("fuzz", [&] { bytes = encode_safetensors(file, "fuzz"); });
  if (bytes.empty()) return 0;  // text that a JSON string cannot hold (not UTF-8): refused, fine
  const fuzz::MemoryFile state(bytes);
  fuzz::expect_documented_errors(state.path(), [&] { load_run_state(state.path(), spec); });
  return 0;
}
