// The fake CUDA runtime, cuDNN and cuBLAS of the CPU kernel emulator (see cuda_runtime.h, cudnn.h,
// cublas_v2.h beside this file): host memory, streams that run their work at once unless captured,
// graphs that replay what a capture recorded, and the libraries' passes as plain loops in double.
// Several threads may call it (one lock serialises the calls and the work they run); captures are
// thread-local and a device-wide synchronisation invalidates every capture, as in CUDA.
#include <cblas.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cublas_v2.h"
#include "cuda_runtime.h"
#include "cudnn.h"
#include "host/reference/conv.h"
#include "host/reference/parallel.h"
#include "models/elementwise.h"

struct FakeGraph {
  std::vector<std::function<void()>> work;
  std::thread::id owner{};   // the thread whose capture recorded it
  bool invalidated = false;  // a device-wide synchronisation (or a refused call) broke its capture
};
struct FakeStream {
  FakeGraph* capture = nullptr;  // the graph this stream's work goes to, while captured
  bool origin = false;           // began that capture
};
struct FakeEvent {
  FakeGraph* captured_in = nullptr;
  std::chrono::steady_clock::time_point time{};
};
struct FakeCudnn {
  cudaStream_t stream = nullptr;
};
struct FakeTensor {
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int n = 0, c = 0, h = 0, w = 0;
  std::size_t count() const { return static_cast<std::size_t>(n) * c * h * w; }
};
struct FakeConvolution {
  int pad = 0, stride = 1, dilation = 1;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
};
struct FakeCublas {
  cudaStream_t stream = nullptr;
};

namespace {

// The fake device's memory: small enough that filling it (an allocation is filled with a pattern,
// not zeroed, as a GPU does not zero it) stays cheap on a test machine.
constexpr std::size_t kDeviceBytes = std::size_t{4} << 30;

thread_local cudaError_t last_error = cudaSuccess;  // per thread, as CUDA's
// Held by every call that touches the fake device's state and while work runs (the emulator runs one
// grid at a time); recursive, since work may call back (a graph's replay runs its launches).
std::recursive_mutex api_mutex;
using Lock = std::lock_guard<std::recursive_mutex>;
int captures_to_invalidate = 0;  // fake_cuda::invalidate_next_captures
bool memory_pools = true;        // fake_cuda::set_memory_pools
int multiprocessors = fmnist::fake_cuda::kDefaultMultiprocessors;
bool device_visible = false;

bool visible() {
  const char* v = std::getenv("FMNIST_EMULATED_GPU");
  return device_visible || (v != nullptr && v[0] != '\0' && std::strcmp(v, "0") != 0);
}
std::map<void*, std::size_t> allocations;  // device memory: host memory, sized for cudaMemGetInfo
std::size_t allocated = 0;
std::set<FakeStream*> streams;

cudaError_t fail(cudaError_t error) {
  last_error = error;
  return error;
}

// Whether this thread is capturing a stream: then, as in CUDA's thread-local capture mode, the
// calls that may allocate or synchronise are refused, and the refusal invalidates the capture.
bool this_thread_captures() {
  for (const FakeStream* s : streams)
    if (s->capture != nullptr && s->capture->owner == std::this_thread::get_id()) return true;
  return false;
}

// What a call that may not run during this thread's capture does: refuse, and invalidate it.
cudaError_t refuse_in_capture() {
  for (FakeStream* s : streams)
    if (s->capture != nullptr && s->capture->owner == std::this_thread::get_id()) s->capture->invalidated = true;
  return fail(cudaErrorStreamCaptureUnsupported);
}

// A call that synchronises the whole device (cudaFree, cudaFreeHost, a synchronous copy, a library
// handle's teardown): refused in a capturing thread; from any other thread it invalidates every
// capture in progress, whatever its mode, as CUDA does (cuda/device_gate.h keeps fmnist's away).
cudaError_t synchronise_device() {
  if (this_thread_captures()) return refuse_in_capture();
  for (FakeStream* s : streams)
    if (s->capture != nullptr) s->capture->invalidated = true;
  return cudaSuccess;
}

}  // namespace

