#include "data/host_buffer.h"

#include <cstdlib>
#include <new>
#include <utility>

namespace mone {

namespace {

float* allocate_aligned(size_t floats) {
  const size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64;
  void* memory = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
  if (memory == nullptr) throw std::bad_alloc();
  return static_cast<float*>(memory);
}

void release_aligned(float* memory) { std::free(memory); }

}  // namespace

const HostAllocator& aligned_host_allocator() {
  static const HostAllocator allocator{allocate_aligned, release_aligned, "aligned"};
  return allocator;
}

HostBuffer::HostBuffer(size_t floats, const HostAllocator& allocator)
    : data_(allocator.allocate(floats)), size_(floats), allocator_(&allocator) {}

HostBuffer::HostBuffer(HostBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      allocator_(std::exchange(other.allocator_, nullptr)) {}

HostBuffer& HostBuffer::operator=(HostBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    allocator_ = std::exchange(other.allocator_, nullptr);
  }
  return *this;
}

HostBuffer::~HostBuffer() { release(); }

void HostBuffer::release() {
  if (allocator_) allocator_->release(data_);
}

}  // namespace mone
