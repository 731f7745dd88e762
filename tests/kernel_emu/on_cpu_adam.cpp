// cuda/adam.cu compiled by g++ for the CPU kernel emulator (the shim headers stand in for CUDA's).
#include "cuda/adam.cu"
