// The MoNE ViT's forward and backward (method page, section 1), written once
// for every device: embedding, routing once, L nested blocks in the stored
// token layout, pooling, head, and the backward of all of it. Reads top to
// bottom like the method page.
//
// The device comes in as an ops policy `Ops` (model/step_ops.h for the CPU,
// model/cuda/step_ops.h for CUDA). A policy provides:
// - the types Value (activations and the weights the ops read), Exact (router
//   probabilities, the chosen-expert probability r, LayerNorm statistics,
//   logits and class probabilities: kept at full precision because they feed
//   routing and the loss) and AttentionSaved (what attention keeps for its
//   backward: the CPU's softmax, the device's log-sum-exp);
// - parameter access by name: weight (Value), exact (the full-precision value:
//   the fp32 master on the device), scalar (alpha, as the ops take it), grad,
//   offset (into the gradient buffer) and gradient_numel;
// - every op of model/ops.h that the step calls, under the same name and with
//   the same arguments (the device's context stays inside the policy), plus
//   attend / attend_backward, route, zero, as_value and label_smoothing.
// The step only decides what is computed and in which order; a policy
// decides how (which kernel, which fusion). So a new architecture is written
// once, and the devices cannot drift apart.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "model/config.h"
#include "model/ops.h"
#include "model/routing_plan.h"

