// The fmnist executable: everything is in host/cli/.
#include "host/cli/cli.h"

int main(int argc, char** argv) { return fmnist::cli::run(argc, argv); }
