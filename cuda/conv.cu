// ConvPlan: Conv2d and ConvTranspose2d through cuDNN's convolution descriptors (see conv.h for the
// mapping). Algorithm choice, once per geometry:
//   1. cuDNN's heuristics (cudnnGet*Algorithm_v7) rank the algorithms, fastest expected first;
//   2. the first one that passes the filters is taken: status OK; deterministic (by default);
//      without TF32 (by default): math type forced to CUDNN_FMA_MATH and only the GEMM-family and
//      direct algorithms (no FFT or Winograd, whose transforms round differently from the CPU's
//      direct sums); workspace within the context's limit; and a trial run on zeroed buffers of
//      the plan's shapes succeeds on this device;
//   3. a known-good fallback (implicit GEMM / ALGO_1) is tried last.
// The heuristic ranking does not depend on timings, so every run of a build on a device makes the
// same choice: with deterministic algorithms results are bitwise reproducible across processes.
// BF16 mode (conv.h, models/precision.h), bfloat16 tensors: the heuristics are asked with
// tensor-op math; GEMM-family and direct algorithms only, deterministic as above, with the math
// type each was ranked with; fallbacks implicit GEMM / ALGO_1 with tensor-op, then FMA math.
#include "cuda/conv.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "cuda/check.h"
#include "cuda/device_gate.h"
#include "cuda/kernels.h"

