#include "model/tensor.h"

#include <cstdlib>
#include <new>
#include <sstream>

namespace mone {

void Workspace::FreeDeleter::operator()(void* p) const { std::free(p); }

namespace {
constexpr size_t kAlignment = 64;  // a cache line, and an AVX-512 vector
size_t round_up(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }
char* allocate(size_t bytes) {
  void* p = std::aligned_alloc(kAlignment, round_up(bytes == 0 ? 1 : bytes));
  if (!p) throw std::bad_alloc();
  return static_cast<char*>(p);
}
}  // namespace

void* Workspace::take_bytes(size_t bytes) {
  bytes = round_up(bytes);
  used_ += bytes;
  if (used_ > peak_) peak_ = used_;
  if (used_ <= capacity_) return block_.get() + (used_ - bytes);
  // Too small this step: serve from an overflow block; settle() grows the main one.
  overflow_.emplace_back(allocate(bytes));
  ++allocations_;
  return overflow_.back().get();
}

void Workspace::settle() {
  if (peak_ <= capacity_) return;
  overflow_.push_back(std::move(block_));  // may still hold this step's results
  block_.reset(allocate(peak_));
  capacity_ = peak_;
  ++allocations_;
}

void Workspace::reset() {
  overflow_.clear();
  used_ = 0;
  peak_ = 0;
}

}  // namespace mone
