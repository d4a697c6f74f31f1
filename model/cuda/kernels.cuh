// Internal to the .cu files: conversions, warp sums, launch sizes, element-wise launches, and the
// deterministic column reduction that every bias-like gradient goes through.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "model/cuda/check.h"
#include "model/cuda/context.h"

namespace mone::cuda {

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
template <class T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// Butterfly sum over the 32 lanes: every lane ends with the same value, and
// the order of additions is fixed, so it is deterministic.
__device__ __forceinline__ float warp_sum(float x) {
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}
__device__ __forceinline__ float warp_max(float x) {
  for (int offset = 16; offset > 0; offset /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
  return x;
}

constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / 32;
static_assert(kThreads % 32 == 0 && (kThreads & (kThreads - 1)) == 0,
              "block_tree_sum halves kThreads; warp kernels need whole warps");

// Sum of `value` over the kThreads threads of a block, by a tree of fixed
// shape (deterministic); `scratch` is kThreads shared elements. Every thread
// must call it; the result is valid in thread 0.
template <class T>
__device__ __forceinline__ T block_tree_sum(T value, T* scratch) {
  scratch[threadIdx.x] = value;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) scratch[threadIdx.x] += scratch[threadIdx.x + stride];
    __syncthreads();
  }
  return scratch[0];
}
inline unsigned blocks_for(int64_t work, int64_t per_block = kThreads) {
  return static_cast<unsigned>((work + per_block - 1) / per_block);
}

// Element-wise kernels: one thread per element; `op(i)` does element i.
template <class Op>
__global__ void for_each_kernel(int64_t n, Op op) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) op(i);
}
template <class Op>
void for_each(int64_t n, Op op, const DeviceContext& context) {
  if (n == 0) return;
  for_each_kernel<<<blocks_for(n), kThreads, 0, context.stream()>>>(n, op);
  MONE_CUDA_CHECK_LAUNCH(for_each_kernel);
}

// Rows per chunk of a column reduction: independent of the launch, so the
// order of additions (in order within a chunk, then chunks in order) is a
// function of the shape alone.
constexpr int64_t kColumnChunkRows = 256;

template <class Term>
__global__ void column_partials_kernel(int64_t rows, int64_t cols, Term term, float* partial) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  if (c >= cols) return;
  const int64_t end = min(rows, (chunk + 1) * kColumnChunkRows);
  float sum = 0.f;
  for (int64_t i = chunk * kColumnChunkRows; i < end; ++i) sum += term(i, c);
  partial[chunk * cols + c] = sum;
}

// out[c] += sum over chunks of partial[chunk, c], chunks in order.
void finish_column_sums(const float* partial, int64_t chunks, int64_t cols, float* out, const DeviceContext& context);

// out[c] += sum over rows i of term(i, c), for c < cols; term is a device
// functor (i, c) -> float. Two passes, no atomics: bitwise reproducible.
template <class Term>
void add_column_sums(int64_t rows, int64_t cols, Term term, float* out, Scratch& scratch,
                     const DeviceContext& context) {
  if (rows == 0 || cols == 0) return;
  const int64_t chunks = (rows + kColumnChunkRows - 1) / kColumnChunkRows;
  float* partial = scratch.take<float>(chunks * cols, "column sums");
  column_partials_kernel<<<dim3(blocks_for(cols), static_cast<unsigned>(chunks)), kThreads, 0, context.stream()>>>(
      rows, cols, term, partial);
  MONE_CUDA_CHECK_LAUNCH(column_partials_kernel);
  finish_column_sums(partial, chunks, cols, out, context);
}

// The column sums of a matrix: term(i, c) = x[i * ld + c].
template <class T>
struct MatrixElement {
  const T* x;
  int64_t ld;
  __device__ float operator()(int64_t i, int64_t c) const { return to_float(x[i * ld + c]); }
};

// *out += scale * (sum of values[0..n)), one block, in a fixed order.
void add_sum(const float* values, int64_t n, float scale, float* out, const DeviceContext& context);

}  // namespace mone::cuda
