// NVTX ranges for Nsight Systems and Nsight Compute: a scoped range names a phase (copy, forward,
// loss, backward, optimizer, validation) or a layer. Compiled to nothing unless the build defines
// FMNIST_NVTX (the CUDA build does, see cuda/CMakeLists.txt: option FMNIST_NVTX). NVTX v3 is
// header-only; without a profiler attached a range costs a few nanoseconds.
// A captured CUDA graph records its ranges once, at capture: replays show as one graph launch
// inside the caller's range (run with --no-graph to see every layer of every step).
// The same ranges also reach this thread's RangeListener when one is set (with or without NVTX):
// `fmnist bench --measure layers` times each of them with it (host/range_timer.h).
#pragma once

#if defined(FMNIST_NVTX)
#include <nvtx3/nvToolsExt.h>
#endif

namespace fmnist {

// Told of every range this thread opens and closes, in order (ranges nest).
class RangeListener {
 public:
  virtual ~RangeListener() = default;
  virtual void enter(const char* name) = 0;
  virtual void leave() = 0;
};

// This thread's listener, or null (the default): set it for a scope with ListenToRanges.
inline RangeListener*& range_listener() {
  thread_local RangeListener* listener = nullptr;
  return listener;
}

class ListenToRanges {
 public:
  explicit ListenToRanges(RangeListener& listener) : previous_(range_listener()) { range_listener() = &listener; }
  ~ListenToRanges() { range_listener() = previous_; }
  ListenToRanges(const ListenToRanges&) = delete;
  ListenToRanges& operator=(const ListenToRanges&) = delete;

 private:
  RangeListener* previous_;
};

class NvtxRange {
 public:
  explicit NvtxRange(const char* name) : listener_(range_listener()) {
#if defined(FMNIST_NVTX)
    nvtxRangePushA(name);
#endif
    if (listener_ != nullptr) listener_->enter(name);
  }
  ~NvtxRange() {
    if (listener_ != nullptr) listener_->leave();
#if defined(FMNIST_NVTX)
    nvtxRangePop();
#endif
  }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;

 private:
  RangeListener* listener_;
};

}  // namespace fmnist
