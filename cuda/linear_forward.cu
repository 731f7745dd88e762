// fmnist's split-K Linear forward (see linear_forward.h): block (tile column, tile row, slice)
// computes a kLinearTileRows x kLinearTileCols tile of y over one slice of the in_features, each
// thread 2 rows x 4 outputs as FMA chains (models/linear_split.h's linear_slice_sum, stage by
// stage through shared memory, the next stage's loads in flight during this one's products). With
// one slice the block adds the bias and writes y; else it writes its sums to the workspace, and
// the tile's last block to finish (last_block_of_row, ordered_sum.cuh) adds the slices in order
// (linear_split_total), then the bias, and writes y and ReLU(y).
#include "cuda/linear_forward.h"

#include <stdexcept>
#include <string>

#include "cuda/check.h"
#include "cuda/grid_stride.cuh"
#include "cuda/launch.cuh"
#include "cuda/ordered_sum.cuh"

namespace fmnist::cuda {
namespace {

constexpr int kRows = kLinearTileRows, kCols = kLinearTileCols, kDepth = kLinearTileDepth;
constexpr int kThreadCols = 16;                           // threads across a tile's outputs
constexpr int kRowsPerThread = kRows / (kThreads / kThreadCols);  // 2
constexpr int kColsPerThread = kCols / kThreadCols;               // 4
constexpr int kXLoads = kRows * kDepth / kThreads;        // a thread's x values a stage: 4
constexpr int kWLoads = kCols * kDepth / kThreads;        // and w values: 8
// Shared rows padded by 4 floats: 16-byte aligned rows, and the stage's transposing stores spread
// over 8 banks instead of 1.
constexpr int kXStride = kRows + 4, kWStride = kCols + 4;
static_assert(kRowsPerThread == 2 && kColsPerThread == 4, "the products below take 2 x 4 outputs a thread");
static_assert(kXLoads * kThreads == kRows * kDepth && kWLoads * kThreads == kCols * kDepth, "whole stages");

// A stage's loads: value u of this thread is element (lane_row + u * kLoadRowStep, depth_index)
// of the x tile (rows x depth) and of the w tile (outputs x depth), lane_row = threadIdx.x / kDepth
// and depth_index = threadIdx.x % kDepth; 0 past the matrix's rows or outputs (those products reach
// no output), never past the slice's depth. x_at and w_at point at the thread's first element of
// the slice's first stage (row lane_row, column depth_index), and move on by kDepth a stage.
constexpr int kLoadRowStep = kThreads / kDepth;  // 8
static_assert(kXLoads * kLoadRowStep == kRows && kWLoads * kLoadRowStep == kCols, "loads cover the tiles");
struct StageValues {
  float x[kXLoads], w[kWLoads];
};
struct StageLoader {
  const float* x_at;
  const float* w_at;
  std::size_t step;  // kLoadRowStep rows of x or w
  int rows_left, outputs_left;  // rows and outputs of the matrix from the thread's first one
  int depth_index;
  __device__ void load(int depth, StageValues& v) const {
    const bool in_depth = depth_index < depth;
#pragma unroll
    for (int u = 0; u < kXLoads; ++u) v.x[u] = in_depth && u * kLoadRowStep < rows_left ? x_at[u * step] : 0.0f;
#pragma unroll
    for (int u = 0; u < kWLoads; ++u) v.w[u] = in_depth && u * kLoadRowStep < outputs_left ? w_at[u * step] : 0.0f;
  }
};

// Grid (column tiles, row tiles, slices). partials: (slices, B, out) when slices > 1, with one
// counter per tile (0 between launches). y_relu may be null.
__global__ void __launch_bounds__(kThreads)
    linear_forward_kernel(LinearGeometry g, LinearSplit split, const float* __restrict__ x,
                          const float* __restrict__ w, const float* __restrict__ bias, float* __restrict__ y,
                          float* __restrict__ y_relu, float* __restrict__ partials, unsigned int* counters) {
  grid_dependency();
  alignas(16) __shared__ float xs[kDepth * kXStride];  // stage element (r, d) at d * kXStride + r
  alignas(16) __shared__ float ws[kDepth * kWStride];  // (o, d) at d * kWStride + o
  const int col0 = static_cast<int>(blockIdx.x) * kCols, row0 = static_cast<int>(blockIdx.y) * kRows;
  const int slice = static_cast<int>(blockIdx.z);
  const int tx = static_cast<int>(threadIdx.x) % kThreadCols, ty = static_cast<int>(threadIdx.x) / kThreadCols;
  const int k_begin = slice * split.slice_length;
  const int k_end = min(k_begin + split.slice_length, g.in_features);

  const int lane_row = static_cast<int>(threadIdx.x) / kDepth, depth_index = static_cast<int>(threadIdx.x) % kDepth;
  StageLoader loader{x + static_cast<std::size_t>(row0 + lane_row) * g.in_features + k_begin + depth_index,
                     w + static_cast<std::size_t>(col0 + lane_row) * g.in_features + k_begin + depth_index,
                     static_cast<std::size_t>(kLoadRowStep) * g.in_features, g.batch - row0 - lane_row,
                     g.out_features - col0 - lane_row, depth_index};
  float acc[kRowsPerThread][kColsPerThread] = {};
  StageValues next;
  loader.load(min(kDepth, k_end - k_begin), next);
  for (int k = k_begin; k < k_end; k += kDepth) {
    const int depth = min(kDepth, k_end - k);
#pragma unroll
    for (int u = 0; u < kXLoads; ++u) {
      const int e = static_cast<int>(threadIdx.x) + u * kThreads;
      xs[(e % kDepth) * kXStride + e / kDepth] = next.x[u];
    }
#pragma unroll
    for (int u = 0; u < kWLoads; ++u) {
      const int e = static_cast<int>(threadIdx.x) + u * kThreads;
      ws[(e % kDepth) * kWStride + e / kDepth] = next.w[u];
    }
    __syncthreads();
    if (k + kDepth < k_end) {
      loader.x_at += kDepth;
      loader.w_at += kDepth;
      loader.load(min(kDepth, k_end - k - kDepth), next);
    }
    // Each output's chain takes this stage's depth terms in ascending order (linear_slice_sum).
    auto products = [&](int d) {
      const float x0 = xs[d * kXStride + ty * 2], x1 = xs[d * kXStride + ty * 2 + 1];
      const float4 wv = *reinterpret_cast<const float4*>(&ws[d * kWStride + tx * 4]);
      const float wj[kColsPerThread] = {wv.x, wv.y, wv.z, wv.w};
#pragma unroll
      for (int j = 0; j < kColsPerThread; ++j) {
        acc[0][j] = multiply_add(x0, wj[j], acc[0][j]);
        acc[1][j] = multiply_add(x1, wj[j], acc[1][j]);
      }
    };
    if (depth == kDepth) {
#pragma unroll 8
      for (int d = 0; d < kDepth; ++d) products(d);
    } else {
      for (int d = 0; d < depth; ++d) products(d);
    }
    __syncthreads();
  }

  const std::size_t plane = static_cast<std::size_t>(g.batch) * g.out_features;
  auto write = [&](int r, int o, float v) {
    const std::size_t i = static_cast<std::size_t>(r) * g.out_features + o;
    y[i] = v;
    if (y_relu != nullptr) y_relu[i] = elementwise::relu(v);
  };
  if (split.slices == 1) {
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
      for (int j = 0; j < kColsPerThread; ++j) {
        const int r = row0 + ty * 2 + i, o = col0 + tx * 4 + j;
        if (r < g.batch && o < g.out_features)
          write(r, o, linear_split_total<float>([&](int) { return acc[i][j]; }, 1, bias, o));
      }
    return;
  }
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
    for (int j = 0; j < kColsPerThread; ++j) {
      const int r = row0 + ty * 2 + i, o = col0 + tx * 4 + j;
      if (r < g.batch && o < g.out_features)
        partials[slice * plane + static_cast<std::size_t>(r) * g.out_features + o] = acc[i][j];
    }
  __threadfence();
  const int tile = static_cast<int>(blockIdx.y * gridDim.x + blockIdx.x);
  if (!last_block_of_row(counters, tile, static_cast<unsigned int>(split.slices))) return;
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
    for (int j = 0; j < kColsPerThread; ++j) {
      const int r = row0 + ty * 2 + i, o = col0 + tx * 4 + j;
      if (r >= g.batch || o >= g.out_features) continue;
      const float* p = partials + static_cast<std::size_t>(r) * g.out_features + o;
      write(r, o, linear_split_total<float>([&](int s) { return __ldcg(p + s * plane); }, split.slices, bias, o));
    }
}

}  // namespace

bool linear_forward_supported(const LinearGeometry& g) {
  if (!linear_split_supported(g)) return false;
  const int row_tiles = (g.batch + kRows - 1) / kRows;
  return row_tiles <= 65535 && linear_split(g).tiles <= Context::kReduceCounters;
}

std::size_t linear_forward_workspace_bytes(const LinearGeometry& g) {
  if (!linear_split_supported(g)) return 0;
  const LinearSplit split = linear_split(g);
  if (split.slices == 1) return 0;
  return static_cast<std::size_t>(split.slices) * g.batch * g.out_features * sizeof(float);
}

void launch_linear_forward(const Context& c, const LinearGeometry& g, const float* x, const float* w,
                           const float* b, float* y, float* y_relu, void* workspace) {
  if (!linear_forward_supported(g))
    throw std::invalid_argument("linear forward: unsupported shape (" + std::to_string(g.batch) + " x " +
                                std::to_string(g.in_features) + " -> " + std::to_string(g.out_features) + ")");
  if (x == nullptr || w == nullptr || y == nullptr)
    throw std::invalid_argument("linear forward: null input, weight or output");
  if (linear_forward_workspace_bytes(g) > 0 && workspace == nullptr)
    throw std::invalid_argument("linear forward: null workspace for the slices' sums");
  const LinearSplit split = linear_split(g);
  const dim3 grid((g.out_features + kCols - 1) / kCols, (g.batch + kRows - 1) / kRows, split.slices);
  launch(c, linear_forward_kernel, grid, kThreads, 0, g, split, x, w, b, y, y_relu,
         static_cast<float*>(workspace), c.reduce_counters());
}

}  // namespace fmnist::cuda
