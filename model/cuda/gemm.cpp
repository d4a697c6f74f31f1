// cuBLASLt is column-major; a row-major matrix X[r, c] with leading dimension
// ld is the column-major X^T[c, r] with the same ld. So the row-major
// C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T: B
// goes first, A second, and C's rows are cuBLASLt's columns. The bias vector
// is per row of cuBLASLt's D, i.e. per column of our row-major C; the GELU
// aux matrix has D's column-major shape, i.e. our C's row-major shape, and
// its leading dimension (cuBLASLt: >= D's rows) is our row stride (>= N).
#include "model/cuda/gemm.h"

#include <array>
#include <map>
#include <stdexcept>
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

// What cuBLASLt does to the product before storing it, and the vector and
// matrix that take part.
enum class Epilogue { none, bias, bias_gelu, gelu_backward };
struct EpilogueOperands {
  Epilogue kind = Epilogue::none;
  const void* bias = nullptr;  // bias, bias_gelu
  const void* aux = nullptr;   // the GELU input: written by bias_gelu, read by gelu_backward
  int64_t ld_aux = 0;
};
bool reads_bias(Epilogue kind) { return kind == Epilogue::bias || kind == Epilogue::bias_gelu; }
bool uses_aux(Epilogue kind) { return kind == Epilogue::bias_gelu || kind == Epilogue::gelu_backward; }
cublasLtEpilogue_t cublas_epilogue(Epilogue kind) {
  switch (kind) {
    case Epilogue::bias: return CUBLASLT_EPILOGUE_BIAS;
    case Epilogue::bias_gelu: return CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    case Epilogue::gelu_backward: return CUBLASLT_EPILOGUE_DGELU;
    case Epilogue::none: break;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

// The pointers live in the descriptor, which the cache shares between calls:
// set on every call, and before the heuristic, which reads their alignment
// from them.
void set_epilogue_pointers(cublasLtMatmulDesc_t desc, const EpilogueOperands& epilogue) {
  if (reads_bias(epilogue.kind))
    MONE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &epilogue.bias,
                                                     sizeof epilogue.bias));
  if (uses_aux(epilogue.kind))
    MONE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &epilogue.aux,
                                                     sizeof epilogue.aux));
}

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  // CUBLAS_STATUS_SUCCESS when the heuristic found an algorithm; otherwise
  // why not, and the descriptors are destroyed.
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
};
void destroy(Plan& p) {
  if (p.a) cublasLtMatrixLayoutDestroy(p.a);
  if (p.b) cublasLtMatrixLayoutDestroy(p.b);
  if (p.c) cublasLtMatrixLayoutDestroy(p.c);
  if (p.desc) cublasLtMatmulDescDestroy(p.desc);
  p.a = p.b = p.c = nullptr;
  p.desc = nullptr;
}
}  // namespace

// Key: transposes, M, N, K, lda, ldb, ldc, types, epilogue, aux leading
// dimension, alignments of A, B, C, bias, aux.
struct GemmPlanCache {
  using Key = std::array<int64_t, 17>;
  std::map<Key, Plan> plans;
  ~GemmPlanCache() {
    for (auto& entry : plans) destroy(entry.second);
  }
};

GemmPlanCache* new_gemm_plan_cache() { return new GemmPlanCache; }
void GemmPlanCacheDeleter::operator()(GemmPlanCache* cache) const { delete cache; }

namespace {
template <class T, class TC>
Plan make_plan(bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
               const EpilogueOperands& epilogue, const std::array<uint32_t, 4>& alignment,
               const DeviceContext& context) {
  Plan p;
  MONE_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  // cuBLASLt's first operand is our B, its second our A (see the top of the file).
  const cublasOperation_t op_first = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  MONE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof op_first));
  MONE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof op_second));
  const cublasLtEpilogue_t cublas_kind = cublas_epilogue(epilogue.kind);
  MONE_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &cublas_kind, sizeof cublas_kind));
  if (reads_bias(epilogue.kind)) {
    const cudaDataType_t bias_type = data_type<TC>();
    MONE_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type));
  }
  // The aux matrix's type is left at its default, D's type (TC).
  if (uses_aux(epilogue.kind))
    MONE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &epilogue.ld_aux,
                                                     sizeof epilogue.ld_aux));
  set_epilogue_pointers(p.desc, epilogue);
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
  p.status = cublasLtMatmulAlgoGetHeuristic(context.blas(), p.desc, p.a, p.b, p.c, p.c, preference, 1, &result,
                                            &found);
  cublasLtMatmulPreferenceDestroy(preference);
  if (p.status == CUBLAS_STATUS_SUCCESS && found == 0) p.status = CUBLAS_STATUS_NOT_SUPPORTED;
  if (p.status != CUBLAS_STATUS_SUCCESS) destroy(p);
  else p.algo = result.algo;
  return p;
}

