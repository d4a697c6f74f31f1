// The model's operations on the device: the twins of model/ops.h, same names
// and the same argument order, with these differences (kept in every op):
// - T is float (the fp32 mode of the tests) or bf16 (training). Activations
//   and the compute copy of the weights are T; every reduction and GEMM
//   accumulates in fp32.
// - Parameter gradients are fp32 (the `float* d...` arguments) and accumulate
//   (+=), as on the CPU; activation gradients are T and assign (=) except
//   where the comment says "adds" (the residual stream).
// - Router probabilities, the chosen-expert probability r, LayerNorm
//   statistics, logits and class probabilities are fp32: they feed routing
//   decisions and the loss, where bf16 rounding would change results.
// - Scalars that live on the device (alpha, the loss, the gradient norm) are
//   passed by device pointer, so a step never waits for the host.
// - The last argument is the DeviceContext: stream, cuBLASLt, scratch.
// - Reductions feeding weight gradients use no atomics: fixed-order partial
//   sums over fixed row chunks, then a second pass over the chunks.
#pragma once

#include <cstdint>
#include <vector>

#include "model/cuda/context.h"
#include "model/cuda/gemm.h"
#include "model/ops.h"

namespace mone::cuda {

// ---- conversions between the fp32 host/master values and T on the device
template <class T>
void convert_from_float(const float* x, int64_t n, T* y, const DeviceContext& context);
template <class T>
void convert_to_float(const T* x, int64_t n, float* y, const DeviceContext& context);

// ---- linear: y[M, out] = x[M, :in] @ W[in, out] + b; b and y of type TY: T, or float
// for the fp32 outputs (router logits, head logits, with the fp32 master bias)
template <class T, class TY>
void linear_forward(const T* x, int64_t ldx, int64_t M, int64_t in, const T* W, int64_t ldw, const TY* b,
                    int64_t out, TY* y, int64_t ldy, const DeviceContext& context);
// dx = dy @ W^T (assigned; dx may be null), dW += x^T dy, db += colsum(dy) (db may be null).
template <class T>
void linear_backward(const T* dy, int64_t ldy, const T* x, int64_t ldx, int64_t M, int64_t in, const T* W,
                     int64_t ldw, int64_t out, T* dx, int64_t lddx, float* dW, float* db,
                     const DeviceContext& context);

// ---- patch embedding (layouts as in model/ops.h)
template <class T>
void patchify(const T* images, int64_t B, int64_t H, int64_t W, int64_t C, int64_t P, T* patches,
              const DeviceContext& context);
template <class T>
void patch_embed_forward(const T* patches, int64_t rows, int64_t patch_dim, const T* weight, const T* bias,
                         int64_t D, T* out, const DeviceContext& context);
template <class T>
void patch_embed_backward(const T* dout, const T* patches, int64_t rows, int64_t patch_dim, int64_t D,
                          float* dweight, float* dbias, const DeviceContext& context);

// ---- position embedding: x[b*N + n, :] += pos[n, :]
template <class T>
void position_embed_forward(T* x, const T* pos, int64_t B, int64_t N, int64_t D, const DeviceContext& context);
template <class T>
void position_embed_backward(const T* dx, int64_t B, int64_t N, int64_t D, float* dpos,
                             const DeviceContext& context);

// ---- LayerNorm over D (eps 1e-6)
template <class T>
void layernorm_forward(const T* x, int64_t M, int64_t D, const T* gain, const T* bias, T* y, float* mean,
                       float* rstd, const DeviceContext& context);
// Adds into dx; dgain, dbias +=.
template <class T>
void layernorm_backward(const T* dy, const T* x, const float* mean, const float* rstd, const T* gain, int64_t M,
                        int64_t D, T* dx, float* dgain, float* dbias, const DeviceContext& context);

// ---- nested projections: E GEMMs over the contiguous row blocks of the groups
template <class T>
void nested_in_forward(const T* x, int64_t ldx, const std::vector<ExpertGroup>& groups, const T* W, const T* b,
                       int64_t out, T* y, const DeviceContext& context);
template <class T>
void nested_in_backward(const T* dy, const T* x, int64_t ldx, const std::vector<ExpertGroup>& groups, const T* W,
                        int64_t out, T* dx, float* dW, float* db, const DeviceContext& context);
template <class T>
void nested_out_forward(const T* x, int64_t in, const std::vector<ExpertGroup>& groups, const T* W, const T* b,
                        int64_t out, T* y, const DeviceContext& context);
template <class T>
void nested_out_backward(const T* dy, const T* x, int64_t in, const std::vector<ExpertGroup>& groups, const T* W,
                         int64_t out, T* dx, float* dW, float* db, const DeviceContext& context);
// The MLP's fc1 with its GELU, and fc2's backward with GELU's, the GELU in
// the GEMM epilogues (gemm.h):
// - nested_in_gelu_forward: pre = nested_in_forward(x), y = gelu(pre).
// - gelu_nested_out_backward, the backward of nested_out_forward(gelu(pre)):
//   dpre (assigned) = gelu'(pre) * (dy @ W^T), dW += x^T dy, db += colsum(dy),
//   x being gelu(pre).
// A group cuBLASLt cannot fuse (gemm.h says when) runs the GEMM and the GELU
// kernel one after the other.
template <class T>
void nested_in_gelu_forward(const T* x, int64_t ldx, const std::vector<ExpertGroup>& groups, const T* W,
                            const T* b, int64_t out, T* pre, T* y, const DeviceContext& context);
template <class T>
void gelu_nested_out_backward(const T* dy, const T* x, const T* pre, int64_t in,
                              const std::vector<ExpertGroup>& groups, const T* W, int64_t out, T* dpre, float* dW,
                              float* db, const DeviceContext& context);

// ---- attention: our fused kernel (online softmax, one warp per query row,
// any N, the layout's strides). Instead of the CPU's probs [B, H, N, N] it
// keeps the log-sum-exp of each score row, lse [B, H, N] fp32, and the
// backward recomputes the probabilities from it. Head dim <= 256.
template <class T>
void attention_forward(const T* qkv, const TokenLayout& layout, int64_t heads, int64_t D, T* out, float* lse,
                       const DeviceContext& context);
// dqkv assigned. `out` is the forward's output (for <dO, O> per row).
template <class T>
void attention_backward(const T* dout, const T* qkv, const T* out, const float* lse, const TokenLayout& layout,
                        int64_t heads, int64_t D, T* dqkv, const DeviceContext& context);

// ---- GELU, tanh approximation; y may alias x, dx may alias dy.
template <class T>
void gelu_forward(const T* x, int64_t n, T* y, const DeviceContext& context);
template <class T>
void gelu_backward(const T* dy, const T* x, int64_t n, T* dx, const DeviceContext& context);

// ---- router: probs[M, E] (fp32) = softmax(x @ W + b), b the fp32 master bias
template <class T>
void router_forward(const T* x, int64_t M, int64_t D, const T* W, const float* b, int64_t E, float* probs,
                    const DeviceContext& context);
// Adds into dx; dW, db +=.
template <class T>
void router_backward(const float* dprobs, const float* probs, const T* x, int64_t M, int64_t D, const T* W,
                     int64_t E, T* dx, float* dW, float* db, const DeviceContext& context);

// ---- EPR on the device, one block per image; same rule and tie-break as
// the CPU (the k_j highest unassigned, lower token index first on ties).
// expert_of_token, source_of_row: device int32 arrays of B*N.
void expert_preferred_routing(const float* probs, int64_t B, int64_t N, int64_t E,
                              const std::vector<int64_t>& tokens_per_expert, int32_t* expert_of_token,
                              const DeviceContext& context);
void expert_sorted_order(const int32_t* expert_of_token, int64_t B, int64_t N, int64_t E, int32_t* source_of_row,
                         const DeviceContext& context);
template <class T>
void permute_tokens_forward(const T* src, const int32_t* source_of_row, int64_t rows, int64_t D, T* dst,
                            const DeviceContext& context);
template <class T>
void permute_tokens_backward(const T* ddst, const int32_t* source_of_row, int64_t rows, int64_t D, T* dsrc,
                             const DeviceContext& context);
// r of each stored row: chosen[row] = probs[src, expert_of_token[src]], src = source_of_row[row].
void gather_chosen_probability(const float* probs, const int32_t* expert_of_token, const int32_t* source_of_row,
                               int64_t rows, int64_t E, float* chosen, const DeviceContext& context);
// Its backward: dprobs zero except dprobs[src, expert] = dchosen[row] (assigned).
void scatter_chosen_probability(const float* dchosen, const int32_t* expert_of_token, const int32_t* source_of_row,
                                int64_t rows, int64_t E, float* dprobs, const DeviceContext& context);

// ---- MLP scaling: out = z + (alpha r + 1) m; alpha is a device scalar.
template <class T>
void scaled_residual_forward(const T* z, const T* m, const float* r, const T* alpha, int64_t M, int64_t D, T* out,
                             const DeviceContext& context);
// dm = s dout (assigned); dr[i] += alpha <dout_i, m_i>; *dalpha += sum_i r_i <dout_i, m_i>.
template <class T>
void scaled_residual_backward(const T* dout, const T* m, const float* r, const T* alpha, int64_t M, int64_t D,
                              T* dm, float* dr, float* dalpha, const DeviceContext& context);

// ---- mean pooling over each image's N tokens (out [B, D]); backward assigns dx.
template <class T>
void mean_pool_forward(const T* x, const TokenLayout& layout, int64_t D, T* out, const DeviceContext& context);
template <class T>
void mean_pool_backward(const T* dout, const TokenLayout& layout, int64_t D, T* dx, const DeviceContext& context);

// ---- softmax cross-entropy on fp32 logits; *loss (device) = mean over the batch.
void cross_entropy_forward(const float* logits, const int32_t* labels, int64_t B, int64_t C, float* probs,
                           float label_smoothing, float* loss, const DeviceContext& context);
// dlogits = (probs - q) / B (assigned).
void cross_entropy_backward(const float* probs, const int32_t* labels, int64_t B, int64_t C, float* dlogits,
                            float label_smoothing, const DeviceContext& context);

// ---- residual add: x += y (element-wise, T)
template <class T>
void add_inplace(T* x, const T* y, int64_t n, const DeviceContext& context);

}  // namespace mone::cuda
