// Runs a NetworkSpec on any backend (Ops<T>): forward, loss, backward and Adam over one flat
// parameter buffer. The CPU reference and the CUDA backend share this one sequence of ops, so a
// difference between them can only come from an op. Everything is allocated once at construction
// for the largest batch: a training step allocates nothing and never waits for the backend.
// train_step_at is the same step with its per-step values read from backend memory (a StepCursor
// and a table of Adam constants), so that a CUDA graph captured once replays it for every step.
// NVTX ranges (nvtx.h) name the phases and the layers.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "network.h"
#include "nvtx.h"
#include "ops.h"

namespace fmnist {

struct AdamConfig {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // PyTorch's defaults
};

// The host-side part of Adam: the bias corrections of step t (1-based), as torch.optim.Adam.
template <class T> elementwise::AdamStep<T> adam_step_constants(const AdamConfig& c, std::uint64_t t) {
  const double bias_correction1 = 1.0 - std::pow(c.beta1, static_cast<double>(t));
  const double bias_correction2 = 1.0 - std::pow(c.beta2, static_cast<double>(t));
  elementwise::AdamStep<T> s;
  s.beta2 = static_cast<T>(c.beta2);
  s.one_minus_beta1 = static_cast<T>(1.0 - c.beta1);
  s.one_minus_beta2 = static_cast<T>(1.0 - c.beta2);
  s.eps = static_cast<T>(c.eps);
  s.step_size = static_cast<T>(c.lr / bias_correction1);
  s.bias_correction2_sqrt = static_cast<T>(std::sqrt(bias_correction2));
  return s;
}

// The constants of `count` consecutive steps from `first_step` (a BatchStream epoch's table);
// lr_at(t), when given, sets step t's learning rate (a schedule), else `base.lr` serves every step.
template <class T, class LrAt = std::nullptr_t>
std::vector<elementwise::AdamStep<T>> adam_step_table(const AdamConfig& base, std::uint64_t first_step,
                                                      std::size_t count, LrAt lr_at = nullptr) {
  std::vector<elementwise::AdamStep<T>> table(count);
  AdamConfig c = base;
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint64_t t = first_step + i;
    if constexpr (!std::is_same_v<LrAt, std::nullptr_t>) c.lr = lr_at(t);
    table[i] = adam_step_constants<T>(c, t);
  }
  return table;
}

