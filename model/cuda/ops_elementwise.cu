// Element-wise and small row-wise ops on the device: conversions, residual
// add, position embedding, GELU, the MLP scaling (alpha r + 1), mean pooling,
// softmax cross-entropy. Arithmetic in fp32 whatever T is.
#include "model/cuda/kernels.cuh"
#include "model/cuda/ops.h"

namespace mone::cuda {

namespace {
constexpr float kGeluK0 = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluK1 = 0.044715f;

template <class From, class To>
struct Convert {
  const From* x;
  To* y;
  __device__ void operator()(int64_t i) const { y[i] = from_float<To>(to_float(x[i])); }
};

template <class T>
struct AddInplace {
  T* x;
  const T* y;
  __device__ void operator()(int64_t i) const { x[i] = from_float<T>(to_float(x[i]) + to_float(y[i])); }
};

template <class T>
struct PositionAdd {
  T* x;
  const T* pos;
  int64_t ND;
  __device__ void operator()(int64_t i) const { x[i] = from_float<T>(to_float(x[i]) + to_float(pos[i % ND])); }
};

// 0.5 x (1 + tanh(u)) = x sigmoid(2u), as on the CPU.
struct Gelu {
  __device__ static float sigmoid_2u(float v) {
    const float u = kGeluK0 * (v + kGeluK1 * v * v * v);
    return 1.f / (1.f + expf(-2.f * u));
  }
};

template <class T>
struct GeluForward {
  const T* x;
  T* y;
  __device__ void operator()(int64_t i) const {
    const float v = to_float(x[i]);
    y[i] = from_float<T>(v * Gelu::sigmoid_2u(v));
  }
};

template <class T>
struct GeluBackward {
  const T *dy, *x;
  T* dx;
  __device__ void operator()(int64_t i) const {
    const float v = to_float(x[i]);
    const float s = Gelu::sigmoid_2u(v);
    const float du = kGeluK0 * (1.f + 3.f * kGeluK1 * v * v);
    dx[i] = from_float<T>(to_float(dy[i]) * (s + v * s * (1.f - s) * 2.f * du));
  }
};

template <class T>
struct ScaledResidual {
  const T *z, *m;
  const float* r;
  const T* alpha;
  int64_t D;
  T* out;
  __device__ void operator()(int64_t i) const {
    const float s = to_float(*alpha) * r[i / D] + 1.f;
    out[i] = from_float<T>(to_float(z[i]) + s * to_float(m[i]));
  }
};

// One warp per row: dm = s dout, dr += alpha <dout, m>, and r <dout, m> for dalpha.
template <class T>
__global__ void scaled_residual_backward_kernel(const T* dout, const T* m, const float* r, const T* alpha, int64_t M,
                                                int64_t D, T* dm, float* dr, float* alpha_terms) {
  const int64_t row = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= M) return;
  const float a = to_float(*alpha), s = a * r[row] + 1.f;
  float dot = 0.f;
  for (int64_t c = lane; c < D; c += 32) {
    const float g = to_float(dout[row * D + c]);
    dm[row * D + c] = from_float<T>(s * g);
    dot += g * to_float(m[row * D + c]);
  }
  dot = warp_sum(dot);
  if (lane == 0) {
    dr[row] += a * dot;
    alpha_terms[row] = r[row] * dot;
  }
}

struct LayoutRows {  // TokenLayout::row on the device
  int64_t token_stride, image_stride;
  __device__ int64_t operator()(int64_t image, int64_t token) const {
    return token * token_stride + image * image_stride;
  }
};

template <class T>
struct MeanPoolForward {
  const T* x;
  LayoutRows row;
  int64_t N, D;
  T* out;
  __device__ void operator()(int64_t i) const {  // i = b * D + c
    const int64_t b = i / D, c = i % D;
    float sum = 0.f;
    for (int64_t p = 0; p < N; ++p) sum += to_float(x[row(b, p) * D + c]);
    out[i] = from_float<T>(sum / float(N));
  }
};

template <class T>
struct MeanPoolBackward {
  const T* dout;
  LayoutRows row;
  int64_t N, D;
  T* dx;
  __device__ void operator()(int64_t i) const {  // i = (b * N + p) * D + c
    const int64_t c = i % D, p = (i / D) % N, b = i / (D * N);
    dx[row(b, p) * D + c] = from_float<T>(to_float(dout[b * D + c]) / float(N));
  }
};

struct CrossEntropyRow {
  const float* logits;
  const int32_t* labels;
  int64_t C;
  float smoothing;
  float *probs, *row_loss;
  __device__ void operator()(int64_t b) const {
    const float* z = logits + b * C;
    float top = z[0];
    for (int64_t c = 1; c < C; ++c) top = fmaxf(top, z[c]);
    float sum = 0.f, logit_sum = 0.f;
    for (int64_t c = 0; c < C; ++c) {
      const float e = expf(z[c] - top);
      probs[b * C + c] = e;
      sum += e;
      logit_sum += z[c];
    }
    for (int64_t c = 0; c < C; ++c) probs[b * C + c] /= sum;
    const float log_normaliser = logf(sum) + top;
    row_loss[b] = (1.f - smoothing) * (log_normaliser - z[labels[b]]) +
                  smoothing * (log_normaliser - logit_sum / float(C));
  }
};

struct CrossEntropyBackward {
  const float* probs;
  const int32_t* labels;
  int64_t B, C;
  float smoothing;
  float* dlogits;
  __device__ void operator()(int64_t i) const {
    const int64_t b = i / C, c = i % C;
    const float target = (c == labels[b] ? 1.f - smoothing : 0.f) + smoothing / float(C);
    dlogits[i] = (probs[i] - target) / float(B);
  }
};
}  // namespace

