// StepGraphs (see step_graphs.h) and the names of the data placements (stream_options.h).
#include "host/step_graphs.h"

#include <iterator>
#include <ostream>
#include <stdexcept>
#include <string>

#include "host/stream_options.h"

namespace fmnist {

const char* placement_name(DataPlacement placement) {
  switch (placement) {
    case DataPlacement::Auto: return "auto";
    case DataPlacement::Resident: return "resident";
    case DataPlacement::Stream: return "stream";
  }
  return "?";
}

DataPlacement parse_placement(const std::string& name) {
  for (DataPlacement p : {DataPlacement::Auto, DataPlacement::Resident, DataPlacement::Stream})
    if (name == placement_name(p)) return p;
  throw std::invalid_argument("data placement must be auto, resident or stream, got '" + name + "'");
}

StepGraphs::StepGraphs(Ops<float>& ops, bool enabled, std::ostream* log)
    : ops_(ops), enabled_(enabled), log_(log) {}

std::string graph_counts_text(int captured, int failed_captures) {
  std::string text = std::to_string(captured) + (captured == 1 ? " kind" : " kinds") + " of step captured, " +
                     std::to_string(failed_captures) + (failed_captures == 1 ? " failed capture" : " failed captures");
  if (failed_captures > 0) text += " (those steps ran un-captured: the same results, more launch overhead)";
  return text;
}

void StepGraphs::clear(Phase phase) {
  for (auto it = entries_.begin(); it != entries_.end();)
    it = it->first.phase == phase ? entries_.erase(it) : std::next(it);
}

void StepGraphs::run(const Key& key, const std::function<void()>& enqueue) {
  if (!active()) {
    enqueue();
    return;
  }
  Entry& e = entries_[key];
  if (e.graph) {
    e.graph->replay();
    ++replays_;
    return;
  }
  if (e.runs++ == 0 || e.failed_captures >= kCaptureAttempts) {  // the warm-up, or a kind given up on
    enqueue();
    return;
  }
  try {
    ops_.begin_capture();
    enqueue();
    e.graph = ops_.end_capture();
  } catch (const std::exception& error) {
    ops_.abort_capture();
    ++e.failed_captures;
    ++failures_;
    if (log_ != nullptr)
      *log_ << "fmnist: warning: CUDA graph capture failed (" << error.what() << "); "
            << (e.failed_captures < kCaptureAttempts
                    ? "this step runs un-captured, the next one of its kind tries again (attempt " +
                          std::to_string(e.failed_captures) + " of " + std::to_string(kCaptureAttempts) + ")"
                    : std::string("this kind of step runs un-captured (same results, more launch overhead)"))
            << "\n";
    try {
      enqueue();  // nothing captured has run
    } catch (...) {
      if (log_ != nullptr) *log_ << "fmnist: the step's un-captured run after that failed capture failed too\n";
      throw;
    }
    return;
  }
  ++captured_;
  e.graph->replay();
  ++replays_;
}

}  // namespace fmnist
