#include "model/cuda/device_memory.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <utility>

#include "model/cuda/check.h"

namespace mone::cuda {

namespace {
constexpr size_t kAlignment = 256;
size_t round_up(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }
}  // namespace

std::string describe_bytes(size_t bytes) {
  char text[64];
  std::snprintf(text, sizeof text, "%.2f GiB (%zu bytes)", static_cast<double>(bytes) / (1024.0 * 1024 * 1024), bytes);
  return text;
}

DeviceBuffer::DeviceBuffer(size_t bytes, const std::string& what) : bytes_(bytes) {
  if (bytes == 0) return;
  const cudaError_t status = cudaMalloc(&data_, bytes);
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clear the sticky-free allocation error before asking for the free memory
  size_t free_bytes = 0, total_bytes = 0;
  MONE_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  throw CudaError(what + ": needs " + describe_bytes(bytes) + ", the device has " + describe_bytes(free_bytes) +
                  " free of " + describe_bytes(total_bytes) + " (" + cudaGetErrorString(status) +
                  "); use a smaller batch or model");
}

DeviceBuffer::~DeviceBuffer() {
  if (data_) cudaFree(data_);  // no throw from a destructor; a failed free leaks at worst
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (data_) cudaFree(data_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

DeviceArena::DeviceArena(size_t bytes, const std::string& what)
    : block_(bytes, what), what_(what), counting_(false) {}

void* DeviceArena::take_bytes(size_t bytes, const char* purpose) {
  const size_t offset = used_;
  used_ += round_up(bytes);
  if (counting_) return nullptr;
  if (used_ > block_.bytes())
    throw CudaError(what_ + ": '" + purpose + "' needs " + describe_bytes(bytes) + " but only " +
                    describe_bytes(block_.bytes() - offset) + " of " + describe_bytes(block_.bytes()) +
                    " are left (the workspace was sized for a smaller batch or model)");
  return static_cast<char*>(block_.data()) + offset;
}

}  // namespace mone::cuda
