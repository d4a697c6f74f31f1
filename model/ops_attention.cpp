// Multi-head self-attention at full width, bidirectional, over the N tokens
// of each image wherever the layout puts them. One (image, head) pair per
// task; its Q, K, V are read in place through the GEMM leading dimension
// (token_stride rows apart), so the expert-sorted layout needs no gather.
// Inside the parallel loop OpenBLAS (OpenMP build) runs single-threaded.
#include <algorithm>
#include <cmath>
#include <vector>

#include "model/fast_math.h"
#include "model/lane_reduce.h"
#include "model/ops.h"

namespace mone {

namespace {
// Row-wise softmax of n x n scores in place.
template <class T>
void softmax_rows(T* s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    T* row = s + i * n;
    const T top = lane_max(row, n);
    for (int64_t j = 0; j < n; ++j) row[j] = fast_exp(row[j] - top);
    const T inverse = T(1) / lane_sum(row, n);
    for (int64_t j = 0; j < n; ++j) row[j] *= inverse;
  }
}
}  // namespace

template <class T>
void attention_forward(const T* qkv, const TokenLayout& layout, int64_t heads, int64_t D, T* out, T* probs) {
  const HeadView view = HeadView::of(layout, heads, D);
  const int64_t N = view.tokens, hd = view.head_dim;
  const int64_t ld_qkv = view.token_pitch(3 * D), ld_out = view.token_pitch(D);
  const T scale = T(1) / std::sqrt(T(hd));
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < view.images * heads; ++task) {
    const int64_t b = task / heads, h = task % heads;
    const T* q = qkv + view.offset(b, 0, h, 3 * D);
    const T* k = q + D;
    const T* v = q + 2 * D;
    T* p = probs + task * N * N;
    gemm<T>(false, true, N, N, hd, scale, q, ld_qkv, k, ld_qkv, T(0), p, N);
    softmax_rows(p, N);
    gemm<T>(false, false, N, hd, N, T(1), p, N, v, ld_qkv, T(0), out + view.offset(b, 0, h, D), ld_out);
  }
}

template <class T>
void attention_backward(const T* dout, const T* qkv, const T* probs, const TokenLayout& layout, int64_t heads,
                        int64_t D, T* dqkv) {
  const HeadView view = HeadView::of(layout, heads, D);
  const int64_t N = view.tokens, hd = view.head_dim;
  const int64_t ld_qkv = view.token_pitch(3 * D), ld_out = view.token_pitch(D);
  const T scale = T(1) / std::sqrt(T(hd));
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < view.images * heads; ++task) {
    const int64_t b = task / heads, h = task % heads;
    thread_local std::vector<T> score_grad;  // per worker thread, kept between calls
    if (score_grad.size() < static_cast<size_t>(N * N)) score_grad.resize(N * N);
    T* ds = score_grad.data();
    const int64_t offset = view.offset(b, 0, h, 3 * D);
    const T *q = qkv + offset, *k = q + D, *v = q + 2 * D;
    T *dq = dqkv + offset, *dk = dq + D, *dv = dq + 2 * D;
    const T* go = dout + view.offset(b, 0, h, D);
    const T* p = probs + task * N * N;
    gemm<T>(false, true, N, N, hd, T(1), go, ld_out, v, ld_qkv, T(0), ds, N);  // dP = dO V^T
    gemm<T>(true, false, N, hd, N, T(1), p, N, go, ld_out, T(0), dv, ld_qkv);   // dV = P^T dO
    for (int64_t i = 0; i < N; ++i) {  // softmax backward: dS = P (dP - <P, dP>)
      const T* pr = p + i * N;
      T* row = ds + i * N;
      const T dot = lane_dot(pr, row, N);
      for (int64_t j = 0; j < N; ++j) row[j] = pr[j] * (row[j] - dot);
    }
    gemm<T>(false, false, N, hd, N, scale, ds, N, k, ld_qkv, T(0), dq, ld_qkv);  // dQ = s dS K
    gemm<T>(true, false, N, hd, N, scale, ds, N, q, ld_qkv, T(0), dk, ld_qkv);   // dK = s dS^T Q
  }
}

template void attention_forward<float>(const float*, const TokenLayout&, int64_t, int64_t, float*, float*);
template void attention_forward<double>(const double*, const TokenLayout&, int64_t, int64_t, double*, double*);
template void attention_backward<float>(const float*, const float*, const float*, const TokenLayout&, int64_t,
                                        int64_t, float*);
template void attention_backward<double>(const double*, const double*, const double*, const TokenLayout&, int64_t,
                                         int64_t, double*);

}  // namespace mone
