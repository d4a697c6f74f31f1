// The router, Expert Preferred Routing and the token permutation on the
// device. EPR runs one block per image and decides by ranks: an unassigned
// token goes to expert j when fewer than k_j unassigned tokens beat it, where
// "beats" is the CPU's order (higher probability, or equal probability and
// lower index). That is exactly the CPU's top-k with its tie rule, with no
// sort and no data-dependent order of operations.
#include "model/cuda/kernels.cuh"
#include "model/cuda/ops.h"

namespace mone::cuda {

namespace {
constexpr int kMaxExperts = 16;
struct ExpertCounts {
  int64_t k[kMaxExperts];
};

__global__ void router_softmax_kernel(float* probs, int64_t M, int64_t E) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= M) return;
  float* p = probs + i * E;
  float top = p[0];
  for (int64_t e = 1; e < E; ++e) top = fmaxf(top, p[e]);
  float sum = 0.f;
  for (int64_t e = 0; e < E; ++e) sum += p[e] = expf(p[e] - top);
  for (int64_t e = 0; e < E; ++e) p[e] /= sum;
}

__global__ void router_logit_grad_kernel(const float* dprobs, const float* probs, int64_t M, int64_t E,
                                         float* dlogits) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= M) return;
  const float *p = probs + i * E, *g = dprobs + i * E;
  float dot = 0.f;
  for (int64_t e = 0; e < E; ++e) dot += p[e] * g[e];
  for (int64_t e = 0; e < E; ++e) dlogits[i * E + e] = p[e] * (g[e] - dot);
}

__global__ void expert_preferred_routing_kernel(const float* probs, int64_t N, int64_t E, ExpertCounts counts,
                                                int32_t* expert_of_token) {
  extern __shared__ int32_t shared[];
  int32_t* expert = shared;      // [N], current assignment
  int32_t* chosen = shared + N;  // [N], picked in this round
  const int64_t b = blockIdx.x;
  const float* p = probs + b * N * E;
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) expert[n] = 0;  // everyone starts at expert 1
  __syncthreads();
  for (int64_t j = E - 1; j >= 1; --j) {
    const int64_t k = counts.k[j];
    if (k == 0) continue;  // the same for every thread: no divergent barrier
    for (int64_t n = threadIdx.x; n < N; n += blockDim.x) {
      int64_t rank = 0;
      if (expert[n] == 0) {
        const float pn = p[n * E + j];
        for (int64_t m = 0; m < N; ++m) {
          const float pm = p[m * E + j];
          rank += expert[m] == 0 && (pm > pn || (pm == pn && m < n));
        }
      }
      chosen[n] = expert[n] == 0 && rank < k;
    }
    __syncthreads();
    for (int64_t n = threadIdx.x; n < N; n += blockDim.x)
      if (chosen[n]) expert[n] = static_cast<int32_t>(j);
    __syncthreads();
  }
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) expert_of_token[b * N + n] = expert[n];
}

// Slot of token n in its image: tokens of larger experts first, then by index.
__global__ void expert_sorted_order_kernel(const int32_t* expert_of_token, int64_t B, int64_t N,
                                           int32_t* source_of_row) {
  extern __shared__ int32_t expert[];
  const int64_t b = blockIdx.x;
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) expert[n] = expert_of_token[b * N + n];
  __syncthreads();
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) {
    int64_t slot = 0;
    for (int64_t m = 0; m < N; ++m) slot += expert[m] > expert[n] || (expert[m] == expert[n] && m < n);
    source_of_row[slot * B + b] = static_cast<int32_t>(b * N + n);
  }
}

template <class T>
__global__ void permute_kernel(const T* src, const int32_t* source_of_row, int64_t rows, int64_t D, T* dst,
                               bool forward) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= rows * D) return;
  const int64_t r = i / D, c = i % D;
  if (forward)
    dst[i] = src[source_of_row[r] * D + c];
  else
    dst[source_of_row[r] * D + c] = src[i];
}

__global__ void gather_chosen_kernel(const float* probs, const int32_t* expert_of_token,
                                     const int32_t* source_of_row, int64_t rows, int64_t E, float* chosen) {
  const int64_t row = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (row >= rows) return;
  const int64_t src = source_of_row[row];
  chosen[row] = probs[src * E + expert_of_token[src]];
}

__global__ void scatter_chosen_kernel(const float* dchosen, const int32_t* expert_of_token,
                                      const int32_t* source_of_row, int64_t rows, int64_t E, float* dprobs) {
  const int64_t row = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (row >= rows) return;
  const int64_t src = source_of_row[row];
  dprobs[src * E + expert_of_token[src]] = dchosen[row];
}

size_t per_image_shared_bytes(int64_t N, int arrays) {
  const size_t bytes = static_cast<size_t>(N) * arrays * sizeof(int32_t);
  if (bytes > 48 * 1024)
    throw CudaError("expert routing on the device keeps " + std::to_string(arrays) +
                    " int32 per token in shared memory: " +
                    std::to_string(N) + " tokens per image need " + std::to_string(bytes) + " bytes, more than 48 KiB");
  return bytes;
}
}  // namespace

template <class T>
void router_forward(const T* x, int64_t M, int64_t D, const T* W, const float* b, int64_t E, float* probs,
                    const DeviceContext& context) {
  if (M == 0) return;
  linear_forward<T, float>(x, D, M, D, W, E, b, E, probs, E, context);
  router_softmax_kernel<<<blocks_for(M), kThreads, 0, context.stream()>>>(probs, M, E);
  MONE_CUDA_CHECK_LAUNCH(router_softmax_kernel);
}

