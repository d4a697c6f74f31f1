// LayerNorm over D on the device: one warp per row, fp32 statistics, two
// passes over the row (mean, then squared deviations) as on the CPU.
#include "model/cuda/kernels.cuh"
#include "model/cuda/ops.h"

namespace mone::cuda {

namespace {
constexpr float kEpsilon = 1e-6f;

template <class T>
__global__ void layernorm_forward_kernel(const T* x, int64_t M, int64_t D, const T* gain, const T* bias, T* y,
                                         float* mean, float* rstd) {
  const int64_t row = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= M) return;
  const T* xr = x + row * D;
  float sum = 0.f;
  for (int64_t c = lane; c < D; c += 32) sum += to_float(xr[c]);
  const float mu = warp_sum(sum) / float(D);
  float squares = 0.f;
  for (int64_t c = lane; c < D; c += 32) {
    const float d = to_float(xr[c]) - mu;
    squares += d * d;
  }
  const float r = rsqrtf(warp_sum(squares) / float(D) + kEpsilon);
  for (int64_t c = lane; c < D; c += 32)
    y[row * D + c] = from_float<T>((to_float(xr[c]) - mu) * r * to_float(gain[c]) + to_float(bias[c]));
  if (lane == 0) {
    mean[row] = mu;
    rstd[row] = r;
  }
}

template <class T>
__global__ void layernorm_backward_kernel(const T* dy, const T* x, const float* mean, const float* rstd,
                                          const T* gain, int64_t M, int64_t D, T* dx) {
  const int64_t row = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= M) return;
  const T *dyr = dy + row * D, *xr = x + row * D;
  const float mu = mean[row], r = rstd[row];
  float g_sum = 0.f, gx_sum = 0.f;  // sums of dxhat and of dxhat * xhat
  for (int64_t c = lane; c < D; c += 32) {
    const float g = to_float(dyr[c]) * to_float(gain[c]);
    g_sum += g;
    gx_sum += g * (to_float(xr[c]) - mu) * r;
  }
  const float mean_g = warp_sum(g_sum) / float(D), mean_gx = warp_sum(gx_sum) / float(D);
  for (int64_t c = lane; c < D; c += 32) {
    const float xhat = (to_float(xr[c]) - mu) * r;
    const float g = to_float(dyr[c]) * to_float(gain[c]);
    T& target = dx[row * D + c];
    target = from_float<T>(to_float(target) + r * (g - mean_g - xhat * mean_gx));
  }
}

// Columns [0, D): dy * xhat (the gain's gradient); [D, 2D): dy (the bias's).
template <class T>
struct GainBiasTerm {
  const T *dy, *x;
  const float *mean, *rstd;
  int64_t D;
  __device__ float operator()(int64_t i, int64_t c) const {
    if (c >= D) return to_float(dy[i * D + c - D]);
    return to_float(dy[i * D + c]) * (to_float(x[i * D + c]) - mean[i]) * rstd[i];
  }
};

__global__ void split_gain_bias_kernel(const float* both, int64_t D, float* dgain, float* dbias) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= D) return;
  dgain[c] += both[c];
  dbias[c] += both[D + c];
}
}  // namespace

template <class T>
void layernorm_forward(const T* x, int64_t M, int64_t D, const T* gain, const T* bias, T* y, float* mean,
                       float* rstd, const DeviceContext& context) {
  if (M == 0) return;
  layernorm_forward_kernel<<<blocks_for(M, kWarpsPerBlock), kThreads, 0, context.stream()>>>(x, M, D, gain, bias, y,
                                                                                             mean, rstd);
  MONE_CUDA_CHECK_LAUNCH(layernorm_forward_kernel);
}

template <class T>
void layernorm_backward(const T* dy, const T* x, const float* mean, const float* rstd, const T* gain, int64_t M,
                        int64_t D, T* dx, float* dgain, float* dbias, const DeviceContext& context) {
  if (M == 0) return;
  layernorm_backward_kernel<<<blocks_for(M, kWarpsPerBlock), kThreads, 0, context.stream()>>>(dy, x, mean, rstd,
                                                                                              gain, M, D, dx);
  MONE_CUDA_CHECK_LAUNCH(layernorm_backward_kernel);
  // dgain and dbias side by side in one reduction, then added to their buffers.
  Scratch scratch(context);
  float* both = scratch.take<float>(2 * D, "LayerNorm gain and bias gradients");
  MONE_CUDA_CHECK(cudaMemsetAsync(both, 0, 2 * D * sizeof(float), context.stream()));
  add_column_sums(M, 2 * D, GainBiasTerm<T>{dy, x, mean, rstd, D}, both, scratch, context);
  split_gain_bias_kernel<<<blocks_for(D), kThreads, 0, context.stream()>>>(both, D, dgain, dbias);
  MONE_CUDA_CHECK_LAUNCH(split_gain_bias_kernel);
}

#define MONE_INSTANTIATE(T)                                                                                     \
  template void layernorm_forward<T>(const T*, int64_t, int64_t, const T*, const T*, T*, float*, float*,        \
                                     const DeviceContext&);                                                     \
  template void layernorm_backward<T>(const T*, const T*, const float*, const float*, const T*, int64_t, int64_t, \
                                      T*, float*, float*, const DeviceContext&);
MONE_INSTANTIATE(float)
MONE_INSTANTIATE(bf16)
#undef MONE_INSTANTIATE

}  // namespace mone::cuda
