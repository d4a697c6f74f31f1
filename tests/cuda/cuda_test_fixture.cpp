#include "tests/cuda/cuda_test_fixture.h"

#include <cstdlib>
#include <random>

namespace mone::testing {

uint64_t cuda_test_seed() {
  if (const char* fixed = std::getenv("MONE_TEST_SEED")) return std::strtoull(fixed, nullptr, 10);
  std::random_device device;
  return (uint64_t(device()) << 32) | device();
}

}  // namespace mone::testing
