// Internal: sums, dot products and maxima over a row, in 16 independent lanes
// combined in a fixed order. A plain `for (...) sum += x[i]` is one chain of
// dependent additions (the compiler may not reorder float sums), 4 cycles
// each: it was the largest cost of the attention softmax and of LayerNorm.
// Lane j accumulates elements j, j + 16, ...; the result depends only on n,
// never on threads, so it is as deterministic as the sequential loop.
#pragma once

#include <algorithm>
#include <cstdint>

namespace mone {

constexpr int64_t kReduceLanes = 16;

template <class T>
T combine_lanes(const T (&lane)[kReduceLanes]) {
  T total = 0;
  for (int64_t l = 0; l < kReduceLanes; ++l) total += lane[l];
  return total;
}

template <class T, class Term>
T lane_sum_of(int64_t n, Term term) {
  T lane[kReduceLanes] = {};
  const int64_t whole = n - n % kReduceLanes;
  for (int64_t i = 0; i < whole; i += kReduceLanes)
    for (int64_t l = 0; l < kReduceLanes; ++l) lane[l] += term(i + l);
  for (int64_t i = whole; i < n; ++i) lane[i - whole] += term(i);
  return combine_lanes(lane);
}

template <class T>
T lane_sum(const T* x, int64_t n) {
  return lane_sum_of<T>(n, [x](int64_t i) { return x[i]; });
}

template <class T>
T lane_dot(const T* x, const T* y, int64_t n) {
  return lane_sum_of<T>(n, [x, y](int64_t i) { return x[i] * y[i]; });
}

template <class T>
T lane_max(const T* x, int64_t n) {
  T lane[kReduceLanes];
  std::fill(lane, lane + kReduceLanes, x[0]);
  const int64_t whole = n - n % kReduceLanes;
  for (int64_t i = 0; i < whole; i += kReduceLanes)
    for (int64_t l = 0; l < kReduceLanes; ++l) lane[l] = std::max(lane[l], x[i + l]);
  for (int64_t i = whole; i < n; ++i) lane[0] = std::max(lane[0], x[i]);
  return *std::max_element(lane, lane + kReduceLanes);
}

}  // namespace mone
