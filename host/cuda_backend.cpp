// host/cuda_backend.h: the CUDA backend's table, from its shared module (dlopen) or, in the
// emulated build, linked in.
#include "host/cuda_backend.h"

#include <cstdlib>

#if defined(FMNIST_HAVE_CUDA) && !defined(FMNIST_CUDA_EMULATED)
#include <dlfcn.h>
#endif

namespace fmnist {

namespace {

struct LoadedBackend {
  const CudaBackend* backend = nullptr;
  std::string why_not;
};

LoadedBackend load_cuda_backend() {
#if !defined(FMNIST_HAVE_CUDA)
  return {nullptr, "not compiled in (configure with -DFMNIST_CUDA=ON where nvcc exists)"};
#elif defined(FMNIST_CUDA_EMULATED)
  return {fmnist_cuda_backend(), ""};
#else
  const char* variable = std::getenv("FMNIST_CUDA_MODULE");
  const std::string path = variable != nullptr && *variable != '\0' ? variable : FMNIST_CUDA_MODULE_PATH;
  // RTLD_LOCAL: the module's symbols stay its own. It is never unloaded (CUDA's state lives in it).
  void* module = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (module == nullptr) return {nullptr, "not loaded: " + std::string(dlerror())};
  using Entry = const CudaBackend* (*)();
  const auto entry = reinterpret_cast<Entry>(dlsym(module, kCudaBackendSymbol));
  if (entry == nullptr)
    return {nullptr, "not loaded: " + path + " has no symbol " + kCudaBackendSymbol + " (not fmnist's CUDA module)"};
  return {entry(), ""};
#endif
}

}  // namespace

const CudaBackend* cuda_backend(std::string* why_not) {
  static const LoadedBackend loaded = load_cuda_backend();
  if (loaded.backend == nullptr && why_not != nullptr) *why_not = loaded.why_not;
  return loaded.backend;
}

}  // namespace fmnist
