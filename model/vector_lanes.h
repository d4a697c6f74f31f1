// Internal: fixed-width vectors of float or double through GCC's vector
// extension, for the kernels that hold their accumulators in registers (the
// fused attention, the small GEMM). One vector is one register where the
// target has registers that wide, several otherwise; no intrinsics, so the
// code builds for any x86-64 (and beyond) and -march=native picks the width.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

namespace mone {

// Bytes in one of the target's vector registers. A vector value wider than
// that is split by the compiler, and arrays of such values (a tile of
// accumulators) end up on the stack: kernels size their vectors by this.
#ifdef __AVX512F__
constexpr int64_t kRegisterBytes = 64;
constexpr int64_t kVectorRegisters = 32;
#else
constexpr int64_t kRegisterBytes = 32;
constexpr int64_t kVectorRegisters = 16;
#endif
// Elements of T in one register.
template <class T>
constexpr int64_t kRegisterLanes = kRegisterBytes / int64_t(sizeof(T));

// L elements of T as one value.
template <class T, int64_t L>
struct Lanes {
  typedef T type __attribute__((vector_size(sizeof(T) * L)));
};

// Loads and stores go through memcpy, so no alignment is assumed (and no
// aliasing rule is bent).
template <class V, class T>
V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V, class T>
void store(T* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}

// The lower and upper halves of a vector of L lanes, as vectors (register
// shuffles: the same through memcpy went through the stack).
template <class T, int64_t L, size_t... I>
typename Lanes<T, L / 2>::type lower_half(typename Lanes<T, L>::type v, std::index_sequence<I...>) {
  return __builtin_shufflevector(v, v, I...);
}
template <class T, int64_t L, size_t... I>
typename Lanes<T, L / 2>::type upper_half(typename Lanes<T, L>::type v, std::index_sequence<I...>) {
  return __builtin_shufflevector(v, v, (I + L / 2)...);
}

// The L lanes of v combined by halving: combine(lower half, upper half) (lane
// l with lane l + L/2), then the same on the result, down to one lane.
// Written as a loop over v's elements (v[l] += v[l + w]), the same pairs went
// through the stack one scalar at a time, and its scalar stores then vector
// reloads stalled.
template <class T, int64_t L, class Combine>
T halving(typename Lanes<T, L>::type v, Combine combine) {
  if constexpr (L == 1) {
    return v[0];
  } else {
    const auto half = std::make_index_sequence<L / 2>{};
    return halving<T, L / 2>(combine(lower_half<T, L>(v, half), upper_half<T, L>(v, half)), combine);
  }
}
template <class T, int64_t L>
T halving_sum(typename Lanes<T, L>::type v) {
  return halving<T, L>(v, [](auto low, auto high) { return low + high; });
}
template <class T, int64_t L>
T halving_max(typename Lanes<T, L>::type v) {
  return halving<T, L>(v, [](auto low, auto high) { return low < high ? high : low; });  // std::max's choice
}

// Calls f(i, V{}) for i = begin, begin + L, ... over the whole vectors of
// [begin, end), then f(i, T{}) for each element of the tail: f is a generic
// lambda whose second argument's type says whether it works on a vector of
// L = one register of floats or on one element. Double always gets one
// element: its math is the reference's (std::exp, not fast_exp).
template <class T, class F>
void for_each_lanes_in(int64_t begin, int64_t end, F f) {
  constexpr int64_t L = std::is_same_v<T, float> ? kRegisterLanes<T> : 1;
  using V = std::conditional_t<L == 1, T, typename Lanes<T, L>::type>;
  const int64_t whole = end - (end - begin) % L;
  for (int64_t i = begin; i < whole; i += L) f(i, V{});
  for (int64_t i = whole; i < end; ++i) f(i, T{});
}

// The same over [0, n), split over the threads in blocks of whole vectors.
template <class T, class F>
void for_each_lanes(int64_t n, F f) {
  constexpr int64_t kBlock = 1024;  // elements per task: a multiple of any L
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (blocks > 1)
  for (int64_t block = 0; block < blocks; ++block)
    for_each_lanes_in<T>(block * kBlock, std::min(n, (block + 1) * kBlock), f);
}

}  // namespace mone
