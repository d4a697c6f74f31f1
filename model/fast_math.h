// Internal: an exp that the compiler can vectorise. std::exp on float is a
// library call per element and was the largest cost of GELU and softmax; this
// one is plain arithmetic, so -O3 turns a loop of it into AVX-512 code.
// Double keeps std::exp: it serves the finite-difference checks, where
// accuracy matters and speed does not.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace mone {

// e^x for float with relative error below 2e-7 on the whole float range
// (clamped: below -87 it returns ~1e-38, above 88 ~1.6e38, never inf or NaN
// for finite input). Range reduction x = n ln2 + r with |r| <= ln2/2, then a
// degree-6 Taylor polynomial for e^r (truncation error r^7/7! < 1.3e-7).
inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // Round to nearest by adding 1.5 * 2^23: plain arithmetic, unlike std::floor,
  // which kept GCC from vectorising the loops that call this.
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  // ln 2 split in two so n * ln2_high is exact in float.
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t exponent_bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &exponent_bits, sizeof(scale));
  return p * scale;
}

inline double fast_exp(double x) { return std::exp(x); }

}  // namespace mone
