// cuda/launch.cuh for the CPU kernel emulator (tests/kernel_emu): launch() runs the kernel's grid
// through the emulator (emulator.h) with its arguments converted to the kernel's parameter types
// once, as a CUDA launch copies them; grid_dependency() (PDL's wait) has nothing to wait for.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "cuda/context.h"

namespace fmnist::cuda {

inline void grid_dependency() {}

template <class... Params, class... Args>
void launch(const Context&, void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t shared_bytes,
            Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "a kernel takes as many arguments as it has parameters");
  if (shared_bytes != 0) throw std::logic_error("kernel emulator: dynamic shared memory is not emulated");
  const std::tuple<Params...> parameters(static_cast<Params>(std::forward<Args>(args))...);
  kernel_emu::run_grid(grid, block, [&] { std::apply(kernel, parameters); });
}

}  // namespace fmnist::cuda
