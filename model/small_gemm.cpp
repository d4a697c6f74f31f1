#include "model/small_gemm.h"

#include <algorithm>
#include <numeric>
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

// C[i..i+Rows, j..j+Vectors * Width] over k in [0, depth) (p starts at the
// block's first k): Rows x Vectors accumulators of Width floats, each one
// register.
template <int64_t Rows, int64_t Vectors, int64_t Width>
void tile(const Product& p, int64_t i, int64_t j, int64_t depth, bool accumulate) {
  using V = typename Lanes<float, Width>::type;
  // The fields in locals, and every loop over the accumulators unrolled: the
  // loads and stores of C go through memcpy, which may alias anything, so
  // GCC otherwise reread p after each store and kept the start and the stores
  // in loops over a stack copy of the tile: tiny's fc1 forward at width 8 (K =
  // 8) ran at 21-25 GFLOP/s that way, 30-35 now (one thread).
  float* const c = p.c + i * p.ldc + j;
  const int64_t ldc = p.ldc, a_row = p.A.row_stride, a_col = p.A.column_stride, ldb = p.ldb;
  V acc[Rows][Vectors];
#pragma GCC unroll 16
  for (int64_t v = 0; v < Vectors; ++v) {
    const V start = !accumulate && p.bias ? load<V>(p.bias + j + v * Width) : V{};
#pragma GCC unroll 16
    for (int64_t r = 0; r < Rows; ++r) acc[r][v] = accumulate ? load<V>(c + r * ldc + v * Width) : start;
  }
  const float* a = p.A.a + i * a_row;
  const float* b = p.b + j;
  for (int64_t k = 0; k < depth; ++k, a += a_col, b += ldb) {
    V bk[Vectors];
#pragma GCC unroll 16
    for (int64_t v = 0; v < Vectors; ++v) bk[v] = load<V>(b + v * Width);
#pragma GCC unroll 16
    for (int64_t r = 0; r < Rows; ++r) {
      const float ar = a[r * a_row];
#pragma GCC unroll 16
      for (int64_t v = 0; v < Vectors; ++v) acc[r][v] += ar * bk[v];
    }
  }
#pragma GCC unroll 16
  for (int64_t r = 0; r < Rows; ++r)
#pragma GCC unroll 16
    for (int64_t v = 0; v < Vectors; ++v) store(c + r * ldc + v * Width, acc[r][v]);
}

// A tile of `rows` <= Rows rows: the last one of a column strip.
template <int64_t Rows, int64_t Vectors, int64_t Width>
void tile_of_rows(int64_t rows, const Product& p, int64_t i, int64_t j, int64_t depth, bool accumulate) {
  if constexpr (Rows > 1) {
    if (rows < Rows) return tile_of_rows<Rows - 1, Vectors, Width>(rows, p, i, j, depth, accumulate);
  }
  tile<Rows, Vectors, Width>(p, i, j, depth, accumulate);
}

// Columns [j_begin, j_end) (a multiple of Vectors * Width wide) of every row.
template <int64_t Rows, int64_t Vectors, int64_t Width>
void strip(int64_t M, int64_t j_begin, int64_t j_end, const Product& p, int64_t depth, bool accumulate) {
  for (int64_t i = 0; i < M; i += Rows)
    for (int64_t j = j_begin; j < j_end; j += Vectors * Width)
      tile_of_rows<Rows, Vectors, Width>(std::min(Rows, M - i), p, i, j, depth, accumulate);
}

// A product whose A has unit row stride (a weight gradient's x^T: A(i, k) =
// x[k * ldx + i]) and whose C is narrower than a register (an expert of width
// 8 with AVX-512): the row tiles above would broadcast one value of A per row
// for FMAs of half a register, and ran load-bound at 24-28 GFLOP/s (tiny's
// fc2 weight gradient at width 8, one thread; this kernel: 32-34). Here
// the lanes of an accumulator are consecutive rows of C, one accumulator per
// column: each k loads whole vectors of A (contiguous) and broadcasts B's few
// values, for full-width FMAs. The sums run in k order, as in the row tiles,
// so the bits are the same.
constexpr int64_t kRowLaneVectors = kVectorRegisters >= 32 ? 2 : 1;  // 16 accumulators of 8 columns with AVX-512
constexpr int64_t kRowLaneRows = kRowLaneVectors * kRegisterFloats;
constexpr int64_t kRowLaneColumns = 8;

// A block of this many rows of x (1 KB each at a hidden width of 256) stays in
// L2 while every tile of C passes over it.
constexpr int64_t kRowLaneDepth = 512;

