// Per-element math of every fmnist op, written once and compiled by both g++ (CPU reference
// backend) and nvcc (CUDA kernels). A second copy of any of this math elsewhere is a defect.
// Everything is templated on the scalar type so the CPU reference also runs in double precision.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define FMNIST_HD __host__ __device__ __forceinline__
#else
#define FMNIST_HD inline
#endif
// Before a loop of shared math: unrolled in device code, nothing for g++ (which would warn).
#if defined(__CUDA_ARCH__)
#define FMNIST_UNROLL _Pragma("unroll")
#else
#define FMNIST_UNROLL
#endif

namespace fmnist::elementwise {

// ---- bfloat16 (models/precision.h defines where BF16 mode rounds) ----------------------------
// x rounded to the nearest bfloat16 (8-bit exponent, 7-bit mantissa: the top 16 bits of a float),
// ties to even, returned as the float of that value (its low 16 bits zero). Finite values beyond
// the largest bfloat16 round to +-inf, +-inf stay, subnormals round on the same grid (no flush to
// zero), -0 stays -0. Any NaN becomes the canonical quiet NaN 0x7FFF (bfloat16 bits), never an
// infinity (cutting a NaN's low payload bits could). This is, bit for bit, what CUDA's
// __float2bfloat16_rn gives (its host code, and cvt.rn.bf16.f32 on sm_80 and newer, which also
// returns the canonical NaN): tests/test_precision.cpp checks the host path, tests/gpu the device.
FMNIST_HD std::uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}
FMNIST_HD float float_from_bits(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}
// The bfloat16 bits (the top half of the float's) of round_to_bf16(x).
FMNIST_HD std::uint16_t bf16_bits(float x) {
  std::uint32_t u = float_bits(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FFFu;  // NaN
  u += 0x7FFFu + ((u >> 16) & 1u);  // round to nearest, ties to even; carries into the exponent
  return static_cast<std::uint16_t>(u >> 16);
}
FMNIST_HD float bf16_bits_to_float(std::uint16_t b) {
  return float_from_bits(static_cast<std::uint32_t>(b) << 16);
}
FMNIST_HD float round_to_bf16(float x) { return bf16_bits_to_float(bf16_bits(x)); }

// ---- fused multiply-add ------------------------------------------------------------------------
// a * b + c rounded once (the build's --fmad=false leaves this explicit FMA alone). Where a and b
// are floats widened to double, a * b is exact and this is, bit for bit, c + a * b rounded twice
// (one instruction instead of two: the direct weight gradient, models/conv_weight_grad.h).
template <class T> FMNIST_HD T multiply_add(T a, T b, T c) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == sizeof(float))
    return __fmaf_rn(a, b, c);
  else
    return __fma_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// ---- input ----------------------------------------------------------------------------------
// uint8 pixel to [0,1], as torchvision's ToTensor does (x / 255).
template <class T> FMNIST_HD T pixel_to_unit(std::uint8_t v) { return static_cast<T>(v) / T(255); }

// ---- activations --------------------------------------------------------------------------------
template <class T> FMNIST_HD T relu(T x) { return x > T(0) ? x : T(0); }
// Gradient of ReLU given its output y (PyTorch uses the result: y > 0).
template <class T> FMNIST_HD T relu_grad(T y, T dy) { return y > T(0) ? dy : T(0); }

// Max pooling's choice as it scans a window: the value v replaces the best so far when it is
// larger or NaN (PyTorch's rule: a NaN in the window wins). Written with | so that the CPU's loop
// over a row of windows stays branch-free and vectorizes.
template <class T> FMNIST_HD bool pool_takes(T v, T best) { return (v > best) | (v != v); }

template <class T> FMNIST_HD T sigmoid(T x) {
  using std::exp;
  // Two branches keep exp() from overflowing for large |x|.
  if (x >= T(0)) {
    T z = exp(-x);
    return T(1) / (T(1) + z);
  }
  T z = exp(x);
  return z / (T(1) + z);
}

// The activation a fused epilogue applies after a layer's bias (a layer followed by a ReLU or a
// Sigmoid, in one pass): the activation ops' own functions, so the bits of the two ops.
enum class Activation { ReLU, Sigmoid };
template <class T> FMNIST_HD T activate(Activation a, T x) { return a == Activation::ReLU ? relu(x) : sigmoid(x); }
// Gradient of Sigmoid given its output y.
template <class T> FMNIST_HD T sigmoid_grad(T y, T dy) { return dy * y * (T(1) - y); }

// ---- dropout: counter-based Philox4x32-10, so a mask depends only on (seed, step, layer, index) --
struct Philox4x32 {
  std::uint32_t v[4];
};

FMNIST_HD std::uint32_t mulhilo32(std::uint32_t a, std::uint32_t b, std::uint32_t* hi) {
  std::uint64_t p = static_cast<std::uint64_t>(a) * static_cast<std::uint64_t>(b);
  *hi = static_cast<std::uint32_t>(p >> 32);
  return static_cast<std::uint32_t>(p);
}

// Philox4x32 with 10 rounds (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3").
FMNIST_HD Philox4x32 philox4x32_10(Philox4x32 counter, std::uint32_t key0, std::uint32_t key1) {
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, hi1;
    std::uint32_t lo0 = mulhilo32(0xD2511F53u, counter.v[0], &hi0);
    std::uint32_t lo1 = mulhilo32(0xCD9E8D57u, counter.v[2], &hi1);
    Philox4x32 next;
    next.v[0] = hi1 ^ counter.v[1] ^ key0;
    next.v[1] = lo1;
    next.v[2] = hi0 ^ counter.v[3] ^ key1;
    next.v[3] = lo0;
    counter = next;
    key0 += 0x9E3779B9u;
    key1 += 0xBB67AE85u;
  }
  return counter;
}

