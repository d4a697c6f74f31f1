// Counter-based randomness for the data layer. Every random choice (the
// epoch order, the validation split, crops and flips) is a pure function of
// integers such as (seed, epoch, sample), so it does not depend on how many
// ranks or threads produced it, nor on the standard library's
// implementation-defined distributions.
#pragma once

#include <cstdint>
#include <vector>

namespace mone::data_random {

// SplitMix64's output function: a bijective 64-bit mix.
inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline uint64_t key(uint64_t a, uint64_t b) { return mix(mix(a) ^ b); }
inline uint64_t key(uint64_t a, uint64_t b, uint64_t c) { return mix(key(a, b) ^ c); }

// A stream of 64-bit values from a key: value i is mix(key + i * golden).
class Stream {
 public:
  explicit Stream(uint64_t key) : key_(key) {}
  uint64_t next() { return mix(key_ + 0x9e3779b97f4a7c15ull * counter_++); }
  // Uniform in [0, bound), bound >= 1, without modulo bias (Lemire's method).
  uint64_t below(uint64_t bound);
  // Uniform in [0, 1): the top 53 bits of a draw.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t key_;
  uint64_t counter_ = 0;
};

// Fisher-Yates over 0..n-1 driven by Stream(key).
std::vector<int64_t> permutation(int64_t n, uint64_t key);

// Domain separators, so the same user seed drives unrelated choices independently.
constexpr uint64_t kEpochOrder = 0x6f72646572ull;      // "order"
constexpr uint64_t kAugment = 0x6175676dull;           // "augm"
constexpr uint64_t kValidationSplit = 0x76616c6964ull;  // "valid"
constexpr uint64_t kSynthetic = 0x73796e7468ull;       // "synth"
constexpr uint64_t kFileOrder = 0x66696c6573ull;       // "files": an image folder's shard order

}  // namespace mone::data_random
