// The CPU kernel emulator (see emulator.h): a grid's blocks run one after another in the
// schedule's order; a block's threads are fibers on this OS thread, each run until it returns or
// waits at a barrier (__syncthreads for the block, a shuffle for its warp); a barrier opens when
// every thread it concerns that has not returned waits there. On x86-64 a fiber switch is a few
// instructions (switch_stacks below); elsewhere it is glibc's swapcontext, which also makes a
// system call per switch (a kernel with many shuffles then runs some 50x slower).
#include "emulator.h"

#include <ucontext.h>

#include <algorithm>
#include <array>
#include <exception>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/rng.h"

#if defined(__SANITIZE_ADDRESS__)
#define FMNIST_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FMNIST_EMU_ASAN 1
#endif
#endif
#if defined(FMNIST_EMU_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

uint3 threadIdx;
uint3 blockIdx;
dim3 blockDim;
dim3 gridDim;

namespace fmnist::kernel_emu {
namespace {

constexpr int kWarpSize = 32;
constexpr int kMaxThreads = 1024;
constexpr std::size_t kStackBytes = 256 * 1024;  // kernels keep a few hundred bytes; sanitizers more

enum class State { Runnable, AtBlockBarrier, AtWarpBarrier, Returned };

struct Fiber {
  ucontext_t context{};  // swapcontext's (the portable path)
  void* stack_pointer = nullptr;  // switch_stacks's (x86-64)
  std::unique_ptr<char[]> stack;  // left uninitialised: only the pages a thread touches are used
  State state = State::Runnable;
  uint3 index;
  int linear = 0;          // threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)
  unsigned shuffles = 0;   // shuffles this thread has made, for the exchange buffer's parity
};

// One block in flight: its fibers, the scheduler's context, and the warps' exchange buffers.
struct Block {
  std::vector<Fiber> fibers;
  ucontext_t scheduler{};
  void* scheduler_stack_pointer = nullptr;
  int current = -1;
  const std::function<void()>* thread = nullptr;
  std::exception_ptr error;
  std::vector<std::array<std::array<std::uint64_t, kWarpSize>, 2>> exchange;  // per warp, two buffers
  const void* scheduler_stack = nullptr;  // for the sanitizer's fiber switches
  std::size_t scheduler_stack_bytes = 0;
};

Schedule schedule_in_force;
LaunchLog log_so_far;
Block* active = nullptr;

#if defined(__x86_64__)
// fmnist_emu_switch_stacks(save, load): saves the callee-saved registers and the stack pointer
// (into *save) on the current stack, then restores them from the stack at `load` and returns there
// (the System V x86-64 ABI: every other register is the caller's to save). The SSE and x87 control
// words, callee-saved too, are left alone: nothing here changes them, and saving them (stmxcsr,
// ldmxcsr, fldcw) made a switch several times slower. A new fiber's stack is laid out as if it had
// called this (fiber_stack_top).
extern "C" void fmnist_emu_switch_stacks(void** save, void* load);
asm(R"(
  .text
  .globl fmnist_emu_switch_stacks
  .type fmnist_emu_switch_stacks, @function
fmnist_emu_switch_stacks:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size fmnist_emu_switch_stacks, .-fmnist_emu_switch_stacks
)");
constexpr bool kFastSwitch = true;
#else
constexpr bool kFastSwitch = false;
void fmnist_emu_switch_stacks(void**, void*) { throw std::logic_error("kernel emulator: no fast switch here"); }
#endif

// Tells AddressSanitizer that the stack [bottom, bottom + bytes) becomes current (`fake` keeps the
// leaving stack's fake frames; null when the leaving fiber has ended), then, once this stack runs
// again, that it is current.
struct SanitizerSwitch {
  void* fake = nullptr;
  SanitizerSwitch(const void* bottom, std::size_t bytes, bool leaving_for_good = false) {
#if defined(FMNIST_EMU_ASAN)
    __sanitizer_start_switch_fiber(leaving_for_good ? nullptr : &fake, bottom, bytes);
#else
    (void)bottom, (void)bytes, (void)leaving_for_good;
#endif
  }
  void arrived() {
#if defined(FMNIST_EMU_ASAN)
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  }
};

// The scheduler resumes fiber f.
void resume(Block& block, Fiber& f) {
  SanitizerSwitch sanitizer(f.stack.get(), kStackBytes);
  if (kFastSwitch)
    fmnist_emu_switch_stacks(&block.scheduler_stack_pointer, f.stack_pointer);
  else
    swapcontext(&block.scheduler, &f.context);
  sanitizer.arrived();
}

// The running fiber f gives the scheduler back its turn (for good once it has returned).
void suspend(Block& block, Fiber& f, bool for_good = false) {
  SanitizerSwitch sanitizer(block.scheduler_stack, block.scheduler_stack_bytes, for_good);
  if (kFastSwitch)
    fmnist_emu_switch_stacks(&f.stack_pointer, block.scheduler_stack_pointer);
  else if (!for_good)
    swapcontext(&f.context, &block.scheduler);
  // (swapcontext's fiber ends by returning from fiber_main to uc_link, the scheduler)
  sanitizer.arrived();
}

// A fiber's first frame: runs the thread, records what it threw, and hands the scheduler its turn
// for good (the fast switch), or returns to it (swapcontext's uc_link).
void fiber_main() {
#if defined(FMNIST_EMU_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &active->scheduler_stack, &active->scheduler_stack_bytes);
#endif
  Block& block = *active;
  Fiber& fiber = block.fibers[static_cast<std::size_t>(block.current)];
  try {
    (*block.thread)();
  } catch (...) {
    if (!block.error) block.error = std::current_exception();
  }
  fiber.state = State::Returned;
  suspend(block, fiber, true);
}

// A fresh fiber's stack for the fast switch: what fmnist_emu_switch_stacks leaves when it is called,
// returning into fiber_main with the stack aligned as a call leaves it.
void* fiber_stack_top(Fiber& f) {
  // Stacks of the same size start at addresses that map to the same cache sets; staggering their
  // tops by the thread index keeps the switches' loads and stores from evicting one another.
  const std::size_t stagger = static_cast<std::size_t>(f.linear % 61) * 64;
  auto top = reinterpret_cast<std::uintptr_t>(f.stack.get() + kStackBytes - stagger) & ~std::uintptr_t{15};
  auto* sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;                                       // fiber_main's return address: it never returns
  *--sp = reinterpret_cast<void*>(&fiber_main);          // where the first switch returns to
  for (int r = 0; r < 6; ++r) *--sp = nullptr;           // rbp, rbx, r12-r15
  return sp;
}

// From inside a fiber: wait in `state` until the scheduler opens that barrier.
void wait_at(State state) {
  if (active == nullptr || active->current < 0)
    throw std::logic_error("kernel emulator: a barrier outside a kernel");
  Block& block = *active;
  Fiber& fiber = block.fibers[static_cast<std::size_t>(block.current)];
  fiber.state = state;
  suspend(block, fiber);
}

std::string shape(dim3 d) {
  return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
}

// The blocks' linear indices in the schedule's order.
std::vector<std::size_t> block_order(std::size_t blocks) {
  std::vector<std::size_t> order(blocks);
  std::iota(order.begin(), order.end(), std::size_t{0});
  if (schedule_in_force.blocks == BlockOrder::Reverse) std::reverse(order.begin(), order.end());
  if (schedule_in_force.blocks == BlockOrder::Shuffled) {
    SplitMix64 rng(schedule_in_force.seed);
    for (std::size_t i = blocks; i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  }
  return order;
}

// Runs one block to the end: every fiber returned.
void run_block(Block& block, int threads) {
  for (int t = 0; t < threads; ++t) {
    Fiber& f = block.fibers[static_cast<std::size_t>(t)];
    if (!f.stack) f.stack.reset(new char[kStackBytes]);
#if defined(FMNIST_EMU_ASAN)
    // The frames a thread left on this stack (it never unwinds) keep their redzones poisoned.
    ASAN_UNPOISON_MEMORY_REGION(f.stack.get(), kStackBytes);
#endif
    f.state = State::Runnable;
    f.linear = t;
    f.shuffles = 0;
    f.index.x = static_cast<unsigned>(t) % blockDim.x;
    f.index.y = static_cast<unsigned>(t) / blockDim.x % blockDim.y;
    f.index.z = static_cast<unsigned>(t) / (blockDim.x * blockDim.y);
    if (kFastSwitch) {
      f.stack_pointer = fiber_stack_top(f);
    } else {
      getcontext(&f.context);
      f.context.uc_stack.ss_sp = f.stack.get();
      f.context.uc_stack.ss_size = kStackBytes;
      f.context.uc_link = &block.scheduler;
      makecontext(&f.context, fiber_main, 0);
    }
  }
  const int warps = (threads + kWarpSize - 1) / kWarpSize;
  for (;;) {
    for (int k = 0; k < threads; ++k) {
      const int t = schedule_in_force.threads_reversed ? threads - 1 - k : k;
      Fiber& f = block.fibers[static_cast<std::size_t>(t)];
      if (f.state != State::Runnable) continue;
      block.current = t;
      threadIdx = f.index;
      resume(block, f);
      block.current = -1;
    }
    if (block.error) return;  // the launch ends; the fibers left waiting are reset by the next launch
    int returned = 0, at_block = 0;
    bool opened = false;
    for (int w = 0; w < warps; ++w) {
      int live = 0, at_warp = 0;
      for (int t = w * kWarpSize; t < std::min(threads, (w + 1) * kWarpSize); ++t) {
        const State s = block.fibers[static_cast<std::size_t>(t)].state;
        returned += s == State::Returned;
        at_block += s == State::AtBlockBarrier;
        live += s != State::Returned;
        at_warp += s == State::AtWarpBarrier;
      }
      if (live > 0 && at_warp == live) {
        if (live != std::min(threads, (w + 1) * kWarpSize) - w * kWarpSize)
          throw std::runtime_error("kernel emulator: a shuffle in a warp some of whose threads have returned");
        for (int t = w * kWarpSize; t < std::min(threads, (w + 1) * kWarpSize); ++t)
          block.fibers[static_cast<std::size_t>(t)].state = State::Runnable;
        opened = true;
      }
    }
    if (returned == threads) return;
    if (!opened && at_block == threads - returned) {
      for (int t = 0; t < threads; ++t)
        if (block.fibers[static_cast<std::size_t>(t)].state == State::AtBlockBarrier)
          block.fibers[static_cast<std::size_t>(t)].state = State::Runnable;
      opened = true;
    }
    if (!opened)
      throw std::runtime_error("kernel emulator: block " + shape(dim3(blockIdx.x, blockIdx.y, blockIdx.z)) +
                               " cannot go on: " + std::to_string(at_block) + " of its " +
                               std::to_string(threads - returned) +
                               " running threads wait at __syncthreads(), the others at a warp shuffle");
  }
}

}  // namespace

void set_schedule(const Schedule& schedule) { schedule_in_force = schedule; }
const LaunchLog& launch_log() { return log_so_far; }

void run_grid(dim3 grid, dim3 block_shape, const std::function<void()>& thread) {
  const std::size_t threads = static_cast<std::size_t>(block_shape.x) * block_shape.y * block_shape.z;
  if (threads < 1 || threads > kMaxThreads || block_shape.z > 64)
    throw std::runtime_error("kernel emulator: invalid launch: a block of " + shape(block_shape) + " threads");
  if (grid.x < 1 || grid.y < 1 || grid.z < 1 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
    throw std::runtime_error("kernel emulator: invalid launch: a grid of " + shape(grid) + " blocks");
  if (active != nullptr) throw std::logic_error("kernel emulator: a launch from inside a kernel");
  ++log_so_far.launches;
  log_so_far.last_grid = grid;
  log_so_far.last_block = block_shape;

  static Block block;  // its fibers' stacks are kept from launch to launch
  if (block.fibers.size() < threads) block.fibers.resize(threads);
  block.exchange.assign((threads + kWarpSize - 1) / kWarpSize, {});
  block.thread = &thread;
  block.error = nullptr;
  gridDim = grid;
  blockDim = block_shape;
  active = &block;
  const std::size_t blocks = static_cast<std::size_t>(grid.x) * grid.y * grid.z;
  try {
    for (std::size_t b : block_order(blocks)) {
      blockIdx.x = static_cast<unsigned>(b % grid.x);
      blockIdx.y = static_cast<unsigned>(b / grid.x % grid.y);
      blockIdx.z = static_cast<unsigned>(b / (static_cast<std::size_t>(grid.x) * grid.y));
      run_block(block, static_cast<int>(threads));
      if (block.error) break;
    }
  } catch (...) {
    active = nullptr;
    throw;
  }
  active = nullptr;
  if (block.error) {
    try {
      std::rethrow_exception(block.error);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("kernel emulator: a thread of block ") +
                               shape(dim3(blockIdx.x, blockIdx.y, blockIdx.z)) + " threw: " + e.what());
    }
  }
}

void sync_threads() { wait_at(State::AtBlockBarrier); }

namespace {
// Lane `lane` of the calling thread's warp posts `bits` and waits until every lane of the warp
// has; returns the buffer the warp's lanes wrote (valid until the warp's shuffle after next).
const std::array<std::uint64_t, kWarpSize>& exchange_in_warp(std::uint64_t bits, unsigned int mask, int& lane_out) {
  if (active == nullptr || active->current < 0)
    throw std::logic_error("kernel emulator: a shuffle outside a kernel");
  Block& block = *active;
  Fiber& fiber = block.fibers[static_cast<std::size_t>(block.current)];
  const int threads = static_cast<int>(blockDim.x * blockDim.y * blockDim.z);
  const int warp = fiber.linear / kWarpSize, lane = fiber.linear % kWarpSize;
  if (mask != 0xffffffffu)
    throw std::runtime_error("kernel emulator: a shuffle with a partial mask is not emulated");
  if ((warp + 1) * kWarpSize > threads)
    throw std::runtime_error("kernel emulator: a full-mask shuffle in a warp of fewer than 32 threads");
  auto& buffer = block.exchange[static_cast<std::size_t>(warp)][fiber.shuffles++ & 1u];
  buffer[static_cast<std::size_t>(lane)] = bits;
  wait_at(State::AtWarpBarrier);
  // Every lane has written this buffer; none writes it again before all have passed the next
  // shuffle's barrier, by which time all have read it.
  lane_out = lane;
  return buffer;
}
}  // namespace

std::uint64_t shuffle_down_bits(std::uint64_t bits, unsigned int mask, unsigned int delta) {
  int lane = 0;
  const auto& buffer = exchange_in_warp(bits, mask, lane);
  const unsigned source = static_cast<unsigned>(lane) + delta;
  return source < static_cast<unsigned>(kWarpSize) ? buffer[source] : bits;
}

std::uint64_t shuffle_xor_bits(std::uint64_t bits, unsigned int mask, unsigned int lane_mask) {
  if (lane_mask >= static_cast<unsigned>(kWarpSize))
    throw std::runtime_error("kernel emulator: a xor shuffle with a lane mask of 32 or more is not emulated");
  int lane = 0;
  const auto& buffer = exchange_in_warp(bits, mask, lane);
  return buffer[static_cast<unsigned>(lane) ^ lane_mask];
}

}  // namespace fmnist::kernel_emu
