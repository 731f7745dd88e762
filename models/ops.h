// The backend interface: every op a network needs, on tensors that live in the backend's memory
// (host memory for the CPU reference, device memory for CUDA). One executor (executor.h) drives
// any backend, so the CPU and the GPU run the same sequence of ops. Layouts are PyTorch's (NCHW).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "elementwise.h"
#include "point_loss.h"
#include "precision.h"
#include "stream_types.h"

namespace fmnist {

// Geometry of a Conv2d or ConvTranspose2d over a batch (square kernels, equal strides/paddings).
struct ConvGeometry {
  int batch = 0;
  int in_channels = 0, in_h = 0, in_w = 0;
  int out_channels = 0;
  int kernel = 0, stride = 1, padding = 0, output_padding = 0;
  bool transposed = false;

  int out_h() const {
    return transposed ? (in_h - 1) * stride - 2 * padding + kernel + output_padding
                      : (in_h + 2 * padding - kernel) / stride + 1;
  }
  int out_w() const {
    return transposed ? (in_w - 1) * stride - 2 * padding + kernel + output_padding
                      : (in_w + 2 * padding - kernel) / stride + 1;
  }
  // Weight layout: Conv2d (out, in, k, k); ConvTranspose2d (in, out, k, k), as in PyTorch.
  std::size_t weight_count() const {
    return static_cast<std::size_t>(in_channels) * out_channels * kernel * kernel;
  }
  std::size_t in_count() const { return static_cast<std::size_t>(batch) * in_channels * in_h * in_w; }
  std::size_t out_count() const {
    return static_cast<std::size_t>(batch) * out_channels * out_h() * out_w();
  }
};

// MaxPool2d with kernel == stride (floor mode, no padding).
struct PoolGeometry {
  int batch = 0, channels = 0, in_h = 0, in_w = 0;
  int kernel = 2, stride = 2;
  int out_h() const { return (in_h - kernel) / stride + 1; }
  int out_w() const { return (in_w - kernel) / stride + 1; }
  std::size_t in_count() const { return static_cast<std::size_t>(batch) * channels * in_h * in_w; }
  std::size_t out_count() const {
    return static_cast<std::size_t>(batch) * channels * out_h() * out_w();
  }
};

// Linear: y (batch, out) = x (batch, in) * W^T (W is (out, in), row-major) + b (out).
struct LinearGeometry {
  int batch = 0, in_features = 0, out_features = 0;
};

// Backend interface. Conventions:
// - Every pointer refers to the backend's own memory, except the host_* arguments.
// - Backward ops overwrite (never accumulate into) dx, dw and db; a null dx, dw or db is skipped.
// - Losses write the batch mean into loss[0] and, when loss_sum is non-null, add it to *loss_sum.
// - Ops are enqueued in order; results are visible to copy_to_host (which waits for them).
// - The parameter gradients (dw, db) of a *_backward op may be computed concurrently with the
//   *_backward ops after it (the CUDA backend with two backward streams): until the next op that
//   is not a *_backward op, the caller must not overwrite an x or dy that an earlier *_backward op
//   read. The executor never does: every activation and every gradient has its own buffer.
template <class T> class Ops {
 public:
  virtual ~Ops() = default;
  virtual std::string name() const = 0;  // "cpu" or "cuda:<device name>", + " (TF32)"/" (BF16)"
  // The libraries this backend computes with and their versions, for a run's record (config.json):
  // their kernels set the rounding. Empty where a backend does not say.
  virtual std::string software() const { return {}; }
  // True for the CPU reference: its "device" memory is host memory, reading a value back costs no
  // device sync, and runs started at the same time share the same cores.
  virtual bool computes_on_host() const { return false; }
  // The precision of the convolutions' and Linear layers' products (models/precision.h).
  virtual Precision precision() const { return Precision::FP32; }

  // ---- memory -----------------------------------------------------------------------------------
  virtual void* allocate(std::size_t bytes) = 0;  // zero-filled
  virtual void deallocate(void* ptr) noexcept = 0;
  virtual void copy_to_device(void* dst, const void* host_src, std::size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, std::size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, std::size_t bytes) = 0;  // device to device
  virtual void fill(T* dst, T value, std::size_t n) = 0;
  virtual void synchronize() = 0;

  // ---- data ---------------------------------------------------------------------------------------
  // x (n) = pixels (n) / 255
  virtual void images_to_float(std::size_t n, const std::uint8_t* pixels, T* x) = 0;

  // ---- layers -------------------------------------------------------------------------------------
  // x (B,Cin,H,W), w (Cout,Cin,k,k), b (Cout) -> y (B,Cout,Ho,Wo)
  virtual void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y) = 0;
  virtual void conv2d_backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dx,
                               T* dw, T* db) = 0;
  // x (B,Cin,H,W), w (Cin,Cout,k,k), b (Cout) -> y (B,Cout,Ho,Wo), Ho = (H-1)s - 2p + k + op
  virtual void conv_transpose2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* b,
                                        T* y) = 0;
  virtual void conv_transpose2d_backward(const ConvGeometry& g, const T* x, const T* w, const T* dy,
                                         T* dx, T* dw, T* db) = 0;
  // x (B,C,H,W) -> y (B,C,Ho,Wo); argmax (B,C,Ho,Wo) holds the flat index within each (H,W) plane.
  virtual void maxpool2d_forward(const PoolGeometry& g, const T* x, T* y, std::int32_t* argmax) = 0;
  virtual void maxpool2d_backward(const PoolGeometry& g, const T* dy, const std::int32_t* argmax,
                                  T* dx) = 0;
  // x (B,in), w (out,in), b (out) -> y (B,out)
  virtual void linear_forward(const LinearGeometry& g, const T* x, const T* w, const T* b, T* y) = 0;
  virtual void linear_backward(const LinearGeometry& g, const T* x, const T* w, const T* dy, T* dx,
                               T* dw, T* db) = 0;
  // A layer's forward as above into y, then y_relu (as many elements) = ReLU(y), in one call so that
  // a backend may fuse the bias and the ReLU into one pass (the CUDA backend does; the defaults,
  // ops_defaults.h, run the two ops). y and y_relu are distinct buffers, and both are written.
  virtual void conv2d_forward_relu(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y,
                                   T* y_relu);
  virtual void conv_transpose2d_forward_relu(const ConvGeometry& g, const T* x, const T* w, const T* b,
                                             T* y, T* y_relu);
  virtual void linear_forward_relu(const LinearGeometry& g, const T* x, const T* w, const T* b, T* y,
                                   T* y_relu);
  // The same with the Sigmoid after a Linear layer (the classifier's head): y_sigmoid = Sigmoid(y).
  virtual void linear_forward_sigmoid(const LinearGeometry& g, const T* x, const T* w, const T* b, T* y,
                                      T* y_sigmoid);
  // conv2d_forward_relu as above, then (pooled, argmax) = maxpool2d_forward(p, y_relu): p pools the
  // convolution's output (p's batch, channels, in_h, in_w are g's output's). One call, so that a
  // backend may add the bias, take the ReLU and pool in one pass over the convolution's output
  // (the CUDA backend does after cuDNN's forward; the defaults, ops_defaults.h, run the two ops).
  // y, y_relu, pooled and argmax are all written.
  virtual void conv2d_forward_relu_maxpool(const ConvGeometry& g, const PoolGeometry& p, const T* x, const T* w,
                                           const T* b, T* y, T* y_relu, T* pooled, std::int32_t* argmax);
  // A layer's backward as above, then dx_relu = relu_backward(x, dx): the gradient through the
  // ReLU that produced this layer's input x. One call, so that a backend may apply the ReLU's mask
  // in the pass that writes dx (the CUDA backend does where that pass is its own kernel; the
  // defaults, ops_defaults.h, run the two ops). dx and dx_relu are distinct; both are written.
  virtual void conv2d_backward_relu(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dx,
                                    T* dw, T* db, T* dx_relu);
  virtual void conv_transpose2d_backward_relu(const ConvGeometry& g, const T* x, const T* w, const T* dy,
                                              T* dx, T* dw, T* db, T* dx_relu);
  virtual void maxpool2d_backward_relu(const PoolGeometry& g, const T* x, const T* dy,
                                       const std::int32_t* argmax, T* dx, T* dx_relu);
  // conv2d_backward into dx (the gradient at x, which pool p made), then maxpool2d_backward_relu(p,
  // pool_x, dx, argmax, pool_dx, pool_dx_relu): the backward of that pooling (p's output is g's
  // input) and of the ReLU before it, whose output pool_x is. One call, so that a backend may hand
  // each computed input-gradient element straight to the pooling window it came from (the CUDA
  // backend does on its direct backward-data; the defaults run the two ops). dx, pool_dx and
  // pool_dx_relu are all written; dw and db as conv2d_backward's.
  virtual void conv2d_backward_maxpool_relu(const ConvGeometry& g, const PoolGeometry& p, const T* x, const T* w,
                                            const T* dy, T* dx, T* dw, T* db, const T* pool_x,
                                            const std::int32_t* argmax, T* pool_dx, T* pool_dx_relu);
  // The backward of the ReLU after a Linear layer, then the layer's: dy (B,out) =
  // relu_backward(y_relu, dy_relu) (y_relu: the ReLU's output; dy_relu: the gradient at it),
  // then linear_backward(g, x, w, dy, dx, dw, db). One call, so that a backend may apply the
  // mask in the pass that sums db (the CUDA backend does; the defaults run the two ops). dy is
  // written; dx, dw, db as linear_backward's.
  virtual void relu_linear_backward(const LinearGeometry& g, const T* x, const T* w, const T* y_relu,
                                    const T* dy_relu, T* dy, T* dx, T* dw, T* db);

  // ---- element-wise (y may alias x; dx may alias dy) -----------------------------------------------
  virtual void relu_forward(std::size_t n, const T* x, T* y) = 0;
  virtual void relu_backward(std::size_t n, const T* y, const T* dy, T* dx) = 0;
  virtual void sigmoid_forward(std::size_t n, const T* x, T* y) = 0;
  virtual void sigmoid_backward(std::size_t n, const T* y, const T* dy, T* dx) = 0;
  // Inverted dropout; the mask is elementwise::dropout_factor(seed, step, layer, i, p).
  virtual void dropout_forward(std::size_t n, float p, std::uint64_t seed, std::uint64_t step,
                               std::uint32_t layer, const T* x, T* y) = 0;
  virtual void dropout_backward(std::size_t n, float p, std::uint64_t seed, std::uint64_t step,
                                std::uint32_t layer, const T* dy, T* dx) = 0;

  // ---- losses and metrics ----------------------------------------------------------------------
  // mean |pred - target| over n; dpred (n) = d loss / d pred when non-null.
  virtual void l1_loss(std::size_t n, const T* pred, const T* target, T* dpred, T* loss,
                       double* loss_sum) = 0;
  // mean (pred - target)^2 over n.
  virtual void mse_loss(std::size_t n, const T* pred, const T* target, T* dpred, T* loss,
                        double* loss_sum) = 0;
  // The same losses of the output of a ReLU (pred), their gradient also taken through that ReLU:
  // dpred as above, then dpred_relu (n) = relu_backward(pred, dpred). The results of the two ops;
  // a backend may compute them in one pass.
  virtual void l1_loss_relu(std::size_t n, const T* pred, const T* target, T* dpred, T* dpred_relu, T* loss,
                            double* loss_sum);
  virtual void mse_loss_relu(std::size_t n, const T* pred, const T* target, T* dpred, T* dpred_relu, T* loss,
                             double* loss_sum);
  // scores (B,classes), labels (B) -> mean over the batch of softmax cross-entropy.
  virtual void softmax_cross_entropy(int batch, int classes, const T* scores,
                                     const std::uint8_t* labels, T* dscores, T* loss,
                                     double* loss_sum) = 0;
  // The same loss of scores that are a Sigmoid's output (the paper's classifier), its gradient also
  // taken through that Sigmoid: dscores as above, then dscores_sigmoid (B,classes) =
  // sigmoid_backward(scores, dscores). The results of the two ops; a backend may compute them in
  // one pass (the CUDA backend does; the defaults, ops_defaults.h, run the two ops).
  virtual void softmax_cross_entropy_sigmoid(int batch, int classes, const T* scores, const std::uint8_t* labels,
                                             T* dscores, T* dscores_sigmoid, T* loss, double* loss_sum);
  // The output layer's forward and the training loss, in one call so that a backend may add the
  // bias, take the activation and the loss's terms and gradients in one pass over the layer's
  // product (the CUDA backend does after cuDNN's and cuBLAS's products; the defaults,
  // ops_defaults.h, run the two ops). An AE's last ConvTranspose2d and its ReLU:
  // conv_transpose2d_forward_relu(g, x, w, b, y, y_relu), then l1_loss_relu (kind L1) or
  // mse_loss_relu (MSE) of y_relu against target, into dpred and dpred_relu (both written).
  virtual void conv_transpose2d_forward_relu_loss(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y,
                                                  T* y_relu, PointLoss kind, const T* target, T* dpred,
                                                  T* dpred_relu, T* loss, double* loss_sum);
  // The classifier's head: linear_forward_sigmoid(g, x, w, b, y, y_sigmoid), then
  // softmax_cross_entropy_sigmoid of y_sigmoid (classes = g.out_features) into dscores and
  // dscores_sigmoid (both written).
  virtual void linear_forward_sigmoid_cross_entropy(const LinearGeometry& g, const T* x, const T* w, const T* b,
                                                    T* y, T* y_sigmoid, const std::uint8_t* labels, T* dscores,
                                                    T* dscores_sigmoid, T* loss, double* loss_sum);
  // confusion (classes,classes)[label][argmax(scores)] += 1 for each row.
  virtual void count_predictions(int batch, int classes, const T* scores,
                                 const std::uint8_t* labels, std::int64_t* confusion) = 0;

  // ---- optimizer ----------------------------------------------------------------------------------
  // One Adam step over n contiguous parameters (their gradients and both moments alike).
  virtual void adam_update(std::size_t n, T* params, const T* grads, T* m, T* v,
                           const elementwise::AdamStep<T>& step) = 0;

  // ---- streaming: steps without the host (stream_types.h; host/batch_stream.h drives these) ----
  // The defaults (ops_defaults.h) suit a backend whose memory is host memory and whose ops run
  // when called (the CPU reference): synchronous copies, no capture. The CUDA backend overrides
  // every one. Each step-reading op computes exactly what its by-value twin does.

  // Host memory that copy_to_device reads asynchronously (pinned on a GPU); zero-filled.
  virtual void* allocate_host(std::size_t bytes);
  virtual void deallocate_host(void* ptr) noexcept;
  // Free backend memory in bytes; 0 when the backend's memory is the host's (keeping a data set
  // "resident" would gain nothing).
  virtual std::size_t free_memory() { return 0; }
  virtual std::unique_ptr<UploadRing> make_upload_ring(int slots, std::size_t slot_bytes);
  virtual std::unique_ptr<Stopwatch> make_stopwatch();

  // Capture: between begin_capture and end_capture ops are recorded, not run; the result replays
  // them. Nothing captured may allocate or wait (run the same ops once first: a GPU plans a new
  // convolution geometry on first use). abort_capture ends a failed capture, discarding it.
  virtual bool can_capture() const { return false; }
  virtual void begin_capture();
  virtual std::unique_ptr<CapturedWork> end_capture();
  virtual void abort_capture() noexcept {}

  // images (count, pixels) and labels (count) = the rows of `source` that `order` names for
  // cursor->index (see RowOrder); scaled (count, pixels), when non-null, = images_to_float of
  // those images, in the same pass.
  virtual void gather_rows(int count, std::size_t pixels, const RowSource& source,
                           const RowOrder& order, const StepCursor* cursor, std::uint8_t* images,
                           std::uint8_t* labels, T* scaled);
  // dropout_forward/backward at step cursor->step.
  virtual void dropout_forward_at(std::size_t n, float p, std::uint64_t seed,
                                  const StepCursor* cursor, std::uint32_t layer, const T* x, T* y);
  virtual void dropout_backward_at(std::size_t n, float p, std::uint64_t seed,
                                   const StepCursor* cursor, std::uint32_t layer, const T* dy,
                                   T* dx);
  // adam_update with the constants table[cursor->index]; then, when `advance`, advance_cursor
  // (in the same launch on a GPU, once every element has read the constants).
  virtual void adam_update_at(std::size_t n, T* params, const T* grads, T* m, T* v,
                              const elementwise::AdamStep<T>* table, StepCursor* cursor, bool advance);
  // *cursor = {step, index}; advance_cursor: both + 1.
  virtual void set_cursor(StepCursor* cursor, std::uint64_t step, std::uint64_t index);
  virtual void advance_cursor(StepCursor* cursor);
};

}  // namespace fmnist

#include "ops_defaults.h"
