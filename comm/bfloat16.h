// bfloat16 stored as uint16_t: the top half of an IEEE float32. comm/ reduces
// bf16 buffers in float32 and rounds back once, so the two conversions live
// here, independent of model/'s tensor types.
#pragma once

#include <cstdint>
#include <cstring>

namespace mone {

inline float bfloat16_to_float(uint16_t value) {
  const uint32_t bits = static_cast<uint32_t>(value) << 16;
  float result;
  std::memcpy(&result, &bits, sizeof result);
  return result;
}

// Round to nearest, ties to even. NaN stays NaN (forcing a mantissa bit, since
// rounding could otherwise carry a NaN payload into infinity); overflow
// rounds to infinity as IEEE rounding does.
inline uint16_t float_to_bfloat16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  const uint32_t lowest_kept_bit = (bits >> 16) & 1u;
  bits += 0x7fffu + lowest_kept_bit;
  return static_cast<uint16_t>(bits >> 16);
}

}  // namespace mone
