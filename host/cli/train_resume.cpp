// A resumed run's configuration: config.json, checked against the flags given again.
#include "host/cli/train_resume.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <stdexcept>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "host/run_state.h"

namespace fmnist::cli {
namespace {

// The recorded fields each flag sets (see flatten_run_config).
const std::map<std::string, std::vector<std::string>> kFlagFields = {
    {"--model", {"model.kind"}},
    {"--latent", {"model.latent"}},
    {"--epochs", {"epochs"}},
    {"--batch-size", {"batch"}},
    {"--lr", {"adam.lr"}},
    {"--loss", {"model.ae_loss"}},
    {"--dropout", {"model.dropout"}},
    {"--head", {"model.head"}},
    {"--seed", {"seed"}},
    {"--init-from", {"init_encoder_from", "model.freeze_encoder"}},
    {"--fine-tune", {"model.freeze_encoder"}},
    {"--validation-size", {"validation_count"}},
    {"--max-steps-per-epoch", {"max_steps_per_epoch"}},
    {"--drop-last", {"drop_last"}},
    {"--init-redraws", {"init_redraws"}},
    {"--precision", {"precision"}},
    {"--tf32", {"precision"}},
    {"--lr-schedule", {"lr_schedule"}},
    {"--warmup-fraction", {"lr_warmup_fraction"}},
    {"--final-lr-fraction", {"lr_final_fraction"}},
    {"--augment", {"augment"}},
    {"--augment-shift", {"augment", "augment_max_shift"}},
    {"--no-flip", {"augment_flip"}},
    {"--erase", {"augment", "augment_erase"}},
};

// Flags that do not change what is computed: a resumed run takes them as given.
const std::vector<std::string> kOperationalFlags = {
    "--device", "--no-graph", "--data-placement", "--stream-slots", "--data-dir", "--out",
    "--resume", "--overwrite", "--checkpoint-every", "--keep-checkpoints", "--guard-every", "--eval-batch-size",
    "--help"};

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

std::vector<std::string> given_flags(const CLI::App& app) {
  std::vector<std::string> flags;
  for (const CLI::Option* option : app.get_options()) {
    if (option->count() == 0) continue;
    for (const std::string& name : option->get_lnames()) flags.push_back("--" + name);
  }
  return flags;
}

TrainConfig resumed_run_config(const std::string& dir, const TrainConfig& given,
                               const std::vector<std::string>& flags) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw std::invalid_argument(dir + ": no such run directory, nothing to resume");
  const RunFiles files(dir);
  TrainConfig recorded = read_run_config(files.config);
  const auto want = flatten_run_config(given);
  const auto have = flatten_run_config(recorded);
  const auto defaults = flatten_run_config(TrainConfig{});
  auto refuse = [&](const std::string& flag, const std::string& field) {
    throw std::invalid_argument(fmt::format(
        "{} disagrees with the run being resumed: {} is {} there but {} here ({}); a resumed run keeps "
        "its configuration: leave {} out, or start a new run with --out",
        flag, field, have.at(field).empty() ? "''" : have.at(field), want.at(field).empty() ? "''" : want.at(field),
        files.config, flag));
  };
  bool unknown_flag = false;
  for (const std::string& flag : flags) {
    if (contains(kOperationalFlags, flag)) continue;
    const auto fields = kFlagFields.find(flag);
    if (fields == kFlagFields.end()) {
      unknown_flag = true;
      continue;
    }
    for (const std::string& field : fields->second)
      if (want.at(field) != have.at(field)) refuse(flag, field);
  }
  if (unknown_flag) {  // a flag this file does not map: every field it moved off its default must agree
    for (const auto& [field, value] : want) {
      bool mapped = false;
      for (const auto& [flag, mapped_fields] : kFlagFields) mapped = mapped || contains(mapped_fields, field);
      if (!mapped && value != defaults.at(field) && value != have.at(field)) {
        std::string named;
        for (const std::string& flag : flags)
          if (!contains(kOperationalFlags, flag) && !kFlagFields.count(flag)) named += (named.empty() ? "" : "/") + flag;
        refuse(named, field);
      }
    }
  }
  if (contains(flags, "--checkpoint-every")) recorded.checkpoint_every = given.checkpoint_every;
  if (contains(flags, "--keep-checkpoints")) recorded.keep_checkpoints = given.keep_checkpoints;
  if (contains(flags, "--guard-every")) recorded.guard_every = given.guard_every;
  if (contains(flags, "--eval-batch-size")) recorded.eval_batch = given.eval_batch;
  recorded.out_dir = dir;
  recorded.resume_from = dir;
  return recorded;
}

}  // namespace fmnist::cli
