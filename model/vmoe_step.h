// Mobile V-MoE's forward and backward (method page, section 5), written once
// over an ops policy like MoNE's step (model/step.h, which says what a
// policy provides; this step also needs route_images and the ops of
// model/ops_moe.h). A dense pre-LN ViT whose last moe_blocks blocks have E
// full MLP experts; one router at the first MoE block (on the mean of its
// LN1 output) sends every image, all its tokens, to its top-k experts.
//
// Tokens stay in the original [B, N] order; only the MLP of an MoE block
// reads the image-sorted copy of its input (ops_moe.h), so each expert is one
// GEMM over a contiguous block of rows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/ops.h"
#include "model/ops_moe.h"
#include "model/step.h"

namespace mone {

template <class Ops>
struct VmoeActivations {
  using V = typename Ops::Value;
  using X = typename Ops::Exact;
  using S = typename Ops::AttentionSaved;
  struct Block : AttentionHalf<Ops> {
    V* dispatched;           // MoE blocks: LN2 in the image-sorted layout [B*k*N, D]
    V* hidden_pre;           // [rows, hidden]: M rows, or B*k*N in an MoE block
    V* hidden;
    V* expert_out;           // MoE blocks: each slot's expert output [B*k*N, D]
  };
  int64_t batch = 0;
  TokenLayout layout;                 // image-major, the whole pass
  std::vector<ExpertGroup> dense;     // one group: every row at full width
  ImageDispatch dispatch;             // set by route_images (on the host)
  int32_t* position_of_slot;          // [B*k], dispatch.position_of_slot where the ops read it
  V* patches;
  V* router_in;                       // mean of the first MoE block's LN1 output over tokens [B, D]
  X* router_probs;                    // [B, E]
  int32_t* expert_of_slot;            // [B*k]
  X* weight_of_slot;                  // [B*k], renormalised over the image's k
  std::vector<Block> blocks;
  V* final_in;
  V* final_ln;
  X *final_mean, *final_rstd;
  V* pooled;
  X* logits;
  X* class_probs;
  // Backward.
  X* d_logits;
  V* d_logits_value;
  V *d_pooled, *d_resid, *d_norm, *d_qkv, *d_attn, *d_hidden, *d_mlp, *d_dispatched, *d_router_in;
  X *d_weight_of_slot, *d_router_probs;
};

template <class Ops, class Arena>
void plan_vmoe_step(Arena& arena, const Ops& ops, const ModelConfig& c, int64_t batch, bool with_backward,
                    VmoeActivations<Ops>& a) {
  using V = typename Ops::Value;
  using X = typename Ops::Exact;
  const int64_t N = c.tokens(), D = c.dim, E = c.experts, hidden = c.hidden(), M = batch * N;
  const int64_t slots = batch * c.top_k, moe_rows = slots * N;
  a.batch = batch;
  a.layout = TokenLayout::image_major(batch, N);
  a.dense = {{0, M, D}};
  a.patches = arena.template take<V>(M * c.patch_dim(), "patches");
  a.router_in = arena.template take<V>(batch * D, "router input");
  a.router_probs = arena.template take<X>(batch * E, "router probabilities");
  a.expert_of_slot = arena.template take<int32_t>(slots, "expert of each slot");
  a.weight_of_slot = arena.template take<X>(slots, "combine weight of each slot");
  a.position_of_slot = arena.template take<int32_t>(slots, "image-sorted position of each slot");
  a.blocks.resize(c.depth);
  V* x = arena.template take<V>(M * D, "residual stream");
  for (int64_t l = 0; l < c.depth; ++l) {
    auto& b = a.blocks[l];
    const bool moe = c.is_moe_block(l);
    const int64_t mlp_rows = moe ? moe_rows : M;
    b.input = x;
    plan_attention_half(arena, ops, c, batch, b);
    b.dispatched = moe ? arena.template take<V>(moe_rows * D, "dispatched LN2") : nullptr;
    b.hidden_pre = arena.template take<V>(mlp_rows * hidden, "MLP pre-activation");
    b.hidden = arena.template take<V>(mlp_rows * hidden, "MLP hidden");
    b.expert_out = moe ? arena.template take<V>(moe_rows * D, "expert outputs") : nullptr;
    x = arena.template take<V>(M * D, "residual stream");
  }
  a.final_in = x;
  plan_head(arena, c, batch, a);
  if (!with_backward) return;
  const int64_t widest = std::max(M, moe_rows);
  plan_shared_gradients(arena, c, batch, a);
  a.d_hidden = arena.template take<V>(widest * hidden, "MLP hidden gradient");
  a.d_mlp = arena.template take<V>(moe_rows * D, "expert output gradient");
  a.d_dispatched = arena.template take<V>(moe_rows * D, "dispatched LN2 gradient");
  a.d_router_in = arena.template take<V>(batch * D, "router input gradient");
  a.d_weight_of_slot = arena.template take<X>(slots, "combine weight gradient");
  a.d_router_probs = arena.template take<X>(batch * E, "router probability gradient");
}

// Expert e's slab of a stacked MoE parameter ([E, ...], `per_expert` elements each).
template <class P>
P* expert_slab(P* stacked, int64_t e, int64_t per_expert) {
  return stacked + e * per_expert;
}

// An expert's block of the image-sorted layout as a dense op sees it: the
// caller offsets every buffer to the block's first row, because the fused
// ops (GELU with its projection) cover the rows [0, group_rows) of their
// groups.
inline std::vector<ExpertGroup> expert_rows(const ExpertGroup& block) { return {{0, block.rows, block.width}}; }

// images [B, H, W, C] -> a.logits.
template <class Ops>
void vmoe_step_forward(Ops& ops, const ModelConfig& c, const typename Ops::Value* images, VmoeActivations<Ops>& a) {
  const int64_t batch = a.batch;
  const int64_t N = c.tokens(), D = c.dim, E = c.experts, k = c.top_k, hidden = c.hidden(), M = batch * N;
  ops.patchify(images, batch, c.image_height, c.image_width, c.channels, c.patch, a.patches);
  ops.patch_embed_forward(a.patches, M, c.patch_dim(), ops.weight("patch_embed.weight"),
                          ops.weight("patch_embed.bias"), D, a.blocks.front().input);
  ops.position_embed_forward(a.blocks.front().input, ops.weight("pos_embed"), batch, N, D);

  for (int64_t l = 0; l < c.depth; ++l) {
    const std::string p = block_prefix(l);
    auto& b = a.blocks[l];
    auto* next = l + 1 < c.depth ? a.blocks[l + 1].input : a.final_in;
    attention_half_forward(ops, c, p, a.dense, a.layout, b);
    if (l == c.first_moe_block()) {
      // One routing decision per image for all MoE blocks, from the mean of
      // the block's normalised tokens (LN1's output: its scale stays that of
      // LN's gain while the residual stream grows).
      ops.mean_pool_forward(b.ln1, a.layout, D, a.router_in);
      ops.router_forward(a.router_in, batch, D, ops.weight("router.weight"), ops.exact("router.bias"), E,
                         a.router_probs);
      ops.route_images(a.router_probs, a);
    }
    if (!c.is_moe_block(l)) {
      // x' = z + MLP(LN2(z)): fc2 writes x', then z is added.
      ops.nested_in_gelu_forward(b.ln2, D, a.dense, ops.weight(p + "mlp.fc1.weight"),
                                 ops.weight(p + "mlp.fc1.bias"), hidden, b.hidden_pre, b.hidden);
      ops.nested_out_forward(b.hidden, hidden, a.dense, ops.weight(p + "mlp.fc2.weight"),
                             ops.weight(p + "mlp.fc2.bias"), D, next);
      ops.add_inplace(next, b.mid, M * D);
      continue;
    }
    // x' = z + sum_s w_s MLP_{e_s}(LN2(z)): one GEMM pair per expert over its rows.
    ops.moe_dispatch_forward(b.ln2, a.position_of_slot, batch, k, N, D, b.dispatched);
    for (size_t g = 0; g < a.dispatch.groups.size(); ++g) {
      const int64_t e = a.dispatch.expert_of_group[g], first = a.dispatch.groups[g].row_begin;
      const std::vector<ExpertGroup> rows = expert_rows(a.dispatch.groups[g]);
      ops.nested_in_gelu_forward(b.dispatched + first * D, D, rows,
                                 expert_slab(ops.weight(p + "moe.fc1.weight"), e, D * hidden),
                                 expert_slab(ops.weight(p + "moe.fc1.bias"), e, hidden), hidden,
                                 b.hidden_pre + first * hidden, b.hidden + first * hidden);
      ops.nested_out_forward(b.hidden + first * hidden, hidden, rows,
                             expert_slab(ops.weight(p + "moe.fc2.weight"), e, hidden * D),
                             expert_slab(ops.weight(p + "moe.fc2.bias"), e, D), D, b.expert_out + first * D);
    }
    ops.moe_combine_forward(b.mid, b.expert_out, a.weight_of_slot, a.position_of_slot, batch, k, N, D, next);
  }

  head_forward(ops, c, a);
}

// After vmoe_step_forward and the loss's forward (a.class_probs). With
// `superclass` (one per image), the router also gets the gradient of
// `router_loss_weight` times the super-class loss (ops_moe.h).
template <class Ops>
void vmoe_step_backward(Ops& ops, const ModelConfig& c, const int32_t* labels, const int32_t* superclass,
                        typename Ops::Exact router_loss_weight, VmoeActivations<Ops>& a, const GradientReady& ready) {
  const int64_t batch = a.batch;
  const int64_t N = c.tokens(), D = c.dim, E = c.experts, k = c.top_k, hidden = c.hidden();
  const int64_t M = batch * N;
  const int32_t* position_of_slot = a.position_of_slot;
  int64_t final_from = ops.gradient_numel();
  const auto gradients_final_from = [&](int64_t begin) {
    if (ready && begin < final_from) ready(begin, final_from);
    final_from = begin;
  };

  head_backward(ops, c, labels, a);
  ops.zero(a.d_weight_of_slot, batch * k);
  gradients_final_from(ops.offset("norm.weight"));

  for (int64_t l = c.depth - 1; l >= 0; --l) {
    const std::string p = block_prefix(l);
    const auto& b = a.blocks[l];
    // MLP branch (d_resid passes through the residual unchanged), down to d_norm at LN2's output.
    if (c.is_moe_block(l)) {
      ops.moe_combine_backward(a.d_resid, b.expert_out, a.weight_of_slot, position_of_slot, batch, k, N, D, a.d_mlp,
                               a.d_weight_of_slot);
      for (size_t g = 0; g < a.dispatch.groups.size(); ++g) {
        const int64_t e = a.dispatch.expert_of_group[g], first = a.dispatch.groups[g].row_begin;
        const std::vector<ExpertGroup> rows = expert_rows(a.dispatch.groups[g]);
        ops.gelu_nested_out_backward(a.d_mlp + first * D, b.hidden + first * hidden, b.hidden_pre + first * hidden,
                                     hidden, rows, expert_slab(ops.weight(p + "moe.fc2.weight"), e, hidden * D), D,
                                     a.d_hidden + first * hidden,
                                     expert_slab(ops.grad(p + "moe.fc2.weight"), e, hidden * D),
                                     expert_slab(ops.grad(p + "moe.fc2.bias"), e, D));
        ops.nested_in_backward(a.d_hidden + first * hidden, b.dispatched + first * D, D, rows,
                               expert_slab(ops.weight(p + "moe.fc1.weight"), e, D * hidden), hidden,
                               a.d_dispatched + first * D, expert_slab(ops.grad(p + "moe.fc1.weight"), e, D * hidden),
                               expert_slab(ops.grad(p + "moe.fc1.bias"), e, hidden));
      }
      ops.moe_dispatch_backward(a.d_dispatched, position_of_slot, batch, k, N, D, a.d_norm);
    } else {
      ops.gelu_nested_out_backward(a.d_resid, b.hidden, b.hidden_pre, hidden, a.dense, ops.weight(p + "mlp.fc2.weight"),
                                   D, a.d_hidden, ops.grad(p + "mlp.fc2.weight"), ops.grad(p + "mlp.fc2.bias"));
      ops.nested_in_backward(a.d_hidden, b.ln2, D, a.dense, ops.weight(p + "mlp.fc1.weight"), hidden, a.d_norm,
                             ops.grad(p + "mlp.fc1.weight"), ops.grad(p + "mlp.fc1.bias"));
    }
    attention_half_backward(ops, c, p, a.dense, a.layout, b, a.d_resid, a.d_norm, a.d_attn, a.d_qkv);
    if (l == c.first_moe_block()) {
      // The router: the combine weights of every MoE block and the super-class
      // loss, back to LN1's output (d_attn is free again: the scratch).
      ops.image_top_k_backward(a.d_weight_of_slot, a.router_probs, a.expert_of_slot, batch, E, k, a.d_router_probs);
      if (superclass)
        ops.superclass_loss_backward(a.router_probs, superclass, batch, E, router_loss_weight, a.d_router_probs);
      ops.zero(a.d_router_in, batch * D);
      ops.router_backward(a.d_router_probs, a.router_probs, a.router_in, batch, D, ops.weight("router.weight"), E,
                          a.d_router_in, ops.grad("router.weight"), ops.grad("router.bias"));
      ops.mean_pool_backward(a.d_router_in, a.layout, D, a.d_attn);
      ops.add_inplace(a.d_norm, a.d_attn, M * D);
    }
    ops.layernorm_backward(a.d_norm, b.input, b.ln1_mean, b.ln1_rstd, ops.weight(p + "norm1.weight"), M, D, a.d_resid,
                           ops.grad(p + "norm1.weight"), ops.grad(p + "norm1.bias"));
    // The router's parameters sit just before the first MoE block's.
    gradients_final_from(ops.offset(l == c.first_moe_block() ? "router.weight" : p + "norm1.weight"));
  }

  ops.position_embed_backward(a.d_resid, batch, N, D, ops.grad("pos_embed"));
  ops.patch_embed_backward(a.d_resid, a.patches, M, c.patch_dim(), D, ops.grad("patch_embed.weight"),
                           ops.grad("patch_embed.bias"));
  gradients_final_from(0);
}

}  // namespace mone
