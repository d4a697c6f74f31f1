#include "tests/common/test_seed.h"

#include <cerrno>
#include <cstdlib>
#include <random>
#include <string>

namespace mone::testing {

uint64_t test_seed_from_environment() {
  const char* setting = std::getenv("MONE_TEST_SEED");
  if (setting == nullptr || *setting == '\0') return kDefaultTestSeed;
  const std::string text = setting;
  if (text == "random") {
    std::random_device device;
    return (uint64_t(device()) << 32) | device();
  }
  char* end = nullptr;
  errno = 0;
  const unsigned long long seed = std::strtoull(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || text[0] == '-') {
    ADD_FAILURE() << "MONE_TEST_SEED='" << text << "': expected a number or 'random'";
    return kDefaultTestSeed;
  }
  return seed;
}

TestSeed::TestSeed()
    : value_(test_seed_from_environment()),
      trace_(__FILE__, __LINE__,
             "random inputs from seed " + std::to_string(value_) + " (MONE_TEST_SEED=" + std::to_string(value_) +
                 " reruns them)") {}

}  // namespace mone::testing
