// Internal: deterministic sums over the rows of a matrix (bias and LayerNorm
// gain gradients). Rows are cut into fixed chunks, independent of the thread
// count; each chunk is summed in order, then the chunk sums are added in
// order. The result is bitwise the same for any number of threads, and no
// atomics are involved.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace mone {

constexpr int64_t kReduceChunkRows = 256;

// out[c] += sum over rows i of contribution(i, c), where row_fn(i, acc) adds
// row i's contribution into acc[0..cols).
template <class T, class RowFn>
void reduce_rows(int64_t rows, int64_t cols, T* out, RowFn row_fn) {
  const int64_t chunks = (rows + kReduceChunkRows - 1) / kReduceChunkRows;
  if (chunks == 0) return;
  // Kept between calls so a training step allocates only on its first run.
  thread_local std::vector<T> partial;
  if (partial.size() < static_cast<size_t>(chunks * cols)) partial.resize(chunks * cols);
  T* part = partial.data();
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    T* acc = part + chunk * cols;
    std::fill(acc, acc + cols, T(0));
    const int64_t end = std::min(rows, (chunk + 1) * kReduceChunkRows);
    for (int64_t i = chunk * kReduceChunkRows; i < end; ++i) row_fn(i, acc);
  }
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const T* acc = part + chunk * cols;
    for (int64_t c = 0; c < cols; ++c) out[c] += acc[c];
  }
}

// out[c] += sum_i x[i * ldx + c]
template <class T>
void add_column_sums(const T* x, int64_t ldx, int64_t rows, int64_t cols, T* out) {
  reduce_rows<T>(rows, cols, out, [&](int64_t i, T* acc) {
    const T* row = x + i * ldx;
    for (int64_t c = 0; c < cols; ++c) acc[c] += row[c];
  });
}

}  // namespace mone