namespace fmnist::cuda {
namespace {

const char* algo_name(cudnnConvolutionFwdAlgo_t a) {
  switch (a) {
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM: return "IMPLICIT_GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM: return "IMPLICIT_PRECOMP_GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_GEMM: return "GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_DIRECT: return "DIRECT";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT: return "FFT";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING: return "FFT_TILING";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD: return "WINOGRAD";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED: return "WINOGRAD_NONFUSED";
    default: return "?";
  }
}
const char* algo_name(cudnnConvolutionBwdDataAlgo_t a) {
  switch (a) {
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_0: return "ALGO_0";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_1: return "ALGO_1";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT: return "FFT";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING: return "FFT_TILING";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD: return "WINOGRAD";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED: return "WINOGRAD_NONFUSED";
    default: return "?";
  }
}
const char* algo_name(cudnnConvolutionBwdFilterAlgo_t a) {
  switch (a) {
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0: return "ALGO_0";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1: return "ALGO_1";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT: return "FFT";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3: return "ALGO_3";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED: return "WINOGRAD_NONFUSED";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING: return "FFT_TILING";
    default: return "?";
  }
}
const char* math_name(cudnnMathType_t m) {
  switch (m) {
    case CUDNN_DEFAULT_MATH: return "DEFAULT";
    case CUDNN_TENSOR_OP_MATH: return "TENSOR_OP";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: return "TENSOR_OP_ALLOW_CONVERSION";
    case CUDNN_FMA_MATH: return "FMA";
    default: return "?";
  }
}

// Algorithms whose arithmetic is a plain sum of products (no FFT or Winograd transforms).
bool direct_sum(cudnnConvolutionFwdAlgo_t a) {
  return a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_GEMM || a == CUDNN_CONVOLUTION_FWD_ALGO_DIRECT;
}
bool direct_sum(cudnnConvolutionBwdDataAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
}
bool direct_sum(cudnnConvolutionBwdFilterAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 ||
         a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
}
// Known non-deterministic algorithms (they accumulate with atomics), excluded in deterministic
// mode whatever the perf results say.
bool known_nondeterministic(cudnnConvolutionFwdAlgo_t) { return false; }
bool known_nondeterministic(cudnnConvolutionBwdDataAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0;
}
bool known_nondeterministic(cudnnConvolutionBwdFilterAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
}

// Which filter the ranking applies: FP32 (FMA math, direct sums), TF32 (anything cuDNN ranks) or
// BF16 on bfloat16 tensors (direct sums, tensor-op or FMA math).
enum class PlanMath { Fp32, Tf32, Bf16 };

template <class Algo> struct Candidate {
  Algo algo;
  cudnnMathType_t math;
};

// The heuristic's ranking, filtered as the file header says, with `fallback` appended.
template <class Perf, class Algo>
std::vector<Candidate<Algo>> rank(const std::vector<Perf>& perf, int returned,
                                  const CudaOptions& options, PlanMath mode, Algo fallback) {
  std::vector<Candidate<Algo>> out;
  for (int i = 0; i < returned; ++i) {
    const Perf& p = perf[i];
    if (p.status != CUDNN_STATUS_SUCCESS) continue;
    if (options.deterministic &&
        (p.determinism != CUDNN_DETERMINISTIC || known_nondeterministic(p.algo)))
      continue;
    cudnnMathType_t math = p.mathType;
    if (mode == PlanMath::Bf16) {
      // bfloat16 operands multiply exactly; the descriptor's FP32 compute type sums the products.
      if (!direct_sum(p.algo) || p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
    } else if (mode == PlanMath::Fp32) {
      if (!direct_sum(p.algo)) continue;
      if (p.mathType == CUDNN_TENSOR_OP_MATH || p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)
        continue;
      math = CUDNN_FMA_MATH;
    }
    const bool seen = std::any_of(out.begin(), out.end(), [&](const Candidate<Algo>& c) {
      return c.algo == p.algo && c.math == math;
    });
    if (!seen) out.push_back({p.algo, math});
  }
  std::vector<cudnnMathType_t> fallback_maths;
  if (mode == PlanMath::Bf16)
    fallback_maths = {CUDNN_TENSOR_OP_MATH, CUDNN_FMA_MATH};
  else
    fallback_maths = {mode == PlanMath::Tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH};
  for (const cudnnMathType_t fallback_math : fallback_maths) {
    const bool seen = std::any_of(out.begin(), out.end(), [&](const Candidate<Algo>& c) {
      return c.algo == fallback && c.math == fallback_math;
    });
    if (!seen) out.push_back({fallback, fallback_math});
  }
  return out;
}

std::size_t aligned_bytes(std::size_t bytes) { return (bytes + 255) / 256 * 256; }

std::string geometry_text(const ConvGeometry& g) {
  std::ostringstream s;
  s << (g.transposed ? "ConvTranspose2d" : "Conv2d") << " batch " << g.batch << ", " << g.in_channels
    << "x" << g.in_h << "x" << g.in_w << " -> " << g.out_channels << "x" << g.out_h() << "x"
    << g.out_w() << ", kernel " << g.kernel << ", stride " << g.stride << ", padding "
    << g.padding << ", output_padding " << g.output_padding;
  return s.str();
}

// A device buffer that lives for the duration of plan construction (trial runs only), allocated
// and freed in the order of the plan's stream, on which every trial runs: cudaFree would wait for
// the whole device, and a plan made mid-run (a new batch size) would wait for every other run's
// queued steps in a process that trains several (fmnist reproduce). A device without memory pools
// (cudaMallocAsync: cudaErrorNotSupported) gets cudaMalloc and cudaFree.
class TrialBuffer {
 public:
  TrialBuffer(std::size_t count, cudaStream_t stream) : stream_(stream) {
    const std::size_t bytes = std::max<std::size_t>(count, 1) * sizeof(float);
    const cudaError_t ordered = cudaMallocAsync(&ptr_, bytes, stream);
    if (ordered == cudaErrorNotSupported) {
      (void)cudaGetLastError();  // not sticky: cleared, and the plain allocation takes its place
      stream_ordered_ = false;
      CUDA_CHECK(cudaMalloc(&ptr_, bytes));
    } else if (ordered != cudaSuccess) {
      throw_cuda(ordered, "cudaMallocAsync(&ptr_, bytes, stream)", __FILE__, __LINE__);
    }
    const cudaError_t status = cudaMemsetAsync(ptr_, 0, bytes, stream);
    if (status != cudaSuccess) {
      release();
      throw_cuda(status, "cudaMemsetAsync(trial buffer)", __FILE__, __LINE__);
    }
  }
  ~TrialBuffer() { release(); }
  TrialBuffer(const TrialBuffer&) = delete;
  TrialBuffer& operator=(const TrialBuffer&) = delete;
  float* get() const { return static_cast<float*>(ptr_); }

 private:
  void release() noexcept {
    if (stream_ordered_) {
      CUDA_LOG(cudaFreeAsync(ptr_, stream_));
    } else {
      DeviceWideSync sync;  // cudaFree synchronises the device
      CUDA_LOG(cudaFree(ptr_));
    }
  }
  cudaStream_t stream_;
  bool stream_ordered_ = true;
  void* ptr_ = nullptr;
};

}  // namespace

ConvPlan::ConvPlan(Context& context, const ConvGeometry& geometry, ConvStorage storage)
    : context_(context), geometry_(geometry), bf16_(context.options().bf16), storage_(storage) {
  const ConvGeometry& g = geometry_;
  if (storage_ == ConvStorage::Bfloat16 && !bf16_)
    throw std::logic_error("conv plan: bfloat16 storage outside BF16 mode");
  // The cuDNN convolution underneath: src (N,C,Hs,Ws) -> dst (N,K,Hd,Wd), filter (K,C,k,k).
  int c, hs, ws, k, hd, wd;
  if (!g.transposed) {
    c = g.in_channels, hs = g.in_h, ws = g.in_w;
    k = g.out_channels, hd = g.out_h(), wd = g.out_w();
  } else {
    c = g.out_channels, hs = g.out_h(), ws = g.out_w();
    k = g.in_channels, hd = g.in_h, wd = g.in_w;
  }
  src_count_ = g.transposed ? g.out_count() : g.in_count();
  dst_count_ = g.transposed ? g.in_count() : g.out_count();
  filter_count_ = g.weight_count();
  const cudnnDataType_t data =
      storage_ == ConvStorage::Bfloat16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
  try {
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&src_));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&dst_));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&filter_));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv_fwd_));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv_bwd_data_));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv_bwd_filter_));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(src_, CUDNN_TENSOR_NCHW, data, g.batch, c, hs, ws));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(dst_, CUDNN_TENSOR_NCHW, data, g.batch, k, hd, wd));
    // Conv2d weight (Cout,Cin,k,k) = (K,C,k,k); ConvTranspose2d weight (Cin,Cout,k,k) = (K,C,k,k).
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(filter_, data, CUDNN_TENSOR_NCHW, k, c, g.kernel,
                                           g.kernel));
    // As PyTorch: FMA math (no TF32) unless TF32 is allowed, then the default (TF32 permitted);
    // bfloat16 tensors: tensor-op math (FP32 accumulation: the compute type below).
    const cudnnMathType_t query_math = storage_ == ConvStorage::Bfloat16 ? CUDNN_TENSOR_OP_MATH
                                       : context_.options().allow_tf32   ? CUDNN_DEFAULT_MATH
                                                                         : CUDNN_FMA_MATH;
    for (cudnnConvolutionDescriptor_t d : {conv_fwd_, conv_bwd_data_, conv_bwd_filter_}) {
      // PyTorch's Conv2d is a cross-correlation: CUDNN_CROSS_CORRELATION, FP32 accumulation.
      CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d, g.padding, g.padding, g.stride, g.stride,
                                                  /*dilation*/ 1, 1, CUDNN_CROSS_CORRELATION,
                                                  CUDNN_DATA_FLOAT));
      CUDNN_CHECK(cudnnSetConvolutionMathType(d, query_math));
    }
    int n_out = 0, k_out = 0, h_out = 0, w_out = 0;
    CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv_fwd_, src_, filter_, &n_out, &k_out,
                                                      &h_out, &w_out));
    if (n_out != g.batch || k_out != k || h_out != hd || w_out != wd)
      throw std::invalid_argument("conv plan: cuDNN computes " + std::to_string(h_out) + "x" +
                                  std::to_string(w_out) + " where " + geometry_text(g) +
                                  " needs " + std::to_string(hd) + "x" + std::to_string(wd));
    conv_shape_ = conv_shape(g);  // the same src/dst roles as the descriptors above
    direct_weight_grad_ = context_.options().direct_weight_grad && !bf16_ &&
                          direct_weight_grad_supported(conv_shape_);
    direct_backward_data_ = context_.options().direct_backward_data && !bf16_ &&
                            direct_conv_supported(conv_shape_);
    direct_forward_ = context_.options().direct_forward && !bf16_ && direct_conv_supported(conv_shape_);
    if (direct_weight_grad_) {  // its partial sums live in the shared workspace (reserved now)
      bwd_filter_bytes_ = direct_weight_grad_workspace_bytes(conv_shape_);
      context_.reserve_workspace(bwd_filter_bytes_);
    }
    if (bf16_) {  // the scratch every pass of this plan uses, reserved now (never mid-capture)
      const std::size_t element =
          storage_ == ConvStorage::Bfloat16 ? sizeof(std::uint16_t) : sizeof(float);
      src_bytes_ = aligned_bytes(src_count_ * element);
      dst_bytes_ = aligned_bytes(dst_count_ * element);
      context_.reserve_bf16_scratch(src_bytes_ + dst_bytes_ + filter_count_ * element);
    }
    choose_algorithms();
  } catch (...) {
    release();
    throw;
  }
}

