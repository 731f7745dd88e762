// CudaOps: the GPU backend of models/ops.h. Convolutions through cuDNN (conv.h), Linear through
// cuBLAS (dense.h), everything else through fmnist's kernels (kernels.h), all on one stream.
// - Every op enqueues and returns; only copy_to_host and synchronize wait for the device (and
//   the first call with a new convolution geometry, which plans it: see conv.h).
// - Losses write loss[0] and add to *loss_sum on the device (no host round trip).
// - copy_to_device from pageable memory returns once the source may be reused; from pinned memory
//   (cudaHostAlloc) it is asynchronous: keep the source unchanged until the stream has passed.
// - Preconditions are checked on the host before any launch (std::invalid_argument naming the op).
// - Streaming (cuda_ops_stream.cu): pinned host memory, an upload ring on a copy stream, CUDA
//   event timing, CUDA graph capture of the compute stream, and the step-reading ops.
// Host code normally sees this class only as Ops<float> through cuda/backend.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "cuda/backend.h"
#include "cuda/conv.h"
#include "cuda/context.h"
#include "models/linear_split.h"  // LinearPass
#include "models/ops.h"

namespace fmnist::cuda {

class CudaOps final : public Ops<float> {
 public:
  explicit CudaOps(const CudaOptions& options);
  // A capture still open (its caller never ended it) is aborted: it holds the device gate.
  ~CudaOps() override { abort_capture(); }

  std::string name() const override;  // + " (TF32)" or " (BF16)"
  std::string software() const override;  // CUDA runtime, driver, cuDNN and cuBLAS versions
  Precision precision() const override;

  void* allocate(std::size_t bytes) override;
  void deallocate(void* ptr) noexcept override;
  void copy_to_device(void* dst, const void* host_src, std::size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, std::size_t bytes) override;
  void copy(void* dst, const void* src, std::size_t bytes) override;
  void fill(float* dst, float value, std::size_t n) override;
  void synchronize() override;

  void images_to_float(std::size_t n, const std::uint8_t* pixels, float* x) override;

  void conv2d_forward(const ConvGeometry& g, const float* x, const float* w, const float* b,
                      float* y) override;
  void conv2d_backward(const ConvGeometry& g, const float* x, const float* w, const float* dy,
                       float* dx, float* dw, float* db) override;
  void conv_transpose2d_forward(const ConvGeometry& g, const float* x, const float* w,
                                const float* b, float* y) override;
  void conv_transpose2d_backward(const ConvGeometry& g, const float* x, const float* w,
                                 const float* dy, float* dx, float* dw, float* db) override;
  void maxpool2d_forward(const PoolGeometry& g, const float* x, float* y,
                         std::int32_t* argmax) override;
  void maxpool2d_backward(const PoolGeometry& g, const float* dy, const std::int32_t* argmax,
                          float* dx) override;
  void linear_forward(const LinearGeometry& g, const float* x, const float* w, const float* b,
                      float* y) override;
  void relu_linear_backward(const LinearGeometry& g, const float* x, const float* w, const float* y_relu,
                            const float* dy_relu, float* dy, float* dx, float* dw, float* db) override;
  void linear_backward(const LinearGeometry& g, const float* x, const float* w, const float* dy,
                       float* dx, float* dw, float* db) override;
  // The layer's forward without its bias, then one kernel adds the bias and writes the ReLU; or
  // fmnist's direct convolution kernels writing both (ConvPlan::forward).
  void conv2d_forward_relu_maxpool(const ConvGeometry& g, const PoolGeometry& p, const float* x, const float* w,
                                   const float* b, float* y, float* y_relu, float* pooled,
                                   std::int32_t* argmax) override;
  void conv2d_forward_relu(const ConvGeometry& g, const float* x, const float* w, const float* b, float* y,
                           float* y_relu) override;
  void conv_transpose2d_forward_relu(const ConvGeometry& g, const float* x, const float* w, const float* b,
                                     float* y, float* y_relu) override;
  void linear_forward_relu(const LinearGeometry& g, const float* x, const float* w, const float* b, float* y,
                           float* y_relu) override;
  void linear_forward_sigmoid(const LinearGeometry& g, const float* x, const float* w, const float* b, float* y,
                              float* y_sigmoid) override;
  // The input gradient and the ReLU's gradient in one kernel where that kernel is fmnist's
  // (MaxPool2d; the direct convolution kernels), else one more kernel after it.
  void conv2d_backward_relu(const ConvGeometry& g, const float* x, const float* w, const float* dy, float* dx,
                            float* dw, float* db, float* dx_relu) override;
  void conv_transpose2d_backward_relu(const ConvGeometry& g, const float* x, const float* w, const float* dy,
                                      float* dx, float* dw, float* db, float* dx_relu) override;
  void maxpool2d_backward_relu(const PoolGeometry& g, const float* x, const float* dy,
                               const std::int32_t* argmax, float* dx, float* dx_relu) override;
  // The input gradient handed to the pooling below in the direct backward-data's kernel
  // (ConvPlan::backward_data_maxpool_relu), else the pooling's backward kernel after it.
  void conv2d_backward_maxpool_relu(const ConvGeometry& g, const PoolGeometry& p, const float* x, const float* w,
                                    const float* dy, float* dx, float* dw, float* db, const float* pool_x,
                                    const std::int32_t* argmax, float* pool_dx, float* pool_dx_relu) override;

