// Linear layers on the device: plain, patch embedding, and the nested in/out
// projections as one GEMM per expert group over its contiguous row block,
// with the MLP's GELU in the GEMM epilogues where cuBLASLt can take it.
#include "model/cuda/kernels.cuh"
#include "model/cuda/ops.h"

namespace mone::cuda {

namespace {
template <class T>
__global__ void patchify_kernel(const T* images, int64_t B, int64_t H, int64_t W, int64_t C, int64_t P, T* patches) {
  const int64_t grid_w = W / P, N = (H / P) * grid_w, patch_dim = P * P * C;
  const int64_t index = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (index >= B * N * patch_dim) return;
  const int64_t e = index % patch_dim, n = (index / patch_dim) % N, b = index / (patch_dim * N);
  const int64_t iy = e / (P * C), ix = (e / C) % P, c = e % C;
  const int64_t y = (n / grid_w) * P + iy, x = (n % grid_w) * P + ix;
  patches[index] = images[((b * H + y) * W + x) * C + c];
}

// y[i, :out] = b for every row i (the bias as GEMM accumulator).
template <class TY>
__global__ void broadcast_rows_kernel(const TY* b, int64_t rows, int64_t out, TY* y, int64_t ldy) {
  const int64_t index = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (index >= rows * out) return;
  y[(index / out) * ldy + index % out] = b[index % out];
}

// Channels [width, ld) of `rows` rows starting at `first` set to zero.
template <class T>
void zero_columns(T* first, int64_t ld, int64_t rows, int64_t width, const DeviceContext& context) {
  if (width >= ld || rows == 0) return;
  MONE_CUDA_CHECK(cudaMemset2DAsync(first + width, ld * sizeof(T), 0, (ld - width) * sizeof(T), rows,
                                    context.stream()));
}
}  // namespace

template <class T, class TY>
void linear_forward(const T* x, int64_t ldx, int64_t M, int64_t in, const T* W, int64_t ldw, const TY* b,
                    int64_t out, TY* y, int64_t ldy, const DeviceContext& context) {
  // cuBLASLt's bias epilogue wants a 16-byte aligned bias vector. DeviceModel
  // aligns every parameter (model_cuda.h), so this is the path of callers
  // whose bias is not: the bias is written into y first and the GEMM
  // accumulates onto it, as the CPU does.
  if (b && !bias_epilogue_fits(b)) {
    if (M * out == 0) return;
    broadcast_rows_kernel<<<blocks_for(M * out), kThreads, 0, context.stream()>>>(b, M, out, y, ldy);
    MONE_CUDA_CHECK_LAUNCH(broadcast_rows_kernel);
    gemm<T, TY>(false, false, M, out, in, 1.f, x, ldx, W, ldw, 1.f, y, ldy, context);
    return;
  }
  gemm<T, TY>(false, false, M, out, in, 1.f, x, ldx, W, ldw, 0.f, y, ldy, context, b);
}

template <class T>
void linear_backward(const T* dy, int64_t ldy, const T* x, int64_t ldx, int64_t M, int64_t in, const T* W,
                     int64_t ldw, int64_t out, T* dx, int64_t lddx, float* dW, float* db,
                     const DeviceContext& context) {
  if (M == 0) return;
  if (dx) gemm<T, T>(false, true, M, in, out, 1.f, dy, ldy, W, ldw, 0.f, dx, lddx, context);
  gemm<T, float>(true, false, in, out, M, 1.f, x, ldx, dy, ldy, 1.f, dW, ldw, context);
  if (db) {
    Scratch scratch(context);
    add_column_sums(M, out, MatrixElement<T>{dy, ldy}, db, scratch, context);
  }
}

template <class T>
void patchify(const T* images, int64_t B, int64_t H, int64_t W, int64_t C, int64_t P, T* patches,
              const DeviceContext& context) {
  const int64_t total = B * (H / P) * (W / P) * P * P * C;
  if (total == 0) return;
  patchify_kernel<<<blocks_for(total), kThreads, 0, context.stream()>>>(images, B, H, W, C, P, patches);
  MONE_CUDA_CHECK_LAUNCH(patchify_kernel);
}

template <class T>
void patch_embed_forward(const T* patches, int64_t rows, int64_t patch_dim, const T* weight, const T* bias,
                         int64_t D, T* out, const DeviceContext& context) {
  linear_forward<T, T>(patches, patch_dim, rows, patch_dim, weight, D, bias, D, out, D, context);
}

template <class T>
void patch_embed_backward(const T* dout, const T* patches, int64_t rows, int64_t patch_dim, int64_t D,
                          float* dweight, float* dbias, const DeviceContext& context) {
  linear_backward<T>(dout, D, patches, patch_dim, rows, patch_dim, nullptr, D, D, nullptr, 0, dweight, dbias,
                     context);
}

template <class T>
void nested_in_forward(const T* x, int64_t ldx, const std::vector<ExpertGroup>& groups, const T* W, const T* b,
                       int64_t out, T* y, const DeviceContext& context) {
  for (const ExpertGroup& g : groups)
    linear_forward<T, T>(x + g.row_begin * ldx, ldx, g.rows, g.width, W, out, b, out, y + g.row_begin * out, out,
                         context);
}

template <class T>
void nested_in_backward(const T* dy, const T* x, int64_t ldx, const std::vector<ExpertGroup>& groups, const T* W,
                        int64_t out, T* dx, float* dW, float* db, const DeviceContext& context) {
  // Group by group on one stream: dW rows below the smallest width receive
  // every expert's contribution in the same order each run (beta = 1 GEMMs).
  for (const ExpertGroup& g : groups) {
    linear_backward(dy + g.row_begin * out, out, x + g.row_begin * ldx, ldx, g.rows, g.width, W, out, out,
                    dx + g.row_begin * ldx, ldx, dW, db, context);
    zero_columns(dx + g.row_begin * ldx, ldx, g.rows, g.width, context);
  }
}

template <class T>
void nested_out_forward(const T* x, int64_t in, const std::vector<ExpertGroup>& groups, const T* W, const T* b,
                        int64_t out, T* y, const DeviceContext& context) {
  for (const ExpertGroup& g : groups) {
    linear_forward<T, T>(x + g.row_begin * in, in, g.rows, in, W, out, b, g.width, y + g.row_begin * out, out,
                         context);
    zero_columns(y + g.row_begin * out, out, g.rows, g.width, context);  // channels the expert does not update
  }
}

template <class T>
void nested_out_backward(const T* dy, const T* x, int64_t in, const std::vector<ExpertGroup>& groups, const T* W,
                         int64_t out, T* dx, float* dW, float* db, const DeviceContext& context) {
  for (const ExpertGroup& g : groups)
    linear_backward(dy + g.row_begin * out, out, x + g.row_begin * in, in, g.rows, in, W, out, g.width,
                    dx + g.row_begin * in, in, dW, db, context);
}

template <class T>
void nested_in_gelu_forward(const T* x, int64_t ldx, const std::vector<ExpertGroup>& groups, const T* W,
                            const T* b, int64_t out, T* pre, T* y, const DeviceContext& context) {
  for (const ExpertGroup& g : groups) {
    const T* x_g = x + g.row_begin * ldx;
    T *pre_g = pre + g.row_begin * out, *y_g = y + g.row_begin * out;
    if (gemm_bias_gelu<T>(false, false, g.rows, out, g.width, x_g, ldx, W, out, y_g, out, b, pre_g, out, context))
      continue;
    // cuBLASLt cannot fuse it (gemm.h says when): the GEMM, then the kernel.
    linear_forward<T, T>(x_g, ldx, g.rows, g.width, W, out, b, out, pre_g, out, context);
    gelu_forward(pre_g, g.rows * out, y_g, context);
  }
}

template <class T>
void gelu_nested_out_backward(const T* dy, const T* x, const T* pre, int64_t in,
                              const std::vector<ExpertGroup>& groups, const T* W, int64_t out, T* dpre, float* dW,
                              float* db, const DeviceContext& context) {
  for (const ExpertGroup& g : groups) {
    const T *dy_g = dy + g.row_begin * out, *pre_g = pre + g.row_begin * in;
    T* dpre_g = dpre + g.row_begin * in;
    // nested_out_backward's dx GEMM with gelu' applied in its epilogue; where
    // cuBLASLt cannot, linear_backward writes dx and the kernel multiplies.
    const bool fused =
        gemm_gelu_backward<T>(false, true, g.rows, in, g.width, dy_g, out, W, out, dpre_g, in, pre_g, in, context);
    linear_backward(dy_g, out, x + g.row_begin * in, in, g.rows, in, W, out, g.width, fused ? nullptr : dpre_g, in,
                    dW, db, context);
    if (!fused) gelu_backward(dpre_g, pre_g, g.rows * in, dpre_g, context);
  }
}

template void linear_forward<float, float>(const float*, int64_t, int64_t, int64_t, const float*, int64_t,
                                           const float*, int64_t, float*, int64_t, const DeviceContext&);
template void linear_forward<bf16, bf16>(const bf16*, int64_t, int64_t, int64_t, const bf16*, int64_t, const bf16*,
                                         int64_t, bf16*, int64_t, const DeviceContext&);
template void linear_forward<bf16, float>(const bf16*, int64_t, int64_t, int64_t, const bf16*, int64_t, const float*,
                                          int64_t, float*, int64_t, const DeviceContext&);

#define MONE_INSTANTIATE(T)                                                                                        \
  template void linear_backward<T>(const T*, int64_t, const T*, int64_t, int64_t, int64_t, const T*, int64_t,      \
                                   int64_t, T*, int64_t, float*, float*, const DeviceContext&);                    \
  template void patchify<T>(const T*, int64_t, int64_t, int64_t, int64_t, int64_t, T*, const DeviceContext&);      \
  template void patch_embed_forward<T>(const T*, int64_t, int64_t, const T*, const T*, int64_t, T*,                \
                                       const DeviceContext&);                                                      \
  template void patch_embed_backward<T>(const T*, const T*, int64_t, int64_t, int64_t, float*, float*,             \
                                        const DeviceContext&);                                                     \
  template void nested_in_forward<T>(const T*, int64_t, const std::vector<ExpertGroup>&, const T*, const T*,       \
                                     int64_t, T*, const DeviceContext&);                                           \
  template void nested_in_backward<T>(const T*, const T*, int64_t, const std::vector<ExpertGroup>&, const T*,      \
                                      int64_t, T*, float*, float*, const DeviceContext&);                          \
  template void nested_out_forward<T>(const T*, int64_t, const std::vector<ExpertGroup>&, const T*, const T*,      \
                                      int64_t, T*, const DeviceContext&);                                          \
  template void nested_out_backward<T>(const T*, const T*, int64_t, const std::vector<ExpertGroup>&, const T*,     \
                                       int64_t, T*, float*, float*, const DeviceContext&);                         \
  template void nested_in_gelu_forward<T>(const T*, int64_t, const std::vector<ExpertGroup>&, const T*, const T*,  \
                                          int64_t, T*, T*, const DeviceContext&);                                  \
  template void gelu_nested_out_backward<T>(const T*, const T*, const T*, int64_t, const std::vector<ExpertGroup>&, \
                                            const T*, int64_t, T*, float*, float*, const DeviceContext&);
MONE_INSTANTIATE(float)
MONE_INSTANTIATE(bf16)
#undef MONE_INSTANTIATE

}  // namespace mone::cuda
