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
#include "host/safetensors.h"

namespace fmnist::cli {

bool stderr_is_terminal() { return isatty(STDERR_FILENO) == 1; }

std::string default_run_dir(const std::string& stem) {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm local{};
  localtime_r(&now, &local);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &local);
  return "runs/" + stem + "-" + stamp;
}

int run(int argc, char** argv) {
  CLI::App app{"fmnist: trains the Fashion-MNIST autoencoder and classifier of Salomon (2024) "
               "on NVIDIA GPUs (cuDNN, cuBLAS) or the CPU reference backend."};
  app.set_version_flag("--version", std::string("fmnist ") + FMNIST_VERSION);
  app.require_subcommand(1);
  Command train, eval, info, bench;
  add_train_command(app, train);
  add_eval_command(app, eval);
  add_info_command(app, info);
  add_bench_command(app, bench);
  const std::vector<const Command*> commands = {&train, &eval, &info, &bench};
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    std::string names;
    for (const Command* c : commands) {
      known = known || c->app->check_name(argv[1]);
      names += (names.empty() ? "" : ", ") + c->app->get_name();
    }
    if (!known) {
      std::cerr << "fmnist: error: unknown command '" << argv[1] << "' (commands: " << names
                << "; see fmnist --help)\n";
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
    std::cerr << "fmnist: error: " << e.what() << " (see fmnist --help)\n";
    return kExitBadInput;
  }
  for (const Command* c : commands) {
    if (!c->app->parsed()) continue;
    try {
      return c->action(c->options);
    } catch (const std::invalid_argument& e) {
      std::cerr << "fmnist: error: " << e.what() << "\n";
      return kExitBadInput;
    } catch (const DataError& e) {
      std::cerr << "fmnist: error: " << e.what() << "\n";
      return kExitBadInput;
    } catch (const FormatError& e) {
      std::cerr << "fmnist: error: " << e.what() << "\n";
      return kExitBadInput;
    } catch (const std::exception& e) {
      std::cerr << "fmnist: error: " << e.what() << "\n";
      return kExitFailure;
    }
  }
  return kExitFailure;
}

}  // namespace fmnist::cli