  void relu_forward(std::size_t n, const float* x, float* y) override;
  void relu_backward(std::size_t n, const float* y, const float* dy, float* dx) override;
  void sigmoid_forward(std::size_t n, const float* x, float* y) override;
  void sigmoid_backward(std::size_t n, const float* y, const float* dy, float* dx) override;
  void dropout_forward(std::size_t n, float p, std::uint64_t seed, std::uint64_t step,
                       std::uint32_t layer, const float* x, float* y) override;
  void dropout_backward(std::size_t n, float p, std::uint64_t seed, std::uint64_t step,
                        std::uint32_t layer, const float* dy, float* dx) override;

  void l1_loss(std::size_t n, const float* pred, const float* target, float* dpred, float* loss,
               double* loss_sum) override;
  void l1_loss_relu(std::size_t n, const float* pred, const float* target, float* dpred, float* dpred_relu,
                    float* loss, double* loss_sum) override;
  void mse_loss_relu(std::size_t n, const float* pred, const float* target, float* dpred, float* dpred_relu,
                     float* loss, double* loss_sum) override;
  void mse_loss(std::size_t n, const float* pred, const float* target, float* dpred, float* loss,
                double* loss_sum) override;
  void softmax_cross_entropy(int batch, int classes, const float* scores,
                             const std::uint8_t* labels, float* dscores, float* loss,
                             double* loss_sum) override;
  void softmax_cross_entropy_sigmoid(int batch, int classes, const float* scores, const std::uint8_t* labels,
                                     float* dscores, float* dscores_sigmoid, float* loss,
                                     double* loss_sum) override;
  // The output layer's bias and activation in the loss's kernel, after cuDNN's or cuBLAS's product
  // (launch_point_loss / launch_softmax_cross_entropy with an OutputEpilogue); after fmnist's own
  // kernels, which take them already, the two ops.
  void conv_transpose2d_forward_relu_loss(const ConvGeometry& g, const float* x, const float* w, const float* b,
                                          float* y, float* y_relu, PointLoss kind, const float* target,
                                          float* dpred, float* dpred_relu, float* loss, double* loss_sum) override;
  void linear_forward_sigmoid_cross_entropy(const LinearGeometry& g, const float* x, const float* w,
                                            const float* b, float* y, float* y_sigmoid,
                                            const std::uint8_t* labels, float* dscores, float* dscores_sigmoid,
                                            float* loss, double* loss_sum) override;
  void count_predictions(int batch, int classes, const float* scores, const std::uint8_t* labels,
                         std::int64_t* confusion) override;

