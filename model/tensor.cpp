#include "model/tensor.h"

#include <unistd.h>

#include <cstdlib>
#include <new>

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

// The main block, written once a page so that the kernel's page faults (and
// its zeroing of each page) happen here, in the step that grew the workspace,
// and not inside the ops of the next one. Before, the first step after
// settle() took 152 thousand faults and 1850 ms against 1550 for the later
// steps (s16, batch 8, e_c 0.3, one thread; tiny, batch 128: 54 thousand and
// 302 against 204 ms), and a benchmark with one warm-up step counted them.
char* allocate_block(size_t bytes) {
  char* block = allocate(bytes);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (size_t offset = 0; offset < bytes; offset += page) static_cast<volatile char*>(block)[offset] = 0;
  return block;
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
  block_.reset(allocate_block(peak_));
  capacity_ = peak_;
  ++allocations_;
}

void Workspace::reset() {
  overflow_.clear();
  used_ = 0;
  peak_ = 0;
}

}  // namespace mone