// Runs the GEMM with its epilogue; CUBLAS_STATUS_SUCCESS, or why cuBLASLt
// has no algorithm for it (then nothing ran). The answer is cached like the
// algorithm, so a combination cuBLASLt lacks is asked about once.
template <class T, class TC>
cublasStatus_t run(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const T* A, int64_t lda,
                   const T* B, int64_t ldb, float beta, TC* C, int64_t ldc, const EpilogueOperands& epilogue,
                   const DeviceContext& context) {
  if (M == 0 || N == 0) return CUBLAS_STATUS_SUCCESS;
  const std::array<uint32_t, 4> alignment = {alignment_of(B), alignment_of(A), alignment_of(C), alignment_of(C)};
  const GemmPlanCache::Key key = {ta, tb, M, N, K, lda, ldb, ldc, data_type<T>(), data_type<TC>(),
                                  static_cast<int64_t>(epilogue.kind), epilogue.ld_aux, alignment[0], alignment[1],
                                  alignment[2], alignment_of(epilogue.bias), alignment_of(epilogue.aux)};
  auto& plans = context.gemm_plans().plans;
  auto it = plans.find(key);
  if (it == plans.end())
    it = plans.emplace(key, make_plan<T, TC>(ta, tb, M, N, K, lda, ldb, ldc, epilogue, alignment, context)).first;
  const Plan& p = it->second;
  if (p.status != CUBLAS_STATUS_SUCCESS) return p.status;
  set_epilogue_pointers(p.desc, epilogue);
  MONE_CUBLAS_CHECK(cublasLtMatmul(context.blas(), p.desc, &alpha, B, p.a, A, p.b, &beta, C, p.c, C, p.c, &p.algo,
                                   context.gemm_workspace(), context.gemm_workspace_bytes(), context.stream()));
  return CUBLAS_STATUS_SUCCESS;
}

void require_pre_covers_rows(int64_t N, int64_t ld_pre) {
  if (ld_pre < N)
    throw std::invalid_argument("GELU epilogue: the leading dimension " + std::to_string(ld_pre) +
                                " of the GELU input is below its row length " + std::to_string(N));
}
}  // namespace

template <class T, class TC>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, float beta, TC* C, int64_t ldc, const DeviceContext& context, const TC* bias) {
  const EpilogueOperands epilogue{bias ? Epilogue::bias : Epilogue::none, bias};
  const cublasStatus_t status = run<T, TC>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue, context);
  if (status != CUBLAS_STATUS_SUCCESS)
    throw CudaError("cuBLASLt has no algorithm for the GEMM " + std::string(ta ? "A^T" : "A") + (tb ? " B^T" : " B") +
                    " with M " + std::to_string(M) + ", N " + std::to_string(N) + ", K " + std::to_string(K) +
                    ", lda " + std::to_string(lda) + ", ldb " + std::to_string(ldb) + ", ldc " + std::to_string(ldc) +
                    (std::is_same_v<T, float> ? ", fp32" : ", bf16") + (bias ? ", bias epilogue" : "") + ": " +
                    cublasLtGetStatusString(status));
}

bool bias_epilogue_fits(const void* bias) { return reinterpret_cast<uintptr_t>(bias) % 16 == 0; }

template <class T>
bool gemm_bias_gelu(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
                    int64_t ldb, T* C, int64_t ldc, const T* bias, T* pre, int64_t ld_pre,
                    const DeviceContext& context) {
  if (!bias) throw std::invalid_argument("gemm_bias_gelu: no bias");
  require_pre_covers_rows(N, ld_pre);
  if (ld_pre % 8 != 0 || !bias_epilogue_fits(bias)) return false;
  return run<T, T>(ta, tb, M, N, K, 1.f, A, lda, B, ldb, 0.f, C, ldc, {Epilogue::bias_gelu, bias, pre, ld_pre},
                   context) == CUBLAS_STATUS_SUCCESS;
}

template <class T>
bool gemm_gelu_backward(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
                        int64_t ldb, T* C, int64_t ldc, const T* pre, int64_t ld_pre, const DeviceContext& context) {
  require_pre_covers_rows(N, ld_pre);
  if (ld_pre % 8 != 0) return false;
  return run<T, T>(ta, tb, M, N, K, 1.f, A, lda, B, ldb, 0.f, C, ldc,
                   {Epilogue::gelu_backward, nullptr, pre, ld_pre}, context) == CUBLAS_STATUS_SUCCESS;
}

template void gemm<float, float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                                 int64_t, float, float*, int64_t, const DeviceContext&, const float*);
template void gemm<bf16, bf16>(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t, const bf16*,
                               int64_t, float, bf16*, int64_t, const DeviceContext&, const bf16*);
template void gemm<bf16, float>(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t, const bf16*,
                                int64_t, float, float*, int64_t, const DeviceContext&, const float*);

#define MONE_INSTANTIATE(T)                                                                                          \
  template bool gemm_bias_gelu<T>(bool, bool, int64_t, int64_t, int64_t, const T*, int64_t, const T*, int64_t, T*,   \
                                  int64_t, const T*, T*, int64_t, const DeviceContext&);                             \
  template bool gemm_gelu_backward<T>(bool, bool, int64_t, int64_t, int64_t, const T*, int64_t, const T*, int64_t,   \
                                      T*, int64_t, const T*, int64_t, const DeviceContext&);
MONE_INSTANTIATE(float)
MONE_INSTANTIATE(bf16)
#undef MONE_INSTANTIATE

}  // namespace mone::cuda
