#include "model/cuda/adamw.h"

#include <cmath>

#include "model/cuda/gemm.h"
#include "model/cuda/kernels.cuh"

namespace mone::cuda {

namespace {
constexpr int64_t kNormChunk = 4096;  // elements per partial sum of the norm

struct AdamWScalars {
  double beta1, beta2, epsilon, correction1, correction2, shrink, lr;
};

template <class T>
__global__ void adamw_kernel(float* values, const float* grads, float* m, float* v, int64_t begin, int64_t end,
                             AdamWScalars s, T* compute_copy) {
  const int64_t i = begin + blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= end) return;
  const double g = grads[i];
  const float m_i = static_cast<float>(s.beta1 * m[i] + (1.0 - s.beta1) * g);
  const float v_i = static_cast<float>(s.beta2 * v[i] + (1.0 - s.beta2) * g * g);
  m[i] = m_i;
  v[i] = v_i;
  const double update = (double(m_i) / s.correction1) / (sqrt(double(v_i) / s.correction2) + s.epsilon);
  const float value = static_cast<float>(double(values[i]) * s.shrink - s.lr * update);
  values[i] = value;
  if (compute_copy) compute_copy[i] = from_float<T>(value);
}

// Block c sums chunk c: thread t its elements t, t + kThreads, ... in order,
// then a fixed tree over the threads.
__global__ void norm_partials_kernel(const float* grads, int64_t n, double* partial) {
  __shared__ double sums[kThreads];
  const int64_t begin = blockIdx.x * kNormChunk, end = min(n, begin + kNormChunk);
  double sum = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) sum += double(grads[i]) * double(grads[i]);
  const double total = block_tree_sum(sum, sums);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

__global__ void norm_finish_kernel(const double* partial, int64_t chunks, double* norm) {
  __shared__ double sums[kThreads];
  double sum = 0.0;
  for (int64_t c = threadIdx.x; c < chunks; c += kThreads) sum += partial[c];
  const double total = block_tree_sum(sum, sums);
  if (threadIdx.x == 0) *norm = sqrt(total);
}

__global__ void scale_kernel(float* grads, int64_t n, float factor) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) grads[i] *= factor;
}

__global__ void clip_kernel(float* grads, int64_t n, double max_norm, const double* norm) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n || !(*norm > max_norm)) return;
  grads[i] *= static_cast<float>(max_norm / *norm);
}
}  // namespace

DeviceAdamW::DeviceAdamW(const std::vector<ParamInfo>& params, int64_t numel, const AdamWSettings& settings,
                         const DeviceContext& context)
    : settings_(settings), numel_(numel), moments_(2 * numel * sizeof(float), "AdamW moments") {
  // Runs of equal decay; a run also spans the gaps of an aligned layout
  // (DeviceModel), whose zero values and zero gradients the update keeps zero.
  for (const ParamInfo& info : params) {
    const bool decayed = is_decayed(info.kind);
    if (!ranges_.empty() && ranges_.back().decayed == decayed)
      ranges_.back().end = info.offset + info.numel;
    else
      ranges_.push_back({ranges_.empty() ? info.offset : ranges_.back().end, info.offset + info.numel, decayed});
  }
  MONE_CUDA_CHECK(cudaMemsetAsync(moments_.data(), 0, moments_.bytes(), context.stream()));
}

template <class T>
void DeviceAdamW::step(float* values, const float* grads, double lr, T* compute_copy, const DeviceContext& context) {
  ++step_count_;
  AdamWScalars s{settings_.beta1, settings_.beta2, settings_.epsilon,
                 1.0 - std::pow(settings_.beta1, double(step_count_)),
                 1.0 - std::pow(settings_.beta2, double(step_count_)), 1.0, lr};
  float* m = moments_.as<float>();
  float* v = m + numel_;
  for (const Range& range : ranges_) {
    s.shrink = range.decayed ? 1.0 - lr * settings_.weight_decay : 1.0;
    adamw_kernel<<<blocks_for(range.end - range.begin), kThreads, 0, context.stream()>>>(
        values, grads, m, v, range.begin, range.end, s, compute_copy);
    MONE_CUDA_CHECK_LAUNCH(adamw_kernel);
  }
}

void global_grad_norm(const float* grads, int64_t n, double* norm, const DeviceContext& context) {
  const int64_t chunks = (n + kNormChunk - 1) / kNormChunk;
  if (chunks == 0) {
    MONE_CUDA_CHECK(cudaMemsetAsync(norm, 0, sizeof(double), context.stream()));
    return;
  }
  Scratch scratch(context);
  double* partial = scratch.take<double>(chunks, "gradient norm partial sums");
  norm_partials_kernel<<<static_cast<unsigned>(chunks), kThreads, 0, context.stream()>>>(grads, n, partial);
  MONE_CUDA_CHECK_LAUNCH(norm_partials_kernel);
  norm_finish_kernel<<<1, kThreads, 0, context.stream()>>>(partial, chunks, norm);
  MONE_CUDA_CHECK_LAUNCH(norm_finish_kernel);
}

void scale_gradients(float* grads, int64_t n, float factor, const DeviceContext& context) {
  if (n == 0) return;
  scale_kernel<<<blocks_for(n), kThreads, 0, context.stream()>>>(grads, n, factor);
  MONE_CUDA_CHECK_LAUNCH(scale_kernel);
}

void clip_grad_norm(float* grads, int64_t n, double max_norm, double* norm, const DeviceContext& context) {
  global_grad_norm(grads, n, norm, context);
  if (max_norm <= 0.0 || n == 0) return;
  clip_kernel<<<blocks_for(n), kThreads, 0, context.stream()>>>(grads, n, max_norm, norm);
  MONE_CUDA_CHECK_LAUNCH(clip_kernel);
}

template void DeviceAdamW::step<float>(float*, const float*, double, float*, const DeviceContext&);
template void DeviceAdamW::step<bf16>(float*, const float*, double, bf16*, const DeviceContext&);

}  // namespace mone::cuda
