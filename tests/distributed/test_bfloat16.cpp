// bf16 conversions: exact round trips, round to nearest with ties to even,
// NaN and overflow.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "comm/bfloat16.h"

namespace {
using mone::bfloat16_to_float;
using mone::float_to_bfloat16;

float float_from_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

TEST(Bfloat16, ExactValuesRoundTrip) {
  for (float value : {0.0f, -0.0f, 1.0f, -2.5f, 120.0f, 0.375f, std::numeric_limits<float>::infinity()})
    EXPECT_EQ(bfloat16_to_float(float_to_bfloat16(value)), value);
  EXPECT_EQ(float_to_bfloat16(1.0f), 0x3f80);
}

TEST(Bfloat16, RoundsToNearestTiesToEven) {
  // bf16 steps by 2^-7 just above 1.
  EXPECT_EQ(float_to_bfloat16(1.0f + 0x1p-9f), 0x3f80);               // below half: down
  EXPECT_EQ(float_to_bfloat16(1.0f + 0x1p-8f), 0x3f80);               // tie, even below
  EXPECT_EQ(float_to_bfloat16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);    // above half: up
  EXPECT_EQ(float_to_bfloat16(1.0f + 0x1p-7f + 0x1p-8f), 0x3f82);     // tie, even above
  EXPECT_EQ(float_to_bfloat16(-(1.0f + 0x1p-7f + 0x1p-8f)), 0xbf82);  // sign independent
}

TEST(Bfloat16, NanStaysNanAndOverflowGoesToInfinity) {
  EXPECT_TRUE(std::isnan(bfloat16_to_float(float_to_bfloat16(std::numeric_limits<float>::quiet_NaN()))));
  // A NaN whose payload sits only in the discarded bits must not become infinity.
  EXPECT_TRUE(std::isnan(bfloat16_to_float(float_to_bfloat16(float_from_bits(0x7f800001u)))));
  EXPECT_TRUE(std::isinf(bfloat16_to_float(float_to_bfloat16(std::numeric_limits<float>::max()))));
}
}  // namespace
