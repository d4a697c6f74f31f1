// Element-wise and small row-wise ops: position embedding, GELU, the MLP
// scaling (alpha * r + 1), mean pooling, softmax cross-entropy.
#include <algorithm>
#include <cmath>

#include "model/fast_math.h"
#include "model/lane_reduce.h"
#include "model/ops.h"
#include "model/vector_lanes.h"

namespace mone {

template <class T>
void position_embed_forward(T* x, const T* pos, int64_t B, int64_t N, int64_t D) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < N * D; ++i) x[b * N * D + i] += pos[i];
}

template <class T>
void position_embed_backward(const T* dx, int64_t B, int64_t N, int64_t D, T* dpos) {
  // Sum over images in order (deterministic); parallel over positions.
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N * D; ++i) {
    T sum = 0;
    for (int64_t b = 0; b < B; ++b) sum += dx[b * N * D + i];
    dpos[i] += sum;
  }
}

namespace {
constexpr double kGeluK0 = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kGeluK1 = 0.044715;
}  // namespace

// 0.5 x (1 + tanh(u)) = x * sigmoid(2u): same function, no cancellation near 0,
// and one exp instead of a tanh.
namespace {
// The exact GELU and its derivative Phi(x) + x phi(x), in double whatever T
// (the erf form is the ablation's, not the fast path).
template <class T>
void exact_gelu_forward(const T* x, int64_t n, T* y) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    y[i] = static_cast<T>(0.5 * v * (1.0 + std::erf(v * M_SQRT1_2)));
  }
}

template <class T>
void exact_gelu_backward(const T* dy, const T* x, int64_t n, T* dx) {
  constexpr double kInverseSqrtTwoPi = 0.3989422804014327;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    const double slope = 0.5 * (1.0 + std::erf(v * M_SQRT1_2)) + v * kInverseSqrtTwoPi * std::exp(-0.5 * v * v);
    dx[i] = static_cast<T>(static_cast<double>(dy[i]) * slope);
  }
}
}  // namespace

template <class T>
void gelu_forward(const T* x, int64_t n, T* y, Gelu kind) {
  if (kind == Gelu::erf) return exact_gelu_forward(x, n, y);
  for_each_lanes<T>(n, [=](int64_t i, auto lanes) {
    using V = decltype(lanes);
    const V v = load<V>(x + i);
    const V u = T(kGeluK0) * (v + T(kGeluK1) * v * v * v);
    store(y + i, v / (T(1) + fast_exp(T(-2) * u)));
  });
}

template <class T>
void gelu_backward(const T* dy, const T* x, int64_t n, T* dx, Gelu kind) {
  if (kind == Gelu::erf) return exact_gelu_backward(dy, x, n, dx);
  for_each_lanes<T>(n, [=](int64_t i, auto lanes) {
    using V = decltype(lanes);
    const V v = load<V>(x + i);
    const V u = T(kGeluK0) * (v + T(kGeluK1) * v * v * v);
    const V s = T(1) / (T(1) + fast_exp(T(-2) * u));
    const V du = T(kGeluK0) * (T(1) + T(3 * kGeluK1) * v * v);
    store(dx + i, load<V>(dy + i) * (s + v * s * (T(1) - s) * T(2) * du));
  });
}

template <class T>
void scaled_residual_forward(const T* z, const T* m, const T* r, T alpha, int64_t M, int64_t D, T* out) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    const T s = alpha * r[i] + T(1);
    for (int64_t c = 0; c < D; ++c) out[i * D + c] = z[i * D + c] + s * m[i * D + c];
  }
}

template <class T>
void scaled_residual_backward(const T* dout, const T* m, const T* r, T alpha, int64_t M, int64_t D, T* dm, T* dr,
                              T* dalpha) {
  // <dout_i, m_i> per row; the calling thread's buffer, kept so later steps allocate nothing.
  thread_local std::vector<T> dot_buffer;
  if (dot_buffer.size() < static_cast<size_t>(M)) dot_buffer.resize(M);
  T* dots = dot_buffer.data();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    const T s = alpha * r[i] + T(1);
    for (int64_t c = 0; c < D; ++c) dm[i * D + c] = s * dout[i * D + c];
    dots[i] = lane_dot(dout + i * D, m + i * D, D);
  }
  T dalpha_sum = 0;  // in row order: deterministic
  for (int64_t i = 0; i < M; ++i) {
    dr[i] += alpha * dots[i];
    dalpha_sum += r[i] * dots[i];
  }
  *dalpha += dalpha_sum;
}

template <class T>
void mean_pool_forward(const T* x, const TokenLayout& layout, int64_t D, T* out) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < layout.images; ++b) {
    T* o = out + b * D;
    std::fill(o, o + D, T(0));
    for (int64_t p = 0; p < layout.tokens; ++p) {
      const T* row = x + layout.row(b, p) * D;
      for (int64_t c = 0; c < D; ++c) o[c] += row[c];
    }
    for (int64_t c = 0; c < D; ++c) o[c] /= T(layout.tokens);
  }
}

