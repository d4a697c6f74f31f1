// Fused multi-head self-attention, bidirectional, for any N and any token
// layout: the reference and the fallback of the device attention.
//
// One warp per (image, head, token): its lanes hold the head's dimensions
// (lane, lane + 32, ...), each score is a warp-wide dot product, and the
// softmax is online (running max and sum), so nothing of size N x N is
// stored and N is unbounded. The forward keeps the log-sum-exp of each score
// row; the backward recomputes the probabilities from it, in two kernels
// that each own their output rows (dQ per query; dK, dV per key): no atomics,
// every sum in a fixed order.
#include <cmath>

#include "model/cuda/kernels.cuh"
#include "model/cuda/ops.h"

namespace mone::cuda {

namespace {
constexpr int kSlots = 8;  // head dimensions per lane: head_dim <= 256

// The heads (model/ops.h) and the score scale 1/sqrt(head_dim), by value into the kernels.
struct Geometry : HeadView {
  float scale;
};

// Warp task -> (image, head, token); lse and delta are indexed [B, H, N] by task.
struct Task {
  int64_t index, image, head, token;
};
__device__ bool warp_task(const Geometry& g, Task& task) {
  task.index = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
  if (task.index >= g.images * g.heads * g.tokens) return false;
  task.token = task.index % g.tokens;
  task.head = (task.index / g.tokens) % g.heads;
  task.image = task.index / (g.tokens * g.heads);
  return true;
}

template <class T>
__device__ void load_slots(const T* row, int64_t head_dim, float (&values)[kSlots]) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int s = 0; s < kSlots; ++s) {
    const int64_t d = lane + 32 * s;
    values[s] = d < head_dim ? to_float(row[d]) : 0.f;
  }
}

template <class T>
__device__ void store_slots(const float (&values)[kSlots], float factor, int64_t head_dim, T* row) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int s = 0; s < kSlots; ++s) {
    const int64_t d = lane + 32 * s;
    if (d < head_dim) row[d] = from_float<T>(values[s] * factor);
  }
}

template <class T>
__device__ float warp_dot(const float (&a)[kSlots], const T* row, int64_t head_dim) {
  const int lane = threadIdx.x % 32;
  float sum = 0.f;
#pragma unroll
  for (int s = 0; s < kSlots; ++s) {
    const int64_t d = lane + 32 * s;
    if (d < head_dim) sum += a[s] * to_float(row[d]);
  }
  return warp_sum(sum);
}

template <class T>
__device__ void add_scaled(float (&acc)[kSlots], float factor, const T* row, int64_t head_dim) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int s = 0; s < kSlots; ++s) {
    const int64_t d = lane + 32 * s;
    if (d < head_dim) acc[s] += factor * to_float(row[d]);
  }
}

template <class T>
__global__ void attention_forward_kernel(const T* qkv, Geometry g, T* out, float* lse) {
  Task t;
  if (!warp_task(g, t)) return;
  const int64_t width = 3 * g.D;
  float q[kSlots], acc[kSlots] = {};
  load_slots(qkv + g.offset(t.image, t.token, t.head, width), g.head_dim, q);
  float running_max = -INFINITY, running_sum = 0.f;
  for (int64_t j = 0; j < g.tokens; ++j) {
    const T* k = qkv + g.offset(t.image, j, t.head, width) + g.D;
    const float score = g.scale * warp_dot(q, k, g.head_dim);
    const float new_max = fmaxf(running_max, score);
    const float correction = expf(running_max - new_max);  // 0 on the first key
    const float p = expf(score - new_max);
    running_sum = running_sum * correction + p;
#pragma unroll
    for (int s = 0; s < kSlots; ++s) acc[s] *= correction;
    add_scaled(acc, p, k + g.D, g.head_dim);  // v follows k
    running_max = new_max;
  }
  store_slots(acc, 1.f / running_sum, g.head_dim, out + g.offset(t.image, t.token, t.head, g.D));
  if (threadIdx.x % 32 == 0) lse[t.index] = running_max + logf(running_sum);
}

// dQ of one query row; also delta = <dO, O> of the row, for the dK/dV kernel.
template <class T>
__global__ void attention_backward_query_kernel(const T* dout, const T* qkv, const T* out, const float* lse,
                                                Geometry g, T* dqkv, float* delta) {
  Task t;
  if (!warp_task(g, t)) return;
  const int64_t width = 3 * g.D;
  float q[kSlots], go[kSlots], dq[kSlots] = {};
  load_slots(qkv + g.offset(t.image, t.token, t.head, width), g.head_dim, q);
  load_slots(dout + g.offset(t.image, t.token, t.head, g.D), g.head_dim, go);
  const float row_delta = warp_dot(go, out + g.offset(t.image, t.token, t.head, g.D), g.head_dim);
  const float row_lse = lse[t.index];
  for (int64_t j = 0; j < g.tokens; ++j) {
    const T* k = qkv + g.offset(t.image, j, t.head, width) + g.D;
    const float p = expf(g.scale * warp_dot(q, k, g.head_dim) - row_lse);
    const float dp = warp_dot(go, k + g.D, g.head_dim);
    add_scaled(dq, p * (dp - row_delta), k, g.head_dim);
  }
  store_slots(dq, g.scale, g.head_dim, dqkv + g.offset(t.image, t.token, t.head, width));
  if (threadIdx.x % 32 == 0) delta[t.index] = row_delta;
}