template <class T>
void router_backward(const float* dprobs, const float* probs, const T* x, int64_t M, int64_t D, const T* W,
                     int64_t E, T* dx, float* dW, float* db, const DeviceContext& context) {
  if (M == 0) return;
  Scratch scratch(context);
  float* dlogits = scratch.take<float>(M * E, "router logit gradients");
  T* dlogits_compute = scratch.take<T>(M * E, "router logit gradients for the GEMMs");
  router_logit_grad_kernel<<<blocks_for(M), kThreads, 0, context.stream()>>>(dprobs, probs, M, E, dlogits);
  MONE_CUDA_CHECK_LAUNCH(router_logit_grad_kernel);
  convert_from_float(dlogits, M * E, dlogits_compute, context);
  gemm<T, T>(false, true, M, D, E, 1.f, dlogits_compute, E, W, E, 1.f, dx, D, context);  // adds into dx
  gemm<T, float>(true, false, D, E, M, 1.f, x, D, dlogits_compute, E, 1.f, dW, E, context);
  add_column_sums(M, E, MatrixElement<float>{dlogits, E}, db, scratch, context);
}

void expert_preferred_routing(const float* probs, int64_t B, int64_t N, int64_t E,
                              const std::vector<int64_t>& tokens_per_expert, int32_t* expert_of_token,
                              const DeviceContext& context) {
  if (E > kMaxExperts || static_cast<int64_t>(tokens_per_expert.size()) != E)
    throw CudaError("expert_preferred_routing: " + std::to_string(tokens_per_expert.size()) + " counts for " +
                    std::to_string(E) + " experts (at most " + std::to_string(kMaxExperts) + ")");
  if (B * N == 0) return;
  ExpertCounts counts{};
  for (int64_t j = 0; j < E; ++j) counts.k[j] = tokens_per_expert[j];
  expert_preferred_routing_kernel<<<static_cast<unsigned>(B), kThreads, per_image_shared_bytes(N, 2),
                                    context.stream()>>>(probs, N, E, counts, expert_of_token);
  MONE_CUDA_CHECK_LAUNCH(expert_preferred_routing_kernel);
}

void expert_sorted_order(const int32_t* expert_of_token, int64_t B, int64_t N, int64_t /*E: implied by the ids*/,
                         int32_t* source_of_row, const DeviceContext& context) {
  if (B * N == 0) return;
  expert_sorted_order_kernel<<<static_cast<unsigned>(B), kThreads, per_image_shared_bytes(N, 1), context.stream()>>>(
      expert_of_token, B, N, source_of_row);
  MONE_CUDA_CHECK_LAUNCH(expert_sorted_order_kernel);
}

template <class T>
void permute_tokens_forward(const T* src, const int32_t* source_of_row, int64_t rows, int64_t D, T* dst,
                            const DeviceContext& context) {
  if (rows * D == 0) return;
  permute_kernel<<<blocks_for(rows * D), kThreads, 0, context.stream()>>>(src, source_of_row, rows, D, dst, true);
  MONE_CUDA_CHECK_LAUNCH(permute_kernel);
}

template <class T>
void permute_tokens_backward(const T* ddst, const int32_t* source_of_row, int64_t rows, int64_t D, T* dsrc,
                             const DeviceContext& context) {
  if (rows * D == 0) return;
  permute_kernel<<<blocks_for(rows * D), kThreads, 0, context.stream()>>>(ddst, source_of_row, rows, D, dsrc, false);
  MONE_CUDA_CHECK_LAUNCH(permute_kernel);
}

void gather_chosen_probability(const float* probs, const int32_t* expert_of_token, const int32_t* source_of_row,
                               int64_t rows, int64_t E, float* chosen, const DeviceContext& context) {
  if (rows == 0) return;
  gather_chosen_kernel<<<blocks_for(rows), kThreads, 0, context.stream()>>>(probs, expert_of_token, source_of_row,
                                                                            rows, E, chosen);
  MONE_CUDA_CHECK_LAUNCH(gather_chosen_kernel);
}

void scatter_chosen_probability(const float* dchosen, const int32_t* expert_of_token, const int32_t* source_of_row,
                                int64_t rows, int64_t E, float* dprobs, const DeviceContext& context) {
  if (rows == 0) return;
  MONE_CUDA_CHECK(cudaMemsetAsync(dprobs, 0, rows * E * sizeof(float), context.stream()));
  scatter_chosen_kernel<<<blocks_for(rows), kThreads, 0, context.stream()>>>(dchosen, expert_of_token,
                                                                             source_of_row, rows, E, dprobs);
  MONE_CUDA_CHECK_LAUNCH(scatter_chosen_kernel);
}

#define MONE_INSTANTIATE(T)                                                                                        \
  template void router_forward<T>(const T*, int64_t, int64_t, const T*, const float*, int64_t, float*,            \
                                  const DeviceContext&);                                                           \
  template void router_backward<T>(const float*, const float*, const T*, int64_t, int64_t, const T*, int64_t, T*,  \
                                   float*, float*, const DeviceContext&);                                          \
  template void permute_tokens_forward<T>(const T*, const int32_t*, int64_t, int64_t, T*, const DeviceContext&);   \
  template void permute_tokens_backward<T>(const T*, const int32_t*, int64_t, int64_t, T*, const DeviceContext&);
MONE_INSTANTIATE(float)
MONE_INSTANTIATE(bf16)
#undef MONE_INSTANTIATE

}  // namespace mone::cuda