// C[i..i + RowVectors * lanes, j..j + Columns] over k in [0, depth) (p starts
// at the block's first k, as for the row tiles).
template <int64_t RowVectors, int64_t Columns>
void row_lanes_tile(const Product& p, int64_t i, int64_t j, int64_t depth, bool accumulate) {
  using V = typename Lanes<float, kRegisterFloats>::type;
  constexpr int64_t L = kRegisterFloats;
  float* const c = p.c + i * p.ldc + j;
  const int64_t ldc = p.ldc, a_col = p.A.column_stride, ldb = p.ldb;
  V acc[Columns][RowVectors];
  float lanes[L];  // a column of C between memory and an accumulator
#pragma GCC unroll 16
  for (int64_t col = 0; col < Columns; ++col)
#pragma GCC unroll 16
    for (int64_t v = 0; v < RowVectors; ++v) {
      if (accumulate) {
        for (int64_t l = 0; l < L; ++l) lanes[l] = c[(v * L + l) * ldc + col];
        acc[col][v] = load<V>(lanes);
      } else {
        acc[col][v] = V{} + (p.bias ? p.bias[j + col] : 0.0f);
      }
    }
  const float* a = p.A.a + i;
  const float* b = p.b + j;
  for (int64_t k = 0; k < depth; ++k, a += a_col, b += ldb) {
    V ak[RowVectors];
#pragma GCC unroll 16
    for (int64_t v = 0; v < RowVectors; ++v) ak[v] = load<V>(a + v * L);
#pragma GCC unroll 16
    for (int64_t col = 0; col < Columns; ++col) {
      const float bk = b[col];
#pragma GCC unroll 16
      for (int64_t v = 0; v < RowVectors; ++v) acc[col][v] += ak[v] * bk;
    }
  }
#pragma GCC unroll 16
  for (int64_t col = 0; col < Columns; ++col)
#pragma GCC unroll 16
    for (int64_t v = 0; v < RowVectors; ++v) {
      store(lanes, acc[col][v]);
      for (int64_t l = 0; l < L; ++l) c[(v * L + l) * ldc + col] = lanes[l];
    }
}

// The same tile with `columns` <= Columns columns: the last one of a row block.
template <int64_t RowVectors, int64_t Columns>
void row_lanes_tile_of_columns(int64_t columns, const Product& p, int64_t i, int64_t j, int64_t depth,
                               bool accumulate) {
  if constexpr (Columns > 1) {
    if (columns < Columns)
      return row_lanes_tile_of_columns<RowVectors, Columns - 1>(columns, p, i, j, depth, accumulate);
  }
  row_lanes_tile<RowVectors, Columns>(p, i, j, depth, accumulate);
}

// Rows [0, whole blocks of kRowLaneRows) of every column; returns where they end.
int64_t row_lanes_product(int64_t M, int64_t N, int64_t K, const Product& p, bool accumulate) {
  const int64_t rows = M - M % kRowLaneRows;
  // K = 0 still writes the start (bias or zero) once.
  for (int64_t k0 = 0; k0 < std::max<int64_t>(K, 1); k0 += kRowLaneDepth) {
    const int64_t depth = std::min(kRowLaneDepth, K - k0);
    Product block = p;
    block.A.a += k0 * p.A.column_stride;
    block.b += k0 * p.ldb;
    for (int64_t i = 0; i < rows; i += kRowLaneRows)
      for (int64_t j = 0; j < N; j += kRowLaneColumns)
        row_lanes_tile_of_columns<kRowLaneVectors, kRowLaneColumns>(std::min(kRowLaneColumns, N - j), block, i, j,
                                                                    depth, accumulate || k0 > 0);
  }
  return rows;
}

// Columns [0, N) of C over one block of K (p at the block's first k and
// column): the wide tiles, then the columns left of their multiple.
void block_strips(int64_t M, int64_t N, const Product& p, int64_t depth, bool onto_c) {
  const bool even_rows = kWideRows % kEvenRows != 0 && M % kWideRows != 0 && M % kEvenRows == 0;
  const int64_t wide_end = N - N % kWideColumns;
  const int64_t register_end = N - (N - wide_end) % kRegisterFloats;
  const int64_t half_end = N - (N - register_end) % kHalfColumns;
  if (even_rows)
    strip<kEvenRows, 2, kRegisterFloats>(M, 0, wide_end, p, depth, onto_c);
  else
    strip<kWideRows, 2, kRegisterFloats>(M, 0, wide_end, p, depth, onto_c);
  strip<kNarrowRows, 1, kRegisterFloats>(M, wide_end, register_end, p, depth, onto_c);
  if constexpr (kRegisterFloats > kHalfColumns)
    strip<kNarrowRows, 1, kHalfColumns>(M, register_end, half_end, p, depth, onto_c);
  // The last < 8 columns one at a time, through the same tile code, so that
  // they are rounded as the vector columns are (a plain scalar loop was not
  // contracted into FMAs, and a column's bits then depended on where a
  // caller's split put it).
  strip<kNarrowRows, 1, 1>(M, half_end, N, p, depth, onto_c);
}

