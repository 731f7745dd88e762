// The GPU backend's runtime behaviour beyond the ops:
// - out of GPU memory: an allocation no device can hold fails with one line that says "out of GPU
//   memory", and the process carries on: the failure is not sticky, an executor too large for the
//   device frees what it had allocated before it throws, and the same backend keeps working. Not
//   tagged [sanitize]: compute-sanitizer reports the failed cudaMalloc itself as an API error;
// - the divergence guard's default interval on a GPU (host/trainer.h, guard_interval).
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "gpu_test_support.h"
#include "host/trainer.h"
#include "models/executor.h"
#include "models/network.h"

using namespace fmnist;
using namespace fmnist::gputest;

TEST_CASE("GPU out of memory: an impossible allocation says so and the process carries on",
          "[gpu][memory][oom]") {
  if (on_cpu_stand_in()) {
    // The stand-in's host allocation of 4 TiB could succeed where memory is overcommitted.
    WARN("not checked on the CPU stand-in");
    return;
  }
  Ops<float>& G = gpu();
  G.synchronize();
  const std::size_t free_before = G.free_memory();
  auto expect_out_of_memory = [](const std::string& what, const std::string& message) {
    INFO(what << ": \"" << message << "\"");
    CHECK(message.find("out of GPU memory") != std::string::npos);
    CHECK(message.find('\n') == std::string::npos);
    if (verbose()) std::printf("  ok %s: \"%s\"\n", what.c_str(), message.c_str());
  };

  // A tensor of 2^40 floats (4 TiB), twice: the first failure leaves nothing behind.
  for (int attempt = 1; attempt <= 2; ++attempt) {
    try {
      DeviceBuffer<float> huge(G, std::size_t(1) << 40);
      FAIL("a buffer of 2^40 floats was allocated");
    } catch (const std::runtime_error& e) {
      expect_out_of_memory("2^40 floats, attempt " + std::to_string(attempt), e.what());
    }
  }

  // An executor for 2^24 images of AE(256) (its activations alone need far more than any GPU
  // has): some allocation fails part way, and those made before it are freed.
  ModelConfig model;
  model.kind = ModelKind::Autoencoder;
  model.latent = 256;
  const NetworkSpec spec = build_network(model);
  try {
    Executor<float> ex(spec, G, 1 << 24, 1);
    FAIL("an executor for 2^24 images was built");
  } catch (const std::runtime_error& e) {
    expect_out_of_memory("executor for 2^24 images", e.what());
  }
  G.synchronize();
  const std::size_t free_after = G.free_memory();
  INFO("free before " << (free_before >> 20) << " MiB, after " << (free_after >> 20) << " MiB");
  CHECK(free_after + (std::size_t(64) << 20) >= free_before);  // nothing leaked

  // The backend still works: memory, a kernel, a copy, and a training step of a small network.
  const std::size_t n = 4096;
  DeviceBuffer<float> a(G, n), b(G, n);
  G.fill(a.get(), 1.5f, n);
  G.copy(b.get(), a.get(), n * sizeof(float));
  compare_exact("fill and copy after the failures", b.download(), std::vector<float>(n, 1.5f));
  model.latent = 16;
  Executor<float> small(build_network(model), G, 8, 1);
  std::vector<float> params(small.spec().param_count);
  initialize_parameters(small.spec(), 1, params.data());
  G.copy_to_device(small.params(), params.data(), params.size() * sizeof(float));
  const auto pixels = random_pixels(8 * small.spec().input.count(), 3);
  G.copy_to_device(small.batch_images(), pixels.data(), pixels.size());
  small.train_step(8, 1, AdamConfig{});
  float loss = 0;
  G.copy_to_host(&loss, small.batch_loss(), sizeof loss);
  CHECK(std::isfinite(loss));
  CHECK(loss > 0);
}

TEST_CASE("GPU: --guard-every 0 (the default) checks every kDeviceGuardEvery steps",
          "[gpu][guard][sanitize]") {
  TrainConfig c;
  CHECK(c.guard_every == 0);
  Ops<float>& G = gpu();
  INFO(G.name());
  CHECK(guard_interval(c, G) == kDeviceGuardEvery);
  CHECK(kDeviceGuardEvery > 1);
  c.guard_every = 1;  // asked for: every step, on the GPU too
  CHECK(guard_interval(c, G) == 1);
}
