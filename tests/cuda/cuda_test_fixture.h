// The fixture of the CUDA op tests: a device context, random inputs from the
// test seed (tests/common/test_seed.h: fixed unless MONE_TEST_SEED says
// otherwise, and named in every failure), and comparisons with the CPU
// reference at the mode's tolerance.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/cuda/context.h"
#include "tests/common/test_random.h"
#include "tests/common/test_seed.h"
#include "tests/cuda/device_test_support.h"

namespace mone::testing {

struct ModeName {
  template <class T> static std::string GetName(int) { return sizeof(T) == 4 ? "fp32" : "bf16"; }
};

template <class T>
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MONE_SKIP_WITHOUT_GPUS(1);
    context = std::make_unique<cuda::DeviceContext>();
    test_seed = std::make_unique<TestSeed>();
    seed = test_seed->value();
    random = std::make_unique<TestRandom>(seed);
  }
  // Random values |x| in [lo, hi] with random signs, as T holds them.
  std::vector<double> input(int64_t n, double lo = 0.1, double hi = 1.0) {
    return rounded<T>(random->nonzero_vector(n, lo, hi));
  }
  // A random prefill of an fp32 gradient buffer (accumulate semantics).
  std::vector<double> prefill(int64_t n) { return rounded<float>(random->nonzero_vector(n, 0.25, 0.75)); }
  template <class U>
  void expect_near(const std::string& name, const DeviceArray<U>& got, const std::vector<double>& want,
                   double tolerance = tolerance_of<T>()) {
    EXPECT_TRUE(near_reference(name, download(got, *context), want, tolerance));
  }

  std::unique_ptr<cuda::DeviceContext> context;
  std::unique_ptr<TestSeed> test_seed;  // names the seed in the test's failures while it lives
  uint64_t seed = 0;
  std::unique_ptr<TestRandom> random;
};

}  // namespace mone::testing
