// NVTX ranges for Nsight Systems and Nsight Compute: a scoped range names a phase (copy, forward,
// loss, backward, optimizer, validation) or a layer. Compiled to nothing unless the build defines
// FMNIST_NVTX (the CUDA build does, see cuda/CMakeLists.txt: option FMNIST_NVTX). NVTX v3 is
// header-only; without a profiler attached a range costs a few nanoseconds.
// A captured CUDA graph records its ranges once, at capture: replays show as one graph launch
// inside the caller's range (run with --no-graph to see every layer of every step).
#pragma once

#if defined(FMNIST_NVTX)
#include <nvtx3/nvToolsExt.h>
#endif

namespace fmnist {

class NvtxRange {
 public:
#if defined(FMNIST_NVTX)
  explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
  ~NvtxRange() { nvtxRangePop(); }
#else
  explicit NvtxRange(const char*) {}
#endif
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace fmnist
