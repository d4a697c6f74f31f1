// Float storage for batches on the host. Where the memory comes from is the
// caller's choice (HostAllocator): ordinary 64-byte aligned memory by
// default, or pinned (page-locked) memory when the batches go to a GPU, so
// the device copies straight from the loader's buffer, asynchronously, with
// no staging copy on the host.
#pragma once

#include <cstddef>

namespace mone {

struct HostAllocator {
  float* (*allocate)(size_t floats);  // throws on failure
  void (*release)(float* memory);     // accepts null
  const char* name;                   // for messages: "aligned", "pinned"
};

// 64-byte aligned std::aligned_alloc memory.
const HostAllocator& aligned_host_allocator();

class HostBuffer {
 public:
  HostBuffer() = default;
  explicit HostBuffer(size_t floats, const HostAllocator& allocator = aligned_host_allocator());
  HostBuffer(HostBuffer&& other) noexcept;
  HostBuffer& operator=(HostBuffer&& other) noexcept;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  ~HostBuffer();

  float* data() { return data_; }
  const float* data() const { return data_; }
  size_t size() const { return size_; }
  // Where data() came from; null for an empty buffer.
  const HostAllocator* allocator() const { return allocator_; }

 private:
  void release();

  float* data_ = nullptr;
  size_t size_ = 0;
  const HostAllocator* allocator_ = nullptr;
};

}  // namespace mone
