// Adam on the GPU: ONE launch updates n contiguous parameters, their gradients and both moments
// (flat buffers, as the executor keeps them), each element by elementwise::adam_update, the same
// function the CPU reference calls (adam_elements.cuh: four a thread where the buffers allow). The
// bias corrections come from the host (AdamStep), so the kernel holds no step counter. Compiled
// with --fmad=false: the update rounds exactly as the CPU's.
#include <cstddef>

#include "cuda/adam_elements.cuh"
#include "cuda/check.h"
#include "cuda/grid_stride.cuh"
#include "cuda/launch.cuh"
#include "cuda/kernels.h"

namespace fmnist::cuda {
namespace {

// params, grads, m, v are (n); step is passed by value (kernel parameter memory).
__global__ void adam_kernel(std::size_t n, float* params, const float* grads, float* m, float* v,
                            elementwise::AdamStep<float> step) {
  grid_dependency();
  adam_elements(n, params, grads, m, v, step);
}

}  // namespace

void launch_adam(const Context& c, std::size_t n, float* params, const float* grads, float* m,
                 float* v, const elementwise::AdamStep<float>& step) {
  launch(c, adam_kernel, c.grid_for(adam_threads(n), kThreads), kThreads, 0, n, params, grads, m, v, step);
}

}  // namespace fmnist::cuda
