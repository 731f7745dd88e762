// The process-wide gate between CUDA graph captures and device-wide synchronisation (device_gate.h).
#include "cuda/device_gate.h"

#include <mutex>
#include <stdexcept>

namespace fmnist::cuda {
namespace {

std::shared_mutex& gate() {
  static std::shared_mutex mutex;
  return mutex;
}

// A DeviceWideSync inside another in one thread (a Context whose setup fails releases what it made)
// must not wait for itself: a thread that holds the gate exclusively takes nothing more.
thread_local bool holds_capture_section = false;
thread_local int device_wide_depth = 0;

}  // namespace

void enter_capture_section() {
  if (holds_capture_section)
    throw std::logic_error("a CUDA graph capture began while this thread's last one had not ended");
  if (device_wide_depth > 0)
    throw std::logic_error("a CUDA graph capture began inside a device-wide synchronisation section");
  gate().lock_shared();
  holds_capture_section = true;
}

void leave_capture_section() noexcept {
  if (!holds_capture_section) return;
  holds_capture_section = false;
  gate().unlock_shared();
}

bool in_capture_section() noexcept { return holds_capture_section; }

DeviceWideSync::DeviceWideSync() {
  if (holds_capture_section || device_wide_depth > 0) {
    ++device_wide_depth;
    return;
  }
  lock_ = std::unique_lock<std::shared_mutex>(gate());
  ++device_wide_depth;
}

DeviceWideSync::~DeviceWideSync() { --device_wide_depth; }  // then lock_ lets go, when it holds the gate

}  // namespace fmnist::cuda