// dK and dV of one key row: sums over the queries i of the same image and head.
template <class T>
__global__ void attention_backward_key_kernel(const T* dout, const T* qkv, const float* lse, const float* delta,
                                              Geometry g, T* dqkv) {
  Task t;
  if (!warp_task(g, t)) return;
  const int64_t width = 3 * g.D;
  float k[kSlots], v[kSlots], dk[kSlots] = {}, dv[kSlots] = {};
  const T* k_row = qkv + g.offset(t.image, t.token, t.head, width) + g.D;
  load_slots(k_row, g.head_dim, k);
  load_slots(k_row + g.D, g.head_dim, v);
  const int64_t first_row_task = t.index - t.token;  // task of query 0 of this image and head
  for (int64_t i = 0; i < g.tokens; ++i) {
    const T* q = qkv + g.offset(t.image, i, t.head, width);
    const T* go = dout + g.offset(t.image, i, t.head, g.D);
    const float p = expf(g.scale * warp_dot(k, q, g.head_dim) - lse[first_row_task + i]);
    const float dp = warp_dot(v, go, g.head_dim);
    add_scaled(dv, p, go, g.head_dim);
    add_scaled(dk, p * (dp - delta[first_row_task + i]), q, g.head_dim);
  }
  T* dk_row = dqkv + g.offset(t.image, t.token, t.head, width) + g.D;
  store_slots(dk, g.scale, g.head_dim, dk_row);
  store_slots(dv, 1.f, g.head_dim, dk_row + g.D);
}

Geometry geometry_of(const TokenLayout& layout, int64_t heads, int64_t D) {
  const HeadView view = HeadView::of(layout, heads, D);
  if (view.head_dim > 32 * kSlots || view.head_dim * heads != D)
    throw CudaError("attention: head dim " + std::to_string(view.head_dim) + " (D " + std::to_string(D) + ", " +
                    std::to_string(heads) + " heads) must divide D and be at most " + std::to_string(32 * kSlots));
  return {view, 1.f / std::sqrt(static_cast<float>(view.head_dim))};
}
}  // namespace

template <class T>
void attention_forward(const T* qkv, const TokenLayout& layout, int64_t heads, int64_t D, T* out, float* lse,
                       const DeviceContext& context) {
  const Geometry g = geometry_of(layout, heads, D);
  const int64_t tasks = g.images * g.heads * g.tokens;
  if (tasks == 0) return;
  attention_forward_kernel<<<blocks_for(tasks, kWarpsPerBlock), kThreads, 0, context.stream()>>>(qkv, g, out, lse);
  MONE_CUDA_CHECK_LAUNCH(attention_forward_kernel);
}

template <class T>
void attention_backward(const T* dout, const T* qkv, const T* out, const float* lse, const TokenLayout& layout,
                        int64_t heads, int64_t D, T* dqkv, const DeviceContext& context) {
  const Geometry g = geometry_of(layout, heads, D);
  const int64_t tasks = g.images * g.heads * g.tokens;
  if (tasks == 0) return;
  Scratch scratch(context);
  float* delta = scratch.take<float>(tasks, "attention <dO, O> per row");
  attention_backward_query_kernel<<<blocks_for(tasks, kWarpsPerBlock), kThreads, 0, context.stream()>>>(
      dout, qkv, out, lse, g, dqkv, delta);
  MONE_CUDA_CHECK_LAUNCH(attention_backward_query_kernel);
  attention_backward_key_kernel<<<blocks_for(tasks, kWarpsPerBlock), kThreads, 0, context.stream()>>>(
      dout, qkv, lse, delta, g, dqkv);
  MONE_CUDA_CHECK_LAUNCH(attention_backward_key_kernel);
}

#define MONE_INSTANTIATE(T)                                                                                    \
  template void attention_forward<T>(const T*, const TokenLayout&, int64_t, int64_t, T*, float*,               \
                                     const DeviceContext&);                                                    \
  template void attention_backward<T>(const T*, const T*, const T*, const float*, const TokenLayout&, int64_t, \
                                      int64_t, T*, const DeviceContext&);
MONE_INSTANTIATE(float)
MONE_INSTANTIATE(bf16)
#undef MONE_INSTANTIATE

}  // namespace mone::cuda
