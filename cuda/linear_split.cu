// fmnist's split-K Linear products (see linear_split.h): block (tile column, tile row, slice)
// computes a kLinearTileRows x kLinearTileCols tile of the output over one slice of the summed
// dimension, each thread 2 rows x 4 outputs as FMA chains (models/linear_split.h's
// linear_slice_sum, stage by stage through shared memory, the next stage's loads in flight during
// this one's products). With one slice the block adds the bias and writes the output; else it
// writes its sums to the workspace, and the tile's last block to finish (last_block_of_row,
// ordered_sum.cuh) adds the slices in order (linear_split_total), then the bias, and writes the
// output and its ReLU.
#include "cuda/linear_split.h"

#include <stdexcept>
#include <string>

#include "cuda/check.h"
#include "cuda/grid_stride.cuh"
#include "cuda/launch.cuh"
#include "cuda/ordered_sum.cuh"

namespace fmnist::cuda {
namespace {

constexpr int kRows = kLinearTileRows, kCols = kLinearTileCols, kDepth = kLinearTileDepth;
constexpr int kThreadCols = 16;                                   // threads across a tile's outputs
constexpr int kRowsPerThread = kRows / (kThreads / kThreadCols);  // 2
constexpr int kColsPerThread = kCols / kThreadCols;               // 4
constexpr int kInLoads = kRows * kDepth / kThreads;               // a thread's input values a stage: 4
constexpr int kWLoads = kCols * kDepth / kThreads;                // and weights: 8
// Shared rows padded by 4 floats: 16-byte aligned rows, and the stage's transposing stores spread
// over 8 banks instead of 1.
constexpr int kInStride = kRows + 4, kWStride = kCols + 4;
static_assert(kRowsPerThread == 2 && kColsPerThread == 4, "the products below take 2 x 4 outputs a thread");
static_assert(kInLoads * kThreads == kRows * kDepth && kWLoads * kThreads == kCols * kDepth, "whole stages");

// Which element of a stage's tile, kDepth x N (the input: N = kRows rows; the weight: N = kCols
// outputs), a thread's load u fetches. The tile is read along what is contiguous in memory: along
// the depth, element (n0 + u * kNStep, d0) with n0 = threadIdx.x / kDepth, d0 = threadIdx.x % kDepth;
// along N, element (n0, d0 + u * kDStep) with n0 = threadIdx.x % N, d0 = threadIdx.x / N.
template <int N, bool kAlongDepth> struct TileLanes {
  static constexpr int kNStep = kAlongDepth ? kThreads / kDepth : 0;
  static constexpr int kDStep = kAlongDepth ? 0 : kThreads / N;
  static constexpr int kLoads = N * kDepth / kThreads;
  static_assert(kLoads * (kAlongDepth ? kNStep : kDStep) == (kAlongDepth ? N : kDepth), "the loads cover the tile");
  static __device__ int n0() { return kAlongDepth ? threadIdx.x / kDepth : threadIdx.x % N; }
  static __device__ int d0() { return kAlongDepth ? threadIdx.x % kDepth : threadIdx.x / N; }
};
// The passes' layouts (models/linear_split.h's linear_product): the input is contiguous along the
// depth but in the weight gradient (dy read as (out, B)); the weight along the depth only in the
// forward.
template <LinearPass P> using InputLanes = TileLanes<kRows, P != LinearPass::WeightGrad>;
template <LinearPass P> using WeightLanes = TileLanes<kCols, P == LinearPass::Forward>;

struct StageValues {
  float in[kInLoads], w[kWLoads];
};

// One operand's loads, stage after stage: `at` points at the thread's first element of the current
// stage; 0 past the product's rows or outputs (those products reach no output) and past the slice
// (`depth` left in the stage): never a term the chain does not have.
template <class Lanes> struct OperandLoader {
  const float* at;
  std::size_t step;   // between a thread's loads u and u + 1
  std::size_t stage;  // between stages
  int n_left;         // rows or outputs from the thread's first one to the product's end
  int d0;
  template <int kCount> __device__ void load(int depth, float (&v)[kCount]) const {
    static_assert(kCount == Lanes::kLoads, "one value a load");
#pragma unroll
    for (int u = 0; u < kCount; ++u)
      v[u] = d0 + u * Lanes::kDStep < depth && u * Lanes::kNStep < n_left ? at[u * step] : 0.0f;
  }
};
template <class Lanes>
__device__ OperandLoader<Lanes> operand_loader(const float* base, int n_first, int k_begin, int n_count,
                                              int n_step_in_memory, int d_step_in_memory) {
  const int n = n_first + Lanes::n0(), d = Lanes::d0();
  const std::size_t n_step = static_cast<std::size_t>(n_step_in_memory);
  const std::size_t d_step = static_cast<std::size_t>(d_step_in_memory);
  return {base + n * n_step + (k_begin + d) * d_step, Lanes::kNStep * n_step + Lanes::kDStep * d_step,
          kDepth * d_step, n_count - n, d};
}

// Grid (column tiles, row tiles, slices) over product p of pass P: out (rows, outputs) = A
// (rows, depth) W (models/linear_split.h's linear_product; A is `in`). partials: (slices, rows,
// outputs) when split.slices > 1, with one counter per tile (0 between launches). bias and
// act_out may be null; act_out = act(out) (elementwise::activate).
template <LinearPass P>
__global__ void __launch_bounds__(kThreads)
    linear_split_kernel(LinearProduct p, LinearSplit split, const float* __restrict__ in,
                        const float* __restrict__ w, const float* __restrict__ bias, float* __restrict__ out,
                        float* __restrict__ act_out, elementwise::Activation act, float* __restrict__ partials,
                        unsigned int* counters) {
  grid_dependency();
  alignas(16) __shared__ float ins[kDepth * kInStride];  // stage element (r, d) at d * kInStride + r
  alignas(16) __shared__ float ws[kDepth * kWStride];    // (d, o) at d * kWStride + o
  const int col0 = static_cast<int>(blockIdx.x) * kCols, row0 = static_cast<int>(blockIdx.y) * kRows;
  const int slice = static_cast<int>(blockIdx.z);
  const int tx = static_cast<int>(threadIdx.x) % kThreadCols, ty = static_cast<int>(threadIdx.x) / kThreadCols;
  const int k_begin = slice * split.slice_length;
  const int k_end = min(k_begin + split.slice_length, p.depth);

  using A = InputLanes<P>;
  using L = WeightLanes<P>;
  OperandLoader<A> a_loader = operand_loader<A>(in, row0, k_begin, p.rows, p.a_row_step, p.a_depth_step);
  OperandLoader<L> w_loader = operand_loader<L>(w, col0, k_begin, p.outputs, p.w_output_step, p.w_depth_step);
  float acc[kRowsPerThread][kColsPerThread] = {};
  StageValues next;
  a_loader.load(min(kDepth, k_end - k_begin), next.in);
  w_loader.load(min(kDepth, k_end - k_begin), next.w);
  for (int k = k_begin; k < k_end; k += kDepth) {
    const int depth = min(kDepth, k_end - k);
#pragma unroll
    for (int u = 0; u < kInLoads; ++u)
      ins[(A::d0() + u * A::kDStep) * kInStride + A::n0() + u * A::kNStep] = next.in[u];
#pragma unroll
    for (int u = 0; u < kWLoads; ++u)
      ws[(L::d0() + u * L::kDStep) * kWStride + L::n0() + u * L::kNStep] = next.w[u];
    __syncthreads();
    if (k + kDepth < k_end) {
      a_loader.at += a_loader.stage;
      w_loader.at += w_loader.stage;
      a_loader.load(min(kDepth, k_end - k - kDepth), next.in);
      w_loader.load(min(kDepth, k_end - k - kDepth), next.w);
    }
    // Each output's chain takes this stage's depth terms in ascending order (linear_slice_sum).
    auto products = [&](int d) {
      const float in0 = ins[d * kInStride + ty * 2], in1 = ins[d * kInStride + ty * 2 + 1];
      const float4 wv = *reinterpret_cast<const float4*>(&ws[d * kWStride + tx * 4]);
      const float wj[kColsPerThread] = {wv.x, wv.y, wv.z, wv.w};
#pragma unroll
      for (int j = 0; j < kColsPerThread; ++j) {
        acc[0][j] = elementwise::multiply_add(in0, wj[j], acc[0][j]);
        acc[1][j] = elementwise::multiply_add(in1, wj[j], acc[1][j]);
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

  const std::size_t plane = static_cast<std::size_t>(p.rows) * p.outputs;
  auto write = [&](int r, int o, float v) {
    const std::size_t i = static_cast<std::size_t>(r) * p.outputs + o;
    out[i] = v;
    if (act_out != nullptr) act_out[i] = elementwise::activate(act, v);
  };
  if (split.slices == 1) {
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
      for (int j = 0; j < kColsPerThread; ++j) {
        const int r = row0 + ty * 2 + i, o = col0 + tx * 4 + j;
        if (r < p.rows && o < p.outputs) write(r, o, linear_split_total<float>([&](int) { return acc[i][j]; }, 1, bias, o));
      }
    return;
  }
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
    for (int j = 0; j < kColsPerThread; ++j) {
      const int r = row0 + ty * 2 + i, o = col0 + tx * 4 + j;
      if (r < p.rows && o < p.outputs) partials[slice * plane + static_cast<std::size_t>(r) * p.outputs + o] = acc[i][j];
    }
  __threadfence();
  const int tile = static_cast<int>(blockIdx.y * gridDim.x + blockIdx.x);
  if (!last_block_of_row(counters, tile, static_cast<unsigned int>(split.slices))) return;
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
    for (int j = 0; j < kColsPerThread; ++j) {
      const int r = row0 + ty * 2 + i, o = col0 + tx * 4 + j;
      if (r >= p.rows || o >= p.outputs) continue;
      const float* at = partials + static_cast<std::size_t>(r) * p.outputs + o;
      write(r, o, linear_split_total<float>([&](int s) { return __ldcg(at + s * plane); }, split.slices, bias, o));
    }
}

template <LinearPass P>
void launch_pass(const Context& c, const char* name, const LinearGeometry& g, const float* in, const float* w,
                 const float* bias, float* out, float* act_out, elementwise::Activation act, void* workspace) {
  if (!linear_split_kernel_supported(g))
    throw std::invalid_argument(std::string(name) + ": unsupported shape (" + std::to_string(g.batch) + " x " +
                                std::to_string(g.in_features) + " -> " + std::to_string(g.out_features) + ")");
  if (in == nullptr || w == nullptr || out == nullptr)
    throw std::invalid_argument(std::string(name) + ": null input, weight or output");
  if (linear_split_workspace_bytes(g, P) > 0 && workspace == nullptr)
    throw std::invalid_argument(std::string(name) + ": null workspace for the slices' sums");
  const LinearProduct p = linear_product(g, P);
  const LinearSplit split = linear_split(p);
  const dim3 grid((p.outputs + kCols - 1) / kCols, (p.rows + kRows - 1) / kRows, split.slices);
  launch(c, linear_split_kernel<P>, grid, kThreads, 0, p, split, in, w, bias, out, act_out, act,
         static_cast<float*>(workspace), c.reduce_counters());
}

}  // namespace

bool linear_split_kernel_supported(const LinearGeometry& g) {
  if (!linear_split_supported(g)) return false;
  for (const LinearPass pass : {LinearPass::Forward, LinearPass::BackwardData, LinearPass::WeightGrad}) {
    const LinearProduct p = linear_product(g, pass);
    if ((p.rows + kRows - 1) / kRows > 65535 || linear_split(p).tiles > Context::kReduceCounters) return false;
  }
  return true;
}

std::size_t linear_split_workspace_bytes(const LinearGeometry& g, LinearPass pass) {
  if (!linear_split_supported(g)) return 0;
  const LinearProduct p = linear_product(g, pass);
  const LinearSplit split = linear_split(p);
  if (split.slices == 1) return 0;
  return static_cast<std::size_t>(split.slices) * p.rows * p.outputs * sizeof(float);
}

void launch_linear_split_forward(const Context& c, const LinearGeometry& g, const float* x, const float* w,
                                 const float* b, float* y, float* y_act, void* workspace,
                                 elementwise::Activation act) {
  launch_pass<LinearPass::Forward>(c, "split-K linear forward", g, x, w, b, y, y_act, act, workspace);
}

void launch_linear_split_backward_data(const Context& c, const LinearGeometry& g, const float* w,
                                       const float* dy, float* dx, void* workspace) {
  launch_pass<LinearPass::BackwardData>(c, "split-K linear backward-data", g, dy, w, nullptr, dx, nullptr,
                                        elementwise::Activation::ReLU, workspace);
}

void launch_linear_split_weight_grad(const Context& c, const LinearGeometry& g, const float* x, const float* dy,
                                     float* dw, void* workspace) {
  launch_pass<LinearPass::WeightGrad>(c, "split-K linear weight gradient", g, dy, x, nullptr, dw, nullptr,
                                      elementwise::Activation::ReLU, workspace);
}

}  // namespace fmnist::cuda
