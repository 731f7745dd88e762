// The device-side CUDA names fmnist's kernel sources use, for g++ and the CPU kernel emulator
// (emulator.h): qualifiers that mean nothing on the host, __shared__ as a static (the emulator runs
// one block at a time, so a static is the block's shared memory), barriers and shuffles through the
// emulator, atomics and fences as plain operations (its threads never run at the same time).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "emulator.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

using std::isnan;

// CUDA's vector type of four floats (16 bytes, 16-byte aligned), for 16-byte loads and stores.
struct alignas(16) float4 {
  float x, y, z, w;
};

inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

inline void __syncthreads() { fmnist::kernel_emu::sync_threads(); }
inline void __threadfence() {}
inline unsigned int atomicAdd(unsigned int* address, unsigned int value) {
  const unsigned int old = *address;
  *address = old + value;
  return old;
}
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
  const unsigned long long old = *address;
  *address = old + value;
  return old;
}
template <class T>
T __ldcg(const T* address) {
  return *address;
}
template <class T>
T __shfl_down_sync(unsigned int mask, T value, unsigned int delta) {
  return fmnist::kernel_emu::shuffle_down(value, mask, delta);
}
template <class T>
T __shfl_xor_sync(unsigned int mask, T value, int lane_mask) {
  return fmnist::kernel_emu::shuffle_xor(value, mask, static_cast<unsigned int>(lane_mask));
}
inline float __uint_as_float(unsigned int bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
