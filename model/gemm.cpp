// GEMM through CBLAS, split across threads here rather than by OpenBLAS: the
// patch embedding, router, head, the reference attention and every product
// in double. (The float nested projections take model/small_gemm.h.)
//
// OpenBLAS divides small-K products (the small experts' K = 8 or 16) poorly
// between threads: on 2 threads the nested projections, when they still came
// here, gained almost nothing from the second core. So each call is cut into
// one block of C per thread,
// by rows of C or, when C has few rows (weight gradients of narrow experts),
// by columns; each block is one single-threaded CBLAS call (OpenBLAS's OpenMP
// build runs single-threaded inside a parallel region). No block spans the
// reduction dimension K, so every element of C is summed exactly as in a
// single call: results are deterministic for a given thread count.
//
// Without OpenBLAS (the model-only build on a GPU machine's image, see
// cmake/Dependencies.cmake) each block is a plain triple loop instead: slow,
// but it keeps the CPU reference, and so the CUDA tests, buildable anywhere.
#ifdef MONE_HAVE_OPENBLAS
#include <cblas.h>
#endif
#include <omp.h>

#include <algorithm>

#include "model/ops.h"

namespace mone {

namespace {
#ifdef MONE_HAVE_OPENBLAS
CBLAS_TRANSPOSE op(bool transpose) { return transpose ? CblasTrans : CblasNoTrans; }

void blas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, op(ta), op(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void blas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
          const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, op(ta), op(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
#else
template <class T>
void blas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      T sum = 0;
      for (int64_t k = 0; k < K; ++k)
        sum += (ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
      // beta = 0 must not read C: it may hold NaN (BLAS semantics).
      C[i * ldc + j] = alpha * sum + (beta == T(0) ? T(0) : beta * C[i * ldc + j]);
    }
}
#endif

// Below this many multiply-adds one thread is faster than waking others.
constexpr double kParallelWork = 1 << 18;
}  // namespace

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads == 1 || static_cast<double>(M) * N * K < kParallelWork) {
    blas(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const bool by_rows = M >= N || M >= 64 * threads;
  const int64_t extent = by_rows ? M : N;
  const int64_t block = (extent + threads - 1) / threads;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int t = 0; t < threads; ++t) {
    const int64_t begin = t * block, count = std::min(extent, begin + block) - begin;
    if (count <= 0) continue;
    if (by_rows) {  // rows [begin, begin + count) of C come from the same rows of op(A)
      const T* a = ta ? A + begin : A + begin * lda;
      blas(ta, tb, count, N, K, alpha, a, lda, B, ldb, beta, C + begin * ldc, ldc);
    } else {  // columns of C come from the same columns of op(B)
      const T* b = tb ? B + begin * ldb : B + begin;
      blas(ta, tb, M, count, K, alpha, A, lda, b, ldb, beta, C + begin, ldc);
    }
  }
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                          float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                           int64_t, double, double*, int64_t);

}  // namespace mone
