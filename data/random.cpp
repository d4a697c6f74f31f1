#include "data/random.h"

#include <cstddef>
#include <utility>

namespace mone::data_random {

uint64_t Stream::below(uint64_t bound) {
  // Multiply-shift maps a 64-bit draw onto [0, bound); draws landing in the
  // short final stripe are rejected so every outcome is equally likely.
  const uint64_t threshold = (0 - bound) % bound;
  while (true) {
    const unsigned __int128 product = static_cast<unsigned __int128>(next()) * bound;
    if (static_cast<uint64_t>(product) >= threshold) return static_cast<uint64_t>(product >> 64);
  }
}

std::vector<int64_t> permutation(int64_t n, uint64_t key) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  Stream stream(key);
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(stream.below(static_cast<uint64_t>(i) + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

}  // namespace mone::data_random
