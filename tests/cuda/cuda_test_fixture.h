// The fixture of the CUDA op tests: a device context, fresh random inputs
// each run (the seed is printed with every comparison and can be fixed with
// MONE_TEST_SEED to reproduce a failure), and comparisons with the CPU
// reference at the mode's tolerance.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/cuda/context.h"
#include "tests/common/test_random.h"
#include "tests/cuda/device_test_support.h"

namespace mone::testing {

// MONE_TEST_SEED when set, else a fresh seed from std::random_device.
uint64_t cuda_test_seed();

struct ModeName {
  template <class T> static std::string GetName(int) { return sizeof(T) == 4 ? "fp32" : "bf16"; }
};

template <class T>
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MONE_SKIP_WITHOUT_CUDA();
    context = std::make_unique<cuda::DeviceContext>();
    seed = cuda_test_seed();
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
    EXPECT_TRUE(near_reference(name + " (seed " + std::to_string(seed) + ")", download(got, *context), want,
                               tolerance));
  }

  std::unique_ptr<cuda::DeviceContext> context;
  uint64_t seed = 0;
  std::unique_ptr<TestRandom> random;
};

}  // namespace mone::testing
