// CUDA's math_constants.h names the kernels use, for the CPU kernel emulator (tests/kernel_emu).
#pragma once

#include <limits>

#define CUDART_INF_F (std::numeric_limits<float>::infinity())
#define CUDART_NAN_F (std::numeric_limits<float>::quiet_NaN())
