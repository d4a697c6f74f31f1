// Mobile V-MoE's per-image top-k, the image-sorted dispatch and combine, and
// the super-class loss on the device (model/cuda/ops_moe.h). Arithmetic in
// fp32 whatever T is; the reductions in a fixed order.
#include "model/cuda/kernels.cuh"
#include "model/cuda/ops.h"
#include "model/cuda/ops_moe.h"

namespace mone::cuda {

namespace {

// One thread per image: k passes of "the highest not yet chosen, the lower
// expert on ties", which is the CPU's partial sort with its comparator.
__global__ void image_top_k_kernel(const float* probs, int64_t B, int64_t E, int64_t k, int32_t* expert_of_slot,
                                   float* weight_of_slot) {
  const int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (b >= B) return;
  const float* p = probs + b * E;
  int32_t* chosen = expert_of_slot + b * k;
  for (int64_t s = 0; s < k; ++s) {
    int32_t best = -1;
    for (int64_t e = 0; e < E; ++e) {
      bool taken = false;
      for (int64_t t = 0; t < s; ++t) taken |= chosen[t] == e;
      if (!taken && (best < 0 || p[e] > p[best])) best = static_cast<int32_t>(e);
    }
    chosen[s] = best;
  }
  float sum = 0.f;
  for (int64_t s = 0; s < k; ++s) sum += p[chosen[s]];
  for (int64_t s = 0; s < k; ++s) weight_of_slot[b * k + s] = p[chosen[s]] / sum;
}

// w_s = p_s / S: dp at the chosen experts = (g_s - sum_t g_t w_t) / S, zero elsewhere.
__global__ void image_top_k_backward_kernel(const float* dweight, const float* probs, const int32_t* expert_of_slot,
                                            int64_t B, int64_t E, int64_t k, float* dprobs) {
  const int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (b >= B) return;
  const float* p = probs + b * E;
  const int32_t* e = expert_of_slot + b * k;
  const float* g = dweight + b * k;
  for (int64_t j = 0; j < E; ++j) dprobs[b * E + j] = 0.f;
  float chosen = 0.f;
  for (int64_t s = 0; s < k; ++s) chosen += p[e[s]];
  float mean = 0.f;
  for (int64_t s = 0; s < k; ++s) mean += g[s] * p[e[s]] / chosen;
  for (int64_t s = 0; s < k; ++s) dprobs[b * E + e[s]] = (g[s] - mean) / chosen;
}

// Element i of the slots' rows: out[pos(slot) N D + j] = x[image(slot) N D + j].
template <class T>
struct DispatchForward {
  const T* x;
  const int32_t* position_of_slot;
  int64_t k, ND;
  T* out;
  __device__ void operator()(int64_t i) const {  // i = slot * ND + j
    const int64_t slot = i / ND, j = i % ND;
    out[position_of_slot[slot] * ND + j] = x[(slot / k) * ND + j];
  }
};

template <class T>
struct DispatchBackward {
  const T* dout;
  const int32_t* position_of_slot;
  int64_t k, ND;
  T* dx;
  __device__ void operator()(int64_t i) const {  // i = b * ND + j
    const int64_t b = i / ND, j = i % ND;
    float sum = 0.f;
    for (int64_t s = 0; s < k; ++s) sum += to_float(dout[position_of_slot[b * k + s] * ND + j]);
    dx[i] = from_float<T>(sum);
  }
};

template <class T>
struct CombineForward {
  const T* z;
  const T* y;
  const float* weight_of_slot;
  const int32_t* position_of_slot;
  int64_t k, ND;
  T* out;
  __device__ void operator()(int64_t i) const {  // i = b * ND + j
    const int64_t b = i / ND, j = i % ND;
    float sum = to_float(z[i]);
    for (int64_t s = 0; s < k; ++s)
      sum += weight_of_slot[b * k + s] * to_float(y[position_of_slot[b * k + s] * ND + j]);
    out[i] = from_float<T>(sum);
  }
};

// One block per slot: dy = w dout over the slot's rows, and <dout, y> by the
// block's tree sum (thread t takes elements t, t + kThreads, ... in order).
template <class T>
__global__ void combine_backward_kernel(const T* dout, const T* y, const float* weight_of_slot,
                                        const int32_t* position_of_slot, int64_t k, int64_t ND, T* dy, float* dweight) {
  __shared__ float partial[kThreads];
  const int64_t slot = blockIdx.x;
  const T* g = dout + (slot / k) * ND;
  const int64_t rows = position_of_slot[slot] * ND;
  const float w = weight_of_slot[slot];
  float dot = 0.f;
  for (int64_t j = threadIdx.x; j < ND; j += kThreads) {
    const float gj = to_float(g[j]);
    dy[rows + j] = from_float<T>(w * gj);
    dot += gj * to_float(y[rows + j]);
  }
  const float total = block_tree_sum(dot, partial);
  if (threadIdx.x == 0) dweight[slot] += total;
}

struct SuperclassOfImage {
  const int32_t* labels;
  const int32_t* superclass_of_class;
  int32_t* superclass;
  __device__ void operator()(int64_t b) const { superclass[b] = superclass_of_class[labels[b]]; }
};

struct NegativeLogOfSuperclass {
  const float* probs;
  const int32_t* superclass;
  int64_t E;
  float* term;
  __device__ void operator()(int64_t b) const { term[b] = -logf(probs[b * E + superclass[b]]); }
};

struct SuperclassLossBackward {
  const float* probs;
  const int32_t* superclass;
  int64_t B, E;
  float weight;
  float* dprobs;
  __device__ void operator()(int64_t b) const {
    const int64_t i = b * E + superclass[b];
    dprobs[i] -= weight / (float(B) * probs[i]);
  }
};

}  // namespace

void image_top_k_forward(const float* probs, int64_t B, int64_t E, int64_t k, int32_t* expert_of_slot,
                         float* weight_of_slot, const DeviceContext& context) {
  if (B == 0) return;
  image_top_k_kernel<<<blocks_for(B), kThreads, 0, context.stream()>>>(probs, B, E, k, expert_of_slot, weight_of_slot);
  MONE_CUDA_CHECK_LAUNCH(image_top_k_kernel);
}

void image_top_k_backward(const float* dweight, const float* probs, const int32_t* expert_of_slot, int64_t B, int64_t E,
                          int64_t k, float* dprobs, const DeviceContext& context) {
  if (B == 0) return;
  image_top_k_backward_kernel<<<blocks_for(B), kThreads, 0, context.stream()>>>(dweight, probs, expert_of_slot, B, E, k,
                                                                                dprobs);
  MONE_CUDA_CHECK_LAUNCH(image_top_k_backward_kernel);
}

template <class T>
void moe_dispatch_forward(const T* x, const int32_t* position_of_slot, int64_t B, int64_t k, int64_t N, int64_t D,
                          T* out, const DeviceContext& context) {
  for_each(B * k * N * D, DispatchForward<T>{x, position_of_slot, k, N * D, out}, context);
}

template <class T>
void moe_dispatch_backward(const T* dout, const int32_t* position_of_slot, int64_t B, int64_t k, int64_t N, int64_t D,
                           T* dx, const DeviceContext& context) {
  for_each(B * N * D, DispatchBackward<T>{dout, position_of_slot, k, N * D, dx}, context);
}

template <class T>
void moe_combine_forward(const T* z, const T* y, const float* weight_of_slot, const int32_t* position_of_slot,
                         int64_t B, int64_t k, int64_t N, int64_t D, T* out, const DeviceContext& context) {
  for_each(B * N * D, CombineForward<T>{z, y, weight_of_slot, position_of_slot, k, N * D, out}, context);
}

template <class T>
void moe_combine_backward(const T* dout, const T* y, const float* weight_of_slot, const int32_t* position_of_slot,
                          int64_t B, int64_t k, int64_t N, int64_t D, T* dy, float* dweight,
                          const DeviceContext& context) {
  if (B * k == 0) return;
  combine_backward_kernel<<<static_cast<unsigned>(B * k), kThreads, 0, context.stream()>>>(
      dout, y, weight_of_slot, position_of_slot, k, N * D, dy, dweight);
  MONE_CUDA_CHECK_LAUNCH(combine_backward_kernel);
}

void superclass_of_images(const int32_t* labels, const int32_t* superclass_of_class, int64_t B, int32_t* superclass,
                          const DeviceContext& context) {
  for_each(B, SuperclassOfImage{labels, superclass_of_class, superclass}, context);
}

void superclass_loss_forward(const float* probs, const int32_t* superclass, int64_t B, int64_t E, float weight,
                             float* loss, const DeviceContext& context) {
  if (B == 0) return;
  Scratch scratch(context);
  float* term = scratch.take<float>(B, "super-class loss per image");
  for_each(B, NegativeLogOfSuperclass{probs, superclass, E, term}, context);
  add_sum(term, B, weight / float(B), loss, context);
}

void superclass_loss_backward(const float* probs, const int32_t* superclass, int64_t B, int64_t E, float weight,
                              float* dprobs, const DeviceContext& context) {
  for_each(B, SuperclassLossBackward{probs, superclass, B, E, weight, dprobs}, context);
}

#define MONE_INSTANTIATE(T)                                                                                          \
  template void moe_dispatch_forward<T>(const T*, const int32_t*, int64_t, int64_t, int64_t, int64_t, T*,            \
                                        const DeviceContext&);                                                       \
  template void moe_dispatch_backward<T>(const T*, const int32_t*, int64_t, int64_t, int64_t, int64_t, T*,           \
                                         const DeviceContext&);                                                      \
  template void moe_combine_forward<T>(const T*, const T*, const float*, const int32_t*, int64_t, int64_t, int64_t,  \
                                       int64_t, T*, const DeviceContext&);                                           \
  template void moe_combine_backward<T>(const T*, const T*, const float*, const int32_t*, int64_t, int64_t, int64_t, \
                                        int64_t, T*, float*, const DeviceContext&);
MONE_INSTANTIATE(float)
MONE_INSTANTIATE(bf16)
#undef MONE_INSTANTIATE

}  // namespace mone::cuda