namespace fmnist::fake_cuda {

cudaError_t enqueue(cudaStream_t stream, std::function<void()> work) {
  const Lock lock(api_mutex);
  if (stream != nullptr && stream->capture != nullptr) {
    if (stream->capture->invalidated) return fail(cudaErrorStreamCaptureInvalidated);
    stream->capture->work.push_back(std::move(work));
    return cudaSuccess;
  }
  try {
    work();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fake CUDA: a launch failed: %s\n", e.what());
    return fail(cudaErrorLaunchFailure);
  }
  return cudaSuccess;
}

void set_multiprocessors(int count) { multiprocessors = count; }
void set_device_visible(bool visible) { device_visible = visible; }
void set_memory_pools(bool supported) {
  const Lock lock(api_mutex);
  memory_pools = supported;
}
void invalidate_next_captures(int count) {
  const Lock lock(api_mutex);
  captures_to_invalidate = count;
}

}  // namespace fmnist::fake_cuda

using fmnist::fake_cuda::enqueue;

// ---- device, errors, versions -----------------------------------------------------------------------
cudaError_t cudaGetDeviceCount(int* count) {
  *count = visible() ? 1 : 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 && visible() ? cudaSuccess : fail(cudaErrorInvalidValue); }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0 || !visible()) return fail(cudaErrorInvalidValue);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "fmnist CPU kernel emulator");
  prop->totalGlobalMem = kDeviceBytes;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = multiprocessors;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* version) {
  *version = 13000;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* version) {
  *version = 13000;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  const Lock lock(api_mutex);
  return synchronise_device();
}
cudaError_t cudaGetLastError() {
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}
const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    default: return "cudaError (fake)";
  }
}
const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: return "fake CUDA error";
  }
}

// ---- memory ---------------------------------------------------------------------------------------------
namespace {
// Device memory for cudaMalloc and cudaMallocAsync (the caller holds api_mutex).
cudaError_t allocate_device(void** ptr, std::size_t bytes) {
  if (bytes > kDeviceBytes - allocated) return fail(cudaErrorMemoryAllocation);
  void* p = std::malloc(bytes == 0 ? 1 : bytes);
  if (p == nullptr) return fail(cudaErrorMemoryAllocation);
  std::memset(p, 0xA5, bytes);  // not zeroed, as on a GPU: what relies on zeros shows
  allocations[p] = bytes;
  allocated += bytes;
  *ptr = p;
  return cudaSuccess;
}
cudaError_t free_device(void* ptr) {
  const auto it = allocations.find(ptr);
  if (it == allocations.end()) return fail(cudaErrorInvalidValue);
  allocated -= it->second;
  allocations.erase(it);
  std::free(ptr);
  return cudaSuccess;
}
}  // namespace

cudaError_t cudaMalloc(void** ptr, std::size_t bytes) {
  *ptr = nullptr;
  const Lock lock(api_mutex);
  if (this_thread_captures()) return refuse_in_capture();
  return allocate_device(ptr, bytes);
}
cudaError_t cudaFree(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  const Lock lock(api_mutex);
  if (const cudaError_t status = synchronise_device(); status != cudaSuccess) return status;
  return free_device(ptr);
}
cudaError_t cudaMallocAsync(void** ptr, std::size_t bytes, cudaStream_t stream) {
  *ptr = nullptr;
  const Lock lock(api_mutex);
  if (!memory_pools) return fail(cudaErrorNotSupported);
  if (stream != nullptr && stream->capture != nullptr) return refuse_in_capture();
  return allocate_device(ptr, bytes);
}
cudaError_t cudaFreeAsync(void* ptr, cudaStream_t stream) {
  if (ptr == nullptr) return cudaSuccess;
  const Lock lock(api_mutex);
  if (stream != nullptr && stream->capture != nullptr) return refuse_in_capture();
  return free_device(ptr);
}
cudaError_t cudaHostAlloc(void** ptr, std::size_t bytes, unsigned int) {
  *ptr = nullptr;
  const Lock lock(api_mutex);
  if (this_thread_captures()) return refuse_in_capture();
  *ptr = std::malloc(bytes == 0 ? 1 : bytes);
  return *ptr != nullptr ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaFreeHost(void* ptr) {
  const Lock lock(api_mutex);
  if (const cudaError_t status = synchronise_device(); status != cudaSuccess) return status;
  std::free(ptr);
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes) {
  const Lock lock(api_mutex);
  *free_bytes = kDeviceBytes - allocated;
  *total_bytes = kDeviceBytes;
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind, cudaStream_t stream) {
  return enqueue(stream, [dst, src, bytes] { std::memcpy(dst, src, bytes); });
}
cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind) {
  const Lock lock(api_mutex);
  if (const cudaError_t status = synchronise_device(); status != cudaSuccess) return status;
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* dst, int value, std::size_t bytes, cudaStream_t stream) {
  return enqueue(stream, [dst, value, bytes] { std::memset(dst, value, bytes); });
}