ConvPlan::~ConvPlan() { release(); }

void ConvPlan::release() noexcept {
  if (conv_bwd_filter_ != nullptr) CUDNN_LOG(cudnnDestroyConvolutionDescriptor(conv_bwd_filter_));
  if (conv_bwd_data_ != nullptr) CUDNN_LOG(cudnnDestroyConvolutionDescriptor(conv_bwd_data_));
  if (conv_fwd_ != nullptr) CUDNN_LOG(cudnnDestroyConvolutionDescriptor(conv_fwd_));
  if (filter_ != nullptr) CUDNN_LOG(cudnnDestroyFilterDescriptor(filter_));
  if (dst_ != nullptr) CUDNN_LOG(cudnnDestroyTensorDescriptor(dst_));
  if (src_ != nullptr) CUDNN_LOG(cudnnDestroyTensorDescriptor(src_));
  conv_bwd_filter_ = conv_bwd_data_ = conv_fwd_ = nullptr;
  filter_ = nullptr;
  dst_ = src_ = nullptr;
}

void ConvPlan::choose_algorithms() {
  const CudaOptions& options = context_.options();
  cudnnHandle_t handle = context_.cudnn();
  cudaStream_t stream = context_.stream();
  const std::size_t limit = context_.workspace_limit();
  const ConvGeometry& g = geometry_;
  const std::size_t src_count = g.transposed ? g.out_count() : g.in_count();
  const std::size_t dst_count = g.transposed ? g.in_count() : g.out_count();
  TrialBuffer src(src_count, stream), dst(dst_count, stream), filter(g.weight_count(), stream);
  const float one = 1.0f, zero = 0.0f;  // float scalars for float and bfloat16 data alike
  const PlanMath mode = storage_ == ConvStorage::Bfloat16 ? PlanMath::Bf16
                        : options.allow_tf32              ? PlanMath::Tf32
                                                          : PlanMath::Fp32;

  // Takes the first candidate that works: math type, workspace size within the limit, then a real
  // run on zeros. cuDNN refusals (not supported, bad parameter...) move on to the next candidate,
  // and are listed in the error when none works; CUDA errors propagate.
  // query(algo, &bytes) and run(algo, bytes) return cuDNN statuses.
  auto choose = [&](const char* pass, cudnnConvolutionDescriptor_t desc, const auto& candidates,
                    auto query, auto run, auto& algo, cudnnMathType_t& math, std::size_t& bytes) {
    std::string refusals;
    for (const auto& c : candidates) {
      const std::string label = std::string(algo_name(c.algo)) + "/" + math_name(c.math);
      cudnnStatus_t status = cudnnSetConvolutionMathType(desc, c.math);
      std::size_t needed = 0;
      if (status == CUDNN_STATUS_SUCCESS) status = query(c.algo, &needed);
      if (status != CUDNN_STATUS_SUCCESS) {
        refusals += " " + label + ": " + cudnnGetErrorString(status) + ";";
        continue;
      }
      if (needed > limit) {
        refusals += " " + label + ": workspace " + std::to_string(needed) + " B over the limit;";
        continue;
      }
      context_.reserve_workspace(needed);
      status = run(c.algo, needed);
      if (status != CUDNN_STATUS_SUCCESS) {
        refusals += " " + label + ": trial run " + cudnnGetErrorString(status) + ";";
        continue;
      }
      CUDA_CHECK(cudaStreamSynchronize(stream));
      algo = c.algo;
      math = c.math;
      bytes = needed;
      return;
    }
    throw std::runtime_error("cuDNN offers no usable " + std::string(pass) + " algorithm for " +
                             geometry_text(g) + " (tried:" + refusals + ")");
  };

  if (!direct_forward_) {  // forward: src -> dst
    int max_count = 0, returned = 0;
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(handle, &max_count));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(std::max(max_count, 1));
    // No ranking (an error) leaves the fallback alone to try.
    if (cudnnGetConvolutionForwardAlgorithm_v7(handle, src_, filter_, conv_fwd_, dst_, max_count,
                                               &returned, perf.data()) != CUDNN_STATUS_SUCCESS)
      returned = 0;
    choose(
        "forward", conv_fwd_,
        rank(perf, returned, options, mode, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM),
        [&](cudnnConvolutionFwdAlgo_t a, std::size_t* b) {
          return cudnnGetConvolutionForwardWorkspaceSize(handle, src_, filter_, conv_fwd_, dst_, a,
                                                         b);
        },
        [&](cudnnConvolutionFwdAlgo_t a, std::size_t b) {
          return cudnnConvolutionForward(handle, &one, src_, src.get(), filter_, filter.get(),
                                         conv_fwd_, a, context_.workspace(), b, &zero, dst_,
                                         dst.get());
        },
        fwd_algo_, fwd_math_, fwd_bytes_);
  }
  if (!direct_backward_data_) {  // backward data: d dst -> d src
    int max_count = 0, returned = 0;
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(handle, &max_count));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(std::max(max_count, 1));
    if (cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, filter_, dst_, conv_bwd_data_, src_,
                                                    max_count, &returned,
                                                    perf.data()) != CUDNN_STATUS_SUCCESS)
      returned = 0;
    choose(
        "backward-data", conv_bwd_data_,
        rank(perf, returned, options, mode, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1),
        [&](cudnnConvolutionBwdDataAlgo_t a, std::size_t* b) {
          return cudnnGetConvolutionBackwardDataWorkspaceSize(handle, filter_, dst_, conv_bwd_data_,
                                                              src_, a, b);
        },
        [&](cudnnConvolutionBwdDataAlgo_t a, std::size_t b) {
          return cudnnConvolutionBackwardData(handle, &one, filter_, filter.get(), dst_, dst.get(),
                                              conv_bwd_data_, a, context_.workspace(), b, &zero,
                                              src_, src.get());
        },
        bwd_data_algo_, bwd_data_math_, bwd_data_bytes_);
  }
  if (!direct_weight_grad_) {  // backward filter: src, d dst -> d filter
    int max_count = 0, returned = 0;
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(handle, &max_count));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(std::max(max_count, 1));
    if (cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, src_, dst_, conv_bwd_filter_,
                                                      filter_, max_count, &returned,
                                                      perf.data()) != CUDNN_STATUS_SUCCESS)
      returned = 0;
    choose(
        "backward-filter", conv_bwd_filter_,
        rank(perf, returned, options, mode, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1),
        [&](cudnnConvolutionBwdFilterAlgo_t a, std::size_t* b) {
          return cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, src_, dst_,
                                                                conv_bwd_filter_, filter_, a, b);
        },
        [&](cudnnConvolutionBwdFilterAlgo_t a, std::size_t b) {
          return cudnnConvolutionBackwardFilter(handle, &one, src_, src.get(), dst_, dst.get(),
                                                conv_bwd_filter_, a, context_.workspace(), b,
                                                &zero, filter_, filter.get());
        },
        bwd_filter_algo_, bwd_filter_math_, bwd_filter_bytes_);
  }
  // The trials have finished before the plan is used; the trial buffers are freed in stream order.
  CUDA_CHECK(cudaStreamSynchronize(stream));
}

