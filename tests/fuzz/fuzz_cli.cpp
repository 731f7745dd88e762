// libFuzzer harness: the command-line parsing of `fmnist`. The input is split on newlines and NULs
// into arguments, parsed exactly as `fmnist` parses them (cli::parse_only), and no command is run.
// The parse must end in 0 (a command would run; or --help, --version) or 2 (bad input) with exactly
// one line on stderr.
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "host/cli/cli.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

std::vector<std::string> split_arguments(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args{"fmnist"};
  std::string current;
  bool pending = false;
  for (std::size_t i = 0; i < size; ++i) {
    const char c = static_cast<char>(data[i]);
    if (c == '\n' || c == '\0') {
      args.push_back(current);
      current.clear();
      pending = false;
    } else {
      current += c;
      pending = true;
    }
  }
  if (pending) args.push_back(current);
  return args;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args = split_arguments(data, size);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::ostringstream out, err;
  std::streambuf* const cout_buffer = std::cout.rdbuf(out.rdbuf());
  std::streambuf* const cerr_buffer = std::cerr.rdbuf(err.rdbuf());
  int code = -1;
  try {
    code = fmnist::cli::parse_only(static_cast<int>(args.size()), argv.data());
  } catch (...) {
    std::cout.rdbuf(cout_buffer);
    std::cerr.rdbuf(cerr_buffer);
    throw;  // an exception escaping the parser: libFuzzer reports it as a crash
  }
  std::cout.rdbuf(cout_buffer);
  std::cerr.rdbuf(cerr_buffer);

  const std::string message = err.str();
  if (code == fmnist::cli::kExitBadInput) {
    if (message.empty() || message.back() != '\n' || !fmnist::fuzz::one_line(message.substr(0, message.size() - 1)))
      fmnist::fuzz::fail("exit code 2 without exactly one line on stderr: [" + message + "]");
  } else if (code != 0) {
    fmnist::fuzz::fail("unexpected exit code " + std::to_string(code) + ", stderr: [" + message + "]");
  }
  return 0;
}
