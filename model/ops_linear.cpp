// Linear layers: plain, patch embedding, and the nested in/out projections
// that implement the experts as slices of one dense weight.
#include <algorithm>

#include <omp.h>

#include "model/ops.h"
#include "model/row_reduce.h"
#include "model/small_gemm.h"

namespace mone {

template <class T>
void linear_forward(const T* x, int64_t ldx, int64_t M, int64_t in, const T* W, int64_t ldw, const T* b,
                    int64_t out, T* y, int64_t ldy) {
  if (M == 0) return;
  // Bias first, then the GEMM accumulates onto it: one pass over y.
#pragma omp parallel for schedule(static) if (M * out > 65536)
  for (int64_t i = 0; i < M; ++i) {
    T* row = y + i * ldy;
    if (b)
      std::copy(b, b + out, row);
    else
      std::fill(row, row + out, T(0));
  }
  gemm<T>(false, false, M, out, in, T(1), x, ldx, W, ldw, T(1), y, ldy);
}

template <class T>
void linear_backward(const T* dy, int64_t ldy, const T* x, int64_t ldx, int64_t M, int64_t in, const T* W,
                     int64_t ldw, int64_t out, T* dx, int64_t lddx, T* dW, T* db) {
  if (M == 0) {
    return;
  }
  if (dx) gemm<T>(false, true, M, in, out, T(1), dy, ldy, W, ldw, T(0), dx, lddx);
  gemm<T>(true, false, in, out, M, T(1), x, ldx, dy, ldy, T(1), dW, ldw);
  if (db) add_column_sums(dy, ldy, M, out, db);
}

template <class T>
void patchify(const T* images, int64_t B, int64_t H, int64_t W, int64_t C, int64_t P, T* patches) {
  const int64_t grid_h = H / P, grid_w = W / P, N = grid_h * grid_w, patch_dim = P * P * C;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t n = 0; n < N; ++n) {
      const int64_t top = (n / grid_w) * P, left = (n % grid_w) * P;
      T* dst = patches + (b * N + n) * patch_dim;
      for (int64_t iy = 0; iy < P; ++iy) {
        const T* src = images + ((b * H + top + iy) * W + left) * C;
        std::copy(src, src + P * C, dst + iy * P * C);  // a patch row is contiguous in NHWC
      }
    }
  }
}

template <class T>
void patch_embed_forward(const T* patches, int64_t rows, int64_t patch_dim, const T* weight, const T* bias,
                         int64_t D, T* out) {
  linear_forward(patches, patch_dim, rows, patch_dim, weight, D, bias, D, out, D);
}

template <class T>
void patch_embed_backward(const T* dout, const T* patches, int64_t rows, int64_t patch_dim, int64_t D,
                          T* dweight, T* dbias) {
  linear_backward<T>(dout, D, patches, patch_dim, rows, patch_dim, nullptr, D, D, nullptr, 0, dweight, dbias);
}