std::string ConvPlan::describe() const {
  std::ostringstream s;
  s << geometry_text(geometry_) << ": fwd=";
  if (direct_forward_)
    s << "fmnist-direct";
  else
    s << algo_name(fwd_algo_) << "/" << math_name(fwd_math_) << " (" << fwd_bytes_ << " B)";
  s << " bwd_data=";
  if (direct_backward_data_)
    s << "fmnist-direct";
  else
    s << algo_name(bwd_data_algo_) << "/" << math_name(bwd_data_math_) << " (" << bwd_data_bytes_ << " B)";
  s << " bwd_filter=";
  if (direct_weight_grad_)
    s << "fmnist-direct/" << weight_grad_groups(conv_shape_).groups << " groups" << (fuses_bias_grad() ? "+bias" : "")
      << " (" << bwd_filter_bytes_ << " B)";
  else
    s << algo_name(bwd_filter_algo_) << "/" << math_name(bwd_filter_math_) << " (" << bwd_filter_bytes_
      << " B)";
  if (bf16_)
    s << (storage_ == ConvStorage::Bfloat16 ? " BF16 (bfloat16 tensors)"
                                            : " BF16 (bfloat16-rounded FP32 tensors)");
  return s.str();
}

// ---- BF16 mode: staging of operands and results -----------------------------------------------------