// Copies, so that the tiles read what they reuse from nearby addresses. At
// s16's widths a row of B or a column of A^T is 1.5-6 KB from the next, and a
// tile that touched a new page at every k ran at half OpenBLAS's rate (s16's
// fc2 weight gradient at width 48: 31 GFLOP/s, 51 with the copies, one
// thread); the copies change no value and no order of the sums, so the bits
// are the same. Tiny's rows (at most 1 KB apart) are read in place: copying
// them cost more than it saved.
// - B: a block (kDepthBlock x kColumnBlock at most) whose rows are more than
//   kColumnBlock floats apart is copied to rows of its own width.
// - A with unit row stride (a weight gradient's x^T, A(i, k) = x[k * ldx +
//   i]): a panel of kPanelRows rows by the block's depth, the panel's values
//   for one k side by side, a whole number of every row tile's height.
constexpr int64_t kPanelRows = std::lcm(std::lcm(kWideRows, kNarrowRows), kEvenRows);

}  // namespace

void small_gemm(int64_t M, int64_t N, int64_t K, StridedMatrix A, const float* b, int64_t ldb, const float* bias,
                bool accumulate, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (A.row_stride == 1 && N < kRegisterFloats) {
    const int64_t done = row_lanes_product(M, N, K, Product{A, b, ldb, bias, C, ldc}, accumulate);
    // Rows left below a whole block take the row tiles.
    A.a += done;
    C += done * ldc;
    M -= done;
    if (M == 0) return;
  }
  const bool copy_a = A.row_stride == 1 && A.column_stride > kColumnBlock;
  const bool copy_b = ldb > kColumnBlock;
  // Kept: a training step allocates only on its first run.
  thread_local std::vector<float> a_panel(kPanelRows * kDepthBlock), b_block(kDepthBlock * kColumnBlock);
  // K = 0 still writes the start (bias or zero) once.
  for (int64_t k0 = 0; k0 < std::max<int64_t>(K, 1); k0 += kDepthBlock) {
    const int64_t depth = std::min(kDepthBlock, K - k0);
    const bool onto_c = accumulate || k0 > 0;
    for (int64_t j0 = 0; j0 < N; j0 += kColumnBlock) {
      const int64_t width = std::min(kColumnBlock, N - j0);
      Product p{StridedMatrix{A.a + k0 * A.column_stride, A.row_stride, A.column_stride},
                b + k0 * ldb + j0,
                ldb,
                bias ? bias + j0 : nullptr,
                C + j0,
                ldc};
      if (copy_b) {
        for (int64_t k = 0; k < depth; ++k) std::copy(p.b + k * ldb, p.b + k * ldb + width, b_block.data() + k * width);
        p.b = b_block.data();
        p.ldb = width;
      }
      if (!copy_a) {
        block_strips(M, width, p, depth, onto_c);
        continue;
      }
      for (int64_t i0 = 0; i0 < M; i0 += kPanelRows) {
        const int64_t rows = std::min(kPanelRows, M - i0);
        for (int64_t k = 0; k < depth; ++k) {
          const float* column = A.a + i0 + (k0 + k) * A.column_stride;
          std::copy(column, column + rows, a_panel.data() + k * rows);
        }
        Product panel = p;
        panel.A = StridedMatrix{a_panel.data(), 1, rows};
        panel.c = p.c + i0 * ldc;
        block_strips(rows, width, panel, depth, onto_c);
      }
    }
  }
}

void small_gemm_bt(int64_t M, int64_t N, int64_t K, StridedMatrix A, const float* bt, int64_t ldbt, const float* bias,
                   bool accumulate, float* C, int64_t ldc) {
  // Packed in blocks of kColumnBlock columns, each [K, block width]: rows at
  // most kColumnBlock floats apart, which small_gemm then reads in place (a
  // [K, N] packing of s16's 1536 columns was copied a second time there).
  thread_local std::vector<float> packed;  // kept: a training step allocates only on its first run
  if (packed.size() < static_cast<size_t>(K * N)) packed.resize(K * N);
  for (int64_t j0 = 0; j0 < N; j0 += kColumnBlock) {
    const int64_t width = std::min(kColumnBlock, N - j0);
    float* block = packed.data() + j0 * K;
    for (int64_t j = 0; j < width; ++j)
      for (int64_t k = 0; k < K; ++k) block[k * width + j] = bt[(j0 + j) * ldbt + k];
    small_gemm(M, width, K, A, block, width, bias ? bias + j0 : nullptr, accumulate, C + j0, ldc);
  }
}

}  // namespace mone
