#include "model/cuda/context.h"

#include <string>

#include "model/cuda/check.h"

namespace mone::cuda {

namespace {
// cuBLASLt's recommendation for Hopper is 32 MiB; smaller only limits the
// algorithms it may pick.
constexpr size_t kGemmWorkspaceBytes = size_t(32) << 20;
// Partial sums of the reductions: the largest is a column sum over rows in
// chunks, (rows / 256) * cols floats, 1.2 MB for s16 at batch 256.
constexpr size_t kScratchBytes = size_t(64) << 20;
}  // namespace

DeviceContext::DeviceContext()
    : gemm_workspace_(kGemmWorkspaceBytes, "cuBLASLt workspace"),
      scratch_(kScratchBytes, "reduction scratch"),
      plans_(new_gemm_plan_cache()) {
  MONE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  MONE_CUBLAS_CHECK(cublasLtCreate(&blas_));
}

DeviceContext::~DeviceContext() {
  plans_.reset();  // descriptors before the handle
  if (blas_) cublasLtDestroy(blas_);
  if (stream_) cudaStreamDestroy(stream_);
}

void DeviceContext::synchronize() const { MONE_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void* Scratch::take_bytes(size_t bytes, const char* purpose) {
  constexpr size_t kAlignment = 256;
  const size_t offset = used_;
  used_ += (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (used_ > block_.bytes())
    throw CudaError(std::string("reduction scratch: '") + purpose + "' needs " + describe_bytes(bytes) + ", only " +
                    describe_bytes(block_.bytes() - offset) + " left");
  return static_cast<char*>(block_.data()) + offset;
}

bool cuda_device_available(std::string* reason) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    if (reason)
      *reason = status != cudaSuccess ? std::string("no CUDA device visible (cudaGetDeviceCount: ") +
                                            cudaGetErrorString(status) + ")"
                                      : std::string("no CUDA device visible");
    cudaGetLastError();  // leave no sticky error behind for the next call
    return false;
  }
  return true;
}

}  // namespace mone::cuda
