// The seed of a test's random data. Fixed by default, so every run repeats
// the same inputs: the fp32 device tests require routing identical to the
// CPU's, and a freshly drawn seed can land on a near-tie of two router
// probabilities that rounding then breaks differently. MONE_TEST_SEED
// overrides it: a number is that seed, "random" draws a fresh one per test.
// While a TestSeed lives, every failure of the test names the seed and how to
// rerun with it.
#pragma once

#include <cstdint>

#include <gtest/gtest.h>

namespace mone::testing {

constexpr uint64_t kDefaultTestSeed = 1;

// kDefaultTestSeed, or what MONE_TEST_SEED says; a value that is neither a
// number nor "random" fails the test (ADD_FAILURE) and gives the default.
uint64_t test_seed_from_environment();

class TestSeed {
 public:
  TestSeed();
  uint64_t value() const { return value_; }

 private:
  uint64_t value_;
  ::testing::ScopedTrace trace_;
};

}  // namespace mone::testing
