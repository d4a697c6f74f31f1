#include "tests/common/gpu_skip.h"

#include <cuda_runtime.h>

#include "model/cuda/context.h"

namespace mone::testing {

std::string gpu_skip_reason(int devices) {
  std::string reason;
  if (!cuda::cuda_device_available(&reason)) return reason;
  int visible = 0;
  if (cudaGetDeviceCount(&visible) != cudaSuccess) return "cudaGetDeviceCount failed";
  if (visible < devices)
    return "needs " + std::to_string(devices) + " CUDA devices, " + std::to_string(visible) + " visible";
  return "";
}

}  // namespace mone::testing
