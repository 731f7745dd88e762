// Runs the PyTorch side of the cross-checks (tools/torch_interop.py under Debian's /usr/bin/python3)
// from a Catch2 test: the command's exit status and output, and the JSON line it printed last.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <utility>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace fmnist::testing {

inline const char* const kPython = "/usr/bin/python3";

inline std::string quoted(const std::string& s) { return "'" + s + "'"; }

// Runs a shell command; its exit status and everything it printed.
inline std::pair<int, std::string> run_command(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return {-1, "popen failed"};
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe)) output += buffer;
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

// Fails the test (not skips it) when Debian's PyTorch is missing: tools/setup.sh installs it.
inline void require_torch() {
  if (run_command(std::string(kPython) + " -c 'import torch'").first != 0)
    FAIL("/usr/bin/python3 cannot import torch: tools/setup.sh installs python3-torch (Debian's "
         "PyTorch), which the PyTorch cross-checks need");
}

// Runs tools/torch_interop.py with `arguments`; requires success and returns its output.
inline std::string torch_interop(const std::string& arguments) {
  const std::string tool = std::string(FMNIST_SOURCE_DIR) + "/tools/torch_interop.py";
  const auto [rc, output] = run_command(std::string(kPython) + " " + quoted(tool) + " " + arguments);
  INFO(output);
  REQUIRE(rc == 0);
  return output;
}

// The last line of `output` that is a JSON object (warnings may precede it).
inline nlohmann::json last_json_line(const std::string& output) {
  const auto line_start = output.rfind("\n{");
  INFO(output);
  return nlohmann::json::parse(output.substr(line_start == std::string::npos ? 0 : line_start + 1));
}

}  // namespace fmnist::testing
