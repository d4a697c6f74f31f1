// Device memory: an owning buffer and a bump allocator over one buffer.
//
// The model makes exactly three large allocations (parameters, gradients,
// activation workspace) plus the optimizer's moments; each goes through
// DeviceBuffer, whose failure message says what was being allocated, how many
// bytes it needs and how many the device has free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace mone::cuda {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // Throws CudaError "<what>: needs X bytes, the device has Y free of Z" when
  // the allocation does not fit.
  DeviceBuffer(size_t bytes, const std::string& what);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  template <class T> T* as() const { return static_cast<T*>(data_); }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Hands out aligned pieces of one block. A counting arena (no block) only
// adds up the sizes asked for: run an allocation plan on one to learn the
// bytes, then on a real one of that size.
class DeviceArena {
 public:
  DeviceArena() = default;  // counting
  DeviceArena(size_t bytes, const std::string& what);

  // n elements of T, 256-byte aligned (cuBLASLt's preferred alignment).
  // Throws CudaError naming `purpose` with the bytes needed and left.
  template <class T> T* take(int64_t n, const char* purpose) {
    return static_cast<T*>(take_bytes(static_cast<size_t>(n) * sizeof(T), purpose));
  }
  void reset() { used_ = 0; }
  size_t used() const { return used_; }
  size_t capacity() const { return block_.bytes(); }

 private:
  void* take_bytes(size_t bytes, const char* purpose);
  DeviceBuffer block_;
  std::string what_;
  size_t used_ = 0;
  bool counting_ = true;
};

// "1.50 GiB (1610612736 bytes)"
std::string describe_bytes(size_t bytes);

}  // namespace mone::cuda