// ---- streams, events, graphs -------------------------------------------------------------------------
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) {
  const Lock lock(api_mutex);
  *stream = new FakeStream;
  streams.insert(*stream);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  const Lock lock(api_mutex);
  if (streams.erase(stream) == 0) return fail(cudaErrorInvalidResourceHandle);
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  const Lock lock(api_mutex);
  if (stream != nullptr && stream->capture != nullptr) return refuse_in_capture();
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int) {
  if (event == nullptr) return fail(cudaErrorInvalidResourceHandle);
  const Lock lock(api_mutex);
  if (event->captured_in != nullptr) {
    if (stream == nullptr) return fail(cudaErrorStreamCaptureUnsupported);
    if (stream->capture == nullptr)
      stream->capture = event->captured_in;  // the stream joins the capture (a fork)
    else if (stream->capture != event->captured_in)
      return fail(cudaErrorStreamCaptureInvalidated);
  }
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* event) {
  *event = new FakeEvent;
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) { return cudaEventCreate(event); }
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (event == nullptr) return fail(cudaErrorInvalidResourceHandle);
  const Lock lock(api_mutex);
  event->captured_in = stream != nullptr ? stream->capture : nullptr;
  event->time = std::chrono::steady_clock::now();
  return cudaSuccess;
}
cudaError_t cudaEventRecordWithFlags(cudaEvent_t event, cudaStream_t stream, unsigned int flags) {
  if ((flags & cudaEventRecordExternal) == 0 || stream == nullptr || stream->capture == nullptr)
    return cudaEventRecord(event, stream);
  if (event == nullptr) return fail(cudaErrorInvalidResourceHandle);
  return fmnist::fake_cuda::enqueue(stream, [event] { event->time = std::chrono::steady_clock::now(); });
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  return event != nullptr && event->captured_in == nullptr ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  *ms = std::chrono::duration<float, std::milli>(end->time - start->time).count();
  return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
  const Lock lock(api_mutex);
  if (stream == nullptr || stream->capture != nullptr) return fail(cudaErrorStreamCaptureUnsupported);
  stream->capture = new FakeGraph;
  stream->capture->owner = std::this_thread::get_id();
  if (captures_to_invalidate > 0) {  // as if another thread synchronised the device right after
    --captures_to_invalidate;
    stream->capture->invalidated = true;
  }
  stream->origin = true;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  *graph = nullptr;
  const Lock lock(api_mutex);
  if (stream == nullptr || stream->capture == nullptr || !stream->origin) return fail(cudaErrorStreamCaptureInvalidated);
  FakeGraph* captured = stream->capture;
  for (FakeStream* s : streams)  // the capture ends, for the streams that joined it too
    if (s->capture == captured) s->capture = nullptr, s->origin = false;
  if (captured->invalidated) {
    delete captured;
    return fail(cudaErrorStreamCaptureInvalidated);
  }
  *graph = captured;
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  const Lock lock(api_mutex);
  *status = stream == nullptr || stream->capture == nullptr ? cudaStreamCaptureStatusNone
            : stream->capture->invalidated                  ? cudaStreamCaptureStatusInvalidated
                                                            : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t*, std::size_t* count) {
  *count = graph->work.size();
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  *exec = new FakeGraph(*graph);
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  return enqueue(stream, [exec] {
    for (const auto& work : exec->work) work();
  });
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}