template <class T>
void convert_from_float(const float* x, int64_t n, T* y, const DeviceContext& context) {
  for_each(n, Convert<float, T>{x, y}, context);
}
template <class T>
void convert_to_float(const T* x, int64_t n, float* y, const DeviceContext& context) {
  for_each(n, Convert<T, float>{x, y}, context);
}

template <class T>
void add_inplace(T* x, const T* y, int64_t n, const DeviceContext& context) {
  for_each(n, AddInplace<T>{x, y}, context);
}

template <class T>
void position_embed_forward(T* x, const T* pos, int64_t B, int64_t N, int64_t D, const DeviceContext& context) {
  for_each(B * N * D, PositionAdd<T>{x, pos, N * D}, context);
}

template <class T>
void position_embed_backward(const T* dx, int64_t B, int64_t N, int64_t D, float* dpos,
                             const DeviceContext& context) {
  Scratch scratch(context);
  add_column_sums(B, N * D, MatrixElement<T>{dx, N * D}, dpos, scratch, context);  // over images, in order
}

template <class T>
void gelu_forward(const T* x, int64_t n, T* y, const DeviceContext& context) {
  for_each(n, GeluForward<T>{x, y}, context);
}

template <class T>
void gelu_backward(const T* dy, const T* x, int64_t n, T* dx, const DeviceContext& context) {
  for_each(n, GeluBackward<T>{dy, x, dx}, context);
}

template <class T>
void scaled_residual_forward(const T* z, const T* m, const float* r, const T* alpha, int64_t M, int64_t D, T* out,
                             const DeviceContext& context) {
  for_each(M * D, ScaledResidual<T>{z, m, r, alpha, D, out}, context);
}

template <class T>
void scaled_residual_backward(const T* dout, const T* m, const float* r, const T* alpha, int64_t M, int64_t D,
                              T* dm, float* dr, float* dalpha, const DeviceContext& context) {
  if (M == 0) return;
  Scratch scratch(context);
  float* alpha_terms = scratch.take<float>(M, "r <dout, m> per row");
  scaled_residual_backward_kernel<<<blocks_for(M, kWarpsPerBlock), kThreads, 0, context.stream()>>>(
      dout, m, r, alpha, M, D, dm, dr, alpha_terms);
  MONE_CUDA_CHECK_LAUNCH(scaled_residual_backward_kernel);
  add_sum(alpha_terms, M, 1.f, dalpha, context);
}

template <class T>
void mean_pool_forward(const T* x, const TokenLayout& layout, int64_t D, T* out, const DeviceContext& context) {
  const LayoutRows rows{layout.token_stride, layout.image_stride};
  for_each(layout.images * D, MeanPoolForward<T>{x, rows, layout.tokens, D, out}, context);
}

template <class T>
void mean_pool_backward(const T* dout, const TokenLayout& layout, int64_t D, T* dx, const DeviceContext& context) {
  const LayoutRows rows{layout.token_stride, layout.image_stride};
  for_each(layout.images * layout.tokens * D, MeanPoolBackward<T>{dout, rows, layout.tokens, D, dx}, context);
}

void cross_entropy_forward(const float* logits, const int32_t* labels, int64_t B, int64_t C, float* probs,
                           float label_smoothing, float* loss, const DeviceContext& context) {
  Scratch scratch(context);
  float* row_loss = scratch.take<float>(B, "cross-entropy per image");
  for_each(B, CrossEntropyRow{logits, labels, C, label_smoothing, probs, row_loss}, context);
  MONE_CUDA_CHECK(cudaMemsetAsync(loss, 0, sizeof(float), context.stream()));
  add_sum(row_loss, B, 1.f / float(B), loss, context);
}

void cross_entropy_backward(const float* probs, const int32_t* labels, int64_t B, int64_t C, float* dlogits,
                            float label_smoothing, const DeviceContext& context) {
  for_each(B * C, CrossEntropyBackward{probs, labels, B, C, label_smoothing, dlogits}, context);
}

#define MONE_INSTANTIATE(T)                                                                                       \
  template void convert_from_float<T>(const float*, int64_t, T*, const DeviceContext&);                          \
  template void convert_to_float<T>(const T*, int64_t, float*, const DeviceContext&);                            \
  template void add_inplace<T>(T*, const T*, int64_t, const DeviceContext&);                                      \
  template void position_embed_forward<T>(T*, const T*, int64_t, int64_t, int64_t, const DeviceContext&);         \
  template void position_embed_backward<T>(const T*, int64_t, int64_t, int64_t, float*, const DeviceContext&);    \
  template void gelu_forward<T>(const T*, int64_t, T*, const DeviceContext&);                                     \
  template void gelu_backward<T>(const T*, const T*, int64_t, T*, const DeviceContext&);                          \
  template void scaled_residual_forward<T>(const T*, const T*, const float*, const T*, int64_t, int64_t, T*,      \
                                           const DeviceContext&);                                                 \
  template void scaled_residual_backward<T>(const T*, const T*, const float*, const T*, int64_t, int64_t, T*,     \
                                            float*, float*, const DeviceContext&);                                \
  template void mean_pool_forward<T>(const T*, const TokenLayout&, int64_t, T*, const DeviceContext&);            \
  template void mean_pool_backward<T>(const T*, const TokenLayout&, int64_t, T*, const DeviceContext&);
MONE_INSTANTIATE(float)
MONE_INSTANTIATE(bf16)
#undef MONE_INSTANTIATE

}  // namespace mone::cuda
