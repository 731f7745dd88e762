// A CPU emulator for fmnist's CUDA kernels (tests/kernel_emu): it runs a kernel's grid on the host,
// block after block, each block's threads as fibers (own stacks) that switch at __syncthreads() and
// at warp shuffles, so that the real kernel source (cuda/*.cu, compiled by g++ against the fake
// CUDA headers in fake_cuda/) runs with its launch geometry, its shared memory, its barriers and its
// last-block handshakes, on a machine without a GPU. It is one legal schedule of the kernel, not a
// model of timing or of memory coherence; the schedule (block order, thread order) can be changed
// so that a result that depends on it shows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

// CUDA's launch-shape types and built-in variables, as the kernels read them.
struct uint3 {
  unsigned int x = 0, y = 0, z = 0;
};
struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
};
// Plain globals: the emulator runs one launch at a time in a process (the shared-memory statics
// of the kernels assume it too).
extern uint3 threadIdx;
extern uint3 blockIdx;
extern dim3 blockDim;
extern dim3 gridDim;

namespace fmnist::kernel_emu {

// The order the emulator runs a grid's blocks in, and a block's threads in between barriers.
enum class BlockOrder { Forward, Reverse, Shuffled };
struct Schedule {
  BlockOrder blocks = BlockOrder::Forward;
  bool threads_reversed = false;
  std::uint64_t seed = 1;  // of BlockOrder::Shuffled
};
// The schedule of the launches that follow.
void set_schedule(const Schedule& schedule);

// What the emulator has launched so far: a count, and the last launch's shape.
struct LaunchLog {
  std::size_t launches = 0;
  dim3 last_grid, last_block;
};
const LaunchLog& launch_log();

// Runs `thread` once for every thread of the grid (blockIdx, threadIdx, blockDim and gridDim set),
// after the checks a GPU makes of a launch (std::runtime_error: a block of 1 to 1,024 threads, grid
// y and z at most 65,535). An exception thrown by a thread, or threads that wait at barriers that
// can never open (a __syncthreads() some threads of a block never reach while others still run),
// end the launch with std::runtime_error naming what happened.
void run_grid(dim3 grid, dim3 block, const std::function<void()>& thread);

// __syncthreads(): waits until every thread of the block that has not returned is here.
void sync_threads();
// __shfl_down_sync(mask, v, delta) for the full mask: every lane of the warp (32 threads, all
// present) passes its 8 bytes; a lane gets lane + delta's, or its own past the warp's end.
std::uint64_t shuffle_down_bits(std::uint64_t bits, unsigned int mask, unsigned int delta);
// __shfl_xor_sync(mask, v, lane_mask) for the full mask: a lane gets lane ^ lane_mask's 8 bytes
// (lane_mask < 32; a GPU's wider masks reach outside the warp, which is not emulated).
std::uint64_t shuffle_xor_bits(std::uint64_t bits, unsigned int mask, unsigned int lane_mask);

template <class T, class Exchange>
T shuffle_value(T value, Exchange exchange) {
  static_assert(sizeof(T) <= sizeof(std::uint64_t), "a shuffle moves at most 8 bytes");
  std::uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof value);
  bits = exchange(bits);
  T out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}
template <class T>
T shuffle_down(T value, unsigned int mask, unsigned int delta) {
  return shuffle_value(value, [&](std::uint64_t bits) { return shuffle_down_bits(bits, mask, delta); });
}
template <class T>
T shuffle_xor(T value, unsigned int mask, unsigned int lane_mask) {
  return shuffle_value(value, [&](std::uint64_t bits) { return shuffle_xor_bits(bits, mask, lane_mask); });
}

}  // namespace fmnist::kernel_emu
