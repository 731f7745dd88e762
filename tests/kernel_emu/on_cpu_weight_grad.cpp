// cuda/weight_grad.cu compiled by g++ for the CPU kernel emulator (the shim headers stand in for CUDA's).
#include "cuda/weight_grad.cu"
