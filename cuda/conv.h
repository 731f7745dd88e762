// Convolutions on the GPU behind one small interface, so that cuDNN's graph API could replace the
// legacy descriptor API used here without touching CudaOps. A ConvPlan is made once per geometry
// (batch included): its descriptors and algorithms are chosen at construction and reused by every
// later call; the plan never allocates after construction.
//
// Conv2d (PyTorch): x (B,Cin,H,W), w (Cout,Cin,k,k) -> y (B,Cout,Ho,Wo), cross-correlation.
// ConvTranspose2d: x (B,Cin,H,W), w (Cin,Cout,k,k) -> y (B,Cout,Ho,Wo) is the adjoint of the
// Conv2d from (B,Cout,Ho,Wo) to (B,Cin,H,W) with the same weight seen as a (K=Cin, C=Cout, k, k)
// filter, so its forward is that conv's backward-data, its input gradient that conv's forward and
// its weight gradient that conv's backward-filter with the roles of x and dy swapped.
// output_padding only makes the larger tensor bigger (the extra rows/columns get bias alone).
// The forward adds the bias (kernels.h's add_channel_bias, or inside fmnist's direct kernels);
// the bias gradient is kernels.h's channel_bias_grad, except where backward_filter fuses it.
//
// BF16 mode (context options().bf16, models/precision.h): each pass casts its two FP32 operands to
// bfloat16 in the context's BF16 scratch (sized when the plan is made), runs cuDNN on
// CUDNN_DATA_BFLOAT16 tensors and filter with FP32 compute (tensor-core math where cuDNN has it;
// FFT and Winograd excluded: they would not sum exact products), and casts the bfloat16 result
// back into the FP32 output. Where cuDNN offers no bfloat16 algorithm for a geometry, that plan
// stores FP32 instead (ConvStorage::Float): operands rounded to bfloat16 values in FP32 scratch,
// FMA math, the result rounded in place: the same semantics, without the tensor-core speed-up
// (said once on stderr).
#pragma once

#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "cuda/context.h"
#include "cuda/direct_conv.h"
#include "cuda/kernels.h"
#include "cuda/weight_grad.h"
#include "models/ops.h"

namespace fmnist::cuda {

// How a plan's cuDNN tensors hold data in BF16 mode (Float also outside it).
enum class ConvStorage { Float, Bfloat16 };

// The max pooling of a forward's ReLU output, taken by ConvPlan::forward with the bias and the
// ReLU: geometry's input is the convolution's output (op_checks::check_pool_of_conv).
struct PoolOutput {
  PoolGeometry geometry;
  float* pooled = nullptr;
  std::int32_t* argmax = nullptr;
};

// The backward of the max pooling that made a Conv2d's input, and of the ReLU before it, taken by
// ConvPlan::backward_data_maxpool_relu after the input gradient: geometry's output is the
// convolution's input; argmax from its forward; relu_y the ReLU's output (the pooling's input);
// dx and dx_relu the gradients at the pooling's input and at the ReLU's.
struct PoolGradient {
  PoolGeometry geometry;
  const std::int32_t* argmax = nullptr;
  const float* relu_y = nullptr;
  float* dx = nullptr;
  float* dx_relu = nullptr;
};

class ConvPlan {
 public:
  // storage Bfloat16 needs options().bf16. Throws std::runtime_error when cuDNN offers no usable
  // algorithm for a pass.
  ConvPlan(Context& context, const ConvGeometry& geometry,
           ConvStorage storage = ConvStorage::Float);
  ~ConvPlan();
  ConvPlan(const ConvPlan&) = delete;
  ConvPlan& operator=(const ConvPlan&) = delete;

  // In the layer's own terms (Conv2d or ConvTranspose2d, as the geometry says); all overwrite.
  // x (B,Cin,H,W), w (weight layout of the layer), b (Cout) or null -> y (B,Cout,Ho,Wo); y_relu,
  // when non-null, = ReLU(y) (in the direct kernels, or with the bias in one kernel); pool, when
  // non-null (with y_relu), = the max pooling of y_relu (after cuDNN's forward in the bias's and
  // the ReLU's kernel, kernels.h's launch_bias_relu_maxpool; with a direct Conv2d forward and 2 x 2
  // windows in that kernel, direct_conv.h's launch_direct_forward_relu_maxpool; after other direct
  // forwards in its own). With deferred non-null (and no pool), where the bias and ReLU would be
  // a kernel of their own after cuDNN's product, they are not launched: *deferred says them, for
  // the caller's next kernel to apply (a loss's, kernels.h's OutputEpilogue); else it is left empty.
  void forward(const float* x, const float* w, const float* b, float* y, float* y_relu = nullptr,
               const PoolOutput* pool = nullptr, OutputEpilogue* deferred = nullptr);
  // dy (B,Cout,Ho,Wo), w -> dx (B,Cin,H,W); dx_relu, when non-null, = relu_backward(relu_y, dx)
  // (in the direct kernels, or by one more kernel after cuDNN's).
  void backward_data(const float* w, const float* dy, float* dx, const float* relu_y = nullptr,
                     float* dx_relu = nullptr);
  // A Conv2d's backward_data into dx, then pool's backward of dx through its ReLU: in one kernel
  // with the direct backward-data and 2 x 2 windows (direct_conv.h's
  // launch_direct_backward_data_maxpool_relu), else kernels.h's pooling backward after it.
  void backward_data_maxpool_relu(const float* w, const float* dy, float* dx, const PoolGradient& pool);
  // x (B,Cin,H,W), dy (B,Cout,Ho,Wo) -> dw (weight layout of the layer); with db non-null
  // (fuses_bias_grad() only, else std::logic_error), also db (Cout) in the same kernel.
  void backward_filter(const float* x, const float* dy, float* dw, float* db = nullptr);
  // Whether backward_filter can give the bias gradient too: on fmnist's direct backward-filter
  // (cuda/weight_grad.h), a Conv2d's from the blocks that read every dy value anyway, a
  // ConvTranspose2d's from rows of blocks of its own in the same launch (where they fit).
  bool fuses_bias_grad() const {
    return direct_weight_grad_ && (!geometry_.transposed || direct_weight_grad_fuses_src_bias(conv_shape_));
  }

