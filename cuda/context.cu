// The CUDA context: device selection and checks, the lanes (stream, cuDNN and cuBLAS handles,
// workspaces), their fork and join, and the growing of workspaces (see context.h).
#include "cuda/context.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "cuda/check.h"
#include "cuda/device_gate.h"
#include "cuda/kernels.h"

namespace fmnist::cuda {
namespace {

// cuBLAS asks for 32 MiB on Hopper (4 MiB elsewhere); a user workspace makes its choice of
// kernels fixed (deterministic) and keeps it from allocating while a CUDA graph is captured.
constexpr std::size_t kCublasWorkspaceBytes = 32u << 20;
// No convolution algorithm may ask for more than this (nor for more than a quarter of free memory).
constexpr std::size_t kMaxConvWorkspaceBytes = std::size_t(1) << 30;

std::string capability(const cudaDeviceProp& p) {
  return std::to_string(p.major) + "." + std::to_string(p.minor);
}

}  // namespace

Context::Context(const CudaOptions& options) : options_(options) {
  if (options.bf16 && options.allow_tf32)
    throw std::invalid_argument("CUDA options: bf16 and allow_tf32 exclude each other (one precision)");
  int count = 0;
  const cudaError_t count_status = cudaGetDeviceCount(&count);
  if (count_status != cudaSuccess) {
    (void)cudaGetLastError();
    throw std::runtime_error("no usable CUDA device: " + std::string(cudaGetErrorString(count_status)));
  }
  if (count == 0) throw std::runtime_error("no CUDA device found");
  if (options.device < 0 || options.device >= count)
    throw std::runtime_error("CUDA device " + std::to_string(options.device) +
                             " does not exist (this machine has " + std::to_string(count) +
                             " device" + (count == 1 ? "" : "s") + ", indices 0.." +
                             std::to_string(count - 1) + ")");
  CUDA_CHECK(cudaGetDeviceProperties(&properties_, options.device));
  if (properties_.major < kMinComputeMajor ||
      (properties_.major == kMinComputeMajor && properties_.minor < kMinComputeMinor))
    throw std::runtime_error("CUDA device " + std::to_string(options.device) + " (" +
                             properties_.name + ") has compute capability " +
                             capability(properties_) + "; fmnist (CUDA 13) needs " +
                             std::to_string(kMinComputeMajor) + "." + std::to_string(kMinComputeMinor) +
                             " or newer");
  if (options.bf16 && properties_.major < 8)
    throw std::runtime_error("CUDA device " + std::to_string(options.device) + " (" +
                             properties_.name + ") has compute capability " +
                             capability(properties_) + "; BF16 precision needs 8.0 or newer");
  CUDA_CHECK(cudaSetDevice(options.device));
  // The build must hold code the device can run (SASS for it, or PTX the driver can compile).
  const std::string missing = kernel_image_problem();
  if (!missing.empty())
    throw std::runtime_error("CUDA device " + std::to_string(options.device) + " (" +
                             properties_.name + ", compute capability " + capability(properties_) +
                             ") cannot run this build (built for " + compiled_architectures() +
                             "): " + missing +
                             "; reconfigure with -DCMAKE_CUDA_ARCHITECTURES=" +
                             std::to_string(properties_.major) + std::to_string(properties_.minor));
  if (options.programmatic_launch && properties_.major < 9)
    throw std::runtime_error("CUDA device " + std::to_string(options.device) + " (" + properties_.name +
                             ") has compute capability " + capability(properties_) +
                             "; programmatic dependent launch (FMNIST_PDL=1) needs 9.0 or newer");
  // grid_dependency()'s wait exists only in code built for compute 9.0 or newer (launch.cuh). A
  // newer device running the compute_80 PTX fallback would launch each kernel early with no wait.
  const int virtual_architecture = options.programmatic_launch ? kernel_virtual_architecture() : 0;
  if (options.programmatic_launch && virtual_architecture < 90)
    throw std::runtime_error("CUDA device " + std::to_string(options.device) + " (" + properties_.name +
                             ", compute capability " + capability(properties_) + ") runs this build's compute_" +
                             std::to_string(virtual_architecture) + " code (built for " +
                             compiled_architectures() + "), which cannot wait for the kernel before it; " +
                             "programmatic dependent launch (FMNIST_PDL=1) needs -DCMAKE_CUDA_ARCHITECTURES=" +
                             std::to_string(properties_.major) + std::to_string(properties_.minor));
  if (options.backward_streams < 1 || options.backward_streams > kMaxBackwardStreams)
    throw std::invalid_argument("CUDA options: backward_streams must be 1 to " + std::to_string(kMaxBackwardStreams) +
                                ", got " + std::to_string(options.backward_streams));
  DeviceWideSync sync;  // cuDNN's and cuBLAS's handle creation may synchronise the device
  try {
    create_lane(main_);
    if (options.backward_streams > 1 && !options.bf16) {
      sides_.resize(static_cast<std::size_t>(options.backward_streams - 1));
      side_pending_.assign(sides_.size(), false);
      for (Lane& side : sides_) create_lane(side);
      CUDA_CHECK(cudaEventCreateWithFlags(&fork_event_, cudaEventDisableTiming));
      CUDA_CHECK(cudaEventCreateWithFlags(&join_event_, cudaEventDisableTiming));
    }
    std::size_t free_bytes = 0, total_bytes = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    workspace_limit_ = std::min(kMaxConvWorkspaceBytes, free_bytes / 4);
  } catch (...) {
    release();
    throw;
  }
}

// A stream with its own cuDNN and cuBLAS handles, cuBLAS workspace and reduction scratch.
void Context::create_lane(Lane& lane) {
  CUDA_CHECK(cudaStreamCreateWithFlags(&lane.stream, cudaStreamNonBlocking));
  CUDNN_CHECK(cudnnCreate(&lane.cudnn));
  CUDNN_CHECK(cudnnSetStream(lane.cudnn, lane.stream));
  CUBLAS_CHECK(cublasCreate(&lane.cublas));
  // cublasSetStream resets the workspace to the default pool: set the stream first.
  CUBLAS_CHECK(cublasSetStream(lane.cublas, lane.stream));
  CUBLAS_CHECK(cublasSetMathMode(lane.cublas, options_.allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                 : CUBLAS_DEFAULT_MATH));
  CUBLAS_CHECK(cublasSetAtomicsMode(lane.cublas, CUBLAS_ATOMICS_NOT_ALLOWED));
  CUBLAS_CHECK(cublasSetPointerMode(lane.cublas, CUBLAS_POINTER_MODE_HOST));
  CUDA_CHECK(cudaMalloc(&lane.cublas_workspace, kCublasWorkspaceBytes));
  CUBLAS_CHECK(cublasSetWorkspace(lane.cublas, lane.cublas_workspace, kCublasWorkspaceBytes));
  // The partials, then the counters (reduce_counters).
  constexpr std::size_t kReduceBytes = sizeof(double) * kReducePartials + sizeof(unsigned int) * kReduceCounters;
  CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&lane.reduce_partials), kReduceBytes));
  // Zeroed once, on the lane's stream (ahead of any use): no library kernel or reduction can ever
  // read memory nothing wrote (compute-sanitizer --tool initcheck).
  CUDA_CHECK(cudaMemsetAsync(lane.cublas_workspace, 0, kCublasWorkspaceBytes, lane.stream));
  CUDA_CHECK(cudaMemsetAsync(lane.reduce_partials, 0, kReduceBytes, lane.stream));
}

