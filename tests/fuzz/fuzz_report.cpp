// libFuzzer harness: the readers of a reproduction's stored results (`fmnist report OUT`). The
// input is results.json's text, optionally followed by a NUL and figures.json's text. Readers may
// only refuse with a one-line std::invalid_argument; what results_from_json accepts must come back
// unchanged through results_json, and what figures_from_json accepts through figures_json.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/report/results.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using nlohmann::json;

bool parse(const std::string& text, json& out) {
  try {
    out = json::parse(text);
    return true;
  } catch (const json::exception&) {
    return false;  // not JSON: read_stored_report refuses it before any reader sees it
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace fmnist;
  using namespace fmnist::report;
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = input.find('\0');
  json results;
  if (!parse(input.substr(0, nul), results)) return 0;

  bool read = false;
  StoredResults stored;
  fuzz::expect_documented_errors("", [&] {
    stored = results_from_json(results);
    read = true;
  });
  if (!read) return 0;
  const json written = results_json(stored.runs, stored.scale, stored.targets);
  try {
    const StoredResults again = results_from_json(written);
    if (results_json(again.runs, again.scale, again.targets) != written)
      fuzz::fail("results.json does not round-trip: " + written.dump());
  } catch (const std::exception& e) {
    fuzz::fail(std::string("results_json wrote what results_from_json refuses: ") + e.what());
  }

  json figures;
  if (nul == std::string::npos || !parse(input.substr(nul + 1), figures)) return 0;
  std::vector<std::int32_t> test_indices;
  std::vector<int> test_labels;
  read = false;
  fuzz::expect_documented_errors("", [&] {
    figures_from_json(figures, stored.runs, test_indices, test_labels);
    read = true;
  });
  if (!read) return 0;
  const json figures_written = figures_json(stored.runs, test_indices, test_labels);
  try {
    std::vector<RunResult> runs = stored.runs;
    std::vector<std::int32_t> indices;
    std::vector<int> labels;
    figures_from_json(figures_written, runs, indices, labels);
    if (figures_json(runs, indices, labels) != figures_written)
      fuzz::fail("figures.json does not round-trip: " + figures_written.dump());
  } catch (const std::exception& e) {
    fuzz::fail(std::string("figures_json wrote what figures_from_json refuses: ") + e.what());
  }
  return 0;
}