// ---- cuDNN ------------------------------------------------------------------------------------------------
namespace {

// One BLAS thread, as the CPU reference sets it: OpenBLAS's own threads would spin beside the
// emulator, and its sums depend on their number.
void single_threaded_blas() {
  static const bool set = (openblas_set_num_threads(1), true);
  (void)set;
}

// Element i of a float or bfloat16 array (cuDNN tensors and cuBLAS matrices alike), as a float;
// elements: the first n.
float element(const void* data, bool bfloat16, std::size_t i) {
  if (bfloat16) return fmnist::elementwise::bf16_bits_to_float(static_cast<const std::uint16_t*>(data)[i]);
  return static_cast<const float*>(data)[i];
}
std::vector<float> elements(const void* data, bool bfloat16, std::size_t n) {
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = element(data, bfloat16, i);
  return out;
}
float load(const void* data, cudnnDataType_t type, std::size_t i) { return element(data, type == CUDNN_DATA_BFLOAT16, i); }
// out[i] = alpha * result[i] + beta * out[i] (beta == 0: out not read), rounded to the tensor's type.
void store(void* data, cudnnDataType_t type, const std::vector<float>& result, float alpha, float beta) {
  for (std::size_t i = 0; i < result.size(); ++i) {
    double v = static_cast<double>(alpha) * result[i];
    if (beta != 0.0f) v += static_cast<double>(beta) * load(data, type, i);
    if (type == CUDNN_DATA_BFLOAT16)
      static_cast<std::uint16_t*>(data)[i] = fmnist::elementwise::bf16_bits(static_cast<float>(v));
    else
      static_cast<float*>(data)[i] = static_cast<float>(v);
  }
}

bool valid(const FakeTensor& src, const FakeTensor& dst, const FakeTensor& filter, const FakeConvolution& conv) {
  return conv.mode == CUDNN_CROSS_CORRELATION && conv.dilation == 1 && src.n == dst.n && filter.c == src.c &&
         filter.n == dst.c && filter.h == filter.w && src.type == dst.type && src.type == filter.type;
}

// The passes through the CPU reference's Conv2d (im2col + OpenBLAS, FP32 sums), for float or
// bfloat16 tensors (read as floats, the result rounded to bfloat16): the same cross-correlation,
// src (N,C,Hs,Ws) -> dst (N,K,Hd,Wd), filter (K,C,k,k), as a Conv2d from src to dst.
enum class Pass { Forward, BackwardData, BackwardFilter };
fmnist::ConvGeometry as_conv2d(const FakeTensor& src, const FakeTensor& dst, const FakeTensor& filter,
                               const FakeConvolution& conv) {
  fmnist::ConvGeometry g;
  g.batch = src.n;
  g.in_channels = src.c, g.in_h = src.h, g.in_w = src.w;
  g.out_channels = dst.c;
  g.kernel = filter.h, g.stride = conv.stride, g.padding = conv.pad;
  return g;
}
std::vector<float> as_floats(const void* data, cudnnDataType_t type, std::size_t n) {
  return elements(data, type == CUDNN_DATA_BFLOAT16, n);
}
void reference_pass(Pass pass, const FakeTensor& s, const FakeTensor& d, const FakeTensor& f, const FakeConvolution& cv,
                    const void* a_data, const void* b_data, void* out, float alpha, float beta) {
  static fmnist::reference::Scratch<float> scratch;
  static fmnist::reference::TaskPool pool(1);
  single_threaded_blas();
  const fmnist::ConvGeometry g = as_conv2d(s, d, f, cv);
  const FakeTensor& out_desc = pass == Pass::Forward ? d : pass == Pass::BackwardData ? s : f;
  std::vector<float> result(out_desc.count());
  if (pass == Pass::Forward) {  // a = src, b = filter
    const auto x = as_floats(a_data, s.type, s.count()), w = as_floats(b_data, f.type, f.count());
    fmnist::reference::conv2d_forward(g, x.data(), w.data(), static_cast<const float*>(nullptr), result.data(), scratch,
                                      pool);
  } else if (pass == Pass::BackwardData) {  // a = filter, b = ddst
    const auto w = as_floats(a_data, f.type, f.count()), dy = as_floats(b_data, d.type, d.count());
    fmnist::reference::conv2d_backward(g, result.data(), w.data(), dy.data(), result.data(), static_cast<float*>(nullptr),
                                       static_cast<float*>(nullptr), scratch, pool);
  } else {  // a = src, b = ddst
    const auto x = as_floats(a_data, s.type, s.count()), dy = as_floats(b_data, d.type, d.count());
    fmnist::reference::conv2d_backward(g, x.data(), result.data(), dy.data(), static_cast<float*>(nullptr),
                                       result.data(), static_cast<float*>(nullptr), scratch, pool);
  }
  store(out, out_desc.type, result, alpha, beta);
}

template <class Perf, class Algo>
cudnnStatus_t offer_all(int count, int requested, int* returned, Perf* results) {
  *returned = 0;
  for (int a = 0; a < count && *returned < requested; ++a) {
    Perf p;
    p.algo = static_cast<Algo>(a);
    results[(*returned)++] = p;
  }
  return CUDNN_STATUS_SUCCESS;
}

// What the three convolution calls share: check the descriptors, copy them and the scalars (a
// capture replays later), and run the pass on the handle's stream.
cudnnStatus_t enqueue_pass(cudnnHandle_t handle, Pass pass, cudnnTensorDescriptor_t src, cudnnTensorDescriptor_t dst,
                           cudnnFilterDescriptor_t filter, cudnnConvolutionDescriptor_t conv, const void* a_data,
                           const void* b_data, void* out, const void* alpha, const void* beta) {
  if (!valid(*src, *dst, *filter, *conv)) return CUDNN_STATUS_BAD_PARAM;
  const FakeTensor s = *src, d = *dst, f = *filter;
  const FakeConvolution cv = *conv;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const cudaError_t status =
      enqueue(handle->stream, [=] { reference_pass(pass, s, d, f, cv, a_data, b_data, out, a, b); });
  return status == cudaSuccess ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_NOT_SUPPORTED;
}

}  // namespace

