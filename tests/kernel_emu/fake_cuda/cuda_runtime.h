// A fake CUDA runtime for the CPU kernel emulator (tests/kernel_emu): the runtime API fmnist's CUDA
// backend (cuda/*.cu) calls, over host memory, with one device whose kernels the emulator runs.
// Every stream runs its work at once, in program order (so streams and events only order what is
// already ordered), except while a stream is being captured: then kernel launches, copies, memsets
// and library calls on it, and on the streams that joined its capture through an event, are
// recorded, and a graph replays them in order. What would fail on a GPU fails here too: a stream
// synchronisation or a memory allocation or free in a capturing thread (refused, and the capture
// invalidated), a device-wide synchronisation in any other thread (cudaFree, cudaFreeHost, a
// synchronous copy, a library handle's teardown: every capture in progress invalidated), a launch
// a GPU refuses. Threads may call it at once: one lock serialises the calls and the work.
// Stands in for <cuda_runtime.h> in the emulated build only.
#pragma once

#include <cstddef>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "device_builtins.h"

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNoKernelImageForDevice = 209,
  cudaErrorNotSupported = 801,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureUnjoined = 904,
  cudaErrorLaunchFailure = 719,
};
using cudaError = cudaError_t;

struct FakeStream;
struct FakeEvent;
struct FakeGraph;
using cudaStream_t = FakeStream*;
using cudaEvent_t = FakeEvent*;
using cudaGraph_t = FakeGraph*;
using cudaGraphExec_t = FakeGraph*;
using cudaGraphNode_t = void*;

enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice, cudaMemcpyDefault };
enum cudaStreamCaptureStatus { cudaStreamCaptureStatusNone, cudaStreamCaptureStatusActive, cudaStreamCaptureStatusInvalidated };
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal, cudaStreamCaptureModeThreadLocal, cudaStreamCaptureModeRelaxed };
constexpr unsigned int cudaStreamDefault = 0, cudaStreamNonBlocking = 1;
constexpr unsigned int cudaEventDefault = 0, cudaEventDisableTiming = 2;
constexpr unsigned int cudaEventRecordDefault = 0, cudaEventRecordExternal = 1;
constexpr unsigned int cudaHostAllocDefault = 0;

struct cudaDeviceProp {
  char name[256] = {};
  std::size_t totalGlobalMem = 0;
  int major = 0, minor = 0;
  int multiProcessorCount = 0;
};
struct cudaFuncAttributes {
  int ptxVersion = 90;
  int binaryVersion = 90;
};
enum cudaLaunchAttributeID { cudaLaunchAttributeProgrammaticStreamSerialization = 5 };
struct cudaLaunchAttributeValue {
  unsigned int programmaticStreamSerializationAllowed = 0;
};
struct cudaLaunchAttribute {
  cudaLaunchAttributeID id{};
  cudaLaunchAttributeValue val{};
};
struct cudaLaunchConfig_t {
  dim3 gridDim, blockDim;
  std::size_t dynamicSmemBytes = 0;
  cudaStream_t stream = nullptr;
  cudaLaunchAttribute* attrs = nullptr;
  unsigned int numAttrs = 0;
};

// ---- device, errors, versions -----------------------------------------------------------------------
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaRuntimeGetVersion(int* version);
cudaError_t cudaDriverGetVersion(int* version);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaGetLastError();
const char* cudaGetErrorName(cudaError_t error);
const char* cudaGetErrorString(cudaError_t error);
template <class Function>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attributes, Function) {
  *attributes = cudaFuncAttributes{};
  return cudaSuccess;
}

// ---- memory ---------------------------------------------------------------------------------------------
cudaError_t cudaMalloc(void** ptr, std::size_t bytes);
template <class T>
cudaError_t cudaMalloc(T** ptr, std::size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}
cudaError_t cudaFree(void* ptr);
// Stream-ordered: memory at once (the fake's streams run their work at once), freed without
// synchronising the device. Refused on a captured stream (fmnist captures no allocation), and with
// cudaErrorNotSupported while fake_cuda::set_memory_pools(false).
cudaError_t cudaMallocAsync(void** ptr, std::size_t bytes, cudaStream_t stream);
cudaError_t cudaFreeAsync(void* ptr, cudaStream_t stream);
cudaError_t cudaHostAlloc(void** ptr, std::size_t bytes, unsigned int flags);
cudaError_t cudaFreeHost(void* ptr);
cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemsetAsync(void* dst, int value, std::size_t bytes, cudaStream_t stream = nullptr);

// ---- streams, events, graphs -------------------------------------------------------------------------
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags = 0);
cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
// With cudaEventRecordExternal on a captured stream, a node of the graph: each replay records the
// event (its time) when it reaches it. Otherwise cudaEventRecord.
cudaError_t cudaEventRecordWithFlags(cudaEvent_t event, cudaStream_t stream = nullptr, unsigned int flags = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status);
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, std::size_t* count);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);

namespace fmnist::fake_cuda {
// Runs `work` on `stream` now, or records it when the stream is being captured. Errors: as the
// runtime returns them.
cudaError_t enqueue(cudaStream_t stream, std::function<void()> work);
// The fake device's multiprocessor count (cudaDeviceProp::multiProcessorCount), which sizes
// fmnist's grid-stride launches; for contexts created after the call. Few by default: a large
// element-wise launch then gets a few blocks that walk its elements in grid strides rather than
// thousands of one element a thread (an H100 has 132 multiprocessors); the results are the same
// (no fmnist launch depends on its grid for its results), the emulation some 10x quicker.
inline constexpr int kDefaultMultiprocessors = 2;
void set_multiprocessors(int count);
// Whether the fake device is visible (cudaGetDeviceCount 1, else 0): when set, or when the
// environment variable FMNIST_EMULATED_GPU is set to anything but 0. Hidden by default, so that
// in an emulated build (FMNIST_CUDA=EMULATE) `--device auto` and every other test still take the
// CPU; fmnist_gpu_tests runs with the variable set.
void set_device_visible(bool visible);
// The next `count` captures begin already invalidated, as if another thread had synchronised the
// device just after their begin: their first recorded call fails (cudaErrorStreamCaptureInvalidated)
// and so does their end. For tests of what fmnist does when a capture fails.
void invalidate_next_captures(int count);
// Whether the fake device has memory pools (cudaMallocAsync); it has unless set otherwise, as a
// GPU without them (cudaDevAttrMemoryPoolsSupported 0) does not.
void set_memory_pools(bool supported);
}  // namespace fmnist::fake_cuda

// A kernel launch: its arguments converted to the kernel's parameter types once, as CUDA copies
// them, then the grid run by the emulator (or recorded, during a capture).
template <class... Params, class... Args>
cudaError_t cudaLaunchKernelEx(const cudaLaunchConfig_t* config, void (*kernel)(Params...), Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "a kernel takes as many arguments as it has parameters");
  if (config->dynamicSmemBytes != 0) return cudaErrorInvalidValue;  // not emulated; fmnist uses none
  std::tuple<std::decay_t<Params>...> parameters(static_cast<std::decay_t<Params>>(std::forward<Args>(args))...);
  const dim3 grid = config->gridDim, block = config->blockDim;
  return fmnist::fake_cuda::enqueue(config->stream, [kernel, parameters, grid, block] {
    fmnist::kernel_emu::run_grid(grid, block, [&] { std::apply(kernel, parameters); });
  });
}
