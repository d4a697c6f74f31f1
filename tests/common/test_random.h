// Reproducible random test data. Built on std::mt19937_64's raw bits only (the
// standard distributions are implementation-defined), so a seed gives the same
// numbers with every compiler and standard library: a seed chosen because it
// avoids a routing near-tie stays valid everywhere.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace mone::testing {

class TestRandom {
 public:
  explicit TestRandom(uint64_t seed) : engine_(seed) {}

  // Uniform in [0, 1) with 53 random bits.
  double uniform();
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // |value| uniform in [lo, hi] with a random sign: never zero when lo > 0, so
  // no input hides a term of a gradient by multiplying it away.
  double signed_magnitude(double lo, double hi);
  // Standard normal (Box-Muller).
  double normal();
  // Uniform integer in [0, n).
  int64_t index(int64_t n);

  std::vector<double> uniform_vector(int64_t n, double lo, double hi);
  // Test inputs: |x| in [0.1, 1], random sign.
  std::vector<double> nonzero_vector(int64_t n, double lo = 0.1, double hi = 1.0);
  // `count` distinct indices of [0, n), sorted; all of them when count >= n.
  std::vector<int64_t> sample_indices(int64_t n, int64_t count);

 private:
  std::mt19937_64 engine_;
};

template <class To>
std::vector<To> cast_vector(const std::vector<double>& v) {
  return std::vector<To>(v.begin(), v.end());
}

}  // namespace mone::testing
