// Runs Catch2's session on the command line (tests/catch_session.cpp, which holds Catch2's
// implementation, compiled once for the three test binaries; Catch2 declares its Session class
// only there).
#pragma once

namespace fmnist::testing {
// Catch::Session().run(argc, argv): the number of failed test cases (0 when all passed).
int run_catch_session(int argc, char* argv[]);
}  // namespace fmnist::testing