  // "fwd=IMPLICIT_PRECOMP_GEMM bwd_data=ALGO_1 bwd_filter=ALGO_1 math=FMA workspace=... bytes"
  std::string describe() const;

 private:
  // The cuDNN convolution underneath: "src" (N,C,Hs,Ws) -> "dst" (N,K,Hd,Wd) with a (K,C,k,k)
  // filter. For Conv2d src = x and dst = y; for ConvTranspose2d src = y and dst = x.
  void conv_forward(const float* src, const float* w, float* dst);           // src -> dst
  void conv_backward_data(const float* w, const float* ddst, float* dsrc);   // dst -> src
  // db: direct only, over ddst's channels (a Conv2d's) or src's (a ConvTranspose2d's, bias_of Src).
  void conv_backward_filter(const float* src, const float* ddst, float* dw, float* db, BiasOf bias_of = BiasOf::Dst);

  void choose_algorithms();
  void release() noexcept;

  // BF16 mode: scratch regions for src, dst and filter (each pass reads two, writes the third).
  struct Regions {
    void* src;
    void* dst;
    void* filter;
  };
  Regions regions() const;
  void stage(const float* in, std::size_t n, void* region) const;   // operand -> region
  void* result(void* region, float* out) const;  // where cuDNN writes a result bound for `out`
  void finish(void* region, std::size_t n, float* out) const;       // that result -> out

  Context& context_;
  ConvGeometry geometry_;
  bool bf16_ = false;  // options().bf16: operands and results rounded (models/precision.h)
  ConvStorage storage_ = ConvStorage::Float;
  std::size_t src_count_ = 0, dst_count_ = 0, filter_count_ = 0;
  std::size_t src_bytes_ = 0, dst_bytes_ = 0;  // region sizes (256-byte aligned)
  cudnnTensorDescriptor_t src_ = nullptr, dst_ = nullptr;
  cudnnFilterDescriptor_t filter_ = nullptr;
  // One convolution descriptor per pass, each with the math type of its chosen algorithm.
  cudnnConvolutionDescriptor_t conv_fwd_ = nullptr, conv_bwd_data_ = nullptr,
                               conv_bwd_filter_ = nullptr;
  cudnnConvolutionFwdAlgo_t fwd_algo_{};
  cudnnConvolutionBwdDataAlgo_t bwd_data_algo_{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter_algo_{};
  cudnnMathType_t fwd_math_{}, bwd_data_math_{}, bwd_filter_math_{};
  std::size_t fwd_bytes_ = 0, bwd_data_bytes_ = 0, bwd_filter_bytes_ = 0;
  // options().direct_weight_grad and the geometry supported: backward-filter by fmnist's kernel.
  bool direct_weight_grad_ = false;
  // options().direct_backward_data and the geometry supported: backward-data (ConvTranspose2d's
  // forward, with its bias, and Conv2d's input gradient) by fmnist's kernel (direct_conv.h).
  bool direct_backward_data_ = false;
  // options().direct_forward and the geometry supported: forward (Conv2d's, with its bias, and
  // ConvTranspose2d's input gradient) by fmnist's kernel (direct_conv.h).
  bool direct_forward_ = false;
  ConvShape conv_shape_{};
};

// Plans by geometry: the first call with a geometry makes its plan, later calls reuse it.
class ConvPlanCache {
 public:
  explicit ConvPlanCache(Context& context) : context_(context) {}
  ConvPlan& get(const ConvGeometry& g);
  bool contains(const ConvGeometry& g) const { return plans_.count(key(g)) != 0; }
  std::size_t size() const { return plans_.size(); }

 private:
  using Key = std::tuple<int, int, int, int, int, int, int, int, int, bool>;
  static Key key(const ConvGeometry& g) {
    return Key{g.batch,  g.in_channels, g.in_h,    g.in_w,           g.out_channels,
               g.kernel, g.stride,      g.padding, g.output_padding, g.transposed};
  }
  Context& context_;
  std::map<Key, std::unique_ptr<ConvPlan>> plans_;
};

}  // namespace fmnist::cuda
