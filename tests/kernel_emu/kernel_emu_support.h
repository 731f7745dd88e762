// Helpers of the kernel emulator's tests: the same launch under several schedules (block order,
// thread order) must give the same bits, and the comparisons of fmnist_gpu_tests
// (gpu_test_support.h: tolerances, poisoned outputs, first mismatches and the worst error).
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../gpu/gpu_test_support.h"
#include "cuda/context.h"
#include "emulator.h"

namespace fmnist::kernel_emu {

// A CUDA context (the real one, cuda/context.h) on the fake device with `multiprocessors`
// multiprocessors, which sets how many blocks a grid-stride launch gets (an H100 has 132).
inline std::unique_ptr<cuda::Context> make_context(int multiprocessors) {
  fake_cuda::set_device_visible(true);
  fake_cuda::set_multiprocessors(multiprocessors);
  auto context = std::make_unique<cuda::Context>(CudaOptions{});
  fake_cuda::set_multiprocessors(fake_cuda::kDefaultMultiprocessors);
  return context;
}

// Whether every counter of finished blocks is back at 0, as every kernel promises to leave them
// (the fake device's memory is the host's).
inline bool counters_clear(const cuda::Context& context) {
  const unsigned int* counters = context.reduce_counters();
  for (int i = 0; i < cuda::Context::kReduceCounters; ++i)
    if (counters[i] != 0) return false;
  return true;
}

// The schedules every result must be independent of: blocks and threads in order, then blocks
// shuffled and each block's threads in reverse (so another block is the last of its row to finish,
// and threads reach each barrier in the other order).
inline std::vector<Schedule> schedules() {
  return {Schedule{BlockOrder::Forward, false, 1}, Schedule{BlockOrder::Shuffled, true, 20261127}};
}

// A launch's outputs as bytes, to compare bit for bit across schedules.
using Bytes = std::vector<unsigned char>;
template <class T>
void append_bytes(Bytes& out, const std::vector<T>& v) {
  const auto* p = reinterpret_cast<const unsigned char*>(v.data());
  out.insert(out.end(), p, p + v.size() * sizeof(T));
}

// run() launches from fresh inputs and returns its outputs' bytes; it is called once per schedule,
// and every schedule must give the bytes of the first. The context's reduction counters must be
// back at 0 after each (the kernels share them launch after launch).
template <class Run>
void require_schedule_independent(const std::string& what, const cuda::Context& context, Run&& run) {
  Bytes first;
  int index = 0;
  for (const Schedule& s : schedules()) {
    set_schedule(s);
    const Bytes got = run();
    INFO(what << ", schedule " << index << ": the reduction counters are left at 0");
    CHECK(counters_clear(context));
    if (index == 0) {
      first = got;
    } else {
      std::size_t differ = 0;
      for (std::size_t i = 0; i < std::min(got.size(), first.size()); ++i) differ += got[i] != first[i];
      INFO(what << ": schedule " << index << " changed " << differ << " of " << got.size() << " bytes");
      CHECK((got.size() == first.size() && differ == 0));
    }
    ++index;
  }
  set_schedule(Schedule{});
}

}  // namespace fmnist::kernel_emu