// The nested projections run each expert group's GEMM on every thread, in one
// parallel region per op: thread t takes its share of each group's rows (the
// outputs and dx), or of the shared weight gradient's columns or rows (dW, db:
// accumulated over the groups in their fixed order). Splitting GEMM by GEMM
// instead woke the threads twice per group and per product (a bias fill and
// the GEMM), and each wake-up is a barrier: on a machine whose other core is
// busy, every one of them waits for a thread that is not running. No share
// spans a GEMM's reduction dimension, so each element is summed as in one call.
namespace {
// Below this many multiply-adds in the whole op one thread is faster than waking others.
constexpr double kNestedParallelWork = 1 << 18;

// Runs work(t, threads) on each thread of one parallel region (one thread when
// nested in another region or when the op is small).
template <class Work>
void on_threads(double macs, Work work) {
  const int threads = omp_in_parallel() || macs < kNestedParallelWork ? 1 : omp_get_max_threads();
  if (threads == 1) return work(0, 1);
#pragma omp parallel num_threads(threads)
  work(omp_get_thread_num(), omp_get_num_threads());
}

// Thread t's part [begin, end) of n items.
struct Share {
  int64_t begin, end;
  int64_t count() const { return end - begin; }
};
Share share(int64_t n, int t, int threads) {
  const int64_t per = (n + threads - 1) / threads;
  return {std::min(n, t * per), std::min(n, (t + 1) * per)};
}


// One thread's product in a nested op, C = start + A B, start being C itself
// (accumulate) or the bias row (zero without one). A(i, k) = a[i * a_row +
// k * a_col]; B(k, j) = b[k * ldb + j], or b[j * ldb + k] when b_transposed.
// Float takes the register-tiled kernel of model/small_gemm.h, built for the
// experts' narrow shapes; double takes BLAS, the reference the gradient tests
// compare with.
void product(int64_t M, int64_t N, int64_t K, const float* a, int64_t a_row, int64_t a_col, bool b_transposed,
             const float* b, int64_t ldb, const float* bias, bool accumulate, float* c, int64_t ldc) {
  const StridedMatrix A{a, a_row, a_col};
  if (b_transposed)
    small_gemm_bt(M, N, K, A, b, ldb, bias, accumulate, c, ldc);
  else
    small_gemm(M, N, K, A, b, ldb, bias, accumulate, c, ldc);
}
void product(int64_t M, int64_t N, int64_t K, const double* a, int64_t a_row, int64_t a_col, bool b_transposed,
             const double* b, int64_t ldb, const double* bias, bool accumulate, double* c, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (!accumulate)
    for (int64_t i = 0; i < M; ++i) {
      double* row = c + i * ldc;
      if (bias)
        std::copy(bias, bias + N, row);
      else
        std::fill(row, row + N, 0.0);
    }
  const bool a_transposed = a_col != 1;
  gemm<double>(a_transposed, b_transposed, M, N, K, 1.0, a, a_transposed ? a_col : a_row, b, ldb, 1.0, c, ldc);
}
}  // namespace

template <class T>
void nested_in_forward(const T* x, int64_t ldx, const std::vector<ExpertGroup>& groups, const T* W, const T* b,
                       int64_t out, T* y) {
  on_threads(group_macs(groups, double(out)), [&](int t, int threads) {
    for (const ExpertGroup& g : groups) {
      const Share rows = share(g.rows, t, threads);
      const int64_t first = g.row_begin + rows.begin;
      product(rows.count(), out, g.width, x + first * ldx, ldx, 1, false, W, out, b, false, y + first * out, out);
    }
  });
}

template <class T>
void nested_in_backward(const T* dy, const T* x, int64_t ldx, const std::vector<ExpertGroup>& groups, const T* W,
                        int64_t out, T* dx, T* dW, T* db) {
  on_threads(group_macs(groups, 2.0 * out), [&](int t, int threads) {
    const Share columns = share(out, t, threads);  // of dW and db
    for (const ExpertGroup& g : groups) {
      const Share rows = share(g.rows, t, threads);
      const int64_t first = g.row_begin + rows.begin;
      // dx = dy W_g^T, W_g being the first g.width rows of W.
      product(rows.count(), g.width, out, dy + first * out, out, 1, true, W, out, nullptr, false, dx + first * ldx,
              ldx);
      for (int64_t i = first; i < first + rows.count(); ++i) std::fill(dx + i * ldx + g.width, dx + (i + 1) * ldx, T(0));
      if (g.rows == 0 || columns.count() == 0) continue;
      // dW_g += x_g^T dy_g, this thread's columns.
      const T* dy_g = dy + g.row_begin * out + columns.begin;
      product(g.width, columns.count(), g.rows, x + g.row_begin * ldx, 1, ldx, false, dy_g, out, nullptr, true,
              dW + columns.begin, out);
      if (db) add_column_sums(dy_g, out, g.rows, columns.count(), db + columns.begin);
    }
  });
}

template <class T>
void nested_out_forward(const T* x, int64_t in, const std::vector<ExpertGroup>& groups, const T* W, const T* b,
                        int64_t out, T* y) {
  on_threads(group_macs(groups, double(in)), [&](int t, int threads) {
    for (const ExpertGroup& g : groups) {
      const Share rows = share(g.rows, t, threads);
      const int64_t first = g.row_begin + rows.begin;
      product(rows.count(), g.width, in, x + first * in, in, 1, false, W, out, b, false, y + first * out, out);
      // Channels beyond the expert's width are not updated.
      for (int64_t i = first; i < first + rows.count(); ++i) std::fill(y + i * out + g.width, y + (i + 1) * out, T(0));
    }
  });
}