std::size_t cudnnGetVersion() { return CUDNN_VERSION; }
const char* cudnnGetErrorString(cudnnStatus_t status) {
  return status == CUDNN_STATUS_SUCCESS ? "CUDNN_STATUS_SUCCESS" : "CUDNN_STATUS_NOT_SUPPORTED (fake)";
}
void cudnnGetLastErrorString(char* message, std::size_t max_size) {
  if (max_size > 0) message[0] = '\0';
}
cudnnStatus_t cudnnCreate(cudnnHandle_t* handle) {
  *handle = new FakeCudnn;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
  const Lock lock(api_mutex);  // cuDNN frees its memory: the device synchronises
  if (synchronise_device() != cudaSuccess) return CUDNN_STATUS_NOT_SUPPORTED;
  delete handle;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t stream) {
  handle->stream = stream;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* desc) {
  *desc = new FakeTensor;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t desc) {
  delete desc;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t desc, cudnnTensorFormat_t, cudnnDataType_t type, int n,
                                         int c, int h, int w) {
  if (n < 1 || c < 1 || h < 1 || w < 1) return CUDNN_STATUS_BAD_PARAM;
  *desc = FakeTensor{type, n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* desc) { return cudnnCreateTensorDescriptor(desc); }
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t desc) { return cudnnDestroyTensorDescriptor(desc); }
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t desc, cudnnDataType_t type, cudnnTensorFormat_t format,
                                         int k, int c, int h, int w) {
  return cudnnSetTensor4dDescriptor(desc, format, type, k, c, h, w);
}
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* desc) {
  *desc = new FakeConvolution;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t desc) {
  delete desc;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t desc, int pad_h, int pad_w, int stride_h,
                                              int stride_w, int dilation_h, int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t) {
  if (pad_h != pad_w || stride_h != stride_w || dilation_h != dilation_w || stride_h < 1 || dilation_h < 1 || pad_h < 0)
    return CUDNN_STATUS_NOT_SUPPORTED;  // fmnist's convolutions are square
  *desc = FakeConvolution{pad_h, stride_h, dilation_h, mode};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t, cudnnMathType_t) { return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t src,
                                                    cudnnFilterDescriptor_t filter, int* n, int* c, int* h, int* w) {
  *n = src->n;
  *c = filter->n;
  *h = (src->h + 2 * conv->pad - (filter->h - 1) * conv->dilation - 1) / conv->stride + 1;
  *w = (src->w + 2 * conv->pad - (filter->w - 1) * conv->dilation - 1) / conv->stride + 1;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t, int* count) {
  *count = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t, cudnnTensorDescriptor_t, cudnnFilterDescriptor_t,
                                                     cudnnConvolutionDescriptor_t, cudnnTensorDescriptor_t, int requested,
                                                     int* returned, cudnnConvolutionFwdAlgoPerf_t* results) {
  return offer_all<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(CUDNN_CONVOLUTION_FWD_ALGO_COUNT, requested,
                                                                            returned, results);
}
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t, cudnnTensorDescriptor_t, cudnnFilterDescriptor_t,
                                                      cudnnConvolutionDescriptor_t, cudnnTensorDescriptor_t,
                                                      cudnnConvolutionFwdAlgo_t, std::size_t* bytes) {
  *bytes = 0;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void* alpha, cudnnTensorDescriptor_t src_desc,
                                      const void* src, cudnnFilterDescriptor_t filter_desc, const void* filter,
                                      cudnnConvolutionDescriptor_t conv, cudnnConvolutionFwdAlgo_t, void*, std::size_t,
                                      const void* beta, cudnnTensorDescriptor_t dst_desc, void* dst) {
  return enqueue_pass(handle, Pass::Forward, src_desc, dst_desc, filter_desc, conv, src, filter, dst, alpha, beta);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnnHandle_t, int* count) {
  *count = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t, cudnnFilterDescriptor_t, cudnnTensorDescriptor_t,
                                                          cudnnConvolutionDescriptor_t, cudnnTensorDescriptor_t,
                                                          int requested, int* returned,
                                                          cudnnConvolutionBwdDataAlgoPerf_t* results) {
  return offer_all<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(
      CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, requested, returned, results);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t, cudnnFilterDescriptor_t, cudnnTensorDescriptor_t,
                                                           cudnnConvolutionDescriptor_t, cudnnTensorDescriptor_t,
                                                           cudnnConvolutionBwdDataAlgo_t, std::size_t* bytes) {
  *bytes = 0;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const void* alpha, cudnnFilterDescriptor_t filter_desc,
                                           const void* filter, cudnnTensorDescriptor_t ddst_desc, const void* ddst,
                                           cudnnConvolutionDescriptor_t conv, cudnnConvolutionBwdDataAlgo_t, void*,
                                           std::size_t, const void* beta, cudnnTensorDescriptor_t dsrc_desc, void* dsrc) {
  return enqueue_pass(handle, Pass::BackwardData, dsrc_desc, ddst_desc, filter_desc, conv, filter, ddst, dsrc, alpha,
                      beta);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnnHandle_t, int* count) {
  *count = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t, cudnnTensorDescriptor_t, cudnnTensorDescriptor_t,
                                                            cudnnConvolutionDescriptor_t, cudnnFilterDescriptor_t,
                                                            int requested, int* returned,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t* results) {
  return offer_all<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
      CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, requested, returned, results);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t, cudnnTensorDescriptor_t, cudnnTensorDescriptor_t,
                                                             cudnnConvolutionDescriptor_t, cudnnFilterDescriptor_t,
                                                             cudnnConvolutionBwdFilterAlgo_t, std::size_t* bytes) {
  *bytes = 0;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void* alpha, cudnnTensorDescriptor_t src_desc,
                                             const void* src, cudnnTensorDescriptor_t ddst_desc, const void* ddst,
                                             cudnnConvolutionDescriptor_t conv, cudnnConvolutionBwdFilterAlgo_t, void*,
                                             std::size_t, const void* beta, cudnnFilterDescriptor_t dfilter_desc,
                                             void* dfilter) {
  return enqueue_pass(handle, Pass::BackwardFilter, src_desc, ddst_desc, dfilter_desc, conv, src, ddst, dfilter, alpha,
                      beta);
}

