// The second passes of the deterministic reductions (kernels.cuh).
#include "model/cuda/kernels.cuh"

namespace mone::cuda {

namespace {
__global__ void finish_column_sums_kernel(const float* partial, int64_t chunks, int64_t cols, float* out) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= cols) return;
  float sum = 0.f;
  for (int64_t chunk = 0; chunk < chunks; ++chunk) sum += partial[chunk * cols + c];
  out[c] += sum;
}

// One block: thread t sums elements t, t + kThreads, ... in order, then a
// tree over the threads of fixed shape.
__global__ void add_sum_kernel(const float* values, int64_t n, float scale, float* out) {
  __shared__ float partial[kThreads];
  float sum = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) sum += values[i];
  const float total = block_tree_sum(sum, partial);
  if (threadIdx.x == 0) *out += scale * total;
}
}  // namespace

void finish_column_sums(const float* partial, int64_t chunks, int64_t cols, float* out, const DeviceContext& context) {
  finish_column_sums_kernel<<<blocks_for(cols), kThreads, 0, context.stream()>>>(partial, chunks, cols, out);
  MONE_CUDA_CHECK_LAUNCH(finish_column_sums_kernel);
}

void add_sum(const float* values, int64_t n, float scale, float* out, const DeviceContext& context) {
  add_sum_kernel<<<1, kThreads, 0, context.stream()>>>(values, n, scale, out);
  MONE_CUDA_CHECK_LAUNCH(add_sum_kernel);
}

}  // namespace mone::cuda
