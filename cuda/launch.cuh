// How every fmnist kernel is launched: launch() on the context's current stream, with Programmatic
// Dependent Launch (PDL, compute capability 9.0) when options().programmatic_launch asks for it,
// and grid_dependency() as the first statement of every kernel. Device and host; .cu files only.
//
// PDL lets the GPU start a kernel's grid while the kernel before it in the stream is finishing,
// instead of after: a kernel that runs grid_dependency() first tells the next one it may launch
// (griddepcontrol.launch_dependents), then waits until the kernel before it has completed and its
// writes are visible (griddepcontrol.wait). Each kernel so still starts its work after the one
// before has finished; what overlaps is the next grid's launch with this one's last blocks, a few
// microseconds a kernel at the paper's batch of 100. Without PDL both instructions do nothing.
// tests/kernel_launches_test.sh checks that every kernel begins with grid_dependency() and is
// launched through launch().
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "cuda/check.h"
#include "cuda/context.h"

namespace fmnist::cuda {

// The first statement of every fmnist kernel (see above). A no-op below sm_90 (the PTX fallback).
__device__ __forceinline__ void grid_dependency() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// kernel<<<grid, block, shared_bytes, c.stream()>>>(args...), checked, with PDL when
// c.options().programmatic_launch is set.
template <class... Params, class... Args>
void launch(const Context& c, void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t shared_bytes,
            Args&&... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = c.stream();
  const bool programmatic = c.options().programmatic_launch;
  config.attrs = programmatic ? &attribute : nullptr;
  config.numAttrs = programmatic ? 1 : 0;
  CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

}  // namespace fmnist::cuda