template <class T> class Executor {
 public:
  // seed drives the dropout masks (with the step and the layer); max_batch bounds every batch.
  Executor(const NetworkSpec& spec, Ops<T>& ops, int max_batch, std::uint64_t seed)
      : spec_(spec), ops_(ops), max_batch_(max_batch), seed_(seed) {
    if (max_batch < 1) throw std::invalid_argument("executor: max_batch must be >= 1");
    try {  // a failed allocation must not leak the earlier ones
      const std::size_t n = spec.param_count;
      params_ = alloc<T>(n);
      grads_ = alloc<T>(n);
      exp_avg_ = alloc<T>(n);
      exp_avg_sq_ = alloc<T>(n);
      images_ = alloc<std::uint8_t>(static_cast<std::size_t>(max_batch) * spec_.input.count());
      labels_ = alloc<std::uint8_t>(static_cast<std::size_t>(max_batch));
      activations_.push_back(alloc<T>(static_cast<std::size_t>(max_batch) * spec.input.count()));
      gradients_.push_back(nullptr);  // nothing upstream of the input needs a gradient
      for (const auto& layer : spec.layers) {
        const std::size_t count = static_cast<std::size_t>(max_batch) * layer.out.count();
        activations_.push_back(alloc<T>(count));
        gradients_.push_back(alloc<T>(count));
        argmax_.push_back(layer.kind == LayerKind::MaxPool2d ? alloc<std::int32_t>(count) : nullptr);
      }
      batch_loss_ = alloc<T>(1);
      train_loss_sum_ = alloc<double>(1);
      eval_loss_sum_ = alloc<double>(1);
      confusion_ = alloc<std::int64_t>(kNetworkClasses * kNetworkClasses);
      plan_backward();
      for (const auto& layer : spec.layers) {
        forward_labels_.push_back(layer.name.empty() ? std::string(kind_name(layer.kind))
                                                     : layer.name + " " + kind_name(layer.kind));
        backward_labels_.push_back(forward_labels_.back() + " backward");
      }
    } catch (...) {
      release();
      throw;
    }
  }
  ~Executor() { release(); }
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  const NetworkSpec& spec() const { return spec_; }
  Ops<T>& ops() { return ops_; }
  int max_batch() const { return max_batch_; }

  // Flat buffers in backend memory, spec().param_count elements each, in state_dict order.
  T* params() { return params_; }
  T* grads() { return grads_; }
  T* exp_avg() { return exp_avg_; }
  T* exp_avg_sq() { return exp_avg_sq_; }
  // The batch to run, in backend memory: images (max_batch, 28, 28) uint8, labels (max_batch).
  // (Whoever asks for batch_images() may write it: the next forward pass scales it again.)
  std::uint8_t* batch_images() {
    input_staged_ = 0;
    return images_;
  }
  std::uint8_t* batch_labels() { return labels_; }
  // The scaled input (B,1,28,28), each layer's output, and the network's output.
  T* input() { return activations_.front(); }
  T* activation(std::size_t layer) { return activations_.at(layer + 1); }
  T* output() { return activations_.back(); }
  T* output_gradient() { return gradients_.back(); }
  T* layer_gradient(std::size_t layer) { return gradients_.at(layer + 1); }
  // Loss of the last batch (1 element); sums of batch losses since reset_metrics(); the
  // confusion matrix (10,10) [label][prediction] of evaluated classifier batches.
  T* batch_loss() { return batch_loss_; }
  double* train_loss_sum() { return train_loss_sum_; }
  double* eval_loss_sum() { return eval_loss_sum_; }
  std::int64_t* confusion() { return confusion_; }

  void reset_metrics() {
    const double zero = 0.0;
    ops_.copy_to_device(train_loss_sum_, &zero, sizeof zero);
    ops_.copy_to_device(eval_loss_sum_, &zero, sizeof zero);
    std::vector<std::int64_t> zeros(kNetworkClasses * kNetworkClasses, 0);
    ops_.copy_to_device(confusion_, zeros.data(), zeros.size() * sizeof(std::int64_t));
  }

  // Scales batch_images() into input() and runs every layer. `step` and `training` select the
  // dropout masks (dropout is the identity when not training).
  void forward(int batch, bool training, std::uint64_t step) { forward_impl(batch, training, step, nullptr); }

  // The training loss of the output (MAE/MSE against the input for an AE, softmax cross-entropy
  // for a classifier) into batch_loss(), added to *loss_sum when non-null; with_gradient writes
  // d loss / d output into output_gradient().
  void loss(int batch, double* loss_sum, bool with_gradient) {
    check_batch(batch);
    NvtxRange range("loss");
    T* grad = with_gradient ? output_gradient() : nullptr;
    // The gradient at the output ReLU's (AE) or Sigmoid's (classifier) input, when the loss's op
    // writes it too (loss_through_output_activation_).
    T* activation_grad =
        grad != nullptr && loss_through_output_activation_ ? gradients_[spec_.layers.size() - 1] : nullptr;
    if (spec_.config.kind == ModelKind::Autoencoder) {
      reconstruction_loss(spec_.config.ae_loss, batch, grad, loss_sum, activation_grad);
    } else if (activation_grad != nullptr) {
      ops_.softmax_cross_entropy_sigmoid(batch, kNetworkClasses, output(), labels_, grad, activation_grad,
                                         batch_loss_, loss_sum);
    } else {
      ops_.softmax_cross_entropy(batch, kNetworkClasses, output(), labels_, grad, batch_loss_, loss_sum);
    }
  }

  // Back-propagates output_gradient() into grads() (for trainable parameters only) and into every
  // activation gradient that a trainable parameter upstream needs.
  void backward(int batch, std::uint64_t step) { backward_impl(batch, step, nullptr); }

  // One Adam step (t is 1-based) over every trainable parameter range.
  void adam(std::uint64_t t, const AdamConfig& config) {
    NvtxRange range("optimizer");
    const auto constants = adam_step_constants<T>(config, t);
    for (const auto& r : trainable_ranges_)
      ops_.adam_update(r.count, params_ + r.offset, grads_ + r.offset, exp_avg_ + r.offset,
                       exp_avg_sq_ + r.offset, constants);
  }

  // forward (training) -> loss -> backward -> Adam on the batch in batch_images()/batch_labels().
  // `step` is the 1-based global step: Adam's t and the dropout counter.
  void train_step(int batch, std::uint64_t step, const AdamConfig& config) {
    training_forward_and_loss(batch, step, nullptr);
    backward(batch, step);
    adam(step, config);
  }

  // ---- steps whose per-step values live in backend memory (host/batch_stream.h) -----------------
  // Stages the batch rows that `order` names for cursor->index from `source` into
  // batch_images()/batch_labels() and, scaled, into input() (Ops::gather_rows), so that the next
  // forward pass starts from input() as it is rather than scaling batch_images() again.
  void stage(int batch, const RowSource& source, const RowOrder& order, const StepCursor* cursor) {
    check_batch(batch);
    NvtxRange range("stage batch");
    ops_.gather_rows(batch, spec_.input.count(), source, order, cursor, images_, labels_, input());
    input_staged_ = batch;
  }

  // train_step(batch, cursor->step, ...) with Adam's constants adam_table[cursor->index] (made by
  // adam_step_constants), then advance_cursor: the same ops on the same values, so the same
  // results bit for bit; nothing here depends on the host's view of the step.
  void train_step_at(int batch, const elementwise::AdamStep<T>* adam_table, StepCursor* cursor) {
    training_forward_and_loss(batch, 0, cursor);
    backward_impl(batch, 0, cursor);
    {
      NvtxRange range("optimizer");
      // The last range's update also moves the cursor on to the next step (in its own launch
      // on a GPU); without a trainable range, advance_cursor does.
      for (std::size_t k = 0; k < trainable_ranges_.size(); ++k) {
        const Range& r = trainable_ranges_[k];
        ops_.adam_update_at(r.count, params_ + r.offset, grads_ + r.offset, exp_avg_ + r.offset,
                            exp_avg_sq_ + r.offset, adam_table, cursor, k + 1 == trainable_ranges_.size());
      }
    }
    if (trainable_ranges_.empty()) ops_.advance_cursor(cursor);
  }

  // Evaluation of one batch: forward without dropout, the training loss added to
  // eval_loss_sum() and, for a classifier, predictions counted into confusion().
  void eval_step(int batch) {
    forward(batch, /*training=*/false, 0);
    loss(batch, eval_loss_sum_, /*with_gradient=*/false);
    if (spec_.config.kind == ModelKind::Classifier)
      ops_.count_predictions(batch, kNetworkClasses, output(), labels_, confusion_);
  }

  // An AE's reconstruction loss of the output against the input, of either kind (eval reports MAE
  // whatever the training loss was). With relu_input_grad (and grad), the gradient is also taken
  // through the output's ReLU into it (Ops::l1_loss_relu / mse_loss_relu).
  void reconstruction_loss(PointLoss kind, int batch, T* grad, double* loss_sum, T* relu_input_grad = nullptr) {
    const std::size_t n = static_cast<std::size_t>(batch) * spec_.input.count();
    const bool through_relu = grad != nullptr && relu_input_grad != nullptr;
    if (through_relu && kind == PointLoss::L1)
      ops_.l1_loss_relu(n, output(), input(), grad, relu_input_grad, batch_loss_, loss_sum);
    else if (through_relu)
      ops_.mse_loss_relu(n, output(), input(), grad, relu_input_grad, batch_loss_, loss_sum);
    else if (kind == PointLoss::L1)
      ops_.l1_loss(n, output(), input(), grad, batch_loss_, loss_sum);
    else
      ops_.mse_loss(n, output(), input(), grad, batch_loss_, loss_sum);
  }

 private:
  struct Range {
    std::size_t offset, count;
  };

  void release() noexcept {
    for (void* p : allocations_) ops_.deallocate(p);
    allocations_.clear();
  }

  static const char* kind_name(LayerKind kind) {
    switch (kind) {
      case LayerKind::Conv2d: return "Conv2d";
      case LayerKind::ConvTranspose2d: return "ConvTranspose2d";
      case LayerKind::MaxPool2d: return "MaxPool2d";
      case LayerKind::Linear: return "Linear";
      case LayerKind::ReLU: return "ReLU";
      case LayerKind::Sigmoid: return "Sigmoid";
      case LayerKind::Dropout: return "Dropout";
    }
    return "?";
  }

  // forward(batch, true, step) then loss(batch, train_loss_sum_, true), with the same results; where
  // fuses_output_into_loss(), the output layer, its activation and the loss run as one op (a
  // backend may then add the bias and take the activation in the loss's pass), in NVTX's "loss".
  void training_forward_and_loss(int batch, std::uint64_t step, const StepCursor* cursor) {
    if (!fuses_output_into_loss()) {
      forward_impl(batch, /*training=*/true, step, cursor);
      loss(batch, train_loss_sum_, /*with_gradient=*/true);
      return;
    }
    const std::size_t i = spec_.layers.size() - 2;  // the output layer, then its activation
    forward_impl(batch, /*training=*/true, step, cursor, i);
    NvtxRange range("loss");
    NvtxRange layer(forward_labels_[i].c_str());
    const LayerSpec& l = spec_.layers[i];
    T* grad = output_gradient();
    T* activation_grad = gradients_[i + 1];  // at the activation's input
    if (spec_.config.kind == ModelKind::Autoencoder) {
      ops_.conv_transpose2d_forward_relu_loss(conv_geometry(l, batch), activations_[i], param(l.weight),
                                              param(l.bias), activations_[i + 1], activations_[i + 2],
                                              spec_.config.ae_loss, input(), grad, activation_grad, batch_loss_,
                                              train_loss_sum_);
    } else {
      ops_.linear_forward_sigmoid_cross_entropy(linear_geometry(l, batch), activations_[i], param(l.weight),
                                                param(l.bias), activations_[i + 1], activations_[i + 2], labels_,
                                                grad, activation_grad, batch_loss_, train_loss_sum_);
    }
  }

  // Whether a training step's output layer and the activation after it run with the loss as one op
  // (training_forward_and_loss): an AE's last ConvTranspose2d and ReLU, a classifier's head and
  // Sigmoid, when the loss takes its gradient through that activation.
  bool fuses_output_into_loss() const {
    if (!loss_through_output_activation_ || spec_.layers.size() < 2) return false;
    const LayerKind layer = spec_.layers[spec_.layers.size() - 2].kind;
    return spec_.config.kind == ModelKind::Autoencoder ? layer == LayerKind::ConvTranspose2d
                                                       : layer == LayerKind::Linear;
  }

  // Layers [0, end) (all by default). Dropout reads its step from `cursor` when non-null, else
  // uses `step`.
  void forward_impl(int batch, bool training, std::uint64_t step, const StepCursor* cursor,
                    std::size_t end = static_cast<std::size_t>(-1)) {
    check_batch(batch);
    NvtxRange range("forward");
    // input() holds the batch already when stage() just gathered this many images.
    if (input_staged_ != batch)
      ops_.images_to_float(static_cast<std::size_t>(batch) * spec_.input.count(), images_, input());
    input_staged_ = 0;
    end = std::min(end, spec_.layers.size());
    for (std::size_t i = 0; i < end; ++i) {
      NvtxRange layer(forward_labels_[i].c_str());
      if (fuses_relu_and_pool_after(i)) {  // a Conv2d, its ReLU and the MaxPool2d after it, in one op
        const LayerSpec& l = spec_.layers[i];
        ops_.conv2d_forward_relu_maxpool(conv_geometry(l, batch), pool_geometry(spec_.layers[i + 2], batch),
                                         activations_[i], param(l.weight), param(l.bias), activations_[i + 1],
                                         activations_[i + 2], activations_[i + 3], argmax_[i + 2]);
        i += 2;
        continue;
      }
      if (fuses_relu_after(i)) {  // layer i and the ReLU after it, in one op
        forward_layer(i, batch, training, step, cursor, activations_[i + 2]);
        ++i;
        continue;
      }
      if (fuses_sigmoid_after(i)) {  // the classifier's head and its Sigmoid, in one op
        const LayerSpec& l = spec_.layers[i];
        ops_.linear_forward_sigmoid(linear_geometry(l, batch), activations_[i], param(l.weight), param(l.bias),
                                    activations_[i + 1], activations_[i + 2]);
        ++i;
        continue;
      }
      forward_layer(i, batch, training, step, cursor);
    }
  }

  // Whether layer i runs with the ReLU after it as one *_forward_relu op (which a backend may
  // fuse; the results are those of the two layers one after the other, into the same buffers).
  bool fuses_relu_after(std::size_t i) const {
    const LayerKind kind = spec_.layers[i].kind;
    return i + 1 < spec_.layers.size() && spec_.layers[i + 1].kind == LayerKind::ReLU &&
           (kind == LayerKind::Conv2d || kind == LayerKind::ConvTranspose2d || kind == LayerKind::Linear);
  }

  // Whether layer i is a Linear layer with a Sigmoid after it (the classifier's head), run as one
  // linear_forward_sigmoid op (which a backend may fuse, as above).
  bool fuses_sigmoid_after(std::size_t i) const {
    return i + 1 < spec_.layers.size() && spec_.layers[i].kind == LayerKind::Linear &&
           spec_.layers[i + 1].kind == LayerKind::Sigmoid;
  }

  void backward_impl(int batch, std::uint64_t step, const StepCursor* cursor) {
    check_batch(batch);
    NvtxRange range("backward");
    // After loss() took the gradient through the output ReLU or Sigmoid, the backward pass starts
    // below it.
    const std::size_t end = spec_.layers.size() - (loss_through_output_activation_ ? 1 : 0);
    for (std::size_t i = end; i-- > first_backward_layer_;) {
      // A ReLU's backward that goes with the Linear layer before it is named after that layer.
      NvtxRange layer(backward_labels_[fuses_linear_below(i) ? i - 1 : i].c_str());
      if (fuses_pool_below(i)) {  // the Conv2d i, the MaxPool2d i - 1 and the ReLU i - 2, in one op
        const LayerSpec& pool = spec_.layers[i - 1];
        ops_.conv2d_backward_maxpool_relu(conv_geometry(spec_.layers[i], batch), pool_geometry(pool, batch),
                                          activations_[i], param(spec_.layers[i].weight), gradients_[i + 1],
                                          gradients_[i], param_grad(spec_.layers[i].weight),
                                          param_grad(spec_.layers[i].bias), activations_[i - 1], argmax_[i - 1],
                                          gradients_[i - 1], gradients_[i - 2]);
        i -= 2;
        continue;
      }
      if (fuses_relu_before(i)) {  // layer i and the ReLU before it, in one op
        backward_layer(i, batch, step, cursor, gradients_[i - 1]);
        --i;
        continue;
      }
      if (fuses_linear_below(i)) {  // the ReLU i and the Linear i - 1 it follows, in one op
        const LayerSpec& l = spec_.layers[i - 1];
        T* dx = i - 1 > first_backward_layer_ ? gradients_[i - 1] : nullptr;
        ops_.relu_linear_backward(linear_geometry(l, batch), activations_[i - 1], param(l.weight), activations_[i + 1],
                                  gradients_[i + 1], gradients_[i], dx, param_grad(l.weight), param_grad(l.bias));
        --i;
        continue;
      }
      backward_layer(i, batch, step, cursor);
    }
  }

  // Whether layer i is a ReLU after a Linear layer whose backward runs with its own as one
  // relu_linear_backward op (a backend may mask dy in its bias-gradient pass, which it runs
  // anyway). It takes the ReLU before the layer above can (fuses_relu_before): that layer's input
  // gradient may be a library's, which cannot mask (cuDNN's, below AE's ConvTranspose2d), and then
  // the mask would need a kernel of its own.
  bool fuses_linear_below(std::size_t i) const {
    return i >= 1 && i - 1 >= first_backward_layer_ && spec_.layers[i].kind == LayerKind::ReLU &&
           spec_.layers[i - 1].kind == LayerKind::Linear;
  }

  // Whether layer i is a Conv2d whose ReLU and the MaxPool2d after that run with it as one
  // conv2d_forward_relu_maxpool op (the encoder's Conv2d, ReLU, MaxPool2d).
  bool fuses_relu_and_pool_after(std::size_t i) const {
    return fuses_relu_after(i) && spec_.layers[i].kind == LayerKind::Conv2d && i + 2 < spec_.layers.size() &&
           spec_.layers[i + 2].kind == LayerKind::MaxPool2d;
  }

  // Whether layer i is a Conv2d whose input a MaxPool2d made from a ReLU's output, the three
  // backwards run as one conv2d_backward_maxpool_relu op (the encoder's second Conv2d): the
  // pooling's backward would otherwise go with that ReLU's (fuses_relu_before(i - 1)).
  bool fuses_pool_below(std::size_t i) const {
    return i >= 2 && spec_.layers[i].kind == LayerKind::Conv2d && spec_.layers[i - 1].kind == LayerKind::MaxPool2d &&
           fuses_relu_before(i - 1);
  }

  // Whether layer i's backward runs with that of the ReLU before it (which needs its input
  // gradient) as one *_backward_relu op (which a backend may fuse, as above); not when that ReLU
  // goes with the Linear layer before it (fuses_linear_below).
  bool fuses_relu_before(std::size_t i) const {
    const LayerKind kind = spec_.layers[i].kind;
    return i >= 1 && i - 1 > first_backward_layer_ && spec_.layers[i - 1].kind == LayerKind::ReLU &&
           (kind == LayerKind::Conv2d || kind == LayerKind::ConvTranspose2d || kind == LayerKind::MaxPool2d) &&
           !fuses_linear_below(i - 1);
  }

  template <class U> U* alloc(std::size_t n) {
    void* p = ops_.allocate(n * sizeof(U));
    allocations_.push_back(p);
    return static_cast<U*>(p);
  }

  void check_batch(int batch) const {
    if (batch < 1 || batch > max_batch_)
      throw std::invalid_argument("executor: batch " + std::to_string(batch) + " outside [1, " +
                                  std::to_string(max_batch_) + "]");
  }

  // Which layers backward must visit: none before the first trainable parameter.
  void plan_backward() {
    first_backward_layer_ = spec_.layers.size();
    for (std::size_t i = 0; i < spec_.layers.size(); ++i) {
      const auto& l = spec_.layers[i];
      if (l.weight >= 0 && spec_.params[l.weight].trainable) {
        first_backward_layer_ = i;
        break;
      }
    }
    // An AE ending in a ReLU and a classifier ending in a Sigmoid (the paper's) take their loss's
    // gradient through that layer in one op.
    const std::size_t last = spec_.layers.size() - 1;
    const LayerKind output_activation =
        spec_.config.kind == ModelKind::Autoencoder ? LayerKind::ReLU : LayerKind::Sigmoid;
    loss_through_output_activation_ = !spec_.layers.empty() && spec_.layers[last].kind == output_activation &&
                                      last > first_backward_layer_;
    for (const auto& p : spec_.params) {
      if (!p.trainable) continue;
      if (!trainable_ranges_.empty() &&
          trainable_ranges_.back().offset + trainable_ranges_.back().count == p.offset)
        trainable_ranges_.back().count += p.count;
      else
        trainable_ranges_.push_back({p.offset, p.count});
    }
  }

  ConvGeometry conv_geometry(const LayerSpec& l, int batch) const {
    ConvGeometry g;
    g.batch = batch;
    g.in_channels = l.in.c;
    g.in_h = l.in.h;
    g.in_w = l.in.w;
    g.out_channels = l.out.c;
    g.kernel = l.kernel;
    g.stride = l.stride;
    g.padding = l.padding;
    g.output_padding = l.output_padding;
    g.transposed = l.kind == LayerKind::ConvTranspose2d;
    return g;
  }
  PoolGeometry pool_geometry(const LayerSpec& l, int batch) const {
    PoolGeometry g;
    g.batch = batch;
    g.channels = l.in.c;
    g.in_h = l.in.h;
    g.in_w = l.in.w;
    g.kernel = l.kernel;
    g.stride = l.stride;
    return g;
  }
  LinearGeometry linear_geometry(const LayerSpec& l, int batch) const {
    return LinearGeometry{batch, static_cast<int>(l.in.count()), static_cast<int>(l.out.count())};
  }
  T* param(int index) { return index < 0 ? nullptr : params_ + spec_.params[index].offset; }
  // The gradient buffer of a parameter, or null when it is frozen (its gradient is never needed).
  T* param_grad(int index) {
    if (index < 0 || !spec_.params[index].trainable) return nullptr;
    return grads_ + spec_.params[index].offset;
  }

  // y_relu non-null (fuses_relu_after(i)): also the next layer's ReLU, into y_relu.
  void forward_layer(std::size_t i, int batch, bool training, std::uint64_t step,
                     const StepCursor* cursor, T* y_relu = nullptr) {
    const LayerSpec& l = spec_.layers[i];
    const T* x = activations_[i];
    T* y = activations_[i + 1];
    const std::size_t n = static_cast<std::size_t>(batch) * l.out.count();
    switch (l.kind) {
      case LayerKind::Conv2d:
        if (y_relu) ops_.conv2d_forward_relu(conv_geometry(l, batch), x, param(l.weight), param(l.bias), y, y_relu);
        else ops_.conv2d_forward(conv_geometry(l, batch), x, param(l.weight), param(l.bias), y);
        break;
      case LayerKind::ConvTranspose2d:
        if (y_relu)
          ops_.conv_transpose2d_forward_relu(conv_geometry(l, batch), x, param(l.weight), param(l.bias), y, y_relu);
        else
          ops_.conv_transpose2d_forward(conv_geometry(l, batch), x, param(l.weight), param(l.bias), y);
        break;
      case LayerKind::MaxPool2d:
        ops_.maxpool2d_forward(pool_geometry(l, batch), x, y, argmax_[i]);
        break;
      case LayerKind::Linear:
        if (y_relu) ops_.linear_forward_relu(linear_geometry(l, batch), x, param(l.weight), param(l.bias), y, y_relu);
        else ops_.linear_forward(linear_geometry(l, batch), x, param(l.weight), param(l.bias), y);
        break;
      case LayerKind::ReLU:
        ops_.relu_forward(n, x, y);
        break;
      case LayerKind::Sigmoid:
        ops_.sigmoid_forward(n, x, y);
        break;
      case LayerKind::Dropout:
        if (training && cursor != nullptr)
          ops_.dropout_forward_at(n, l.dropout_p, seed_, cursor, l.dropout_index, x, y);
        else if (training)
          ops_.dropout_forward(n, l.dropout_p, seed_, step, l.dropout_index, x, y);
        else
          ops_.copy(y, x, n * sizeof(T));
        break;
    }
  }

  // dx_relu non-null (fuses_relu_before(i)): also the previous layer's ReLU, into dx_relu.
  void backward_layer(std::size_t i, int batch, std::uint64_t step, const StepCursor* cursor,
                      T* dx_relu = nullptr) {
    const LayerSpec& l = spec_.layers[i];
    const T* x = activations_[i];
    const T* y = activations_[i + 1];
    const T* dy = gradients_[i + 1];
    // The input gradient is needed only when a trainable parameter lies upstream.
    T* dx = i > first_backward_layer_ ? gradients_[i] : nullptr;
    const std::size_t n = static_cast<std::size_t>(batch) * l.out.count();
    switch (l.kind) {
      case LayerKind::Conv2d:
        if (dx_relu)
          ops_.conv2d_backward_relu(conv_geometry(l, batch), x, param(l.weight), dy, dx, param_grad(l.weight),
                                    param_grad(l.bias), dx_relu);
        else
          ops_.conv2d_backward(conv_geometry(l, batch), x, param(l.weight), dy, dx, param_grad(l.weight),
                               param_grad(l.bias));
        break;
      case LayerKind::ConvTranspose2d:
        if (dx_relu)
          ops_.conv_transpose2d_backward_relu(conv_geometry(l, batch), x, param(l.weight), dy, dx,
                                              param_grad(l.weight), param_grad(l.bias), dx_relu);
        else
          ops_.conv_transpose2d_backward(conv_geometry(l, batch), x, param(l.weight), dy, dx,
                                         param_grad(l.weight), param_grad(l.bias));
        break;
      case LayerKind::MaxPool2d:
        if (dx_relu) ops_.maxpool2d_backward_relu(pool_geometry(l, batch), x, dy, argmax_[i], dx, dx_relu);
        else if (dx) ops_.maxpool2d_backward(pool_geometry(l, batch), dy, argmax_[i], dx);
        break;
      case LayerKind::Linear:
        ops_.linear_backward(linear_geometry(l, batch), x, param(l.weight), dy, dx,
                             param_grad(l.weight), param_grad(l.bias));
        break;
      case LayerKind::ReLU:
        if (dx) ops_.relu_backward(n, y, dy, dx);
        break;
      case LayerKind::Sigmoid:
        if (dx) ops_.sigmoid_backward(n, y, dy, dx);
        break;
      case LayerKind::Dropout:
        if (dx && cursor != nullptr)
          ops_.dropout_backward_at(n, l.dropout_p, seed_, cursor, l.dropout_index, dy, dx);
        else if (dx)
          ops_.dropout_backward(n, l.dropout_p, seed_, step, l.dropout_index, dy, dx);
        break;
    }
  }

  const NetworkSpec spec_;
  Ops<T>& ops_;
  const int max_batch_;
  const std::uint64_t seed_;
  std::vector<void*> allocations_;
  T *params_ = nullptr, *grads_ = nullptr, *exp_avg_ = nullptr, *exp_avg_sq_ = nullptr;
  std::uint8_t *images_ = nullptr, *labels_ = nullptr;
  int input_staged_ = 0;  // images stage() has just scaled into input() for the next forward pass
  std::vector<T*> activations_;  // [0] = input, [i+1] = output of layer i
  std::vector<T*> gradients_;    // same indexing, d loss / d activation
  std::vector<std::int32_t*> argmax_;  // per layer, MaxPool2d only
  T* batch_loss_ = nullptr;
  double *train_loss_sum_ = nullptr, *eval_loss_sum_ = nullptr;
  std::int64_t* confusion_ = nullptr;
  std::size_t first_backward_layer_ = 0;
  bool loss_through_output_activation_ = false;  // loss() writes the output ReLU's or Sigmoid's input gradient too
  std::vector<Range> trainable_ranges_;
  std::vector<std::string> forward_labels_, backward_labels_;  // NVTX: "encoder.0 Conv2d"
};

}  // namespace fmnist
