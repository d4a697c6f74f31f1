// Row-major GEMM on the device through cuBLASLt, the device twin of
// mone::gemm (model/ops.h): C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C.
//
// A and B are of type T (float or bf16), C of type TC (T, or float for the
// weight gradients, router and head, which stay in fp32). Accumulation is
// always fp32 (CUBLAS_COMPUTE_32F: in fp32 mode no TF32 shortcut, so the fp32
// tests can hold 1e-5). `bias` (type TC, N values) is added to every row by
// cuBLASLt's bias epilogue. The descriptors and the algorithm are chosen once
// per shape, leading dimensions, epilogue and pointer alignment, then reused:
// the same call picks the same algorithm every time, which with cuBLASLt's
// deterministic reductions makes results bitwise reproducible run to run.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace mone::cuda {

class DeviceContext;
using bf16 = __nv_bfloat16;

template <class T, class TC>
void gemm(bool transpose_a, bool transpose_b, int64_t M, int64_t N, int64_t K, float alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, float beta, TC* C, int64_t ldc, const DeviceContext& context,
          const TC* bias = nullptr);

// Whether cuBLASLt's bias epilogues take this bias vector: they want it
// 16-byte aligned. Callers with an unaligned bias add it themselves.
bool bias_epilogue_fits(const void* bias);

// The GELU epilogues of the MLP (tanh approximation, as gelu_forward), T in
// and out, alpha 1, beta 0. `pre` is the GELU input, row-major [M, N] of T
// with leading dimension ld_pre:
//   gemm_bias_gelu:     pre = op(A) op(B) + bias; C = gelu(pre)
//                       (CUBLASLT_EPILOGUE_GELU_AUX_BIAS, pre written)
//   gemm_gelu_backward: C = (op(A) op(B)) * gelu'(pre)
//                       (CUBLASLT_EPILOGUE_DGELU, pre read)
// Each returns false, having computed nothing, where cuBLASLt cannot do it:
// ld_pre not a multiple of 8 (cuBLASLt's rule for the GELU aux matrix), a
// bias the epilogue does not take, or no cuBLASLt algorithm for the
// combination. The caller then runs the GEMM and the GELU kernel separately.
template <class T>
bool gemm_bias_gelu(bool transpose_a, bool transpose_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
                    const T* B, int64_t ldb, T* C, int64_t ldc, const T* bias, T* pre, int64_t ld_pre,
                    const DeviceContext& context);
template <class T>
bool gemm_gelu_backward(bool transpose_a, bool transpose_b, int64_t M, int64_t N, int64_t K, const T* A,
                        int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc, const T* pre, int64_t ld_pre,
                        const DeviceContext& context);

}  // namespace mone::cuda
