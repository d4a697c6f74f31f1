// The router, Expert Preferred Routing, and the token permutation into the
// expert-sorted layout.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "model/ops.h"
#include "model/row_reduce.h"

namespace mone {

template <class T>
void router_forward(const T* x, int64_t M, int64_t D, const T* W, const T* b, int64_t E, T* probs) {
  linear_forward(x, D, M, D, W, E, b, E, probs, E);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    T* p = probs + i * E;
    const T top = *std::max_element(p, p + E);
    T sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += p[e] = std::exp(p[e] - top);
    for (int64_t e = 0; e < E; ++e) p[e] /= sum;
  }
}

template <class T>
void router_backward(const T* dprobs, const T* probs, const T* x, int64_t M, int64_t D, const T* W, int64_t E,
                     T* dx, T* dW, T* db) {
  // Softmax backward to the logits, then the linear layer.
  thread_local std::vector<T> dlogit_buffer;  // the calling thread's; workers get the pointer
  if (dlogit_buffer.size() < static_cast<size_t>(M * E)) dlogit_buffer.resize(M * E);
  T* dlogits = dlogit_buffer.data();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    const T* p = probs + i * E;
    const T* g = dprobs + i * E;
    T dot = 0;
    for (int64_t e = 0; e < E; ++e) dot += p[e] * g[e];
    for (int64_t e = 0; e < E; ++e) dlogits[i * E + e] = p[e] * (g[e] - dot);
  }
  gemm<T>(false, true, M, D, E, T(1), dlogits, E, W, E, T(1), dx, D);  // adds into dx
  gemm<T>(true, false, D, E, M, T(1), x, D, dlogits, E, T(1), dW, E);
  add_column_sums(dlogits, E, M, E, db);
}

template <class T>
void expert_preferred_routing(const T* probs, int64_t B, int64_t N, int64_t E,
                              const std::vector<int64_t>& tokens_per_expert, int32_t* expert_of_token) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    int32_t* expert = expert_of_token + b * N;
    std::fill(expert, expert + N, 0);  // everyone starts at expert 1
    thread_local std::vector<int32_t> candidates;
    candidates.resize(N);
    for (int64_t j = E - 1; j >= 1; --j) {
      const int64_t k = tokens_per_expert[j];
      if (k == 0) continue;
      // Unassigned tokens only: assigned ones are masked out, never re-picked.
      int64_t count = 0;
      for (int64_t n = 0; n < N; ++n)
        if (expert[n] == 0) candidates[count++] = static_cast<int32_t>(n);
      const T* p = probs + b * N * E;
      // Highest probability first; equal probabilities: lower token index first.
      std::partial_sort(candidates.begin(), candidates.begin() + k, candidates.begin() + count,
                        [&](int32_t u, int32_t v) {
                          const T pu = p[u * E + j], pv = p[v * E + j];
                          return pu > pv || (pu == pv && u < v);
                        });
      for (int64_t t = 0; t < k; ++t) expert[candidates[t]] = static_cast<int32_t>(j);
    }
  }
}

void expert_sorted_order(const int32_t* expert_of_token, int64_t B, int64_t N, int64_t E, int32_t* source_of_row) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    int64_t slot = 0;
    for (int64_t e = E - 1; e >= 0; --e)
      for (int64_t n = 0; n < N; ++n)
        if (expert_of_token[b * N + n] == e) source_of_row[slot++ * B + b] = static_cast<int32_t>(b * N + n);
  }
}

std::vector<ExpertGroup> expert_groups(const std::vector<int64_t>& tokens_per_expert,
                                       const std::vector<int64_t>& expert_widths, int64_t B) {
  std::vector<ExpertGroup> groups;
  int64_t row = 0;
  for (int64_t j = static_cast<int64_t>(tokens_per_expert.size()) - 1; j >= 0; --j) {
    if (tokens_per_expert[j] == 0) continue;
    groups.push_back({row, tokens_per_expert[j] * B, expert_widths[j]});
    row += tokens_per_expert[j] * B;
  }
  return groups;
}

template <class T>
void permute_tokens_forward(const T* src, const int32_t* source_of_row, int64_t rows, int64_t D, T* dst) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) std::copy(src + source_of_row[r] * D, src + (source_of_row[r] + 1) * D, dst + r * D);
}

template <class T>
void permute_tokens_backward(const T* ddst, const int32_t* source_of_row, int64_t rows, int64_t D, T* dsrc) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) std::copy(ddst + r * D, ddst + (r + 1) * D, dsrc + source_of_row[r] * D);
}

template <class T>
void gather_chosen_probability(const T* probs, const int32_t* expert_of_token, const int32_t* source_of_row,
                               int64_t rows, int64_t E, T* chosen) {
  for (int64_t row = 0; row < rows; ++row) {
    const int32_t src = source_of_row[row];
    chosen[row] = probs[src * E + expert_of_token[src]];
  }
}

template <class T>
void scatter_chosen_probability(const T* dchosen, const int32_t* expert_of_token, const int32_t* source_of_row,
                                int64_t rows, int64_t E, T* dprobs) {
  std::fill(dprobs, dprobs + rows * E, T(0));
  for (int64_t row = 0; row < rows; ++row) {
    const int32_t src = source_of_row[row];
    dprobs[src * E + expert_of_token[src]] = dchosen[row];
  }
}

#define MONE_INSTANTIATE(T)                                                                                    \
  template void router_forward<T>(const T*, int64_t, int64_t, const T*, const T*, int64_t, T*);                \
  template void router_backward<T>(const T*, const T*, const T*, int64_t, int64_t, const T*, int64_t, T*, T*,  \
                                   T*);                                                                        \
  template void expert_preferred_routing<T>(const T*, int64_t, int64_t, int64_t, const std::vector<int64_t>&,  \
                                            int32_t*);                                                         \
  template void permute_tokens_forward<T>(const T*, const int32_t*, int64_t, int64_t, T*);                     \
  template void permute_tokens_backward<T>(const T*, const int32_t*, int64_t, int64_t, T*);                    \
  template void gather_chosen_probability<T>(const T*, const int32_t*, const int32_t*, int64_t, int64_t, T*);   \
  template void scatter_chosen_probability<T>(const T*, const int32_t*, const int32_t*, int64_t, int64_t, T*);
MONE_INSTANTIATE(float)
MONE_INSTANTIATE(double)
#undef MONE_INSTANTIATE

}  // namespace mone
