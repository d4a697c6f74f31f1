#include "model/small_gemm.h"

#include <algorithm>
#include <vector>

#include "model/vector_lanes.h"

namespace mone {

namespace {
// A wide tile is two registers across, and its rows give the accumulators:
// 6 rows (12 registers of AVX2's 16) or 8 rows (16 of AVX-512's 32), enough
// independent FMA chains to hide their latency on two FMA units. With
// AVX-512, 6 rows of a weight gradient's A^T (M = 64 or 256) fell back to 4-row
// tiles of 8 accumulators, at 60% of OpenBLAS's GFLOP/s; 8 rows reach it.
constexpr int64_t kRegisterFloats = kRegisterLanes<float>;
constexpr int64_t kWideColumns = 2 * kRegisterFloats;
constexpr int64_t kWideRows = kVectorRegisters >= 32 ? 8 : 6;
// With 6-row tiles, an M that is a multiple of 4 and not of 6 (an expert's 8
// rows of a weight gradient) takes 4-row tiles: whole tiles instead of a full
// and a thin one.
constexpr int64_t kEvenRows = 4;
// The columns left of a wide tile's multiple: one register (an expert of
// width 16 with AVX-512, which took two 8-column strips before), then 8
// (width 8, or the rest), 12 rows each.
constexpr int64_t kNarrowRows = 12;
constexpr int64_t kHalfColumns = 8;
// A block of B, 256 x 256 floats (256 KB), stays in L2 while every row of A
// passes over it; a tile's rows of A (6 KB) stay in L1 across the block.
constexpr int64_t kDepthBlock = 256;
constexpr int64_t kColumnBlock = 256;

struct Product {
  StridedMatrix A;
  const float* b;
  int64_t ldb;
  const float* bias;
  float* c;
  int64_t ldc;
};

// C[i..i+Rows, j..j+Vectors * Width] over k in [k0, k0 + depth): Rows x
// Vectors accumulators of Width floats, each one register.
template <int64_t Rows, int64_t Vectors, int64_t Width>
void tile(const Product& p, int64_t i, int64_t j, int64_t k0, int64_t depth, bool accumulate) {
  using V = typename Lanes<float, Width>::type;
  V acc[Rows][Vectors];
  for (int64_t v = 0; v < Vectors; ++v) {
    const V start = !accumulate && p.bias ? load<V>(p.bias + j + v * Width) : V{};
    for (int64_t r = 0; r < Rows; ++r) acc[r][v] = accumulate ? load<V>(p.c + (i + r) * p.ldc + j + v * Width) : start;
  }
  const float* a = p.A.a + i * p.A.row_stride + k0 * p.A.column_stride;
  const float* b = p.b + k0 * p.ldb + j;
  for (int64_t k = 0; k < depth; ++k, a += p.A.column_stride, b += p.ldb) {
    V bk[Vectors];
    for (int64_t v = 0; v < Vectors; ++v) bk[v] = load<V>(b + v * Width);
    for (int64_t r = 0; r < Rows; ++r) {
      const float ar = a[r * p.A.row_stride];
      for (int64_t v = 0; v < Vectors; ++v) acc[r][v] += ar * bk[v];
    }
  }
  for (int64_t r = 0; r < Rows; ++r)
    for (int64_t v = 0; v < Vectors; ++v) store(p.c + (i + r) * p.ldc + j + v * Width, acc[r][v]);
}

// A tile of `rows` <= Rows rows: the last one of a column strip.
template <int64_t Rows, int64_t Vectors, int64_t Width>
void tile_of_rows(int64_t rows, const Product& p, int64_t i, int64_t j, int64_t k0, int64_t depth, bool accumulate) {
  if constexpr (Rows > 1) {
    if (rows < Rows) return tile_of_rows<Rows - 1, Vectors, Width>(rows, p, i, j, k0, depth, accumulate);
  }
  tile<Rows, Vectors, Width>(p, i, j, k0, depth, accumulate);
}

// Columns [j_begin, j_end) (a multiple of Vectors * Width wide) of every row.
template <int64_t Rows, int64_t Vectors, int64_t Width>
void strip(int64_t M, int64_t j_begin, int64_t j_end, const Product& p, int64_t k0, int64_t depth, bool accumulate) {
  for (int64_t i = 0; i < M; i += Rows)
    for (int64_t j = j_begin; j < j_end; j += Vectors * Width)
      tile_of_rows<Rows, Vectors, Width>(std::min(Rows, M - i), p, i, j, k0, depth, accumulate);
}

}  // namespace

void small_gemm(int64_t M, int64_t N, int64_t K, StridedMatrix A, const float* b, int64_t ldb, const float* bias,
                bool accumulate, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  const Product p{A, b, ldb, bias, C, ldc};
  const bool even_rows = kWideRows % kEvenRows != 0 && M % kWideRows != 0 && M % kEvenRows == 0;
  // K = 0 still writes the start (bias or zero) once.
  for (int64_t k0 = 0; k0 < std::max<int64_t>(K, 1); k0 += kDepthBlock) {
    const int64_t depth = std::min(kDepthBlock, K - k0);
    const bool onto_c = accumulate || k0 > 0;
    for (int64_t j0 = 0; j0 < N; j0 += kColumnBlock) {
      const int64_t j1 = std::min(N, j0 + kColumnBlock);
      const int64_t wide_end = j1 - (j1 - j0) % kWideColumns;
      const int64_t register_end = j1 - (j1 - wide_end) % kRegisterFloats;
      const int64_t half_end = j1 - (j1 - register_end) % kHalfColumns;
      if (even_rows)
        strip<kEvenRows, 2, kRegisterFloats>(M, j0, wide_end, p, k0, depth, onto_c);
      else
        strip<kWideRows, 2, kRegisterFloats>(M, j0, wide_end, p, k0, depth, onto_c);
      strip<kNarrowRows, 1, kRegisterFloats>(M, wide_end, register_end, p, k0, depth, onto_c);
      if constexpr (kRegisterFloats > kHalfColumns)
        strip<kNarrowRows, 1, kHalfColumns>(M, register_end, half_end, p, k0, depth, onto_c);
      // The last < 8 columns one at a time, through the same tile code, so that
      // they are rounded as the vector columns are (a plain scalar loop was
      // not contracted into FMAs, and a column's bits then depended on where a
      // caller's split put it).
      strip<kNarrowRows, 1, 1>(M, half_end, j1, p, k0, depth, onto_c);
    }
  }
}

void small_gemm_bt(int64_t M, int64_t N, int64_t K, StridedMatrix A, const float* bt, int64_t ldbt, const float* bias,
                   bool accumulate, float* C, int64_t ldc) {
  thread_local std::vector<float> packed;  // kept: a training step allocates only on its first run
  if (packed.size() < static_cast<size_t>(K * N)) packed.resize(K * N);
  for (int64_t j = 0; j < N; ++j)
    for (int64_t k = 0; k < K; ++k) packed[k * N + j] = bt[j * ldbt + k];
  small_gemm(M, N, K, A, packed.data(), N, bias, accumulate, C, ldc);
}

}  // namespace mone
