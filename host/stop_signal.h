// SIGINT and SIGTERM during `fmnist train`: the handler only records the signal; the trainer sees
// it between two steps, finishes the step, writes a checkpoint and returns, and the command exits
// with 128 + the signal's number (130 for SIGINT, 143 for SIGTERM) after saying how to resume. A
// second signal of the same kind while that happens ends the process at once (default action).
#pragma once

#include <csignal>

namespace fmnist {

// Installs the handlers (SA_RESETHAND: the second signal is not caught). Call once.
void install_stop_handlers();

// The flag the handlers set to the signal's number (0: none yet), for TrainCallbacks::stop_signal.
volatile std::sig_atomic_t* stop_signal_flag();

// "SIGINT", "SIGTERM", or "a signal".
const char* signal_name(int signal);

}  // namespace fmnist
