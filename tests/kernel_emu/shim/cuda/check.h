// cuda/check.h for the CPU kernel emulator (tests/kernel_emu): the one check the kernel sources
// use outside their kernels, CUDA_CHECK, throwing as the real one does on a failed call.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#define CUDA_CHECK(call)                                                                      \
  do {                                                                                        \
    if ((call) != cudaSuccess) throw std::runtime_error(std::string("emulated ") + #call + " failed"); \
  } while (0)
