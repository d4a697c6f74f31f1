// Counter-based random numbers: every draw is a pure function of (seed,
// stream, index), so results do not depend on thread count, rank count or
// call order, and a resumed run draws the same values.
#pragma once

#include <cstdint>

namespace mone {

// SplitMix64 finaliser over a combined key: a good 64-bit mix.
uint64_t mix64(uint64_t x);
uint64_t random_bits(uint64_t seed, uint64_t stream, uint64_t index);
// Uniform in [0, 1) with 53 random bits.
double random_uniform(uint64_t seed, uint64_t stream, uint64_t index);
// Standard normal by Box-Muller from two uniforms at (index, 2*index+1).
double random_normal(uint64_t seed, uint64_t stream, uint64_t index);

}  // namespace mone
