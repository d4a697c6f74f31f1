// The model's operations, CPU reference: forward and explicit backward.
//
// Conventions (kept in every op):
// - Matrices are row-major. Linear weights are stored [in, out] and applied as
//   y = x @ W + b, so "the first d_j input channels" are the first d_j rows of
//   W and "the first d_j output channels" its first d_j columns.
// - Parameter gradients accumulate (+=): the caller zeroes them once a step.
// - Activation gradients assign (=), except the ones that feed the residual
//   stream, which say "adds" in their comment.
// - T is float (training) or double (finite-difference gradient checks). The
//   GEMMs go through CBLAS.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace mone {

// Rows [row_begin, row_begin + rows) are tokens of one expert whose width is
// `width` channels. A dense op is one group covering every row at full width.
struct ExpertGroup {
  int64_t row_begin = 0;
  int64_t rows = 0;
  int64_t width = 0;
};

// The rows a set of groups covers (the groups of a layout tile [0, M)).
inline int64_t group_rows(const std::vector<ExpertGroup>& groups) {
  int64_t rows = 0;
  for (const ExpertGroup& g : groups) rows += g.rows;
  return rows;
}

// Multiply-adds of a nested projection over these groups: sum of rows x width,
// times the other side's width (`out` of a nested in-projection, `in` of an out-projection).
inline double group_macs(const std::vector<ExpertGroup>& groups, double other_width) {
  double macs = 0;
  for (const ExpertGroup& g : groups) macs += static_cast<double>(g.rows) * static_cast<double>(g.width);
  return macs * other_width;
}

// Where token p of image b sits: row = p * token_stride + b * image_stride.
// The expert-sorted layout [N, B, D] has token_stride B, image_stride 1; the
// original layout [B, N, D] has token_stride 1, image_stride N.
struct TokenLayout {
  int64_t images = 0;
  int64_t tokens = 0;
  int64_t token_stride = 0;
  int64_t image_stride = 0;
  int64_t row(int64_t image, int64_t token) const { return token * token_stride + image * image_stride; }
  static TokenLayout image_major(int64_t images, int64_t tokens) { return {images, tokens, 1, tokens}; }
  static TokenLayout token_major(int64_t images, int64_t tokens) { return {images, tokens, images, 1}; }
};

#ifdef __CUDACC__
#define MONE_HOST_DEVICE __host__ __device__
#else
#define MONE_HOST_DEVICE
#endif

// Where the heads of attention sit, one view for the CPU attention, the
// device kernel and cuDNN's tensor descriptors. A row of qkv is 3D wide and
// holds [q | k | v], heads contiguous within each (head h at h * head_dim, k
// D and v 2D after q); a row of the attention output is D wide.
struct HeadView {
  int64_t images = 0, tokens = 0, token_stride = 0, image_stride = 0;  // the TokenLayout
  int64_t heads = 0, D = 0, head_dim = 0;
  // First element of head h of the row of (image, token) in a buffer `width` wide per row.
  MONE_HOST_DEVICE int64_t offset(int64_t image, int64_t token, int64_t h, int64_t width) const {
    return (token * token_stride + image * image_stride) * width + h * head_dim;
  }
  // Elements between consecutive tokens of one image (a GEMM's leading dimension).
  MONE_HOST_DEVICE int64_t token_pitch(int64_t width) const { return token_stride * width; }
  static HeadView of(const TokenLayout& layout, int64_t heads, int64_t D) {
    return {layout.images, layout.tokens, layout.token_stride, layout.image_stride, heads, D, D / heads};
  }
};