ConvPlan::Regions ConvPlan::regions() const {
  char* base = static_cast<char*>(context_.bf16_scratch());
  return {base, base + src_bytes_, base + src_bytes_ + dst_bytes_};
}

void ConvPlan::stage(const float* in, std::size_t n, void* region) const {
  if (storage_ == ConvStorage::Bfloat16)
    launch_float_to_bf16(context_, n, in, static_cast<std::uint16_t*>(region));
  else
    launch_round_to_bf16(context_, n, in, static_cast<float*>(region));
}

void* ConvPlan::result(void* region, float* out) const {
  return storage_ == ConvStorage::Bfloat16 ? region : static_cast<void*>(out);
}

void ConvPlan::finish(void* region, std::size_t n, float* out) const {
  if (storage_ == ConvStorage::Bfloat16)
    launch_bf16_to_float(context_, n, static_cast<const std::uint16_t*>(region), out);
  else
    launch_round_to_bf16(context_, n, out, out);  // cuDNN wrote FP32 into out
}

void ConvPlan::conv_forward(const float* src, const float* w, float* dst) {
  if (direct_forward_) {  // never in BF16 mode (see the constructor)
    launch_direct_forward(context_, conv_shape_, src, w, nullptr, dst);
    return;
  }
  const float one = 1.0f, zero = 0.0f;
  if (bf16_) {
    const Regions r = regions();
    stage(src, src_count_, r.src);
    stage(w, filter_count_, r.filter);
    CUDNN_CHECK(cudnnConvolutionForward(context_.cudnn(), &one, src_, r.src, filter_, r.filter,
                                        conv_fwd_, fwd_algo_, context_.workspace(), fwd_bytes_,
                                        &zero, dst_, result(r.dst, dst)));
    finish(r.dst, dst_count_, dst);
    return;
  }
  CUDNN_CHECK(cudnnConvolutionForward(context_.cudnn(), &one, src_, src, filter_, w, conv_fwd_,
                                      fwd_algo_, context_.workspace(), fwd_bytes_, &zero, dst_,
                                      dst));
}