template <class T>
void mean_pool_backward(const T* dout, const TokenLayout& layout, int64_t D, T* dx) {
  const T inverse = T(1) / T(layout.tokens);
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < layout.images; ++b)
    for (int64_t p = 0; p < layout.tokens; ++p) {
      T* row = dx + layout.row(b, p) * D;
      for (int64_t c = 0; c < D; ++c) row[c] = dout[b * D + c] * inverse;
    }
}

template <class T>
T cross_entropy_forward(const T* logits, const int32_t* labels, int64_t B, int64_t C, T* probs,
                        T label_smoothing) {
  T loss = 0;
  for (int64_t b = 0; b < B; ++b) {
    const T* z = logits + b * C;
    const T top = *std::max_element(z, z + C);
    T sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += probs[b * C + c] = std::exp(z[c] - top);
    for (int64_t c = 0; c < C; ++c) probs[b * C + c] /= sum;
    // -log p_c = log(sum) + top - z_c; the smoothed target spreads e over all classes.
    const T log_normaliser = std::log(sum) + top;
    T mean_logit = 0;
    if (label_smoothing != T(0)) {
      for (int64_t c = 0; c < C; ++c) mean_logit += z[c];
      mean_logit /= T(C);
    }
    loss += (T(1) - label_smoothing) * (log_normaliser - z[labels[b]]) +
            label_smoothing * (log_normaliser - mean_logit);
  }
  return loss / T(B);
}

template <class T>
void cross_entropy_backward(const T* probs, const int32_t* labels, int64_t B, int64_t C, T* dlogits, T label_smoothing,
                            int64_t mean_over) {
  const T spread = label_smoothing / T(C);
  const T batch = T(mean_over > 0 ? mean_over : B);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      const T target = (c == labels[b] ? T(1) - label_smoothing : T(0)) + spread;
      dlogits[b * C + c] = (probs[b * C + c] - target) / batch;
    }
}

namespace {
// softmax(z / tau) of one row into p; returns log sum exp(z / tau).
template <class T>
T tempered_softmax(const T* z, int64_t C, T temperature, T* p) {
  const T top = *std::max_element(z, z + C) / temperature;
  T sum = 0;
  for (int64_t c = 0; c < C; ++c) sum += p[c] = std::exp(z[c] / temperature - top);
  for (int64_t c = 0; c < C; ++c) p[c] /= sum;
  return std::log(sum) + top;
}
}  // namespace

template <class T>
T distillation_forward(const T* logits, const T* teacher_logits, int64_t B, int64_t C, T temperature, T* soft,
                       T* teacher_soft) {
  T loss = 0;
  for (int64_t b = 0; b < B; ++b) {
    const T* z = logits + b * C;
    const T* t = teacher_logits + b * C;
    const T z_normaliser = tempered_softmax(z, C, temperature, soft + b * C);
    const T t_normaliser = tempered_softmax(t, C, temperature, teacher_soft + b * C);
    // KL(q || p) = sum_c q_c (log q_c - log p_c), with log p_c = z_c / tau - log sum exp(z / tau).
    for (int64_t c = 0; c < C; ++c) {
      const T q = teacher_soft[b * C + c];
      if (q > T(0)) loss += q * ((t[c] - z[c]) / temperature - t_normaliser + z_normaliser);
    }
  }
  return temperature * temperature * loss / T(B);
}

template <class T>
void distillation_backward(const T* soft, const T* teacher_soft, int64_t B, int64_t C, T temperature, T weight,
                           T* dlogits, int64_t mean_over) {
  const T scale = weight * temperature / T(mean_over > 0 ? mean_over : B);
  for (int64_t i = 0; i < B * C; ++i) dlogits[i] += scale * (soft[i] - teacher_soft[i]);
}

template <class T>
void add_inplace(T* x, const T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

#define MONE_INSTANTIATE(T)                                                                                 \
  template void position_embed_forward<T>(T*, const T*, int64_t, int64_t, int64_t);                         \
  template void position_embed_backward<T>(const T*, int64_t, int64_t, int64_t, T*);                        \
  template void gelu_forward<T>(const T*, int64_t, T*, Gelu);                                               \
  template void gelu_backward<T>(const T*, const T*, int64_t, T*, Gelu);                                    \
  template void add_inplace<T>(T*, const T*, int64_t);                                                      \
  template T distillation_forward<T>(const T*, const T*, int64_t, int64_t, T, T*, T*);                      \
  template void distillation_backward<T>(const T*, const T*, int64_t, int64_t, T, T, T*, int64_t);          \
  template void scaled_residual_forward<T>(const T*, const T*, const T*, T, int64_t, int64_t, T*);          \
  template void scaled_residual_backward<T>(const T*, const T*, const T*, T, int64_t, int64_t, T*, T*, T*); \
  template void mean_pool_forward<T>(const T*, const TokenLayout&, int64_t, T*);                            \
  template void mean_pool_backward<T>(const T*, const TokenLayout&, int64_t, T*);                           \
  template T cross_entropy_forward<T>(const T*, const int32_t*, int64_t, int64_t, T*, T);                   \
  template void cross_entropy_backward<T>(const T*, const int32_t*, int64_t, int64_t, T*, T, int64_t);
MONE_INSTANTIATE(float)
MONE_INSTANTIATE(double)
#undef MONE_INSTANTIATE

}  // namespace mone