// C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C, row-major, through CBLAS.
template <class T>
void gemm(bool transpose_a, bool transpose_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// ---- linear: y[M, out] = x[M, :in] @ W[in, out] + b (x and y with leading dims)
template <class T>
void linear_forward(const T* x, int64_t ldx, int64_t M, int64_t in, const T* W, int64_t ldw,
                    const T* b, int64_t out, T* y, int64_t ldy);
// dx = dy @ W^T (assigned; dx may be null), dW += x^T dy, db += colsum(dy) (db may be null).
template <class T>
void linear_backward(const T* dy, int64_t ldy, const T* x, int64_t ldx, int64_t M, int64_t in,
                     const T* W, int64_t ldw, int64_t out, T* dx, int64_t lddx, T* dW, T* db);

// ---- patch embedding: images [B, H, W, C] (NHWC) cut into P x P patches,
// each flattened row-major over (P, P, C), projected to D: out [B*N, D] in the
// original token order (token n = patch row * (W/P) + patch column).
template <class T>
void patchify(const T* images, int64_t B, int64_t H, int64_t W, int64_t C, int64_t P, T* patches);
template <class T>
void patch_embed_forward(const T* patches, int64_t rows, int64_t patch_dim, const T* weight,
                         const T* bias, int64_t D, T* out);
template <class T>
void patch_embed_backward(const T* dout, const T* patches, int64_t rows, int64_t patch_dim,
                          int64_t D, T* dweight, T* dbias);

// ---- position embedding: x[b*N + n, :] += pos[n, :] (x in original order)
template <class T>
void position_embed_forward(T* x, const T* pos, int64_t B, int64_t N, int64_t D);
template <class T>
void position_embed_backward(const T* dx, int64_t B, int64_t N, int64_t D, T* dpos);

// ---- LayerNorm over D (eps 1e-6): y = (x - mean) * rstd * gain + bias
template <class T>
void layernorm_forward(const T* x, int64_t M, int64_t D, const T* gain, const T* bias, T* y,
                       T* mean, T* rstd);
// Adds into dx (LayerNorm always reads the residual stream); dgain, dbias +=.
template <class T>
void layernorm_backward(const T* dy, const T* x, const T* mean, const T* rstd, const T* gain,
                        int64_t M, int64_t D, T* dx, T* dgain, T* dbias);

// ---- nested in-projection: for each group, y[rows, :] = x[rows, :width] @ W[:width, :] + b.
// x is [M, D_in] with D_in = ldx, W is [D_in, out], y is [M, out].
template <class T>
void nested_in_forward(const T* x, int64_t ldx, const std::vector<ExpertGroup>& groups, const T* W,
                       const T* b, int64_t out, T* y);
// dx[rows, :width] = dy @ W[:width]^T and dx[rows, width:] = 0; dW, db +=.
template <class T>
void nested_in_backward(const T* dy, const T* x, int64_t ldx, const std::vector<ExpertGroup>& groups,
                        const T* W, int64_t out, T* dx, T* dW, T* db);

// ---- nested out-projection: y[rows, :width] = x[rows] @ W[:, :width] + b[:width],
// y[rows, width:] = 0. x is [M, in], W is [in, D_out], y is [M, D_out].
template <class T>
void nested_out_forward(const T* x, int64_t in, const std::vector<ExpertGroup>& groups, const T* W,
                        const T* b, int64_t out, T* y);
// dx = dy[:, :width] @ W[:, :width]^T (assigned); dW[:, :width], db[:width] +=.
template <class T>
void nested_out_backward(const T* dy, const T* x, int64_t in, const std::vector<ExpertGroup>& groups,
                         const T* W, int64_t out, T* dx, T* dW, T* db);

// ---- the MLP's fc1 with its GELU, and fc2's backward with GELU's (the CUDA
// backend fuses each pair in its GEMM epilogues; here they are the two ops
// one after the other):
// - nested_in_gelu_forward: pre = nested_in_forward(x), y = gelu(pre).
// - gelu_nested_out_backward, the backward of nested_out_forward(gelu(pre)):
//   dpre (assigned) = gelu'(pre) * (dy @ W^T), dW += x^T dy, db += colsum(dy),
//   x being gelu(pre).
template <class T>
void nested_in_gelu_forward(const T* x, int64_t ldx, const std::vector<ExpertGroup>& groups, const T* W,
                            const T* b, int64_t out, T* pre, T* y, Gelu kind = Gelu::tanh);
template <class T>
void gelu_nested_out_backward(const T* dy, const T* x, const T* pre, int64_t in,
                              const std::vector<ExpertGroup>& groups, const T* W, int64_t out, T* dpre, T* dW,
                              T* db, Gelu kind = Gelu::tanh);

// ---- multi-head self-attention, bidirectional, at full width. qkv rows hold
// [q | k | v] (3D wide, heads contiguous within each); out rows are D wide.
// probs [B, H, N, N] keeps the softmax for the backward pass.
template <class T>
void attention_forward(const T* qkv, const TokenLayout& layout, int64_t heads, int64_t D, T* out,
                       T* probs);
// dqkv assigned.
template <class T>
void attention_backward(const T* dout, const T* qkv, const T* probs, const TokenLayout& layout,
                        int64_t heads, int64_t D, T* dqkv);
// The same two through OpenBLAS, one GEMM per (image, head) and product: the
// reference the fused kernels above are tested against (the path they take
// for head dims other than 8 and 16).
template <class T>
void attention_reference_forward(const T* qkv, const TokenLayout& layout, int64_t heads, int64_t D, T* out,
                                 T* probs);
template <class T>
void attention_reference_backward(const T* dout, const T* qkv, const T* probs, const TokenLayout& layout,
                                  int64_t heads, int64_t D, T* dqkv);

// ---- GELU: the tanh approximation (PyTorch approximate='tanh') or the exact
// x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (model/config.h, Gelu); y may alias x.
template <class T>
void gelu_forward(const T* x, int64_t n, T* y, Gelu kind = Gelu::tanh);
// dx = dy * gelu'(x) (assigned; dx may alias dy).
template <class T>
void gelu_backward(const T* dy, const T* x, int64_t n, T* dx, Gelu kind = Gelu::tanh);

// ---- router: probs[M, E] = softmax(x[M, D] @ W[D, E] + b)
template <class T>
void router_forward(const T* x, int64_t M, int64_t D, const T* W, const T* b, int64_t E, T* probs);
// Adds into dx; dW, db +=. dprobs is the gradient w.r.t. the probabilities.
template <class T>
void router_backward(const T* dprobs, const T* probs, const T* x, int64_t M, int64_t D,
                     const T* W, int64_t E, T* dx, T* dW, T* db);

// ---- Expert Preferred Routing (no gradient). probs [B*N, E] in the original
// order; expert_of_token [B*N] receives 0-based experts (0 = smallest). For
// j = E down to 2, the k_j unassigned tokens with the highest probs[:, j] go
// to expert j; ties to the lower token index; the rest stay at expert 1.
template <class T>
void expert_preferred_routing(const T* probs, int64_t B, int64_t N, int64_t E,
                              const std::vector<int64_t>& tokens_per_expert,
                              int32_t* expert_of_token);

// ---- token permutation into the expert-sorted [N, B, D] layout. Within each
// image, tokens are ordered by expert, largest first, then by index; slot
// (p, b) -> row p*B + b. source_of_row[p*B + b] = b*N + n (original row).
void expert_sorted_order(const int32_t* expert_of_token, int64_t B, int64_t N, int64_t E,
                         int32_t* source_of_row);
// One group per expert, largest first: rows k_j * B at width d_j.
std::vector<ExpertGroup> expert_groups(const std::vector<int64_t>& tokens_per_expert,
                                       const std::vector<int64_t>& expert_widths, int64_t B);
// dst[r, :] = src[source_of_row[r], :]
template <class T>
void permute_tokens_forward(const T* src, const int32_t* source_of_row, int64_t rows, int64_t D, T* dst);
// dsrc[source_of_row[r], :] = ddst[r, :] (assigned; a permutation).
template <class T>
void permute_tokens_backward(const T* ddst, const int32_t* source_of_row, int64_t rows, int64_t D, T* dsrc);

// r of each stored row: chosen[row] = probs[src, expert_of_token[src]], src = source_of_row[row].
template <class T>
void gather_chosen_probability(const T* probs, const int32_t* expert_of_token, const int32_t* source_of_row,
                               int64_t rows, int64_t E, T* chosen);
// Its backward: dprobs zero except dprobs[src, expert] = dchosen[row] (assigned).
template <class T>
void scatter_chosen_probability(const T* dchosen, const int32_t* expert_of_token, const int32_t* source_of_row,
                                int64_t rows, int64_t E, T* dprobs);

// ---- residual add: x += y (element-wise)
template <class T>
void add_inplace(T* x, const T* y, int64_t n);

// ---- MLP scaling on the residual: out = z + (alpha * r + 1) * m, row-wise r.
template <class T>
void scaled_residual_forward(const T* z, const T* m, const T* r, T alpha, int64_t M, int64_t D, T* out);
// dz = dout is the caller's (residual); dm = s * dout (assigned);
// dr[i] += alpha * <dout_i, m_i>; *dalpha += sum_i r_i <dout_i, m_i>.
template <class T>
void scaled_residual_backward(const T* dout, const T* m, const T* r, T alpha, int64_t M, int64_t D,
                              T* dm, T* dr, T* dalpha);

// ---- mean pooling over the N tokens of each image: out [B, D].
template <class T>
void mean_pool_forward(const T* x, const TokenLayout& layout, int64_t D, T* out);
// dx assigned.
template <class T>
void mean_pool_backward(const T* dout, const TokenLayout& layout, int64_t D, T* dx);

// ---- softmax cross-entropy, mean over the batch. Returns the loss; probs [B, C].
// With label smoothing e the target is q = (1 - e) onehot + e / C.
template <class T>
T cross_entropy_forward(const T* logits, const int32_t* labels, int64_t B, int64_t C, T* probs,
                        T label_smoothing = T(0));
// dlogits = (probs - q) / mean_over (assigned). mean_over is the batch the
// loss is the mean over when these B rows are one chunk of it (0: B).
template <class T>
void cross_entropy_backward(const T* probs, const int32_t* labels, int64_t B, int64_t C, T* dlogits,
                            T label_smoothing = T(0), int64_t mean_over = 0);

// ---- in-place distillation (method page, "In-place distillation"): the
// student's logits z learn from the teacher's logits t (detached) at
// temperature tau: returns tau^2 KL(softmax(t / tau) || softmax(z / tau)),
// the mean over the batch; soft = softmax(z / tau), teacher_soft =
// softmax(t / tau), both [B, C].
template <class T>
T distillation_forward(const T* logits, const T* teacher_logits, int64_t B, int64_t C, T temperature, T* soft,
                       T* teacher_soft);
// dlogits += weight * tau (soft - teacher_soft) / mean_over (0: B, as for
// cross_entropy_backward): the gradient of weight times the returned loss
// (the tau^2 keeps its scale independent of tau).
template <class T>
void distillation_backward(const T* soft, const T* teacher_soft, int64_t B, int64_t C, T temperature, T weight,
                           T* dlogits, int64_t mean_over = 0);

}  // namespace mone
