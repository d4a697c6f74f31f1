// Linear layers: plain, patch embedding, and the nested in/out projections
// that implement the experts as slices of one dense weight.
#include <algorithm>

#include "model/ops.h"
#include "model/row_reduce.h"

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

template <class T>
void nested_in_forward(const T* x, int64_t ldx, const std::vector<ExpertGroup>& groups, const T* W, const T* b,
                       int64_t out, T* y) {
  for (const ExpertGroup& g : groups)
    linear_forward(x + g.row_begin * ldx, ldx, g.rows, g.width, W, out, b, out, y + g.row_begin * out, out);
}

template <class T>
void nested_in_backward(const T* dy, const T* x, int64_t ldx, const std::vector<ExpertGroup>& groups, const T* W,
                        int64_t out, T* dx, T* dW, T* db) {
  // Group by group in a fixed order: rows of W below the smallest width get
  // gradient from every expert, accumulated deterministically.
  for (const ExpertGroup& g : groups) {
    linear_backward(dy + g.row_begin * out, out, x + g.row_begin * ldx, ldx, g.rows, g.width, W, out, out,
                    dx + g.row_begin * ldx, ldx, dW, db);
    if (g.width < ldx) {
      for (int64_t i = g.row_begin; i < g.row_begin + g.rows; ++i)
        std::fill(dx + i * ldx + g.width, dx + (i + 1) * ldx, T(0));
    }
  }
}

template <class T>
void nested_out_forward(const T* x, int64_t in, const std::vector<ExpertGroup>& groups, const T* W, const T* b,
                        int64_t out, T* y) {
  for (const ExpertGroup& g : groups) {
    linear_forward(x + g.row_begin * in, in, g.rows, in, W, out, b, g.width, y + g.row_begin * out, out);
    if (g.width < out) {  // channels beyond the expert's width are not updated
      for (int64_t i = g.row_begin; i < g.row_begin + g.rows; ++i)
        std::fill(y + i * out + g.width, y + (i + 1) * out, T(0));
    }
  }
}

template <class T>
void nested_out_backward(const T* dy, const T* x, int64_t in, const std::vector<ExpertGroup>& groups, const T* W,
                         int64_t out, T* dx, T* dW, T* db) {
  for (const ExpertGroup& g : groups)
    linear_backward(dy + g.row_begin * out, out, x + g.row_begin * in, in, g.rows, in, W, out, g.width,
                    dx + g.row_begin * in, in, dW, db);
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