void ConvPlan::conv_backward_data(const float* w, const float* ddst, float* dsrc) {
  if (direct_backward_data_) {  // never in BF16 mode (see the constructor)
    launch_direct_backward_data(context_, conv_shape_, ddst, w, nullptr, dsrc);
    return;
  }
  const float one = 1.0f, zero = 0.0f;
  if (bf16_) {
    const Regions r = regions();
    stage(w, filter_count_, r.filter);
    stage(ddst, dst_count_, r.dst);
    CUDNN_CHECK(cudnnConvolutionBackwardData(context_.cudnn(), &one, filter_, r.filter, dst_, r.dst,
                                             conv_bwd_data_, bwd_data_algo_, context_.workspace(),
                                             bwd_data_bytes_, &zero, src_, result(r.src, dsrc)));
    finish(r.src, src_count_, dsrc);
    return;
  }
  CUDNN_CHECK(cudnnConvolutionBackwardData(context_.cudnn(), &one, filter_, w, dst_, ddst,
                                           conv_bwd_data_, bwd_data_algo_, context_.workspace(),
                                           bwd_data_bytes_, &zero, src_, dsrc));
}

void ConvPlan::conv_backward_filter(const float* src, const float* ddst, float* dw, float* db, BiasOf bias_of) {
  if (direct_weight_grad_) {  // never in BF16 mode (see the constructor)
    launch_direct_weight_grad(context_, conv_shape_, src, ddst, dw, context_.workspace(), db, bias_of);
    return;
  }
  const float one = 1.0f, zero = 0.0f;
  if (bf16_) {
    const Regions r = regions();
    stage(src, src_count_, r.src);
    stage(ddst, dst_count_, r.dst);
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(context_.cudnn(), &one, src_, r.src, dst_, r.dst,
                                               conv_bwd_filter_, bwd_filter_algo_,
                                               context_.workspace(), bwd_filter_bytes_, &zero,
                                               filter_, result(r.filter, dw)));
    finish(r.filter, filter_count_, dw);
    return;
  }
  CUDNN_CHECK(cudnnConvolutionBackwardFilter(context_.cudnn(), &one, src_, src, dst_, ddst,
                                             conv_bwd_filter_, bwd_filter_algo_,
                                             context_.workspace(), bwd_filter_bytes_, &zero,
                                             filter_, dw));
}

