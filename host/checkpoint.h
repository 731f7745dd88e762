// Checkpoints: a model's weights as a safetensors file laid out exactly like the paper's PyTorch
// state_dict (so either side loads the other's files), and the optimiser state needed to resume.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "host/safetensors.h"
#include "models/network.h"

namespace fmnist {

// The model's weights as a safetensors file whose keys, shapes, dtypes (F32) and layouts are exactly
// the paper's PyTorch state_dict (spec.params, in order). Metadata: "format":"pt",
// "fmnist.config" (model_config_to_json(spec.config)), then the given entries (which win).
void save_weights(const std::string& path, const NetworkSpec& spec, const float* params,
                  const std::map<std::string, std::string>& metadata = {});

// Infers AE vs classifier and n from tensor names and shapes alone (works for a file PyTorch wrote
// with no metadata): encoder.* + decoder.* -> Autoencoder, encoder.* + clasiffier.* -> Classifier;
// latent = encoder.7.weight rows. If the metadata holds "fmnist.config", head, loss, dropout and
// freeze_encoder come from it (its kind and latent must agree with the tensors); else paper defaults.
// Throws FormatError naming the file when tensors are missing, extra, not F32 or mis-shaped.
ModelConfig infer_model_config(const SafetensorsFile& file, const std::string& path);

// Copies every tensor into the flat parameter buffer (spec.param_count floats), checking that the
// file holds exactly spec's names, each F32 with spec's shape. Throws FormatError naming the file
// and, for a mismatch, the tensor and both shapes.
void load_weights(const SafetensorsFile& file, const std::string& path, const NetworkSpec& spec,
                  float* params);

// Copies only the encoder.* tensors (a classifier initialised from an AE checkpoint, or the reverse);
// the file's other tensors are ignored. Checks names, dtype and shapes (so the latent must match).
void load_encoder_weights(const SafetensorsFile& file, const std::string& path,
                          const NetworkSpec& spec, float* params);

// ModelConfig as JSON: {"kind":"autoencoder"|"classifier","latent":n,"dropout":p,
// "ae_loss":"mae"|"mse","head":"sigmoid"|"logits","freeze_encoder":bool}. Reading fills missing
// fields with the defaults and throws std::invalid_argument on malformed JSON or unknown values.
std::string model_config_to_json(const ModelConfig& config);
ModelConfig model_config_from_json(const std::string& json);

// Everything needed to resume training exactly, saved beside the weights as its own safetensors file:
// tensors "adam.exp_avg.<param>" and "adam.exp_avg_sq.<param>" (F32, the param's shape) for the
// trainable params, "weights.<param>" for every param when `params` is given (so that one file,
// written atomically, holds the whole state); metadata "fmnist.kind":"training_state",
// "fmnist.config" (model config JSON), "fmnist.train": a JSON object with "epoch", "step", "seed"
// and the members of `extra_json`.
struct TrainingState {
  std::uint64_t step = 0;
  int epoch = 0;
  std::uint64_t seed = 0;
  std::string extra_json = "{}";  // a JSON object; its keys may not be epoch, step or seed
  std::vector<float> exp_avg, exp_avg_sq;  // spec.param_count each, zeros for frozen params
  std::vector<float> params;  // spec.param_count, or empty: not stored (weights in another file)
};

// Throws std::invalid_argument when the vectors are not spec.param_count long (params: or empty) or
// extra_json is not
// a JSON object (or redefines epoch/step/seed); FormatError on I/O failure.
void save_training_state(const std::string& path, const NetworkSpec& spec, const TrainingState& state);

// Throws FormatError naming the file when it is not a training state, was saved for another model
// configuration than spec.config, or its tensors do not match spec's trainable params (and, when it
// holds weights.*, all of spec's params). `params` is empty when the file holds no weights.
TrainingState load_training_state(const std::string& path, const NetworkSpec& spec);

}  // namespace fmnist
