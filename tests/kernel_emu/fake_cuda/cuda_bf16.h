// CUDA's bfloat16 type and rounding intrinsic, for the CPU kernel emulator (tests/kernel_emu).
// fmnist rounds with its own elementwise::bf16_bits everywhere; CUDA's intrinsic is only what its
// agreement check (cuda/bf16.cu) compares that with, on a GPU. Emulating the intrinsic would be a
// second copy of the rounding, so it throws: that check is for GPUs only.
#pragma once

#include <cstdint>
#include <stdexcept>

struct __nv_bfloat16_raw {
  std::uint16_t x = 0;
};
struct __nv_bfloat16 {
  std::uint16_t bits = 0;
  operator __nv_bfloat16_raw() const { return __nv_bfloat16_raw{bits}; }
};
inline __nv_bfloat16 __float2bfloat16_rn(float) {
  throw std::logic_error("kernel emulator: __float2bfloat16_rn is CUDA's, checked on a GPU only");
}