namespace mone {

// Backward hook for overlapping the gradient allreduce: called with each
// element range [begin, end) of the gradient buffer that backward will not
// write again in this pass. The parameters are stored in forward order, so
// the ranges arrive from the end of the buffer toward its start (head and
// final norm, then each block from the last, then the embeddings and the
// router) and together cover it once. Empty function: no calls.
using GradientReady = std::function<void(int64_t begin, int64_t end)>;

// What every block keeps of its first half, z = x + SA(LN1(x)) and LN2(z),
// in MoNE's and in V-MoE's step alike (model/vmoe_step.h).
template <class Ops>
struct AttentionHalf {
  using V = typename Ops::Value;
  using X = typename Ops::Exact;
  using S = typename Ops::AttentionSaved;
  V* input;                // residual stream entering the block [M, D]
  V* ln1;                  // LN1 over full D [M, D]
  X *ln1_mean, *ln1_rstd;  // [M]
  V* qkv;                  // [M, 3D]
  S* attention_saved;      // the policy's attention_saved_numel
  V* attn;                 // attention output [M, D]
  V* mid;                  // z = x + proj(attn) [M, D]
  V* ln2;
  X *ln2_mean, *ln2_rstd;
};

template <class Ops>
struct StepActivations {
  using V = typename Ops::Value;
  using X = typename Ops::Exact;
  using S = typename Ops::AttentionSaved;
  struct Block : AttentionHalf<Ops> {
    V* hidden_pre;           // fc1 output, GELU's input [M, hidden]
    V* hidden;               // GELU [M, hidden]
    V* mlp_out;              // m, zero beyond each token's width [M, D]
  };
  int64_t batch = 0;
  TokenLayout layout;                // of the stored rows, set by route
  std::vector<ExpertGroup> groups;   // row ranges of the stored layout, set by route
  V* patches;                        // [M, P*P*C], original order
  V* embedded;                       // patch + position embedding [M, D], original order
  X* router_probs;                   // [M, E], original order
  int32_t* expert_of_token;          // [M], 0-based, original order
  int32_t* source_of_row;            // [M], stored row -> original row b*N + n
  X* chosen_prob;                    // r of each row's expert [M], stored layout
  std::vector<Block> blocks;
  V* final_in;                       // residual stream after the last block [M, D]
  V* final_ln;
  X *final_mean, *final_rstd;
  V* pooled;                         // [B, D]
  X* logits;                         // [B, classes]
  X* class_probs;                    // [B, classes], the loss's softmax
  // Backward (planned only when the pass has one).
  X* d_logits;
  V* d_logits_value;                 // d_logits as the head's GEMM reads it (as_value)
  V *d_pooled, *d_resid, *d_norm, *d_qkv, *d_attn, *d_hidden, *d_mlp, *d_embedded;
  X *d_chosen_prob, *d_router_probs;
};

// The buffers of a block's first half (b.input is the caller's).
template <class Ops, class Arena>
void plan_attention_half(Arena& arena, const Ops& ops, const ModelConfig& c, int64_t batch, AttentionHalf<Ops>& b) {
  using V = typename Ops::Value;
  using X = typename Ops::Exact;
  using S = typename Ops::AttentionSaved;
  const int64_t N = c.tokens(), D = c.dim, M = batch * N;
  b.ln1 = arena.template take<V>(M * D, "LN1");
  b.ln1_mean = arena.template take<X>(M, "LN1 mean");
  b.ln1_rstd = arena.template take<X>(M, "LN1 rstd");
  b.qkv = arena.template take<V>(M * 3 * D, "qkv");
  b.attention_saved = arena.template take<S>(ops.attention_saved_numel(batch, c.heads, N), "attention softmax state");
  b.attn = arena.template take<V>(M * D, "attention output");
  b.mid = arena.template take<V>(M * D, "residual after attention");
  b.ln2 = arena.template take<V>(M * D, "LN2");
  b.ln2_mean = arena.template take<X>(M, "LN2 mean");
  b.ln2_rstd = arena.template take<X>(M, "LN2 rstd");
}

// After the last block (a.final_in is the caller's): the final LayerNorm,
// pooling, logits and the loss's softmax. `A` is either step's activations.
template <class Arena, class A>
void plan_head(Arena& arena, const ModelConfig& c, int64_t batch, A& a) {
  using V = std::remove_pointer_t<decltype(a.final_ln)>;
  using X = std::remove_pointer_t<decltype(a.logits)>;
  const int64_t D = c.dim, M = batch * c.tokens();
  a.final_ln = arena.template take<V>(M * D, "final LayerNorm");
  a.final_mean = arena.template take<X>(M, "final LayerNorm mean");
  a.final_rstd = arena.template take<X>(M, "final LayerNorm rstd");
  a.pooled = arena.template take<V>(batch * D, "pooled");
  a.logits = arena.template take<X>(batch * c.classes, "logits");
  a.class_probs = arena.template take<X>(batch * c.classes, "class probabilities");
}

// The gradient buffers both steps' backward passes use alike.
template <class Arena, class A>
void plan_shared_gradients(Arena& arena, const ModelConfig& c, int64_t batch, A& a) {
  using V = std::remove_pointer_t<decltype(a.d_resid)>;
  using X = std::remove_pointer_t<decltype(a.d_logits)>;
  const int64_t D = c.dim, M = batch * c.tokens();
  a.d_logits = arena.template take<X>(batch * c.classes, "logit gradients");
  a.d_logits_value = arena.template take<V>(batch * c.classes, "logit gradients for the head");
  a.d_pooled = arena.template take<V>(batch * D, "pooled gradient");
  a.d_resid = arena.template take<V>(M * D, "residual gradient");
  a.d_norm = arena.template take<V>(M * D, "LayerNorm output gradient");
  a.d_qkv = arena.template take<V>(M * 3 * D, "qkv gradient");
  a.d_attn = arena.template take<V>(M * D, "attention output gradient");
}

// Lays out the activations of a pass over `batch` images in `arena` (the
// CPU's Workspace or the device's DeviceArena, or a counting arena that
// sizes one): `take<E>(n, purpose)`.
template <class Ops, class Arena>
void plan_step(Arena& arena, const Ops& ops, const ModelConfig& c, int64_t batch, bool with_backward,
               StepActivations<Ops>& a) {
  using V = typename Ops::Value;
  using X = typename Ops::Exact;
  const int64_t N = c.tokens(), D = c.dim, E = c.experts, hidden = c.hidden(), M = batch * N;
  a.batch = batch;
  a.patches = arena.template take<V>(M * c.patch_dim(), "patches");
  a.embedded = arena.template take<V>(M * D, "embedded tokens");
  a.router_probs = arena.template take<X>(M * E, "router probabilities");
  a.expert_of_token = arena.template take<int32_t>(M, "expert of each token");
  a.source_of_row = arena.template take<int32_t>(M, "token permutation");
  a.chosen_prob = arena.template take<X>(M, "chosen expert probability");
  a.blocks.resize(c.depth);
  V* x = arena.template take<V>(M * D, "residual stream");
  for (auto& b : a.blocks) {
    b.input = x;
    plan_attention_half(arena, ops, c, batch, b);
    b.hidden_pre = arena.template take<V>(M * hidden, "MLP pre-activation");
    b.hidden = arena.template take<V>(M * hidden, "MLP hidden");
    b.mlp_out = arena.template take<V>(M * D, "MLP output");
    x = arena.template take<V>(M * D, "residual stream");
  }
  a.final_in = x;
  plan_head(arena, c, batch, a);
  if (!with_backward) return;
  plan_shared_gradients(arena, c, batch, a);
  a.d_hidden = arena.template take<V>(M * hidden, "MLP hidden gradient");  // w.r.t. hidden_pre after GELU's backward
  a.d_mlp = arena.template take<V>(M * D, "MLP output gradient");
  a.d_embedded = arena.template take<V>(M * D, "embedding gradient");
  a.d_chosen_prob = arena.template take<X>(M, "chosen probability gradient");
  a.d_router_probs = arena.template take<X>(M * E, "router probability gradient");
}

inline std::string block_prefix(int64_t block) { return "blocks." + std::to_string(block) + "."; }

// z = x + SA(LN1(x)) and LN2(z) of block prefix `p`: nested in-projection,
// full-width attention, nested out-projection (one full-width group: dense).
template <class Ops>
void attention_half_forward(Ops& ops, const ModelConfig& c, const std::string& p,
                            const std::vector<ExpertGroup>& groups, const TokenLayout& layout, AttentionHalf<Ops>& b) {
  const int64_t D = c.dim, M = layout.images * layout.tokens;
  ops.layernorm_forward(b.input, M, D, ops.weight(p + "norm1.weight"), ops.weight(p + "norm1.bias"), b.ln1,
                        b.ln1_mean, b.ln1_rstd);
  ops.nested_in_forward(b.ln1, D, groups, ops.weight(p + "attn.qkv.weight"), ops.weight(p + "attn.qkv.bias"),
                        3 * D, b.qkv);
  ops.attend(b.qkv, layout, b.attn, b.attention_saved);
  ops.nested_out_forward(b.attn, D, groups, ops.weight(p + "attn.proj.weight"), ops.weight(p + "attn.proj.bias"),
                         D, b.mid);
  ops.add_inplace(b.mid, b.input, M * D);
  ops.layernorm_forward(b.mid, M, D, ops.weight(p + "norm2.weight"), ops.weight(p + "norm2.bias"), b.ln2,
                        b.ln2_mean, b.ln2_rstd);
}

// The final LayerNorm, mean pooling and the head: a.final_in -> a.logits.
template <class Ops, class A>
void head_forward(Ops& ops, const ModelConfig& c, A& a) {
  const int64_t D = c.dim, M = a.batch * c.tokens();
  ops.layernorm_forward(a.final_in, M, D, ops.weight("norm.weight"), ops.weight("norm.bias"), a.final_ln,
                        a.final_mean, a.final_rstd);
  ops.mean_pool_forward(a.final_ln, a.layout, D, a.pooled);
  ops.linear_forward(a.pooled, D, a.batch, D, ops.weight("head.weight"), c.classes, ops.exact("head.bias"),
                     c.classes, a.logits, c.classes);
}

// Backward of the head and the final LayerNorm: d_resid (zeroed here) holds
// the gradient at a.final_in.
template <class Ops, class A>
void head_backward(Ops& ops, const ModelConfig& c, const int32_t* labels, A& a) {
  const int64_t D = c.dim, C = c.classes, M = a.batch * c.tokens();
  ops.cross_entropy_backward(a.class_probs, labels, a.batch, C, a.d_logits, ops.label_smoothing());
  ops.linear_backward(ops.as_value(a.d_logits, a.batch * C, a.d_logits_value), C, a.pooled, D, a.batch, D,
                      ops.weight("head.weight"), C, C, a.d_pooled, D, ops.grad("head.weight"), ops.grad("head.bias"));
  ops.mean_pool_backward(a.d_pooled, a.layout, D, a.d_norm);
  ops.zero(a.d_resid, M * D);
  ops.layernorm_backward(a.d_norm, a.final_in, a.final_mean, a.final_rstd, ops.weight("norm.weight"), M, D, a.d_resid,
                         ops.grad("norm.weight"), ops.grad("norm.bias"));
}

// From d_norm at LN2's output (d_resid the gradient at the block's output)
// to d_norm at LN1's output: LN2 (adding into d_resid), the out-projection,
// attention and the in-projection. LN1's backward is the caller's.
template <class Ops, class V>
void attention_half_backward(Ops& ops, const ModelConfig& c, const std::string& p,
                             const std::vector<ExpertGroup>& groups, const TokenLayout& layout,
                             const AttentionHalf<Ops>& b, V* d_resid, V* d_norm, V* d_attn, V* d_qkv) {
  const int64_t D = c.dim, M = layout.images * layout.tokens;
  ops.layernorm_backward(d_norm, b.mid, b.ln2_mean, b.ln2_rstd, ops.weight(p + "norm2.weight"), M, D, d_resid,
                         ops.grad(p + "norm2.weight"), ops.grad(p + "norm2.bias"));
  ops.nested_out_backward(d_resid, b.attn, D, groups, ops.weight(p + "attn.proj.weight"), D, d_attn,
                          ops.grad(p + "attn.proj.weight"), ops.grad(p + "attn.proj.bias"));
  ops.attend_backward(d_attn, b.qkv, b.attn, b.attention_saved, layout, d_qkv);
  ops.nested_in_backward(d_qkv, b.ln1, D, groups, ops.weight(p + "attn.qkv.weight"), 3 * D, d_norm,
                         ops.grad(p + "attn.qkv.weight"), ops.grad(p + "attn.qkv.bias"));
}

// images [B, H, W, C] -> a.logits, routed as `plan` says.
template <class Ops>
void step_forward(Ops& ops, const ModelConfig& c, const typename Ops::Value* images, const RoutingPlan& plan,
                  StepActivations<Ops>& a) {
  const int64_t batch = a.batch;
  const int64_t N = c.tokens(), D = c.dim, E = c.experts, hidden = c.hidden(), M = batch * N;

  // Embedding and routing, in the original token order.
  ops.patchify(images, batch, c.image_height, c.image_width, c.channels, c.patch, a.patches);
  ops.patch_embed_forward(a.patches, M, c.patch_dim(), ops.weight("patch_embed.weight"),
                          ops.weight("patch_embed.bias"), D, a.embedded);
  ops.position_embed_forward(a.embedded, ops.weight("pos_embed"), batch, N, D);
  ops.router_forward(a.embedded, M, D, ops.weight("router.weight"), ops.exact("router.bias"), E, a.router_probs);
  ops.route(a.router_probs, plan, a);

  // Permute once into the stored layout; never permuted back (pooling is order-free).
  ops.permute_tokens_forward(a.embedded, a.source_of_row, M, D, a.blocks.front().input);
  ops.gather_chosen_probability(a.router_probs, a.expert_of_token, a.source_of_row, M, E, a.chosen_prob);

  const std::vector<ExpertGroup>& groups = a.groups;
  for (int64_t l = 0; l < c.depth; ++l) {
    const std::string p = block_prefix(l);
    auto& b = a.blocks[l];
    auto* next = l + 1 < c.depth ? a.blocks[l + 1].input : a.final_in;
    attention_half_forward(ops, c, p, groups, a.layout, b);
    // x' = z + (alpha r + 1) MLP(LN2(z)), the MLP nested on both sides.
    ops.nested_in_gelu_forward(b.ln2, D, groups, ops.weight(p + "mlp.fc1.weight"), ops.weight(p + "mlp.fc1.bias"),
                               hidden, b.hidden_pre, b.hidden);
    ops.nested_out_forward(b.hidden, hidden, groups, ops.weight(p + "mlp.fc2.weight"),
                           ops.weight(p + "mlp.fc2.bias"), D, b.mlp_out);
    ops.scaled_residual_forward(b.mid, b.mlp_out, a.chosen_prob, ops.scalar(p + "alpha"), M, D, next);
  }

  head_forward(ops, c, a);
}

// After step_forward and the loss's forward (a.class_probs): parameter
// gradients accumulate into the policy's gradient buffer; `ready` hears of
// each range as it becomes final.
template <class Ops>
void step_backward(Ops& ops, const ModelConfig& c, const int32_t* labels, StepActivations<Ops>& a,
                   const GradientReady& ready) {
  const int64_t batch = a.batch;
  const int64_t N = c.tokens(), D = c.dim, E = c.experts, hidden = c.hidden(), M = batch * N;
  const std::vector<ExpertGroup>& groups = a.groups;
  int64_t final_from = ops.gradient_numel();  // gradients from here to the end are final
  const auto gradients_final_from = [&](int64_t begin) {
    if (ready && begin < final_from) ready(begin, final_from);
    final_from = begin;
  };

  head_backward(ops, c, labels, a);
  ops.zero(a.d_chosen_prob, M);
  gradients_final_from(ops.offset("norm.weight"));

  for (int64_t l = c.depth - 1; l >= 0; --l) {
    const std::string p = block_prefix(l);
    const auto& b = a.blocks[l];
    // MLP branch; d_resid passes through the residual unchanged.
    ops.scaled_residual_backward(a.d_resid, b.mlp_out, a.chosen_prob, ops.scalar(p + "alpha"), M, D, a.d_mlp,
                                 a.d_chosen_prob, ops.grad(p + "alpha"));
    ops.gelu_nested_out_backward(a.d_mlp, b.hidden, b.hidden_pre, hidden, groups, ops.weight(p + "mlp.fc2.weight"), D,
                                 a.d_hidden, ops.grad(p + "mlp.fc2.weight"), ops.grad(p + "mlp.fc2.bias"));
    ops.nested_in_backward(a.d_hidden, b.ln2, D, groups, ops.weight(p + "mlp.fc1.weight"), hidden, a.d_norm,
                           ops.grad(p + "mlp.fc1.weight"), ops.grad(p + "mlp.fc1.bias"));
    attention_half_backward(ops, c, p, groups, a.layout, b, a.d_resid, a.d_norm, a.d_attn, a.d_qkv);
    ops.layernorm_backward(a.d_norm, b.input, b.ln1_mean, b.ln1_rstd, ops.weight(p + "norm1.weight"), M, D, a.d_resid,
                           ops.grad(p + "norm1.weight"), ops.grad(p + "norm1.bias"));
    gradients_final_from(ops.offset(p + "norm1.weight"));
  }

  // Back to the original order, then the router (through r only) and the embeddings.
  ops.permute_tokens_backward(a.d_resid, a.source_of_row, M, D, a.d_embedded);
  ops.scatter_chosen_probability(a.d_chosen_prob, a.expert_of_token, a.source_of_row, M, E, a.d_router_probs);
  ops.router_backward(a.d_router_probs, a.router_probs, a.embedded, M, D, ops.weight("router.weight"), E,
                      a.d_embedded, ops.grad("router.weight"), ops.grad("router.bias"));
  ops.position_embed_backward(a.d_embedded, batch, N, D, ops.grad("pos_embed"));
  ops.patch_embed_backward(a.d_embedded, a.patches, M, c.patch_dim(), D, ops.grad("patch_embed.weight"),
                           ops.grad("patch_embed.bias"));
  gradients_final_from(0);
}

}  // namespace mone