  void adam_update(std::size_t n, float* params, const float* grads, float* m, float* v,
                   const elementwise::AdamStep<float>& step) override;

  // ---- streaming (cuda_ops_stream.cu) ----
  void* allocate_host(std::size_t bytes) override;
  void deallocate_host(void* ptr) noexcept override;
  std::size_t free_memory() override;
  std::unique_ptr<UploadRing> make_upload_ring(int slots, std::size_t slot_bytes) override;
  std::unique_ptr<Stopwatch> make_stopwatch() override;
  bool can_capture() const override { return true; }
  void begin_capture() override;
  std::unique_ptr<CapturedWork> end_capture() override;
  void abort_capture() noexcept override;
  void gather_rows(int count, std::size_t pixels, const RowSource& source, const RowOrder& order,
                   const StepCursor* cursor, std::uint8_t* images, std::uint8_t* labels, float* scaled) override;
  void dropout_forward_at(std::size_t n, float p, std::uint64_t seed, const StepCursor* cursor,
                          std::uint32_t layer, const float* x, float* y) override;
  void dropout_backward_at(std::size_t n, float p, std::uint64_t seed, const StepCursor* cursor,
                           std::uint32_t layer, const float* dy, float* dx) override;
  void adam_update_at(std::size_t n, float* params, const float* grads, float* m, float* v,
                      const elementwise::AdamStep<float>* table, StepCursor* cursor, bool advance) override;
  void set_cursor(StepCursor* cursor, std::uint64_t step, std::uint64_t index) override;
  void advance_cursor(StepCursor* cursor) override;
  bool capturing() const { return capturing_; }

  // For the trainer and tools: the context (stream, device) and the plans made so far.
  Context& context() { return context_; }
  std::size_t conv_plan_count() const { return plans_.size(); }

 private:
  ConvPlan& plan(const ConvGeometry& g);
  // The context, with the main lane made to wait for any side-lane work first (Context::
  // join_side_lane): every op but the *_backward ones enqueues through this, so parameter
  // gradients on the side lane are complete before anything (Adam, a copy) can read them.
  Context& main_lane() {
    context_.join_side_lane();
    return context_;
  }
  // The bodies of conv2d_* (transposed false) and conv_transpose2d_* (true); op names the caller;
  // y_relu non-null: the *_forward_relu ops; pool non-null (with y_relu): conv2d_forward_relu_maxpool.
  // deferred: ConvPlan::forward's and linear_forward_impl's, the bias and activation left for the
  // caller's next kernel where they would be a kernel of their own.
  void conv_forward(const char* op, bool transposed, const ConvGeometry& g, const float* x,
                    const float* w, const float* b, float* y, float* y_relu = nullptr,
                    const PoolOutput* pool = nullptr, OutputEpilogue* deferred = nullptr);
  void linear_backward_passes(const LinearGeometry& g, const float* x, const float* w, const float* dy, float* dx,
                              float* dw, float* db);
  bool splits_linear(bool asked, const LinearGeometry& g) const;
  void* split_workspace(const LinearGeometry& g, LinearPass pass);
  void linear_weight_grad(const LinearGeometry& g, const float* x, const float* dy, float* dw);
  void linear_forward_impl(const char* op, const LinearGeometry& g, const float* x, const float* w,
                           const float* b, float* y, float* y_act, elementwise::Activation act,
                           OutputEpilogue* deferred = nullptr);
  void conv_backward(const char* op, bool transposed, const ConvGeometry& g, const float* x,
                     const float* w, const float* dy, float* dx, float* dw, float* db,
                     float* dx_relu = nullptr, const PoolGradient* pool = nullptr);

  Context context_;
  ConvPlanCache plans_;
  bool capturing_ = false;  // between begin_capture and end_capture/abort_capture
};

}  // namespace fmnist::cuda
