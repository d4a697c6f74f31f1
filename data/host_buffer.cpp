#include "data/host_buffer.h"

#include <cstdlib>
#include <new>
#include <utility>

namespace mone {

namespace {

// The one place batch memory is allocated. When the CUDA build arrives this
// becomes cudaHostAlloc/cudaFreeHost (pinned memory, so host-to-device copies
// can be asynchronous); until then it is 64-byte aligned ordinary memory.
float* allocate_batch_memory(size_t floats) {
  const size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64;
  void* memory = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
  if (memory == nullptr) throw std::bad_alloc();
  return static_cast<float*>(memory);
}

void free_batch_memory(float* memory) { std::free(memory); }

}  // namespace

HostBuffer::HostBuffer(size_t floats) : data_(allocate_batch_memory(floats)), size_(floats) {}

HostBuffer::HostBuffer(HostBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

HostBuffer& HostBuffer::operator=(HostBuffer&& other) noexcept {
  if (this != &other) {
    free_batch_memory(data_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

HostBuffer::~HostBuffer() { free_batch_memory(data_); }

}  // namespace mone