Context::~Context() { release(); }

// After wait_for_lanes (release): nothing queued uses what is freed here.
void Context::release_lane(Lane& lane) noexcept {
  // The handles first: they hold the workspaces' addresses (cuBLAS its user workspace).
  if (lane.cublas != nullptr) CUBLAS_LOG(cublasDestroy(lane.cublas));
  if (lane.cudnn != nullptr) CUDNN_LOG(cudnnDestroy(lane.cudnn));
  if (lane.workspace != nullptr) CUDA_LOG(cudaFree(lane.workspace));
  if (lane.cublas_workspace != nullptr) CUDA_LOG(cudaFree(lane.cublas_workspace));
  if (lane.reduce_partials != nullptr) CUDA_LOG(cudaFree(lane.reduce_partials));
  if (lane.stream != nullptr) CUDA_LOG(cudaStreamDestroy(lane.stream));
  lane = Lane{};
}

void Context::release() noexcept {
  DeviceWideSync sync;  // cudaFree and the handles' teardown synchronise the device
  wait_for_lanes();  // every lane idle before anything they may use is freed
  for (Lane& side : sides_) release_lane(side);
  sides_.clear();
  release_lane(main_);
  for (cudaEvent_t* event : {&fork_event_, &join_event_})
    if (*event != nullptr) {
      CUDA_LOG(cudaEventDestroy(*event));
      *event = nullptr;
    }
  for (void* retired : retired_workspaces_) CUDA_LOG(cudaFree(retired));
  retired_workspaces_.clear();
  if (bf16_scratch_ != nullptr) CUDA_LOG(cudaFree(bf16_scratch_));
  bf16_scratch_ = nullptr;
  bf16_scratch_bytes_ = 0;
  on_side_ = -1;
  next_side_ = 0;
  side_pending_.clear();
}

