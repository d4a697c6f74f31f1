// LayerNorm over the full width D of the residual stream (eps 1e-6).
#include <cmath>

#include "model/lane_reduce.h"
#include "model/ops.h"
#include "model/row_reduce.h"

namespace mone {

namespace {
constexpr double kEpsilon = 1e-6;
}

template <class T>
void layernorm_forward(const T* x, int64_t M, int64_t D, const T* gain, const T* bias, T* y, T* mean, T* rstd) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    const T* row = x + i * D;
    const T mu = lane_sum(row, D) / T(D);
    // Two passes: no cancellation when |mean| >> std.
    const T squares = lane_sum_of<T>(D, [row, mu](int64_t c) { return (row[c] - mu) * (row[c] - mu); });
    const T r = T(1) / std::sqrt(squares / T(D) + T(kEpsilon));
    T* out = y + i * D;
    for (int64_t c = 0; c < D; ++c) out[c] = (row[c] - mu) * r * gain[c] + bias[c];
    mean[i] = mu;
    rstd[i] = r;
  }
}

template <class T>
void layernorm_backward(const T* dy, const T* x, const T* mean, const T* rstd, const T* gain, int64_t M, int64_t D,
                        T* dx, T* dgain, T* dbias) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    const T* dyr = dy + i * D;
    const T* xr = x + i * D;
    const T mu = mean[i], r = rstd[i];
    // Means of dxhat and of dxhat * xhat.
    const T mean_g = lane_dot(dyr, gain, D) / T(D);
    const T mean_gx = lane_sum_of<T>(D, [=](int64_t c) { return dyr[c] * gain[c] * (xr[c] - mu) * r; }) / T(D);
    T* dxr = dx + i * D;
    for (int64_t c = 0; c < D; ++c) {
      const T xhat = (xr[c] - mu) * r;
      dxr[c] += r * (dyr[c] * gain[c] - mean_g - xhat * mean_gx);
    }
  }
  // dgain and dbias side by side in one deterministic pass: acc = [gain | bias].
  thread_local std::vector<T> both;
  both.assign(2 * D, T(0));
  reduce_rows<T>(M, 2 * D, both.data(), [&](int64_t i, T* acc) {
    const T* dyr = dy + i * D;
    const T* xr = x + i * D;
    const T mu = mean[i], r = rstd[i];
    for (int64_t c = 0; c < D; ++c) {
      acc[c] += dyr[c] * (xr[c] - mu) * r;
      acc[D + c] += dyr[c];
    }
  });
  for (int64_t c = 0; c < D; ++c) {
    dgain[c] += both[c];
    dbias[c] += both[D + c];
  }
}

template void layernorm_forward<float>(const float*, int64_t, int64_t, const float*, const float*, float*, float*,
                                       float*);
template void layernorm_forward<double>(const double*, int64_t, int64_t, const double*, const double*, double*,
                                        double*, double*);
template void layernorm_backward<float>(const float*, const float*, const float*, const float*, const float*,
                                        int64_t, int64_t, float*, float*, float*);
template void layernorm_backward<double>(const double*, const double*, const double*, const double*, const double*,
                                         int64_t, int64_t, double*, double*, double*);

}  // namespace mone
