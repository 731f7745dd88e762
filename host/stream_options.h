// How batches reach the backend and how steps are launched (host/batch_stream.h): where the data
// lives (resident on the device, or streamed through pinned buffers), whether steps are captured
// as CUDA graphs, and how deep the upload ring is. None of this changes a result: every choice
// computes the same bits (tests/test_batch_stream.cpp, tests/gpu/test_gpu_stream.cpp).
#pragma once

#include <string>

namespace fmnist {

// Auto: resident when the data set takes at most StreamOptions::resident_fraction of the free
// device memory and needs no host-side augmentation, else streamed. On the CPU backend (whose
// memory is the host's) Auto streams.
enum class DataPlacement { Auto, Resident, Stream };

struct StreamOptions {
  DataPlacement placement = DataPlacement::Auto;
  bool graphs = true;              // capture each kind of step once and replay it (where possible)
  int slots = 4;                   // upload ring depth when streaming (>= 2): batches in flight
  double resident_fraction = 0.25;  // Auto: the share of free device memory a resident set may take
};

// "auto", "resident", "stream"; parse_placement throws std::invalid_argument for anything else.
const char* placement_name(DataPlacement placement);
DataPlacement parse_placement(const std::string& name);

}  // namespace fmnist
