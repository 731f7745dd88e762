// The CPU reference's BF16 mode (models/precision.h): tensors rounded to bfloat16 in place or into
// scratch, before and after its BLAS calls. Float tensors only: CpuOps<double> has no BF16 mode
// (a double rounded through float would round twice), so the double versions throw.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <type_traits>

#include "models/elementwise.h"

namespace fmnist::reference {

// p (rows, cols) with row stride `stride`: each element rounded to bfloat16.
template <class T> void round_block_to_bf16(T* p, std::size_t rows, std::size_t cols, std::size_t stride) {
  if constexpr (std::is_same_v<T, float>) {
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t c = 0; c < cols; ++c) p[r * stride + c] = elementwise::round_to_bf16(p[r * stride + c]);
  } else {
    (void)p, (void)rows, (void)cols, (void)stride;
    throw std::logic_error("bfloat16 rounding is defined for float tensors only");
  }
}

// p (n): each element rounded to bfloat16.
template <class T> void round_to_bf16_in_place(T* p, std::size_t n) { round_block_to_bf16(p, 1, n, n); }

// dst (n) = src (n) rounded to bfloat16; returns dst.
template <class T> const T* rounded_to_bf16(const T* src, std::size_t n, T* dst) {
  if constexpr (std::is_same_v<T, float>) {
    for (std::size_t i = 0; i < n; ++i) dst[i] = elementwise::round_to_bf16(src[i]);
  } else {
    (void)src, (void)n;
    throw std::logic_error("bfloat16 rounding is defined for float tensors only");
  }
  return dst;
}

}  // namespace fmnist::reference