void ConvPlan::forward(const float* x, const float* w, const float* b, float* y, float* y_relu,
                       const PoolOutput* pool, OutputEpilogue* deferred) {
  const ConvGeometry& g = geometry_;
  if (pool != nullptr && y_relu == nullptr)
    throw std::logic_error("conv plan: " + geometry_text(g) + ": pooling after the forward needs its ReLU output");
  const bool direct = g.transposed ? direct_backward_data_ : direct_forward_;
  if (direct && !g.transposed && pool != nullptr && direct_pool_supported(conv_shape_, pool->geometry)) {
    // y = conv(x) + b, its ReLU and the pooling, in one kernel (the bits of the two below)
    launch_direct_forward_relu_maxpool(context_, conv_shape_, pool->geometry, x, w, b, y, y_relu, pool->pooled,
                                       pool->argmax);
    return;
  }
  if (direct) {  // y = conv(x) or conv^T(x), + b (and its ReLU), in one kernel
    // With windows that tile the plane, the pooling kernel takes the ReLU as it reads y (the bits
    // of the two kernels, kernels.h) and the direct kernel writes y alone.
    const bool tiled_pool = pool != nullptr && pool->geometry.kernel == pool->geometry.stride;
    const DirectEpilogue relu{tiled_pool ? nullptr : y_relu};
    if (g.transposed)
      launch_direct_backward_data(context_, conv_shape_, x, w, b, y, relu);
    else
      launch_direct_forward(context_, conv_shape_, x, w, b, y, relu);
    if (tiled_pool)
      launch_bias_relu_maxpool(context_, pool->geometry, nullptr, y, y_relu, pool->pooled, pool->argmax);
    else if (pool != nullptr)
      launch_maxpool_forward(context_, pool->geometry, y_relu, pool->pooled, pool->argmax);
    return;
  }
  if (!g.transposed)
    conv_forward(x, w, y);  // x = src, y = dst
  else
    conv_backward_data(w, x, y);  // x is dst-shaped, y src-shaped: y = conv^T(x)
  if (pool != nullptr && pool->geometry.kernel == pool->geometry.stride) {  // bias, ReLU and pooling in one pass
    launch_bias_relu_maxpool(context_, pool->geometry, b, y, y_relu, pool->pooled, pool->argmax);
    return;
  }
  const std::size_t plane = static_cast<std::size_t>(g.out_h()) * g.out_w();
  if (deferred != nullptr && pool == nullptr)
    *deferred = OutputEpilogue{y, b, y_relu, g.out_channels, plane};
  else if (b != nullptr || y_relu != nullptr)
    launch_add_channel_bias(context_, g.batch, g.out_channels, plane, b, y, y_relu);
  if (pool != nullptr) launch_maxpool_forward(context_, pool->geometry, y_relu, pool->pooled, pool->argmax);
}

