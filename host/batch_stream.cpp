// The streaming orchestrator (see batch_stream.h).
#include "host/batch_stream.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <ostream>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "models/nvtx.h"

namespace fmnist {
namespace {

constexpr std::size_t kRecordBytes = kImagePixels + 1;  // a streamed row: the image, then its label

}  // namespace

BatchStream::BatchStream(Executor<float>& executor, const StreamOptions& options, std::ostream* log)
    : ex_(executor),
      ops_(executor.ops()),
      options_(options),
      log_(log),
      capacity_(executor.max_batch()),
      graphs_(executor.ops(), options.graphs, log) {
  if (options.slots < 2) throw std::invalid_argument("stream: the upload ring needs at least 2 slots");
  if (!(options.resident_fraction >= 0.0 && options.resident_fraction <= 1.0))
    throw std::invalid_argument("stream: resident_fraction must be in [0, 1]");
  if (ex_.spec().input.count() != static_cast<std::size_t>(kImagePixels))
    throw std::invalid_argument("stream: the network's input is not one 28x28 image");
  try {
    cursors_ = static_cast<StepCursor*>(ops_.allocate(2 * sizeof(StepCursor)));
    eval_sums_ = static_cast<double*>(ops_.allocate(4 * sizeof(double)));
  } catch (...) {
    if (cursors_ != nullptr) ops_.deallocate(cursors_);
    throw;
  }
  host_images_.resize(static_cast<std::size_t>(capacity_) * kImagePixels);
  host_labels_.resize(static_cast<std::size_t>(capacity_));
}

BatchStream::~BatchStream() {
  graphs_.clear();
  ring_.reset();
  for (auto& [set, r] : resident_) {
    ops_.deallocate(r.images);
    ops_.deallocate(r.labels);
  }
  for (void* p : {static_cast<void*>(cursors_), static_cast<void*>(eval_sums_), adam_table_,
                  train_order_, eval_order_, static_cast<void*>(ring_order_)})
    if (p != nullptr) ops_.deallocate(p);
}

DataPlacement BatchStream::placement_of(const Dataset& set) {
  const auto known = placement_.find(&set);
  if (known != placement_.end()) return known->second;
  const std::size_t bytes = set.images.size() + set.labels.size();
  DataPlacement placement = options_.placement;
  const std::size_t free_bytes = placement == DataPlacement::Stream ? 0 : ops_.free_memory();
  if (placement == DataPlacement::Auto)
    placement = free_bytes > 0 && static_cast<double>(bytes) <= options_.resident_fraction * free_bytes
                    ? DataPlacement::Resident
                    : DataPlacement::Stream;
  else if (placement == DataPlacement::Resident && free_bytes > 0 && bytes > free_bytes)
    throw std::runtime_error(fmt::format("resident data: the set needs {} MiB but the device has {} MiB free; "
                                         "use the stream placement", bytes >> 20, free_bytes >> 20));
  if (placement == DataPlacement::Resident) {
    NvtxRange range("copy resident set");
    Resident r;
    r.images = static_cast<std::uint8_t*>(ops_.allocate(std::max<std::size_t>(set.images.size(), 1)));
    try {
      r.labels = static_cast<std::uint8_t*>(ops_.allocate(std::max<std::size_t>(set.labels.size(), 1)));
      ops_.copy_to_device(r.images, set.images.data(), set.images.size());
      ops_.copy_to_device(r.labels, set.labels.data(), set.labels.size());
    } catch (...) {
      ops_.deallocate(r.images);
      if (r.labels != nullptr) ops_.deallocate(r.labels);
      throw;
    }
    resident_[&set] = r;
  }
  placement_[&set] = placement;
  return placement;
}

void BatchStream::reserve(void** buffer, std::size_t* capacity, std::size_t bytes, StepGraphs::Phase user) {
  if (bytes <= *capacity && *buffer != nullptr) return;
  graphs_.clear(user);  // its graphs hold the old address (the other phase's never read it)
  if (*buffer != nullptr) ops_.deallocate(*buffer);
  *buffer = nullptr;
  *capacity = 0;
  *buffer = ops_.allocate(std::max<std::size_t>(bytes, 1));
  *capacity = bytes;
}

void BatchStream::check_indices(const Dataset& set, const std::int32_t* indices, int total) const {
  for (int i = 0; i < total; ++i)
    if (indices[i] < 0 || indices[i] >= set.count())
      throw std::out_of_range(fmt::format("batch stream: index {} outside 0..{}", indices[i], set.count() - 1));
}

void BatchStream::make_ring() {
  if (ring_) return;
  ring_ = ops_.make_upload_ring(options_.slots, static_cast<std::size_t>(capacity_) * kRecordBytes);
  pending_.assign(static_cast<std::size_t>(options_.slots), false);
  std::vector<std::int32_t> iota(static_cast<std::size_t>(options_.slots) * capacity_);
  std::iota(iota.begin(), iota.end(), 0);
  ring_order_ = static_cast<std::int32_t*>(ops_.allocate(iota.size() * sizeof(std::int32_t)));
  ops_.copy_to_device(ring_order_, iota.data(), iota.size() * sizeof(std::int32_t));
}

// A batch uploaded but never run (a pass left early) would keep its slot: hand those back.
void BatchStream::drain() {
  for (int s = 0; s < static_cast<int>(pending_.size()); ++s) {
    if (!pending_[s]) continue;
    ring_->acquire(s);
    ring_->release(s);
    pending_[s] = false;
  }
}

int BatchStream::pass_batch(int requested, const char* what) const {
  if (requested == 0) return capacity_;
  if (requested < 0 || requested > capacity_)
    throw std::invalid_argument(fmt::format("{}: a batch of {} images, outside 1..{} (the executor's largest batch)",
                                            what, requested, capacity_));
  return requested;
}

int BatchStream::batch_count(int b) const {
  return std::min(pass_.batch, pass_.total - b * pass_.batch);
}

void BatchStream::start_pass(const Dataset& set, const std::int32_t* indices, int total, int batch, int first,
                             int end, bool streamed, HostGather gather, std::int32_t* device_order,
                             StepCursor* cursor, std::uint64_t first_step) {
  if (ring_) drain();
  pass_ = Pass{};
  pass_.set = &set;
  pass_.indices = indices;
  pass_.total = total;
  pass_.batch = batch;
  pass_.end = end;
  pass_.next = first;
  pass_.issued = first;
  pass_.streamed = streamed;
  pass_.gather = std::move(gather);
  if (streamed) {
    make_ring();
    const std::uint8_t* base = ring_->device_base();
    pass_.source = RowSource{base, base + kImagePixels, kRecordBytes, kRecordBytes};
    // Slot s holds rows s * capacity_ ..: a batch's rows start there, whatever the pass's batch.
    pass_.order = RowOrder{ring_order_, static_cast<std::size_t>(capacity_), static_cast<std::size_t>(options_.slots)};
  } else {
    const Resident& r = resident_.at(&set);
    pass_.source = RowSource{r.images, r.labels, static_cast<std::size_t>(kImagePixels), 1};
    pass_.order = RowOrder{device_order, static_cast<std::size_t>(batch), 0};
  }
  ops_.set_cursor(cursor, first_step, static_cast<std::uint64_t>(first));
}

void BatchStream::begin_epoch(const Epoch& e) {
  if (e.set == nullptr || e.order == nullptr || e.adam == nullptr)
    throw std::invalid_argument("begin_epoch: set, order and adam table are required");
  const int total = static_cast<int>(e.order->size());
  const int batch = pass_batch(e.batch, "begin_epoch");
  if (e.steps < 1 || static_cast<long long>(e.steps - 1) * batch >= total)
    throw std::invalid_argument(fmt::format("begin_epoch: {} steps of {} do not fit {} images", e.steps, batch, total));
  if (e.first_batch < 0 || e.first_batch >= e.steps)
    throw std::invalid_argument("begin_epoch: first batch outside the epoch");
  if (e.adam->size() < static_cast<std::size_t>(e.steps))
    throw std::invalid_argument("begin_epoch: the Adam table is shorter than the epoch");
  if (e.gather && options_.placement == DataPlacement::Resident)
    throw std::invalid_argument("a resident data set is gathered on the device and cannot be augmented on "
                                "the host: use the stream placement");
  const bool streamed = e.gather || placement_of(*e.set) == DataPlacement::Stream;
  // Only the batches of this epoch are used: steps * batch images at most.
  const int used = static_cast<int>(std::min<long long>(total, static_cast<long long>(e.steps) * batch));
  const std::size_t table_bytes = e.adam->size() * sizeof(elementwise::AdamStep<float>);
  reserve(&adam_table_, &adam_capacity_, table_bytes, StepGraphs::Phase::Train);
  ops_.copy_to_device(adam_table_, e.adam->data(), table_bytes);
  std::int32_t* device_order = nullptr;
  if (!streamed) {
    check_indices(*e.set, e.order->data(), used);
    reserve(&train_order_, &train_order_capacity_, static_cast<std::size_t>(used) * sizeof(std::int32_t),
            StepGraphs::Phase::Train);
    ops_.copy_to_device(train_order_, e.order->data(), static_cast<std::size_t>(used) * sizeof(std::int32_t));
    device_order = static_cast<std::int32_t*>(train_order_);
  }
  start_pass(*e.set, e.order->data(), used, batch, e.first_batch, e.steps, streamed, e.gather, device_order,
             &cursors_[0], e.first_step);
}

void BatchStream::issue(int b) {
  NvtxRange range("copy");
  const int slot = b % ring_->slots();
  const int count = batch_count(b);
  const std::int32_t* indices = pass_.indices + static_cast<std::size_t>(b) * pass_.batch;
  if (pass_.gather)
    pass_.gather(indices, count, host_images_.data(), host_labels_.data());
  else
    gather_batch(*pass_.set, indices, count, host_images_.data(), host_labels_.data());
  ring_->wait_writable(slot);
  std::uint8_t* records = ring_->host_slot(slot);
  for (int r = 0; r < count; ++r) {
    std::memcpy(records + static_cast<std::size_t>(r) * kRecordBytes,
                host_images_.data() + static_cast<std::size_t>(r) * kImagePixels, kImagePixels);
    records[static_cast<std::size_t>(r) * kRecordBytes + kImagePixels] = host_labels_[r];
  }
  ring_->upload(slot, static_cast<std::size_t>(count) * kRecordBytes);
  pending_[slot] = true;
}

// Keeps slots - 1 batches ahead of batch b in the ring (b's own slot comes back at its release).
void BatchStream::prefetch(int b) {
  const int ahead = std::min(pass_.end, b + ring_->slots());
  while (pass_.issued < ahead) issue(pass_.issued++);
}

void BatchStream::train_step(int b) {
  if (pass_.set == nullptr || b != pass_.next || b >= pass_.end)
    throw std::logic_error(fmt::format("train_step: batch {} out of order (expected {} of {})", b, pass_.next, pass_.end));
  NvtxRange range("train step");
  const int count = batch_count(b);
  int slot = -1;
  if (pass_.streamed) {
    prefetch(b);
    slot = b % ring_->slots();
    ring_->acquire(slot);
  }
  const auto* table = static_cast<const elementwise::AdamStep<float>*>(adam_table_);
  StepCursor* cursor = &cursors_[0];
  graphs_.run({StepGraphs::Phase::Train, count, pass_.batch, pass_.source.images}, [&] {
    ex_.stage(count, pass_.source, pass_.order, cursor);
    ex_.train_step_at(count, table, cursor);
  });
  if (slot >= 0) {
    ring_->release(slot);
    pending_[slot] = false;
  }
  ++pass_.next;
}

EvalResult BatchStream::evaluate(const Dataset& set, const std::vector<std::int32_t>& indices, int batch_size) {
  NvtxRange range("validation");
  const bool classifier = ex_.spec().config.kind == ModelKind::Classifier;
  const int total = static_cast<int>(indices.size());
  if (total == 0) throw std::invalid_argument("evaluate: no images to evaluate");
  const int batch = pass_batch(batch_size, "evaluate");
  const bool streamed = placement_of(set) == DataPlacement::Stream;
  std::int32_t* device_order = nullptr;
  if (!streamed) {
    check_indices(set, indices.data(), total);
    const std::size_t bytes = indices.size() * sizeof(std::int32_t);
    reserve(&eval_order_, &eval_order_capacity_, bytes, StepGraphs::Phase::Eval);
    ops_.copy_to_device(eval_order_, indices.data(), bytes);
    device_order = static_cast<std::int32_t*>(eval_order_);
  }
  const int batches = (total + batch - 1) / batch;
  StepCursor* cursor = &cursors_[1];
  start_pass(set, indices.data(), total, batch, 0, batches, streamed, {}, device_order, cursor, 0);
  ex_.reset_metrics();
  const double zeros[4] = {0, 0, 0, 0};
  ops_.copy_to_device(eval_sums_, zeros, sizeof zeros);
  // Sums of batch means, of the full batches [0,1] and of a partial last batch [2,3]:
  // AE: MAE, MSE; classifier: cross-entropy, unused.
  for (int b = 0; b < batches; ++b) {
    const int count = batch_count(b);
    double* sums = eval_sums_ + (count == batch ? 0 : 2);
    int slot = -1;
    if (streamed) {
      prefetch(b);
      slot = b % ring_->slots();
      ring_->acquire(slot);
    }
    graphs_.run({StepGraphs::Phase::Eval, count, pass_.batch, pass_.source.images}, [&] {
      ex_.stage(count, pass_.source, pass_.order, cursor);
      ex_.forward(count, /*training=*/false, 0);
      if (classifier) {
        ex_.loss(count, sums, /*with_gradient=*/false);
        ops_.count_predictions(count, kNetworkClasses, ex_.output(), ex_.batch_labels(), ex_.confusion());
      } else {
        ex_.reconstruction_loss(PointLoss::L1, count, nullptr, sums);
        ex_.reconstruction_loss(PointLoss::MSE, count, nullptr, sums + 1);
      }
      ops_.advance_cursor(cursor);
    });
    if (slot >= 0) {
      ring_->release(slot);
      pending_[slot] = false;
    }
    ++pass_.next;
  }
  double host_sums[4];
  ops_.copy_to_host(host_sums, eval_sums_, sizeof host_sums);
  const int partial = total % batch;
  auto mean = [&](int k) { return (host_sums[k] * batch + host_sums[k + 2] * partial) / total; };
  EvalResult r;
  r.images = total;
  r.loss = mean(0);
  if (!classifier) {
    r.mse = mean(1);
    return r;
  }
  r.confusion.resize(kNetworkClasses * kNetworkClasses);
  ops_.copy_to_host(r.confusion.data(), ex_.confusion(), r.confusion.size() * sizeof(std::int64_t));
  std::int64_t correct = 0;
  r.class_accuracy.assign(kNetworkClasses, 0.0);
  for (int label = 0; label < kNetworkClasses; ++label) {
    std::int64_t row = 0;
    for (int p = 0; p < kNetworkClasses; ++p) row += r.confusion[label * kNetworkClasses + p];
    correct += r.confusion[label * kNetworkClasses + label];
    r.class_accuracy[label] =
        row > 0 ? static_cast<double>(r.confusion[label * kNetworkClasses + label]) / row : std::nan("");
  }
  r.accuracy = static_cast<double>(correct) / total;
  return r;
}

}  // namespace fmnist
