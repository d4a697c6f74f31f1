// What every device op needs besides its operands: the stream it runs on, the
// cuBLASLt handle and workspace, and a scratch block for the partial sums of
// the deterministic reductions. One DeviceContext per device and thread.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>

#include "model/cuda/device_memory.h"

namespace mone::cuda {

// gemm.cpp: cuBLASLt descriptors and algorithm per shape, created and
// destroyed there (its type is private to gemm.cpp).
struct GemmPlanCache;
struct GemmPlanCacheDeleter {
  void operator()(GemmPlanCache* cache) const;
};
GemmPlanCache* new_gemm_plan_cache();

class DeviceContext {
 public:
  // Uses the current device; creates a non-blocking stream.
  DeviceContext();
  ~DeviceContext();
  DeviceContext(const DeviceContext&) = delete;
  DeviceContext& operator=(const DeviceContext&) = delete;

  cudaStream_t stream() const { return stream_; }
  cublasLtHandle_t blas() const { return blas_; }
  void* gemm_workspace() const { return gemm_workspace_.data(); }
  size_t gemm_workspace_bytes() const { return gemm_workspace_.bytes(); }
  GemmPlanCache& gemm_plans() const { return *plans_; }
  const DeviceBuffer& scratch() const { return scratch_; }
  void synchronize() const;

 private:
  cudaStream_t stream_ = nullptr;
  cublasLtHandle_t blas_ = nullptr;
  DeviceBuffer gemm_workspace_;
  DeviceBuffer scratch_;
  std::unique_ptr<GemmPlanCache, GemmPlanCacheDeleter> plans_;
};

// Pieces of the context's scratch block for one op (and the helpers it calls,
// which receive the same Scratch): taken in order, released when the op's
// Scratch goes out of scope. Ops on one stream run in order, so consecutive
// ops may reuse the same bytes.
class Scratch {
 public:
  explicit Scratch(const DeviceContext& context) : block_(context.scratch()) {}
  template <class T> T* take(int64_t n, const char* purpose) {
    return static_cast<T*>(take_bytes(static_cast<size_t>(n) * sizeof(T), purpose));
  }

 private:
  void* take_bytes(size_t bytes, const char* purpose);
  const DeviceBuffer& block_;
  size_t used_ = 0;
};

// Whether a CUDA device is visible; `reason` says why not (for test skips).
bool cuda_device_available(std::string* reason = nullptr);

}  // namespace mone::cuda
