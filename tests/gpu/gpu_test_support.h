// Helpers of the GPU test binary: device buffers behind any Ops<float>, seeded random data, and
// the comparison of a GPU result with a CPU reference under a stated tolerance (printing the first
// mismatches and the worst error when it fails).
//
// Tolerances. A comparison passes when, for every element,
//     |gpu - ref| <= atol + rtol * |ref|,   atol = atol_scale * max|ref| over the tensor.
// - kForward (rtol 1e-5, atol 1e-5 * max|ref|): outputs of forward ops.
// - kGradient (rtol 1e-4, atol 1e-4 * max|ref|): gradients, whose sums run over the whole batch
//   (up to 67,600 products for conv1's weight gradient) and through several layers.
// Why an atol at all, and why scaled by the tensor: cuDNN and cuBLAS sum the products of a
// convolution or GEMM in another order (tiles, split-K) than OpenBLAS on the CPU. Each order has an
// FP32 rounding error proportional to the magnitude of the terms (~sqrt(K) * 6e-8 * sum |terms|),
// not to the result, so an element whose terms cancel to nearly 0 has a large relative error while
// its absolute error stays at the scale of the tensor. Per-element math shared through
// elementwise.h (ReLU, dropout, max pooling, L1 gradient, uint8 scaling) is compared bit for bit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>

#include "cpu_stand_in.h"
#include "cuda/backend.h"
#include "host/cuda_backend.h"
#include "models/ops.h"
#include "models/rng.h"

