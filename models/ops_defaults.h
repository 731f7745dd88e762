// The default implementations of the fused layer+ReLU forwards and backwards (the two ops one
// after the other) and of the streaming calls of Ops<T> (models/ops.h), for a backend whose
// memory is host memory and whose ops run when they are called (the CPU reference):
// copies are synchronous, the host clock times work, nothing is captured, and the step-reading
// ops read the cursor and call their by-value twins, so they compute exactly the same thing.
// The upload ring here also checks the order of its protocol (stream_types.h), so the CPU tests
// catch a driver that would race on a GPU. Included at the end of ops.h only.
#pragma once

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "op_checks.h"

namespace fmnist {

template <class T>
void Ops<T>::conv2d_forward_relu(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, T* y_relu) {
  conv2d_forward(g, x, w, b, y);
  relu_forward(g.out_count(), y, y_relu);
}

template <class T>
void Ops<T>::conv2d_forward_relu_maxpool(const ConvGeometry& g, const PoolGeometry& p, const T* x, const T* w,
                                         const T* b, T* y, T* y_relu, T* pooled, std::int32_t* argmax) {
  op_checks::check_pool_of_conv("conv2d_forward_relu_maxpool", g, p);
  conv2d_forward_relu(g, x, w, b, y, y_relu);
  maxpool2d_forward(p, y_relu, pooled, argmax);
}

template <class T>
void Ops<T>::conv_transpose2d_forward_relu(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y,
                                           T* y_relu) {
  conv_transpose2d_forward(g, x, w, b, y);
  relu_forward(g.out_count(), y, y_relu);
}

template <class T>
void Ops<T>::conv2d_backward_relu(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db,
                                  T* dx_relu) {
  conv2d_backward(g, x, w, dy, dx, dw, db);
  relu_backward(g.in_count(), x, dx, dx_relu);
}

template <class T>
void Ops<T>::l1_loss_relu(std::size_t n, const T* pred, const T* target, T* dpred, T* dpred_relu, T* loss,
                          double* loss_sum) {
  l1_loss(n, pred, target, dpred, loss, loss_sum);
  relu_backward(n, pred, dpred, dpred_relu);
}

template <class T>
void Ops<T>::mse_loss_relu(std::size_t n, const T* pred, const T* target, T* dpred, T* dpred_relu, T* loss,
                           double* loss_sum) {
  mse_loss(n, pred, target, dpred, loss, loss_sum);
  relu_backward(n, pred, dpred, dpred_relu);
}

template <class T>
void Ops<T>::conv_transpose2d_backward_relu(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dx,
                                            T* dw, T* db, T* dx_relu) {
  conv_transpose2d_backward(g, x, w, dy, dx, dw, db);
  relu_backward(g.in_count(), x, dx, dx_relu);
}

template <class T>
void Ops<T>::maxpool2d_backward_relu(const PoolGeometry& g, const T* x, const T* dy, const std::int32_t* argmax,
                                     T* dx, T* dx_relu) {
  maxpool2d_backward(g, dy, argmax, dx);
  relu_backward(g.in_count(), x, dx, dx_relu);
}

template <class T>
void Ops<T>::conv2d_backward_maxpool_relu(const ConvGeometry& g, const PoolGeometry& p, const T* x, const T* w,
                                          const T* dy, T* dx, T* dw, T* db, const T* pool_x,
                                          const std::int32_t* argmax, T* pool_dx, T* pool_dx_relu) {
  op_checks::check_conv_of_pool("conv2d_backward_maxpool_relu", g, p);
  conv2d_backward(g, x, w, dy, dx, dw, db);
  maxpool2d_backward_relu(p, pool_x, dx, argmax, pool_dx, pool_dx_relu);
}

template <class T>
void Ops<T>::softmax_cross_entropy_sigmoid(int batch, int classes, const T* scores, const std::uint8_t* labels,
                                           T* dscores, T* dscores_sigmoid, T* loss, double* loss_sum) {
  softmax_cross_entropy(batch, classes, scores, labels, dscores, loss, loss_sum);
  sigmoid_backward(static_cast<std::size_t>(batch) * static_cast<std::size_t>(classes), scores, dscores,
                   dscores_sigmoid);
}

template <class T>
void Ops<T>::conv_transpose2d_forward_relu_loss(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y,
                                                T* y_relu, PointLoss kind, const T* target, T* dpred, T* dpred_relu,
                                                T* loss, double* loss_sum) {
  conv_transpose2d_forward_relu(g, x, w, b, y, y_relu);
  if (kind == PointLoss::L1)
    l1_loss_relu(g.out_count(), y_relu, target, dpred, dpred_relu, loss, loss_sum);
  else
    mse_loss_relu(g.out_count(), y_relu, target, dpred, dpred_relu, loss, loss_sum);
}

template <class T>
void Ops<T>::linear_forward_sigmoid_cross_entropy(const LinearGeometry& g, const T* x, const T* w, const T* b, T* y,
                                                  T* y_sigmoid, const std::uint8_t* labels, T* dscores,
                                                  T* dscores_sigmoid, T* loss, double* loss_sum) {
  linear_forward_sigmoid(g, x, w, b, y, y_sigmoid);
  softmax_cross_entropy_sigmoid(g.batch, g.out_features, y_sigmoid, labels, dscores, dscores_sigmoid, loss, loss_sum);
}

template <class T>
void Ops<T>::relu_linear_backward(const LinearGeometry& g, const T* x, const T* w, const T* y_relu,
                                  const T* dy_relu, T* dy, T* dx, T* dw, T* db) {
  relu_backward(static_cast<std::size_t>(g.batch) * static_cast<std::size_t>(g.out_features), y_relu, dy_relu, dy);
  linear_backward(g, x, w, dy, dx, dw, db);
}

template <class T>
void Ops<T>::linear_forward_relu(const LinearGeometry& g, const T* x, const T* w, const T* b, T* y, T* y_relu) {
  linear_forward(g, x, w, b, y);
  relu_forward(static_cast<std::size_t>(g.batch) * g.out_features, y, y_relu);
}

template <class T>
void Ops<T>::linear_forward_sigmoid(const LinearGeometry& g, const T* x, const T* w, const T* b, T* y,
                                    T* y_sigmoid) {
  linear_forward(g, x, w, b, y);
  sigmoid_forward(static_cast<std::size_t>(g.batch) * g.out_features, y, y_sigmoid);
}

// Synchronous ring: host slots from allocate_host, backend slots from allocate, upload copies.
template <class T> class SyncUploadRing final : public UploadRing {
 public:
  SyncUploadRing(Ops<T>& ops, int slots, std::size_t slot_bytes)
      : ops_(ops), slots_(slots), slot_bytes_(slot_bytes), state_(static_cast<std::size_t>(slots), kFree) {
    if (slots < 2) throw std::invalid_argument("upload ring: at least 2 slots are needed");
    if (slot_bytes == 0) throw std::invalid_argument("upload ring: slot size must be positive");
    const std::size_t total = static_cast<std::size_t>(slots) * slot_bytes;
    host_ = static_cast<std::uint8_t*>(ops_.allocate_host(total));
    try {
      device_ = static_cast<std::uint8_t*>(ops_.allocate(total));
    } catch (...) {
      ops_.deallocate_host(host_);
      throw;
    }
  }
  ~SyncUploadRing() override {
    ops_.deallocate(device_);
    ops_.deallocate_host(host_);
  }
  SyncUploadRing(const SyncUploadRing&) = delete;
  SyncUploadRing& operator=(const SyncUploadRing&) = delete;

  int slots() const override { return slots_; }
  std::size_t slot_bytes() const override { return slot_bytes_; }
  std::uint8_t* host_slot(int slot) override { return host_ + offset(slot); }
  std::uint8_t* device_base() override { return device_; }
  void wait_writable(int slot) override { (void)offset(slot); }
  void upload(int slot, std::size_t bytes) override {
    expect(slot, kFree, "upload", "its previous use was not released");
    if (bytes > slot_bytes_) throw std::invalid_argument("upload ring: upload larger than a slot");
    ops_.copy_to_device(device_ + offset(slot), host_ + offset(slot), bytes);
    state_[slot] = kUploaded;
  }
  void acquire(int slot) override {
    expect(slot, kUploaded, "acquire", "it holds no upload");
    state_[slot] = kInUse;
  }
  void release(int slot) override {
    expect(slot, kInUse, "release", "it was not acquired");
    state_[slot] = kFree;
  }

 private:
  enum State { kFree, kUploaded, kInUse };
  std::size_t offset(int slot) const {
    if (slot < 0 || slot >= slots_)
      throw std::out_of_range("upload ring: slot " + std::to_string(slot) + " outside [0, " +
                              std::to_string(slots_) + ")");
    return static_cast<std::size_t>(slot) * slot_bytes_;
  }
  void expect(int slot, State want, const char* call, const char* why) {
    (void)offset(slot);
    if (state_[slot] != want)
      throw std::logic_error(std::string("upload ring: ") + call + " of slot " +
                             std::to_string(slot) + " out of order (" + why + ")");
  }

  Ops<T>& ops_;
  const int slots_;
  const std::size_t slot_bytes_;
  std::vector<State> state_;
  std::uint8_t* host_ = nullptr;
  std::uint8_t* device_ = nullptr;
};

// The host clock: right for a backend whose ops have finished when they return.
class HostStopwatch final : public Stopwatch {
 public:
  void start() override { start_ = Clock::now(); }
  void stop() override { stop_ = Clock::now(); }
  double seconds() override { return std::chrono::duration<double>(stop_ - start_).count(); }
  const char* clock() const override { return "host-clock"; }

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point start_{}, stop_{};
};

template <class T> void* Ops<T>::allocate_host(std::size_t bytes) {
  void* p = std::calloc(bytes == 0 ? 1 : bytes, 1);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

template <class T> void Ops<T>::deallocate_host(void* ptr) noexcept { std::free(ptr); }

template <class T>
std::unique_ptr<UploadRing> Ops<T>::make_upload_ring(int slots, std::size_t slot_bytes) {
  return std::make_unique<SyncUploadRing<T>>(*this, slots, slot_bytes);
}

template <class T> std::unique_ptr<Stopwatch> Ops<T>::make_stopwatch() {
  return std::make_unique<HostStopwatch>();
}

template <class T> void Ops<T>::begin_capture() {
  throw std::logic_error(name() + ": this backend cannot capture work");
}

template <class T> std::unique_ptr<CapturedWork> Ops<T>::end_capture() {
  throw std::logic_error(name() + ": this backend cannot capture work");
}

template <class T>
void Ops<T>::gather_rows(int count, std::size_t pixels, const RowSource& source,
                         const RowOrder& order, const StepCursor* cursor, std::uint8_t* images,
                         std::uint8_t* labels, T* scaled) {
  if (count < 0 || cursor == nullptr || order.order == nullptr || source.images == nullptr ||
      source.labels == nullptr || images == nullptr || labels == nullptr)
    throw std::invalid_argument("gather_rows: a null pointer or a negative count");
  const std::uint64_t index = order.period != 0 ? cursor->index % order.period : cursor->index;
  const std::int32_t* rows = order.order + index * order.stride;
  for (int r = 0; r < count; ++r) {
    const auto q = static_cast<std::size_t>(rows[r]);
    std::memcpy(images + static_cast<std::size_t>(r) * pixels, source.images + q * source.image_stride, pixels);
    labels[r] = source.labels[q * source.label_stride];
  }
  if (scaled != nullptr) images_to_float(static_cast<std::size_t>(count) * pixels, images, scaled);
}

template <class T>
void Ops<T>::dropout_forward_at(std::size_t n, float p, std::uint64_t seed, const StepCursor* cursor,
                                std::uint32_t layer, const T* x, T* y) {
  dropout_forward(n, p, seed, cursor->step, layer, x, y);
}

template <class T>
void Ops<T>::dropout_backward_at(std::size_t n, float p, std::uint64_t seed,
                                 const StepCursor* cursor, std::uint32_t layer, const T* dy, T* dx) {
  dropout_backward(n, p, seed, cursor->step, layer, dy, dx);
}

template <class T>
void Ops<T>::adam_update_at(std::size_t n, T* params, const T* grads, T* m, T* v,
                            const elementwise::AdamStep<T>* table, StepCursor* cursor, bool advance) {
  adam_update(n, params, grads, m, v, table[cursor->index]);
  if (advance) advance_cursor(cursor);
}

template <class T> void Ops<T>::set_cursor(StepCursor* cursor, std::uint64_t step, std::uint64_t index) {
  cursor->step = step;
  cursor->index = index;
}

template <class T> void Ops<T>::advance_cursor(StepCursor* cursor) {
  ++cursor->step;
  ++cursor->index;
}

}  // namespace fmnist
