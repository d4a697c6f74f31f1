// Internal: an exp that vectorises. std::exp on float is a library call per
// element and was the largest cost of GELU and softmax; this one is plain
// arithmetic, written once for a float and for a vector of floats (GCC's
// vector extension, model/vector_lanes.h). Loops call it on whole vectors:
// left to the auto-vectoriser, the range clamp's comparisons kept GCC 12 from
// vectorising it at all for AVX2 targets (it did for AVX-512, which has
// masks), and GELU ran 20x slower there.
// Double keeps std::exp: it serves the finite-difference checks, where
// accuracy matters and speed does not.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace mone {

namespace fast_math_detail {
// int32 lanes of the same shape as F (float, or a vector of floats).
template <class F>
struct Int32Of {
  typedef int32_t type __attribute__((vector_size(sizeof(F))));
  static type of(F x) { return __builtin_convertvector(x, type); }
};
template <>
struct Int32Of<float> {
  using type = int32_t;
  static type of(float x) { return static_cast<int32_t>(x); }
};
}  // namespace fast_math_detail

// e^x for a float, or for each lane of a vector of floats, with relative
// error below 2e-7 on the whole float range (clamped: below -87 it returns
// ~1e-38, above 88 ~1.6e38, never inf or NaN for finite input). Range
// reduction x = n ln2 + r with |r| <= ln2/2, then a degree-6 Taylor
// polynomial for e^r (truncation error r^7/7! < 1.3e-7).
template <class F>
inline F fast_exp(F x) {
  const F low = F{} - 87.0f, high = F{} + 88.0f;  // broadcast for vectors
  x = x < low ? low : x;
  x = x > high ? high : x;
  // Round to nearest by adding 1.5 * 2^23: plain arithmetic, unlike std::floor.
  const F n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  // ln 2 split in two so n * ln2_high is exact in float.
  const F r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  F p = F{} + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  using Int = fast_math_detail::Int32Of<F>;
  const typename Int::type exponent_bits = (Int::of(n) + 127) << 23;
  F scale;
  std::memcpy(&scale, &exponent_bits, sizeof(scale));
  return p * scale;
}

inline double fast_exp(double x) { return std::exp(x); }

}  // namespace mone
