#include "comm/device.h"

#ifdef MONE_WITH_CUDA
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#endif

namespace mone {

#ifdef MONE_WITH_CUDA
int select_device_for_local_rank(const World& world) {
  int devices = 0;
  cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess)
    throw std::runtime_error(world.describe() + ": cudaGetDeviceCount failed: " + cudaGetErrorString(status));
  if (world.local_rank() >= devices)
    throw std::runtime_error(world.describe() + ": local rank " + std::to_string(world.local_rank()) +
                             " needs a device of its own but this node has " + std::to_string(devices) +
                             " (start at most that many ranks per node)");
  status = cudaSetDevice(world.local_rank());
  if (status != cudaSuccess)
    throw std::runtime_error(world.describe() + ": cudaSetDevice(" + std::to_string(world.local_rank()) +
                             ") failed: " + cudaGetErrorString(status));
  return world.local_rank();
}
#else
int select_device_for_local_rank(const World&) { return -1; }
#endif

}  // namespace mone
