// Mobile V-MoE's per-image top-k, the image-sorted dispatch and combine, and
// the super-class loss (model/ops_moe.h).
#include "model/ops_moe.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace mone {

template <class T>
void image_top_k_forward(const T* probs, int64_t B, int64_t E, int64_t k, int32_t* expert_of_slot,
                         T* weight_of_slot) {
  std::vector<int32_t> order(static_cast<size_t>(E));
  for (int64_t b = 0; b < B; ++b) {
    const T* p = probs + b * E;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t u, int32_t v) { return p[u] > p[v] || (p[u] == p[v] && u < v); });
    T chosen = 0;
    for (int64_t s = 0; s < k; ++s) chosen += p[order[s]];
    for (int64_t s = 0; s < k; ++s) {
      expert_of_slot[b * k + s] = order[s];
      weight_of_slot[b * k + s] = p[order[s]] / chosen;
    }
  }
}

template <class T>
void image_top_k_backward(const T* dweight, const T* probs, const int32_t* expert_of_slot, int64_t B, int64_t E,
                          int64_t k, T* dprobs) {
  std::fill(dprobs, dprobs + B * E, T(0));
  for (int64_t b = 0; b < B; ++b) {
    const T* p = probs + b * E;
    const int32_t* e = expert_of_slot + b * k;
    const T* g = dweight + b * k;
    T chosen = 0;
    for (int64_t s = 0; s < k; ++s) chosen += p[e[s]];
    // w_s = p_s / S: dp_j = (g_j - sum_s g_s w_s) / S.
    T mean = 0;
    for (int64_t s = 0; s < k; ++s) mean += g[s] * p[e[s]] / chosen;
    for (int64_t s = 0; s < k; ++s) dprobs[b * E + e[s]] = (g[s] - mean) / chosen;
  }
}

ImageDispatch image_sorted_dispatch(const int32_t* expert_of_slot, int64_t B, int64_t k, int64_t E, int64_t N,
                                    int64_t D) {
  const int64_t slots = B * k;
  ImageDispatch dispatch;
  // The B*k slots as the tokens of one image: MoNE's order puts them by
  // expert, largest first, then by index, at row `position`.
  std::vector<int32_t> slot_at(static_cast<size_t>(slots));
  expert_sorted_order(expert_of_slot, 1, slots, E, slot_at.data());
  dispatch.position_of_slot.resize(static_cast<size_t>(slots));
  for (int64_t position = 0; position < slots; ++position) dispatch.position_of_slot[slot_at[position]] = position;
  dispatch.slots_per_expert.assign(static_cast<size_t>(E), 0);
  for (int64_t s = 0; s < slots; ++s) ++dispatch.slots_per_expert[expert_of_slot[s]];
  dispatch.groups = expert_groups(dispatch.slots_per_expert, std::vector<int64_t>(static_cast<size_t>(E), D), N);
  for (int64_t e = E - 1; e >= 0; --e)  // expert_groups' order
    if (dispatch.slots_per_expert[e] > 0) dispatch.expert_of_group.push_back(e);
  return dispatch;
}

template <class T>
void moe_dispatch_forward(const T* x, const int32_t* position_of_slot, int64_t B, int64_t k, int64_t N, int64_t D,
                          T* out) {
#pragma omp parallel for schedule(static)
  for (int64_t slot = 0; slot < B * k; ++slot) {
    const T* image = x + (slot / k) * N * D;
    std::copy(image, image + N * D, out + position_of_slot[slot] * N * D);
  }
}

template <class T>
void moe_dispatch_backward(const T* dout, const int32_t* position_of_slot, int64_t B, int64_t k, int64_t N,
                           int64_t D, T* dx) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    T* image = dx + b * N * D;
    const T* first = dout + position_of_slot[b * k] * N * D;
    std::copy(first, first + N * D, image);
    for (int64_t s = 1; s < k; ++s) {
      const T* more = dout + position_of_slot[b * k + s] * N * D;
      for (int64_t i = 0; i < N * D; ++i) image[i] += more[i];
    }
  }
}

template <class T>
void moe_combine_forward(const T* z, const T* y, const T* weight_of_slot, const int32_t* position_of_slot, int64_t B,
                         int64_t k, int64_t N, int64_t D, T* out) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = 0; i < N * D; ++i) {
      T sum = z[b * N * D + i];
      for (int64_t s = 0; s < k; ++s)
        sum += weight_of_slot[b * k + s] * y[position_of_slot[b * k + s] * N * D + i];
      out[b * N * D + i] = sum;
    }
  }
}

template <class T>
void moe_combine_backward(const T* dout, const T* y, const T* weight_of_slot, const int32_t* position_of_slot,
                          int64_t B, int64_t k, int64_t N, int64_t D, T* dy, T* dweight) {
#pragma omp parallel for schedule(static)
  for (int64_t slot = 0; slot < B * k; ++slot) {
    const T* g = dout + (slot / k) * N * D;
    const int64_t rows = position_of_slot[slot] * N * D;
    const T w = weight_of_slot[slot];
    T dot = 0;
    for (int64_t i = 0; i < N * D; ++i) {
      dy[rows + i] = w * g[i];
      dot += g[i] * y[rows + i];
    }
    dweight[slot] += dot;
  }
}

template <class T>
T superclass_loss_forward(const T* probs, const int32_t* superclass, int64_t B, int64_t E) {
  T sum = 0;
  for (int64_t b = 0; b < B; ++b) sum -= std::log(probs[b * E + superclass[b]]);
  return sum / static_cast<T>(B);
}

template <class T>
void superclass_loss_backward(const T* probs, const int32_t* superclass, int64_t B, int64_t E, T weight, T* dprobs) {
  for (int64_t b = 0; b < B; ++b) {
    const int64_t i = b * E + superclass[b];
    dprobs[i] -= weight / (static_cast<T>(B) * probs[i]);
  }
}

#define MONE_INSTANTIATE(T)                                                                                        \
  template void image_top_k_forward<T>(const T*, int64_t, int64_t, int64_t, int32_t*, T*);                         \
  template void image_top_k_backward<T>(const T*, const T*, const int32_t*, int64_t, int64_t, int64_t, T*);        \
  template void moe_dispatch_forward<T>(const T*, const int32_t*, int64_t, int64_t, int64_t, int64_t, T*);         \
  template void moe_dispatch_backward<T>(const T*, const int32_t*, int64_t, int64_t, int64_t, int64_t, T*);        \
  template void moe_combine_forward<T>(const T*, const T*, const T*, const int32_t*, int64_t, int64_t, int64_t,    \
                                       int64_t, T*);                                                               \
  template void moe_combine_backward<T>(const T*, const T*, const T*, const int32_t*, int64_t, int64_t, int64_t,   \
                                        int64_t, T*, T*);                                                          \
  template T superclass_loss_forward<T>(const T*, const int32_t*, int64_t, int64_t);                               \
  template void superclass_loss_backward<T>(const T*, const int32_t*, int64_t, int64_t, T, T*);
MONE_INSTANTIATE(float)
MONE_INSTANTIATE(double)
#undef MONE_INSTANTIATE

}  // namespace mone
