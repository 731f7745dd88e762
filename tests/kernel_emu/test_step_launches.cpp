// How many of fmnist's own kernels one training step of each paper network launches on the CUDA
// backend, counted by the kernel emulator (cuDNN's and cuBLAS's work is not counted: the fake
// libraries compute on the host). A step's time on the H100 is mostly small kernels one after the
// other (bench/RESULTS.md), so every launch a fusion saves is listed here and kept: a fusion that
// comes undone, or a kernel added to the step, fails this test, and a new fusion lowers its count.
#include <catch2/catch.hpp>

#include <cstddef>
#include <string>
#include <vector>

#include "cuda/backend.h"
#include "kernel_emu_support.h"
#include "models/executor.h"
#include "models/network.h"

namespace {

using namespace fmnist;

// fmnist kernels launched by the second training step (the first plans the convolutions).
std::size_t kernels_per_step(const ModelConfig& config, const CudaOptions& options) {
  fake_cuda::set_device_visible(true);
  auto ops = make_cuda_ops(options);
  const NetworkSpec spec = build_network(config);
  constexpr int kBatch = 2;
  Executor<float> e(spec, *ops, kBatch, 7);
  std::vector<float> params(spec.param_count);
  initialize_parameters(spec, 7, params.data());
  ops->copy_to_device(e.params(), params.data(), params.size() * sizeof(float));
  std::vector<std::uint8_t> images(kBatch * spec.input.count(), 100), labels(kBatch, 3);
  ops->copy_to_device(e.batch_images(), images.data(), images.size());
  ops->copy_to_device(e.batch_labels(), labels.data(), labels.size());
  const AdamConfig adam;
  e.train_step(kBatch, 1, adam);
  ops->synchronize();
  const std::size_t before = kernel_emu::launch_log().launches;
  e.train_step(kBatch, 2, adam);
  ops->synchronize();
  return kernel_emu::launch_log().launches - before;
}

}  // namespace

TEST_CASE("an AE(256) and a C(256) training step launch the fmnist kernels they are known to", "[kernel_emu][launches]") {
  ModelConfig ae;
  ModelConfig classifier;
  classifier.kind = ModelKind::Classifier;
  CudaOptions commands;  // what fmnist's commands run: the direct backward-filter (host/gpu_kernels.h)
  commands.direct_weight_grad = true;
  // AE(256), 17 kernels. Forward 7: pixel scaling; bias + ReLU + max pooling after each of the
  // two Conv2d (conv2d_forward_relu_maxpool); bias + ReLU after each Linear and the first
  // ConvTranspose2d (3); the last ConvTranspose2d's bias and ReLU with the loss and its gradient
  // through that ReLU (conv_transpose2d_forward_relu_loss). Backward 9: the direct
  // backward-filter with its bias gradient for each of the four convolutions; the mask of the
  // first ConvTranspose2d's ReLU after cuDNN's input gradient of the second; each Linear's bias
  // gradient with the mask of the ReLU after that Linear (relu_linear_backward, 2: the second
  // one's mask would otherwise follow cuDNN's input gradient of the first ConvTranspose2d); each
  // max pooling's backward with its ReLU (2). Adam 1.
  CHECK(kernels_per_step(ae, commands) == 17);
  // C(256), 12: the encoder's forward (4: the pixels, the two Conv2d's bias + ReLU + pooling, the
  // Linear's bias + ReLU), the head's bias and Sigmoid with the cross-entropy and its gradient
  // through the Sigmoid (linear_forward_sigmoid_cross_entropy); backward: two Linear bias gradients (the
  // first with the ReLU's mask), the two pools and the two Conv2d (the input gradient of neither
  // needs a mask); Adam.
  CHECK(kernels_per_step(classifier, commands) == 12);
  // The library's defaults keep cuDNN's backward-filter (not counted here): each convolution's
  // bias gradient is then a kernel of its own, in the direct backward-filter's place in the count.
  CHECK(kernels_per_step(ae, CudaOptions{}) == 17);
  CHECK(kernels_per_step(classifier, CudaOptions{}) == 12);
  // fmnist's split-K Linear forward (FMNIST_LINEAR_FWD=fmnist) is one launch for a Linear's
  // product, bias and ReLU or Sigmoid: in place of each bias kernel above (the same count, but for
  // the classifier's head, whose bias the loss's kernel took: one more), and of cuBLAS's product
  // (2 of cuBLAS's kernels fewer a step for the AE and the classifier alike). Its input
  // gradient (FMNIST_LINEAR_DGRAD=fmnist) adds one launch for each cuBLAS product it replaces: each
  // network's two Linear layers.
  CudaOptions split_linear = commands;
  split_linear.direct_linear_forward = true;
  CHECK(kernels_per_step(ae, split_linear) == 17);
  CHECK(kernels_per_step(classifier, split_linear) == 13);
  split_linear.direct_linear_backward_data = true;
  CHECK(kernels_per_step(ae, split_linear) == 19);
  CHECK(kernels_per_step(classifier, split_linear) == 15);
  // The weight gradients too (FMNIST_LINEAR_WGRAD=fmnist): every Linear product is fmnist's.
  split_linear.direct_linear_weight_grad = true;
  CHECK(kernels_per_step(ae, split_linear) == 21);
  CHECK(kernels_per_step(classifier, split_linear) == 17);
  // fmnist's direct forward (FMNIST_CONV_FWD=fmnist) computes each Conv2d's product, bias, ReLU
  // and max pooling in one launch (direct_conv.h's launch_direct_forward_relu_maxpool), in place
  // of the bias-ReLU-pooling kernel above: the same count (2 more before it). The AE's
  // ConvTranspose2d input gradients are direct forwards too: the second's takes the first's ReLU
  // mask with it (the same count), the first's is one launch more than cuDNN's.
  CudaOptions direct_forward = commands;
  direct_forward.direct_forward = true;
  CHECK(kernels_per_step(ae, direct_forward) == 18);
  CHECK(kernels_per_step(classifier, direct_forward) == 12);
  // fmnist's direct backward-data (FMNIST_CONV_DGRAD=fmnist): the second Conv2d's input gradient
  // hands each element to the backward of the pooling and ReLU below it in the same launch
  // (conv2d_backward_maxpool_relu), in place of the pooling-backward kernel: the same count (1 more
  // before it). The ConvTranspose2d forwards take their bias and ReLU with them: the same count
  // for the first, one more for the last (after cuDNN's product the loss's kernel took them).
  CudaOptions direct_backward_data = commands;
  direct_backward_data.direct_backward_data = true;
  CHECK(kernels_per_step(ae, direct_backward_data) == 18);
  CHECK(kernels_per_step(classifier, direct_backward_data) == 12);
}
