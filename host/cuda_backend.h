// The CUDA backend as commands reach it. The backend, with cuBLAS and cuDNN, is a shared module
// (libfmnist_cuda.so) loaded on the first call, so that a command which stays on the CPU neither
// starts them (cuBLAS's start alone is about 0.3 s) nor needs them installed.
#pragma once

#include <string>

#include "cuda/backend.h"

namespace fmnist {

// This build's CUDA backend, or nullptr where there is none: not compiled in, or its module could
// not be loaded. `why_not`, when given, then gets the reason as a phrase that follows "CUDA
// backend " ("not compiled in (...)", "not loaded: <the loader's message>"). The module is
// FMNIST_CUDA_MODULE where that is set, else the one this build wrote; the emulated backend
// (FMNIST_CUDA=EMULATE) is linked in. Loads once; safe to call from any thread.
const CudaBackend* cuda_backend(std::string* why_not = nullptr);

}  // namespace fmnist