void Context::enter_side_lane() {
  if (!has_side_lane()) return;
  if (on_side_ >= 0) throw std::logic_error("Context: a side lane entered twice (SideLane does not nest)");
  const std::size_t side = next_side_;
  CUDA_CHECK(cudaEventRecord(fork_event_, main_.stream));
  CUDA_CHECK(cudaStreamWaitEvent(sides_[side].stream, fork_event_, 0));
  on_side_ = static_cast<int>(side);
  side_pending_[side] = true;
  next_side_ = (side + 1) % sides_.size();
}

void Context::join_side_lane() {
  if (on_side_ >= 0) throw std::logic_error("Context: a side lane joined from inside a SideLane");
  for (std::size_t side = 0; side < sides_.size(); ++side) {
    if (!side_pending_[side]) continue;
    CUDA_CHECK(cudaEventRecord(join_event_, sides_[side].stream));
    CUDA_CHECK(cudaStreamWaitEvent(main_.stream, join_event_, 0));
    side_pending_[side] = false;
  }
  next_side_ = 0;
}

void Context::wait_for_lanes() noexcept {
  if (main_.stream != nullptr) CUDA_LOG(cudaStreamSynchronize(main_.stream));
  for (const Lane& side : sides_)
    if (side.stream != nullptr) CUDA_LOG(cudaStreamSynchronize(side.stream));
}

void Context::grow_buffer(void*& buffer, std::size_t& buffer_bytes, std::size_t bytes, const char* what,
                          cudaStream_t stream) {
  if (bytes <= buffer_bytes) return;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(main_.stream, &capture));
  if (capture != cudaStreamCaptureStatusNone)
    throw std::logic_error(std::string("CUDA graph capture needs a larger ") + what + " (" +
                           std::to_string(bytes) + " bytes) than any step before: run the step "
                           "once un-captured first");
  // Work already queued on any lane may still use the old buffer. (cudaMalloc, unlike cudaFree,
  // does not synchronise the device: a plan made mid-run leaves other runs' captures alone.)
  CUDA_CHECK(cudaStreamSynchronize(main_.stream));
  for (const Lane& side : sides_)
    if (side.stream != nullptr) CUDA_CHECK(cudaStreamSynchronize(side.stream));
  if (buffer != nullptr) {
    retired_workspaces_.push_back(buffer);  // a captured graph may still use it
    buffer = nullptr;
    buffer_bytes = 0;
  }
  // Round up to 1 MiB so a few slightly larger geometries do not each grow it.
  const std::size_t rounded = (bytes + (std::size_t(1) << 20) - 1) & ~((std::size_t(1) << 20) - 1);
  CUDA_CHECK(cudaMalloc(&buffer, rounded));
  buffer_bytes = rounded;
  // Zeroed (ordered on the stream that uses it, before any kernel does): initcheck then never sees
  // a cuDNN or cast kernel read bytes that no kernel wrote.
  CUDA_CHECK(cudaMemsetAsync(buffer, 0, rounded, stream));
}

void Context::reserve_workspace(std::size_t bytes) {
  grow_buffer(main_.workspace, main_.workspace_bytes, bytes, "cuDNN workspace", main_.stream);
  for (Lane& side : sides_) grow_buffer(side.workspace, side.workspace_bytes, bytes, "cuDNN workspace", side.stream);
}

void Context::reserve_bf16_scratch(std::size_t bytes) {  // BF16 mode has no side lane
  grow_buffer(bf16_scratch_, bf16_scratch_bytes_, bytes, "BF16 scratch", main_.stream);
}

}  // namespace fmnist::cuda