// ---- cuBLAS ------------------------------------------------------------------------------------------------
cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  *handle = new FakeCublas;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  const Lock lock(api_mutex);  // cuBLAS frees its memory: the device synchronises
  if (synchronise_device() != cudaSuccess) return CUBLAS_STATUS_NOT_SUPPORTED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetAtomicsMode(cublasHandle_t, cublasAtomicsMode_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetPointerMode(cublasHandle_t, cublasPointerMode_t mode) {
  return mode == CUBLAS_POINTER_MODE_HOST ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasSetWorkspace(cublasHandle_t, void*, std::size_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasGetProperty(libraryPropertyType type, int* value) {
  *value = type == MAJOR_VERSION ? 13 : 0;
  return CUBLAS_STATUS_SUCCESS;
}
const char* cublasGetStatusName(cublasStatus_t status) {
  return status == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_NOT_SUPPORTED (fake)";
}
const char* cublasGetStatusString(cublasStatus_t status) {
  return status == CUBLAS_STATUS_SUCCESS ? "success" : "not supported by the fake cuBLAS";
}

namespace {

// C (m,n, ld ldc) = alpha op_a(A) op_b(B) + beta C, column-major, in FP32 by OpenBLAS (bfloat16
// operands read as floats).
cublasStatus_t gemm(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k,
                    float alpha, const void* a, cudaDataType_t a_type, int lda, const void* b, cudaDataType_t b_type,
                    int ldb, float beta, void* c, cudaDataType_t c_type, int ldc) {
  if (m < 0 || n < 0 || k < 0 || c_type != CUDA_R_32F) return CUBLAS_STATUS_INVALID_VALUE;
  const std::size_t a_count = static_cast<std::size_t>(lda) * (op_a == CUBLAS_OP_N ? k : m);
  const std::size_t b_count = static_cast<std::size_t>(ldb) * (op_b == CUBLAS_OP_N ? n : k);
  const cudaError_t status = enqueue(handle->stream, [=] {
    std::vector<float> a_float, b_float;
    const float* a_data = static_cast<const float*>(a);
    const float* b_data = static_cast<const float*>(b);
    if (a_type == CUDA_R_16BF) {
      a_float = elements(a, true, a_count);
      a_data = a_float.data();
    }
    if (b_type == CUDA_R_16BF) {
      b_float = elements(b, true, b_count);
      b_data = b_float.data();
    }
    single_threaded_blas();
    cblas_sgemm(CblasColMajor, op_a == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                op_b == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, m, n, k, alpha, a_data, lda, b_data, ldb, beta,
                static_cast<float*>(c), ldc);
  });
  return status == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_SUPPORTED;
}

}  // namespace

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k,
                           const float* alpha, const float* a, int lda, const float* b, int ldb, const float* beta,
                           float* c, int ldc) {
  return gemm(handle, op_a, op_b, m, n, k, *alpha, a, CUDA_R_32F, lda, b, CUDA_R_32F, ldb, *beta, c, CUDA_R_32F, ldc);
}
cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k,
                            const void* alpha, const void* a, cudaDataType_t a_type, int lda, const void* b,
                            cudaDataType_t b_type, int ldb, const void* beta, void* c, cudaDataType_t c_type, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t) {
  if (compute != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  return gemm(handle, op_a, op_b, m, n, k, *static_cast<const float*>(alpha), a, a_type, lda, b, b_type, ldb,
              *static_cast<const float*>(beta), c, c_type, ldc);
}