// The random bits of elements 4*block .. 4*block+3 of dropout layer `layer` at `step`: one Philox
// block serves four consecutive elements.
FMNIST_HD Philox4x32 dropout_block(std::uint64_t seed, std::uint64_t step, std::uint32_t layer,
                                   std::uint64_t block) {
  Philox4x32 c;
  c.v[0] = static_cast<std::uint32_t>(block);
  c.v[1] = static_cast<std::uint32_t>(block >> 32);
  c.v[2] = layer;
  c.v[3] = static_cast<std::uint32_t>(step);
  return philox4x32_10(c, static_cast<std::uint32_t>(seed),
                       static_cast<std::uint32_t>(seed >> 32) ^ static_cast<std::uint32_t>(step >> 32));
}

// Uniform in [0,1) with 24 random bits, from one 32-bit output of a block.
FMNIST_HD float dropout_uniform_from_bits(std::uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

// Uniform in [0,1) for element `index` of dropout layer `layer` at `step`.
FMNIST_HD float dropout_uniform(std::uint64_t seed, std::uint64_t step, std::uint32_t layer,
                                std::uint64_t index) {
  return dropout_uniform_from_bits(dropout_block(seed, step, layer, index >> 2).v[index & 3u]);
}

// Dropout as PyTorch defines it: zero with probability p, else scale by 1/(1-p); the same factor
// multiplies the forward value and the backward gradient. `uniform` is dropout_uniform(...).
template <class T> FMNIST_HD T dropout_factor_of(float uniform, float p) {
  if (p <= 0.0f) return T(1);
  return uniform < p ? T(0) : T(1) / (T(1) - static_cast<T>(p));
}

template <class T>
FMNIST_HD T dropout_factor(std::uint64_t seed, std::uint64_t step, std::uint32_t layer,
                           std::uint64_t index, float p) {
  return dropout_factor_of<T>(dropout_uniform(seed, step, layer, index), p);
}

// ---- losses (mean over n elements; the gradient includes the 1/n) -------------------------------
// L1: |pred - target|; PyTorch's gradient of |d| is sign(d), 0 at d == 0.
template <class T> FMNIST_HD T l1_term(T pred, T target) {
  T d = pred - target;
  return d >= T(0) ? d : -d;
}
template <class T> FMNIST_HD T l1_grad(T pred, T target, T inv_n) {
  T d = pred - target;
  return d > T(0) ? inv_n : (d < T(0) ? -inv_n : T(0));
}
template <class T> FMNIST_HD T mse_term(T pred, T target) {
  T d = pred - target;
  return d * d;
}
template <class T> FMNIST_HD T mse_grad(T pred, T target, T inv_n) {
  return T(2) * (pred - target) * inv_n;
}

// Softmax cross-entropy of one row of scores, stable: loss = logsumexp(s) - s[label].
// Returns the loss; writes d loss / d s (times `scale`, e.g. 1/batch) into grad when non-null.
template <class T>
FMNIST_HD T softmax_cross_entropy_row(const T* scores, int classes, int label, T scale, T* grad) {
  using std::exp;
  using std::log;
  T max_score = scores[0];
  for (int c = 1; c < classes; ++c) max_score = scores[c] > max_score ? scores[c] : max_score;
  T sum = T(0);
  for (int c = 0; c < classes; ++c) sum += exp(scores[c] - max_score);
  T log_sum = log(sum);
  if (grad != nullptr) {
    for (int c = 0; c < classes; ++c) {
      T prob = exp(scores[c] - max_score - log_sum);
      grad[c] = (prob - (c == label ? T(1) : T(0))) * scale;
    }
  }
  return log_sum + max_score - scores[label];
}

// Index of the largest score (the first one on ties, as torch.argmax).
template <class T> FMNIST_HD int argmax_row(const T* scores, int classes) {
  int best = 0;
  for (int c = 1; c < classes; ++c)
    if (scores[c] > scores[best]) best = c;
  return best;
}

// ---- Adam, exactly as torch.optim.Adam (single-tensor path, no weight decay, no amsgrad) -------
// The host computes every scalar once per step, in double as Python does, then rounds it to T:
//   step_size = lr / (1 - beta1^t),  bias_correction2_sqrt = sqrt(1 - beta2^t),
//   one_minus_beta1 = 1 - beta1,  one_minus_beta2 = 1 - beta2 (0.001f, not 1.0f - 0.999f).
template <class T> struct AdamStep {
  T beta2, eps;
  T one_minus_beta1, one_minus_beta2;
  T step_size;              // lr / bias_correction1
  T bias_correction2_sqrt;  // sqrt(1 - beta2^t)
};

template <class T>
FMNIST_HD void adam_update(T& param, T grad, T& m, T& v, const AdamStep<T>& s) {
  using std::sqrt;
  m = m + s.one_minus_beta1 * (grad - m);  // exp_avg.lerp_(grad, 1 - beta1)
  v = v * s.beta2 + s.one_minus_beta2 * grad * grad;  // exp_avg_sq.mul_(beta2).addcmul_(g, g, 1 - beta2)
  T denom = sqrt(v) / s.bias_correction2_sqrt + s.eps;
  param = param - s.step_size * (m / denom);
}

}  // namespace fmnist::elementwise