namespace fmnist::gputest {

struct Tolerance {
  double rtol;
  double atol_scale;  // atol = atol_scale * max|ref|
};
constexpr Tolerance kForward{1e-5, 1e-5};
constexpr Tolerance kGradient{1e-4, 1e-4};

inline bool verbose() {
  const char* v = std::getenv("FMNIST_GPU_TEST_VERBOSE");
  return v != nullptr && v[0] != '\0' && v[0] != '0';
}

// FMNIST_GPU_TESTS_ON_CPU=1 runs every test with CpuStandIn (cpu_stand_in.h) in place of the GPU
// backend: a self-test of this binary on machines without a GPU.
inline bool on_cpu_stand_in() {
  const char* v = std::getenv("FMNIST_GPU_TESTS_ON_CPU");
  return v != nullptr && v[0] != '\0' && v[0] != '0';
}

// The CUDA backend under test: the one fmnist's commands load (host/cuda_backend.h). main.cpp
// stops this binary before any test when it cannot be loaded.
inline const CudaBackend& gpu_backend() { return *cuda_backend(); }

// A fresh backend under test: CudaOps (or the stand-in).
inline std::unique_ptr<Ops<float>> make_backend(const CudaOptions& options) {
  if (on_cpu_stand_in())
    return std::make_unique<CpuStandIn>(options.bf16 ? Precision::BF16 : Precision::FP32);
  return gpu_backend().make_ops(options);
}

// The backends the tests share, one per kind, each made on first use and released by
// release_shared_backends() (main(), before it returns: not left to static destruction, which may
// run after the CUDA runtime has shut down).
enum class SharedBackend { Default, Bf16, DirectWeightGrad, DirectConvolutions, DirectLinear, Count };
inline std::unique_ptr<Ops<float>>& shared_slot(SharedBackend kind) {
  static std::unique_ptr<Ops<float>> slots[static_cast<int>(SharedBackend::Count)];
  return slots[static_cast<int>(kind)];
}
inline Ops<float>& shared_backend(SharedBackend kind, const CudaOptions& options) {
  auto& ops = shared_slot(kind);
  if (!ops) ops = make_backend(options);
  return *ops;
}
inline void release_shared_backends() {
  for (int kind = 0; kind < static_cast<int>(SharedBackend::Count); ++kind)
    shared_slot(static_cast<SharedBackend>(kind)).reset();
}

// The op tests' GPU backend: deterministic, no TF32.
inline Ops<float>& gpu() { return shared_backend(SharedBackend::Default, CudaOptions{}); }

// The BF16 tests' (CudaOptions::bf16; test_gpu_bf16.cpp).
inline Ops<float>& bf16_gpu() {
  CudaOptions options;
  options.bf16 = true;
  return shared_backend(SharedBackend::Bf16, options);
}

// With fmnist's direct convolution backward-filter (CudaOptions::direct_weight_grad,
// cuda/weight_grad.h) in place of cuDNN's.
inline CudaOptions direct_weight_grad_options() {
  CudaOptions options;
  options.direct_weight_grad = true;
  return options;
}
inline Ops<float>& direct_wgrad_gpu() {
  return shared_backend(SharedBackend::DirectWeightGrad, direct_weight_grad_options());
}

// With all of fmnist's direct convolution kernels: backward-filter, backward-data and forward
// (cuda/direct_conv.h), in place of cuDNN's.
inline CudaOptions direct_convolution_options() {
  CudaOptions options = direct_weight_grad_options();
  options.direct_backward_data = true;
  options.direct_forward = true;
  return options;
}
inline Ops<float>& direct_conv_gpu() {
  return shared_backend(SharedBackend::DirectConvolutions, direct_convolution_options());
}

// With fmnist's split-K Linear products (CudaOptions::direct_linear_forward, _backward_data and
// _weight_grad, cuda/linear_split.h) in place of cuBLAS's products and the bias kernel; the
// convolutions as in the defaults.
inline CudaOptions direct_linear_options() {
  CudaOptions options;
  options.direct_linear_forward = true;
  options.direct_linear_backward_data = true;
  options.direct_linear_weight_grad = true;
  return options;
}
inline Ops<float>& direct_linear_gpu() {
  return shared_backend(SharedBackend::DirectLinear, direct_linear_options());
}

// Options with the parameter gradients on side streams (CudaOptions::backward_streams = streams),
// over `base`: the results must be bitwise those of one stream.
inline CudaOptions with_backward_streams(int streams, CudaOptions base = CudaOptions{}) {
  base.backward_streams = streams;
  return base;
}

// Options with Programmatic Dependent Launch (CudaOptions::programmatic_launch), over `base`: the
// results must be bitwise those of plain launches.
inline CudaOptions with_programmatic_launch(CudaOptions base = CudaOptions{}) {
  base.programmatic_launch = true;
  return base;
}

// n elements of T in the memory of `ops`, freed with it.
template <class T> class DeviceBuffer {
 public:
  DeviceBuffer(Ops<float>& ops, std::size_t n) : ops_(ops), n_(n) {
    ptr_ = static_cast<T*>(ops_.allocate(std::max<std::size_t>(n, 1) * sizeof(T)));
  }
  DeviceBuffer(Ops<float>& ops, const std::vector<T>& host) : DeviceBuffer(ops, host.size()) {
    upload(host);
  }
  ~DeviceBuffer() { ops_.deallocate(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return ptr_; }
  std::size_t size() const { return n_; }
  void upload(const std::vector<T>& host) {
    REQUIRE(host.size() == n_);
    ops_.copy_to_device(ptr_, host.data(), n_ * sizeof(T));
  }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    ops_.copy_to_host(host.data(), ptr_, n_ * sizeof(T));
    return host;
  }
  // Fill with a value no op writes (NaN for floating point), so unwritten elements show.
  void poison() { upload(std::vector<T>(n_, poison_value())); }
  static T poison_value() {
    if constexpr (std::is_floating_point_v<T>)
      return std::numeric_limits<T>::quiet_NaN();
    else
      return static_cast<T>(-12345);
  }

 private:
  Ops<float>& ops_;
  std::size_t n_;
  T* ptr_ = nullptr;
};

template <class T> std::vector<T> poisoned(std::size_t n) {
  if constexpr (std::is_floating_point_v<T>)
    return std::vector<T>(n, std::numeric_limits<T>::quiet_NaN());
  else
    return std::vector<T>(n, static_cast<T>(-12345));
}

// ---- seeded data ----------------------------------------------------------------------------------
inline std::vector<float> uniform(std::size_t n, double lo, double hi, std::uint64_t seed) {
  SplitMix64 rng(derive_seed(seed, 101));
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(lo + (hi - lo) * rng.uniform());
  return v;
}
inline std::vector<std::uint8_t> random_pixels(std::size_t n, std::uint64_t seed) {
  SplitMix64 rng(derive_seed(seed, 102));
  std::vector<std::uint8_t> v(n);
  for (auto& x : v) x = static_cast<std::uint8_t>(rng.below(256));
  return v;
}
inline std::vector<std::uint8_t> random_labels(std::size_t n, int classes, std::uint64_t seed) {
  SplitMix64 rng(derive_seed(seed, 103));
  std::vector<std::uint8_t> v(n);
  for (auto& x : v) x = static_cast<std::uint8_t>(rng.below(static_cast<std::uint64_t>(classes)));
  return v;
}
inline int random_int(SplitMix64& rng, int lo, int hi) {  // in [lo, hi]
  return lo + static_cast<int>(rng.below(static_cast<std::uint64_t>(hi - lo + 1)));
}
template <class From> std::vector<double> to_double(const std::vector<From>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// A Linear layer's name and random inputs (PyTorch's init range for w and b): (B,in) x, (out,in) w,
// (out) b, (B,out) dy.
struct LinearCase {
  std::string name;
  std::size_t nx, ny, nw;
  std::vector<float> x, w, b, dy;
};
inline LinearCase random_linear_case(const LinearGeometry& g, std::uint64_t seed) {
  LinearCase c;
  c.name = "Linear(B" + std::to_string(g.batch) + " " + std::to_string(g.in_features) + " -> " +
           std::to_string(g.out_features) + ")";
  c.nx = static_cast<std::size_t>(g.batch) * g.in_features;
  c.ny = static_cast<std::size_t>(g.batch) * g.out_features;
  c.nw = static_cast<std::size_t>(g.out_features) * g.in_features;
  const double bound = 1.0 / std::sqrt(static_cast<double>(g.in_features));
  c.x = uniform(c.nx, -1.0, 1.0, seed);
  c.w = uniform(c.nw, -bound, bound, seed + 1);
  c.b = uniform(static_cast<std::size_t>(g.out_features), -bound, bound, seed + 2);
  c.dy = uniform(c.ny, -1.0, 1.0, seed + 3);
  return c;
}

// A convolution's random inputs (PyTorch's init range for w and b): x, w, b, dy in the shapes of g.
struct ConvCase {
  std::vector<float> x, w, b, dy;
};
inline ConvCase random_conv_case(const ConvGeometry& g, std::uint64_t seed) {
  const int fan_in = (g.transposed ? g.out_channels : g.in_channels) * g.kernel * g.kernel;
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return {uniform(g.in_count(), -1.0, 1.0, seed), uniform(g.weight_count(), -bound, bound, seed + 1),
          uniform(static_cast<std::size_t>(g.out_channels), -bound, bound, seed + 2),
          uniform(g.out_count(), -1.0, 1.0, seed + 3)};
}

// ---- comparisons --------------------------------------------------------------------------------
struct CompareResult {
  bool ok = true;
  std::size_t mismatches = 0;
  double worst_abs = 0.0, worst_excess = 0.0;  // excess = |diff| / allowed
  std::size_t worst_index = 0;
};

// got (GPU) against ref (CPU float or double) under tol; reports through Catch (FAIL_CHECK).
template <class R>
CompareResult compare(const std::string& what, const std::vector<float>& got,
                      const std::vector<R>& ref, Tolerance tol) {
  CompareResult r;
  if (got.size() != ref.size()) {
    FAIL_CHECK(what << ": size " << got.size() << " vs reference " << ref.size());
    r.ok = false;
    return r;
  }
  double scale = 0.0;
  for (const R& v : ref)
    if (std::isfinite(static_cast<double>(v))) scale = std::max(scale, std::fabs(static_cast<double>(v)));
  const double atol = tol.atol_scale * scale;
  std::ostringstream first;
  int shown = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], e = static_cast<double>(ref[i]);
    const double allowed = atol + tol.rtol * std::fabs(e);
    const double diff = std::fabs(g - e);
    // No op here produces NaN: a NaN on either side is an unwritten (poisoned) element.
    const bool bad = std::isnan(e) || std::isnan(g) || !(diff <= allowed);
    if (!std::isnan(diff) && diff > r.worst_abs) r.worst_abs = diff;
    double excess;
    if (std::isnan(diff))
      excess = bad ? INFINITY : 0.0;
    else
      excess = allowed > 0 ? diff / allowed : (diff > 0 ? INFINITY : 0.0);
    if (excess > r.worst_excess) {
      r.worst_excess = excess;
      r.worst_index = i;
    }
    if (bad) {
      ++r.mismatches;
      if (shown < 8) {
        first << "\n    [" << i << "] gpu " << g << " ref " << e << " |diff| " << diff
              << " allowed " << allowed;
        ++shown;
      }
    }
  }
  r.ok = r.mismatches == 0;
  std::ostringstream summary;
  summary << what << ": " << got.size() << " elements, max|ref| " << scale << ", worst |diff| "
          << r.worst_abs << ", worst diff/allowed " << r.worst_excess << " at [" << r.worst_index
          << "] (rtol " << tol.rtol << ", atol " << atol << ")";
  INFO(summary.str() << "\n  " << r.mismatches << " mismatches; first:" << first.str());
  CHECK(r.ok);
  if (r.ok && verbose()) std::printf("  ok %s\n", summary.str().c_str());
  return r;
}

