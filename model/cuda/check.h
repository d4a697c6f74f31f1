// Return-code checks for the CUDA runtime and cuBLASLt. A failure throws
// CudaError naming the call, file:line and the library's own message, so the
// first failing call is the one reported (kernel launches are checked right
// after the launch with MONE_CUDA_CHECK_LAUNCH).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <stdexcept>

namespace mone::cuda {

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_cuda_error(cudaError_t code, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t code, const char* call, const char* file, int line);

}  // namespace mone::cuda

#define MONE_CUDA_CHECK(call)                                                                 \
  do {                                                                                        \
    const cudaError_t mone_cuda_status_ = (call);                                             \
    if (mone_cuda_status_ != cudaSuccess)                                                     \
      ::mone::cuda::throw_cuda_error(mone_cuda_status_, #call, __FILE__, __LINE__);           \
  } while (0)

#define MONE_CUBLAS_CHECK(call)                                                               \
  do {                                                                                        \
    const cublasStatus_t mone_cublas_status_ = (call);                                        \
    if (mone_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                         \
      ::mone::cuda::throw_cublas_error(mone_cublas_status_, #call, __FILE__, __LINE__);       \
  } while (0)

// After `kernel<<<...>>>(...)`: reports a bad launch configuration at once.
#define MONE_CUDA_CHECK_LAUNCH(kernel_name)                                                   \
  do {                                                                                        \
    const cudaError_t mone_cuda_status_ = cudaPeekAtLastError();                              \
    if (mone_cuda_status_ != cudaSuccess)                                                     \
      ::mone::cuda::throw_cuda_error(mone_cuda_status_, "launch of " #kernel_name, __FILE__, __LINE__); \
  } while (0)
