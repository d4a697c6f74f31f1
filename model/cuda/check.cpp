#include "model/cuda/check.h"

#include <string>

namespace mone::cuda {

void throw_cuda_error(cudaError_t code, const char* call, const char* file, int line) {
  std::string message = std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
                        cudaGetErrorName(code) + " (" + cudaGetErrorString(code) + ")";
  if (code == cudaErrorNoDevice || code == cudaErrorInsufficientDriver)
    message += "; is a GPU visible (nvidia-smi, CUDA_VISIBLE_DEVICES) and the driver new enough for CUDA 13?";
  throw CudaError(message);
}

void throw_cublas_error(cublasStatus_t code, const char* call, const char* file, int line) {
  throw CudaError(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
                  cublasLtGetStatusName(code) + " (" + cublasLtGetStatusString(code) + ")");
}

}  // namespace mone::cuda
