// Catch2's implementation (CATCH_CONFIG_RUNNER: everything but main), compiled once into
// fmnist_catch for the three test binaries; each brings its own main (tests/main.cpp for the CPU
// and kernel-emulator tests, tests/gpu/main.cpp for the GPU tests), which calls this.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "catch_session.h"

int fmnist::testing::run_catch_session(int argc, char* argv[]) { return Catch::Session().run(argc, argv); }