template <class T>
void nested_out_backward(const T* dy, const T* x, int64_t in, const std::vector<ExpertGroup>& groups, const T* W,
                         int64_t out, T* dx, T* dW, T* db) {
  on_threads(group_macs(groups, 2.0 * in), [&](int t, int threads) {
    const Share w_rows = share(in, t, threads);  // of dW
    // Of db: the same columns for every group, as threads do not wait for each
    // other between groups (a share of each group's own width let two threads
    // add into one column at once).
    const Share columns = share(out, t, threads);
    for (const ExpertGroup& g : groups) {
      const Share rows = share(g.rows, t, threads);
      const int64_t first = g.row_begin + rows.begin;
      // dx = dy_g W_g^T, W_g being the first g.width columns of W.
      product(rows.count(), in, g.width, dy + first * out, out, 1, true, W, out, nullptr, false, dx + first * in, in);
      if (g.rows == 0) continue;
      // dW_g += x_g^T dy_g, this thread's rows of dW.
      const T* dy_g = dy + g.row_begin * out;
      if (w_rows.count() > 0)
        product(w_rows.count(), g.width, g.rows, x + g.row_begin * in + w_rows.begin, 1, in, false, dy_g, out,
                nullptr, true, dW + w_rows.begin * out, out);
      const int64_t db_end = std::min(columns.end, g.width);  // the group updates its first g.width columns
      if (db && db_end > columns.begin)
        add_column_sums(dy_g + columns.begin, out, g.rows, db_end - columns.begin, db + columns.begin);
    }
  });
}

template <class T>
void nested_in_gelu_forward(const T* x, int64_t ldx, const std::vector<ExpertGroup>& groups, const T* W,
                            const T* b, int64_t out, T* pre, T* y, Gelu kind) {
  nested_in_forward(x, ldx, groups, W, b, out, pre);
  gelu_forward(pre, group_rows(groups) * out, y, kind);
}

template <class T>
void gelu_nested_out_backward(const T* dy, const T* x, const T* pre, int64_t in,
                              const std::vector<ExpertGroup>& groups, const T* W, int64_t out, T* dpre, T* dW,
                              T* db, Gelu kind) {
  nested_out_backward(dy, x, in, groups, W, out, dpre, dW, db);
  gelu_backward(dpre, pre, group_rows(groups) * in, dpre, kind);
}

#define MONE_INSTANTIATE(T)                                                                                    \
  template void linear_forward<T>(const T*, int64_t, int64_t, int64_t, const T*, int64_t, const T*, int64_t, T*, \
                                  int64_t);                                                                    \
  template void linear_backward<T>(const T*, int64_t, const T*, int64_t, int64_t, int64_t, const T*, int64_t,  \
                                   int64_t, T*, int64_t, T*, T*);                                              \
  template void patchify<T>(const T*, int64_t, int64_t, int64_t, int64_t, int64_t, T*);                        \
  template void patch_embed_forward<T>(const T*, int64_t, int64_t, const T*, const T*, int64_t, T*);           \
  template void patch_embed_backward<T>(const T*, const T*, int64_t, int64_t, int64_t, T*, T*);                \
  template void nested_in_forward<T>(const T*, int64_t, const std::vector<ExpertGroup>&, const T*, const T*,   \
                                     int64_t, T*);                                                             \
  template void nested_in_backward<T>(const T*, const T*, int64_t, const std::vector<ExpertGroup>&, const T*,  \
                                      int64_t, T*, T*, T*);                                                    \
  template void nested_out_forward<T>(const T*, int64_t, const std::vector<ExpertGroup>&, const T*, const T*,  \
                                      int64_t, T*);                                                            \
  template void nested_out_backward<T>(const T*, const T*, int64_t, const std::vector<ExpertGroup>&, const T*, \
                                       int64_t, T*, T*, T*);                                                   \
  template void nested_in_gelu_forward<T>(const T*, int64_t, const std::vector<ExpertGroup>&, const T*,        \
                                          const T*, int64_t, T*, T*, Gelu);                                    \
  template void gelu_nested_out_backward<T>(const T*, const T*, const T*, int64_t,                             \
                                            const std::vector<ExpertGroup>&, const T*, int64_t, T*, T*, T*,    \
                                            Gelu);
MONE_INSTANTIATE(float)
MONE_INSTANTIATE(double)
#undef MONE_INSTANTIATE

}  // namespace mone
