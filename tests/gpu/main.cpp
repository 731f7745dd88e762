// Entry point of fmnist_gpu_tests. It loads the CUDA backend's module as fmnist's commands do, and
// fails when it cannot. Without a CUDA device (or driver) it prints why and exits with 77, which
// CTest reports as "skipped" (SKIP_RETURN_CODE); otherwise it lists the devices and runs the
// Catch2 tests. FMNIST_GPU_TEST_VERBOSE=1 prints every comparison's worst error;
// FMNIST_GPU_TESTS_ON_CPU=1 runs them with a CPU stand-in for the GPU (see cpu_stand_in.h).

#include <cstdio>
#include <cstring>
#include <string>

#include "host/cuda_backend.h"
#include "gpu_test_support.h"
#include "tests/catch_session.h"

int main(int argc, char* argv[]) {
  std::string why_not;
  const fmnist::CudaBackend* cuda = fmnist::cuda_backend(&why_not);
  if (cuda == nullptr) {  // a build or install fault, not a missing device: fails, never skips
    std::fprintf(stderr, "fmnist_gpu_tests: the CUDA backend is %s\n", why_not.c_str());
    return 1;
  }
  std::printf("fmnist_gpu_tests: %s\n", cuda->runtime_summary().c_str());
  const auto devices = cuda->list_devices();
  bool listing = false;  // listing or help needs no device
  for (int i = 1; i < argc; ++i)
    listing = listing || std::strncmp(argv[i], "--list", 6) == 0 || std::strcmp(argv[i], "-l") == 0 ||
              std::strcmp(argv[i], "-h") == 0 || std::strcmp(argv[i], "--help") == 0;
  if (fmnist::gputest::on_cpu_stand_in()) {
    std::printf("fmnist_gpu_tests: FMNIST_GPU_TESTS_ON_CPU is set: the CPU stand-in replaces the "
                "GPU backend (a self-test of this binary; nothing about CUDA is checked)\n");
  } else if (devices.empty() && !listing) {
    std::printf("fmnist_gpu_tests: no CUDA device found: GPU tests SKIPPED\n");
    return 77;
  }
  for (const auto& d : devices)
    std::printf("  device %d: %s, compute capability %d.%d, %.1f GiB, %d multiprocessors\n",
                d.index, d.name.c_str(), d.major, d.minor,
                static_cast<double>(d.memory_bytes) / (1024.0 * 1024.0 * 1024.0),
                d.multiprocessors);
  std::fflush(stdout);
  const int failed = fmnist::testing::run_catch_session(argc, argv);
  fmnist::gputest::release_shared_backends();
  return failed == 77 ? 78 : failed;  // 77 means "skipped" to CTest
}
