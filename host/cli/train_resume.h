// `fmnist train --resume DIR`: the run's configuration comes from DIR/config.json; flags given again
// must agree with it, except the operational ones (device, data, output, checkpoint and guard
// settings), which apply to the resumed part.
#pragma once

#include <string>
#include <vector>

#include "host/trainer.h"

namespace CLI {
class App;
}

namespace fmnist::cli {

// The long names ("--epochs", ...) of the options given on `app`'s command line.
std::vector<std::string> given_flags(const CLI::App& app);

// DIR/config.json's configuration, with out_dir and resume_from set to `dir` and the operational
// settings of `given` (the configuration the flags describe) where their flag is in `flags`.
// Throws FormatError when config.json is missing or malformed, std::invalid_argument naming the
// first flag in `flags` whose value disagrees with the recorded configuration.
TrainConfig resumed_run_config(const std::string& dir, const TrainConfig& given,
                               const std::vector<std::string>& flags);

}  // namespace fmnist::cli