void ConvPlan::backward_data_maxpool_relu(const float* w, const float* dy, float* dx, const PoolGradient& pool) {
  if (geometry_.transposed) throw std::logic_error("conv plan: " + geometry_text(geometry_) + ": a ConvTranspose2d's "
                                                   "input gradient has no pooling below it here");
  if (direct_backward_data_ && direct_pool_backward_supported(conv_shape_, pool.geometry)) {
    launch_direct_backward_data_maxpool_relu(context_, conv_shape_, pool.geometry, dy, w, dx, pool.argmax,
                                             pool.relu_y, pool.dx, pool.dx_relu);
    return;
  }
  backward_data(w, dy, dx);
  launch_maxpool_backward(context_, pool.geometry, dx, pool.argmax, pool.dx, pool.relu_y, pool.dx_relu);
}

void ConvPlan::backward_data(const float* w, const float* dy, float* dx, const float* relu_y, float* dx_relu) {
  const ConvGeometry& g = geometry_;
  const bool direct = g.transposed ? direct_forward_ : direct_backward_data_;
  if (direct && dx_relu != nullptr) {  // dx and the ReLU's gradient in one kernel
    const DirectEpilogue relu{nullptr, relu_y, dx_relu};
    if (!g.transposed)
      launch_direct_backward_data(context_, conv_shape_, dy, w, nullptr, dx, relu);
    else
      launch_direct_forward(context_, conv_shape_, dy, w, nullptr, dx, relu);  // dx = conv(dy)
    return;
  }
  if (!g.transposed)
    conv_backward_data(w, dy, dx);
  else
    conv_forward(dy, w, dx);  // dx = conv(dy)
  if (dx_relu != nullptr) launch_relu_backward(context_, g.in_count(), relu_y, dx, dx_relu);
}

void ConvPlan::backward_filter(const float* x, const float* dy, float* dw, float* db) {
  if (db != nullptr && !fuses_bias_grad())
    throw std::logic_error("conv plan: " + geometry_text(geometry_) + " has no bias gradient in its backward-filter");
  // db (if any) = the sums of dy's planes: ddst's for a Conv2d, src's for a ConvTranspose2d.
  if (!geometry_.transposed)
    conv_backward_filter(x, dy, dw, db);
  else
    conv_backward_filter(dy, x, dw, db, BiasOf::Src);  // src = dy, d dst = x
}

ConvPlan& ConvPlanCache::get(const ConvGeometry& g) {
  const Key key{g.batch,  g.in_channels, g.in_h,    g.in_w,          g.out_channels,
                g.kernel, g.stride,      g.padding, g.output_padding, g.transposed};
  auto it = plans_.find(key);
  if (it != plans_.end()) return *it->second;
  std::unique_ptr<ConvPlan> plan;
  if (context_.options().bf16) {
    try {
      plan = std::make_unique<ConvPlan>(context_, g, ConvStorage::Bfloat16);
    } catch (const std::runtime_error& e) {
      // No bfloat16 algorithm here (or bfloat16 descriptors refused): the same BF16 semantics on
      // FP32 tensors holding bfloat16 values (conv.h). A real CUDA fault recurs below and throws.
      std::fprintf(stderr, "fmnist: warning: cuDNN has no usable bfloat16 convolution for %s (%s); "
                   "it runs on bfloat16-rounded FP32 tensors instead (same results, slower)\n",
                   geometry_text(g).c_str(), e.what());
      plan = std::make_unique<ConvPlan>(context_, g, ConvStorage::Float);
    }
  } else {
    plan = std::make_unique<ConvPlan>(context_, g);
  }
  // FMNIST_CUDA_VERBOSE=1: say which algorithms each new geometry got (once per geometry).
  static const bool verbose = [] {
    const char* v = std::getenv("FMNIST_CUDA_VERBOSE");
    return v != nullptr && v[0] != '\0' && v[0] != '0';
  }();
  if (verbose) std::fprintf(stderr, "fmnist: cuDNN plan %s\n", plan->describe().c_str());
  return *plans_.emplace(key, std::move(plan)).first->second;
}

}  // namespace fmnist::cuda
