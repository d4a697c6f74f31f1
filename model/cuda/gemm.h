// Row-major GEMM on the device through cuBLASLt, the device twin of
// mone::gemm (model/ops.h): C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C.
//
// A and B are of type T (float or bf16), C of type TC (T, or float for the
// weight gradients, router and head, which stay in fp32). Accumulation is
// always fp32 (CUBLAS_COMPUTE_32F: in fp32 mode no TF32 shortcut, so the fp32
// tests can hold 1e-5). `bias` (type TC, N values) is added to every row by
// cuBLASLt's bias epilogue. The descriptors and the algorithm are chosen once
// per shape, leading dimensions and pointer alignment, then reused: the same
// call picks the same algorithm every time, which with cuBLASLt's
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

}  // namespace mone::cuda