// Bit-for-bit equality (floats by their bits, so -0 != +0); a NaN is an unwritten element.
template <class T>
bool compare_exact(const std::string& what, const std::vector<T>& got, const std::vector<T>& ref) {
  if (got.size() != ref.size()) {
    FAIL_CHECK(what << ": size " << got.size() << " vs reference " << ref.size());
    return false;
  }
  std::size_t mismatches = 0;
  std::ostringstream first;
  for (std::size_t i = 0; i < got.size(); ++i) {
    bool unwritten = false;  // a poisoned NaN left in both
    if constexpr (std::is_floating_point_v<T>) unwritten = std::isnan(got[i]);
    if constexpr (std::is_same_v<T, std::int32_t>) unwritten = got[i] == -12345;
    if (!unwritten && std::memcmp(&got[i], &ref[i], sizeof(T)) == 0) continue;
    if (mismatches < 8) {
      first << "\n    [" << i << "] gpu ";
      if constexpr (std::is_same_v<T, std::uint8_t> || std::is_same_v<T, std::int8_t>)
        first << static_cast<int>(got[i]) << " ref " << static_cast<int>(ref[i]);
      else
        first << got[i] << " ref " << ref[i];
    }
    ++mismatches;
  }
  INFO(what << ": " << mismatches << " of " << got.size()
            << " elements differ (bitwise comparison); first:" << first.str());
  CHECK(mismatches == 0);
  if (mismatches == 0 && verbose())
    std::printf("  ok %s: %zu elements bitwise equal\n", what.c_str(), got.size());
  return mismatches == 0;
}

}  // namespace fmnist::gputest
