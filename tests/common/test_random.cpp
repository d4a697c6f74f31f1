#include "tests/common/test_random.h"

#include <algorithm>
#include <cmath>

namespace mone::testing {

double TestRandom::uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

double TestRandom::signed_magnitude(double lo, double hi) {
  const double magnitude = uniform(lo, hi);
  return (engine_() & 1) ? magnitude : -magnitude;
}

double TestRandom::normal() {
  const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

int64_t TestRandom::index(int64_t n) { return static_cast<int64_t>(engine_() % static_cast<uint64_t>(n)); }

std::vector<double> TestRandom::uniform_vector(int64_t n, double lo, double hi) {
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = uniform(lo, hi);
  return v;
}

std::vector<double> TestRandom::nonzero_vector(int64_t n, double lo, double hi) {
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = signed_magnitude(lo, hi);
  return v;
}

std::vector<int64_t> TestRandom::sample_indices(int64_t n, int64_t count) {
  std::vector<int64_t> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) all[static_cast<size_t>(i)] = i;
  if (count >= n) return all;
  // Partial Fisher-Yates: the first `count` entries become a uniform sample.
  for (int64_t i = 0; i < count; ++i) std::swap(all[static_cast<size_t>(i)], all[static_cast<size_t>(i + index(n - i))]);
  all.resize(static_cast<size_t>(count));
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace mone::testing
