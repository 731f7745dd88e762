// The `fmnist` command line: parses, dispatches to a subcommand, and turns every error into one
// line on stderr with exit code 2 (bad input) or 1 (a failure while running).
#include "cli.h"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <iostream>
#include <stdexcept>
#include <vector>

#include <CLI/CLI.hpp>

#include "host/checkpoint.h"
#include "host/dataset.h"
#include "host/idx.h"
#include "host/one_line.h"
#include "host/safetensors.h"

namespace fmnist::cli {

bool stderr_is_terminal() { return isatty(STDERR_FILENO) == 1; }

void add_precision_flags(CLI::App* sub, PrecisionFlags& flags) {
  sub->add_option("--precision", flags.precision,
                  "precision of the convolutions and Linear products: fp32 (the default), tf32 (GPU "
                  "only: TF32 tensor cores) or bf16 (bfloat16 operands and results, FP32 sums and "
                  "master weights; CPU and GPU)")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16"}));
  sub->add_flag("--tf32", flags.tf32, "the same as --precision tf32");
}

Precision resolve_precision(const PrecisionFlags& flags) {
  Precision precision = flags.tf32 ? Precision::TF32 : Precision::FP32;
  if (!flags.precision.empty()) {
    if (!parse_precision(flags.precision, precision))
      throw std::invalid_argument("--precision must be fp32, tf32 or bf16, got '" + flags.precision + "'");
    if (flags.tf32 && precision != Precision::TF32)
      throw std::invalid_argument("--tf32 means --precision tf32, which contradicts --precision " +
                                  flags.precision + ": give one of them");
  }
  return precision;
}

std::string default_run_dir(const std::string& stem) {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm local{};
  localtime_r(&now, &local);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &local);
  return "runs/" + stem + "-" + stamp;
}

namespace {

// Prints "fmnist: error: MESSAGE" as one line, whatever line breaks the message (an argument, a
// path) holds.
void print_error(const std::string& message) {
  std::cerr << "fmnist: error: " << one_line(message) << '\n';
}

// Builds the command line with every subcommand and parses argv. On success calls `then` with the
// chosen command and returns its result; otherwise returns the exit code of --help, --version or a
// bad command line (whose message it prints as one line on stderr).
int parse_then(int argc, char** argv, int (*then)(const Command&)) {
  CLI::App app{"fmnist: trains the Fashion-MNIST autoencoder and classifier of Salomon (2024) "
               "on NVIDIA GPUs (cuDNN, cuBLAS) or the CPU reference backend."};
  app.set_version_flag("--version", std::string("fmnist ") + FMNIST_VERSION);
  app.require_subcommand(1);
  Command train, eval, info, bench, reproduce, report;
  add_train_command(app, train);
  add_eval_command(app, eval);
  add_info_command(app, info);
  add_bench_command(app, bench);
  add_reproduce_command(app, reproduce);
  add_report_command(app, report);
  const std::vector<const Command*> commands = {&train, &eval, &info, &bench, &reproduce, &report};
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    std::string names;
    for (const Command* c : commands) {
      known = known || c->app->check_name(argv[1]);
      names += (names.empty() ? "" : ", ") + c->app->get_name();
    }
    if (!known) {
      print_error("unknown command '" + std::string(argv[1]) + "' (commands: " + names + "; see fmnist --help)");
      return kExitBadInput;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    print_error(std::string(e.what()) + " (see fmnist --help)");
    return kExitBadInput;
  }
  for (const Command* c : commands)
    if (c->app->parsed()) return then(*c);
  return kExitFailure;
}

// Runs the chosen command, turning its exceptions into one line on stderr and an exit code.
int run_command(const Command& command) {
  try {
    return command.action(command.options);
  } catch (const std::invalid_argument& e) {
    print_error(e.what());
    return kExitBadInput;
  } catch (const DataError& e) {
    print_error(e.what());
    return kExitBadInput;
  } catch (const FormatError& e) {
    print_error(e.what());
    return kExitBadInput;
  } catch (const std::exception& e) {
    print_error(e.what());
    return kExitFailure;
  }
}

}  // namespace

int run(int argc, char** argv) { return parse_then(argc, argv, run_command); }

int parse_only(int argc, char** argv) {
  return parse_then(argc, argv, [](const Command&) { return 0; });
}

}  // namespace fmnist::cli
