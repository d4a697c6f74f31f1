// Float storage for batches on the host. Allocation goes through one
// function so that, once CUDA exists in this project, batches can live in
// pinned (page-locked) memory and be copied to the GPU asynchronously.
#pragma once

#include <cstddef>

namespace mone {

class HostBuffer {
 public:
  HostBuffer() = default;
  explicit HostBuffer(size_t floats);
  HostBuffer(HostBuffer&& other) noexcept;
  HostBuffer& operator=(HostBuffer&& other) noexcept;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  ~HostBuffer();

  float* data() { return data_; }
  const float* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  float* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace mone
