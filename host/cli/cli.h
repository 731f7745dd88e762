// The `fmnist` command line: train | eval | info | bench | reproduce | report. Each subcommand lives in its own file.
#pragma once

#include <string>

#include "models/precision.h"

namespace CLI {
class App;
}

namespace fmnist::cli {

// Exit codes: 0 success, 1 a failure while running, 2 bad input (flag, value, file, data).
constexpr int kExitFailure = 1;
constexpr int kExitBadInput = 2;

// Runs the command line; prints errors as one line "fmnist: error: ..." on stderr.
int run(int argc, char** argv);

// Parses the command line exactly as run() does but runs no command: returns 0 where run() would
// start one, else what run() returns for --help, --version or a bad command line (printing the
// same). For the command-line fuzzer (tests/fuzz).
int parse_only(int argc, char** argv);

// Subcommand registration: each adds itself to `app` and sets `action` to run when chosen.
struct Command {
  CLI::App* app = nullptr;
  int (*action)(void* options) = nullptr;
  void* options = nullptr;
};
void add_train_command(CLI::App& app, Command& command);
void add_eval_command(CLI::App& app, Command& command);
void add_info_command(CLI::App& app, Command& command);
void add_bench_command(CLI::App& app, Command& command);
void add_reproduce_command(CLI::App& app, Command& command);
void add_report_command(CLI::App& app, Command& command);

// --precision fp32|tf32|bf16 and its alias --tf32 (= --precision tf32), as train, eval, bench and
// reproduce take them.
struct PrecisionFlags {
  std::string precision;  // empty: not given
  bool tf32 = false;
};
void add_precision_flags(CLI::App* sub, PrecisionFlags& flags);
// The precision the flags name: fp32 when neither is given. --tf32 with --precision fp32 or bf16
// is refused (std::invalid_argument, one line: exit 2).
Precision resolve_precision(const PrecisionFlags& flags);

// Helpers shared by the subcommands.
bool stderr_is_terminal();
std::string default_run_dir(const std::string& stem);  // runs/<stem>-YYYYmmdd-HHMMSS

}  // namespace fmnist::cli
