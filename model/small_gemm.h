// Internal: a single-threaded float GEMM for the nested projections, whose
// products have one short dimension (an expert's width: K = 8 or 16 in the
// small experts' forward, N = 8 or 16 in their fc2 and out-projection) and
// one of a few hundred.
//
// OpenBLAS packs both operands into panels sized for large products on every
// call; at K = 8 the packing costs about as much as the arithmetic, and the
// small experts' projections ran at half the large ones' GFLOP/s. Here B is
// read in place (its rows are contiguous), A element by element through two
// strides (so the weight gradients' A^T needs no copy), and C is computed in
// tiles of a few rows by two vectors held in registers, over blocks of 256 of
// the reduction dimension; only operands whose rows lie more than 1 KB apart
// (s16's widths) are copied, a block at a time, so that a tile does not touch
// a new page at every k. Each element of C is summed in k order from the
// start, whichever kernel computes it: results do not depend on how a caller
// splits C between threads.
#pragma once

#include <cstdint>

namespace mone {

// A(i, k) = a[i * a_row + k * a_col], any strides.
struct StridedMatrix {
  const float* a;
  int64_t row_stride, column_stride;
};

// C[M, N] = start + A[M, K] B[K, N], B(k, j) = b[k * ldb + j], C row-major
// with leading dimension ldc. start is C itself when accumulate, else the
// row vector bias[N] broadcast over the rows (zero when bias is null).
void small_gemm(int64_t M, int64_t N, int64_t K, StridedMatrix A, const float* b, int64_t ldb, const float* bias,
                bool accumulate, float* C, int64_t ldc);

// The same with B given transposed: B(k, j) = bt[j * ldbt + k]. B is copied
// into the calling thread's buffer first (K * N floats: the weights of one
// expert, small next to the product).
void small_gemm_bt(int64_t M, int64_t N, int64_t K, StridedMatrix A, const float* bt, int64_t ldbt,
                   const float* bias, bool accumulate, float* C, int64_t ldc);

}  // namespace mone
