// The activation workspace: one arena a pass takes its buffers from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mone {

// A bump allocator over one block. The first training step sizes it; later
// steps with the same shapes reuse the block and allocate nothing.
class Workspace {
 public:
  // Returns n elements of T, 64-byte aligned, valid until reset().
  template <class T> T* take(int64_t n) {
    return static_cast<T*>(take_bytes(static_cast<size_t>(n) * sizeof(T)));
  }
  // Ends a step: if it needed more than the block holds, a block large enough
  // for it is allocated now (what this step took stays valid until reset()).
  // So the first step allocates and later steps with the same shapes do not.
  // The new block is paged in here, so the next step takes no page faults.
  void settle();
  // Starts a new step: everything taken before is released.
  void reset();
  size_t capacity_bytes() const { return capacity_; }
  size_t allocations() const { return allocations_; }  // heap allocations so far

 private:
  void* take_bytes(size_t bytes);
  struct FreeDeleter { void operator()(void* p) const; };
  std::unique_ptr<char, FreeDeleter> block_;
  size_t capacity_ = 0;
  size_t used_ = 0;
  size_t peak_ = 0;
  // Overflow blocks taken while the main block was too small, and a block
  // replaced by settle(); freed at reset.
  std::vector<std::unique_ptr<char, FreeDeleter>> overflow_;
  size_t allocations_ = 0;
};

}  // namespace mone
