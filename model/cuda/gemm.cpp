// cuBLASLt is column-major; a row-major matrix X[r, c] with leading dimension
// ld is the column-major X^T[c, r] with the same ld. So the row-major
// C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T: B
// goes first, A second, and C's rows are cuBLASLt's columns. The bias vector
// is per row of cuBLASLt's D, i.e. per column of our row-major C.
#include "model/cuda/gemm.h"

#include <array>
#include <map>
#include <string>
#include <type_traits>

#include "model/cuda/check.h"
#include "model/cuda/context.h"

namespace mone::cuda {

namespace {
template <class T> constexpr cudaDataType_t data_type() {
  if constexpr (std::is_same_v<T, float>) return CUDA_R_32F;
  else return CUDA_R_16BF;
}

// The largest power of two (<= 256) dividing the address: cuBLASLt's
// heuristics assume 256-byte alignment unless told otherwise, and the row
// blocks of the nested projections start anywhere.
uint32_t alignment_of(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
};
}  // namespace

// Key: transposes, M, N, K, lda, ldb, ldc, types, bias, four alignments.
struct GemmPlanCache {
  using Key = std::array<int64_t, 14>;
  std::map<Key, Plan> plans;
  ~GemmPlanCache() {
    for (auto& entry : plans) {
      Plan& p = entry.second;
      cublasLtMatrixLayoutDestroy(p.a);
      cublasLtMatrixLayoutDestroy(p.b);
      cublasLtMatrixLayoutDestroy(p.c);
      cublasLtMatmulDescDestroy(p.desc);
    }
  }
};

GemmPlanCache* new_gemm_plan_cache() { return new GemmPlanCache; }
void GemmPlanCacheDeleter::operator()(GemmPlanCache* cache) const { delete cache; }

namespace {
template <class T, class TC>
Plan make_plan(bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
               bool has_bias, const std::array<uint32_t, 4>& alignment, const DeviceContext& context) {
  Plan p;
  MONE_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  // cuBLASLt's first operand is our B, its second our A (see the top of the file).
  const cublasOperation_t op_first = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  MONE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof op_first));
  MONE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof op_second));
  if (has_bias) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    const cudaDataType_t bias_type = data_type<TC>();
    MONE_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue));
    MONE_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type));
  }
  // Stored shapes (column-major rows x cols) of the two operands and of C.
  MONE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, data_type<T>(), tb ? K : N, tb ? N : K, ldb));
  MONE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, data_type<T>(), ta ? M : K, ta ? K : M, lda));
  MONE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, data_type<TC>(), N, M, ldc));

  cublasLtMatmulPreference_t preference;
  MONE_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
  const size_t workspace = context.gemm_workspace_bytes();
  MONE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                         &workspace, sizeof workspace));
  const cublasLtMatmulPreferenceAttributes_t alignment_attributes[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4; ++i)
    MONE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, alignment_attributes[i], &alignment[i],
                                                           sizeof alignment[i]));
  // Split-K's INPLACE and OUTPUT_TYPE schemes add the partial sums in the
  // output type: with a bf16 C that is bf16 accumulation, against gemm.h's fp32
  // accumulation. Only fp32 partials (or no split-K) for bf16 outputs.
  if constexpr (!std::is_same_v<TC, float>) {
    const uint32_t reductions = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    MONE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                                                           &reductions, sizeof reductions));
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(context.blas(), p.desc, p.a, p.b, p.c, p.c,
                                                               preference, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(preference);
  if (status != CUBLAS_STATUS_SUCCESS || found == 0) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.desc);
    throw CudaError("cuBLASLt has no algorithm for the GEMM " + std::string(ta ? "A^T" : "A") + (tb ? " B^T" : " B") +
                    " with M " + std::to_string(M) + ", N " + std::to_string(N) + ", K " + std::to_string(K) +
                    ", lda " + std::to_string(lda) + ", ldb " + std::to_string(ldb) + ", ldc " + std::to_string(ldc) +
                    (std::is_same_v<T, float> ? ", fp32" : ", bf16") + (has_bias ? ", bias epilogue" : "") + ": " +
                    cublasLtGetStatusString(status));
  }
  p.algo = result.algo;
  return p;
}
}  // namespace

template <class T, class TC>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, float beta, TC* C, int64_t ldc, const DeviceContext& context, const TC* bias) {
  if (M == 0 || N == 0) return;
  const std::array<uint32_t, 4> alignment = {alignment_of(B), alignment_of(A), alignment_of(C), alignment_of(C)};
  const GemmPlanCache::Key key = {ta,  tb,  M,   N,   K, lda, ldb, ldc, data_type<T>(), data_type<TC>(),
                                  bias != nullptr, alignment[0], alignment[1], alignment[2]};
  auto& plans = context.gemm_plans().plans;
  auto it = plans.find(key);
  if (it == plans.end())
    it = plans.emplace(key, make_plan<T, TC>(ta, tb, M, N, K, lda, ldb, ldc, bias != nullptr, alignment, context))
             .first;
  Plan& p = it->second;
  if (bias)
    MONE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
  MONE_CUBLAS_CHECK(cublasLtMatmul(context.blas(), p.desc, &alpha, B, p.a, A, p.b, &beta, C, p.c, C, p.c, &p.algo,
                                   context.gemm_workspace(), context.gemm_workspace_bytes(), context.stream()));
}

template void gemm<float, float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                                 int64_t, float, float*, int64_t, const DeviceContext&, const float*);
template void gemm<bf16, bf16>(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t, const bf16*,
                               int64_t, float, bf16*, int64_t, const DeviceContext&, const bf16*);
template void gemm<bf16, float>(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t, const bf16*,
                                int64_t, float, float*, int64_t, const DeviceContext&, const float*);

}  // namespace mone::cuda
