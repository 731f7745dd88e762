// The entry point of the CPU and kernel-emulator test binaries: Catch2's session (compiled once,
// in tests/catch_session.cpp) on the command line.
#include "catch_session.h"

int main(int argc, char* argv[]) { return fmnist::testing::run_catch_session(argc, argv); }
