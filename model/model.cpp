// The MoNE ViT: embedding, routing once, L nested blocks in the expert-sorted
// layout, pooling, head. Reads top to bottom like the method page.
#include "model/model.h"

#include <algorithm>

namespace mone {

template <class T>
struct Model<T>::BlockActivations {
  T* input;                       // residual stream entering the block [M, D]
  T *ln1, *ln1_mean, *ln1_rstd;   // LN1 over full D
  T* qkv;                         // [M, 3D]
  T* probs;                       // attention softmax [B, H, N, N]
  T* attn;                        // attention output [M, D]
  T* mid;                         // z = x + proj(attn) [M, D]
  T *ln2, *ln2_mean, *ln2_rstd;
  T* hidden_pre;                  // fc1 output [M, hidden]
  T* hidden;                      // GELU [M, hidden]
  T* mlp_out;                     // m, zero beyond each token's width [M, D]
};

template <class T>
struct Model<T>::Activations {
  int64_t batch = 0, rows = 0;
  TokenLayout layout;
  T* patches;         // [B*N, P*P*C], original order
  T* embedded;        // patch + position embedding [B*N, D], original order
  T* router_probs;    // [B*N, E], original order
  T* chosen_prob;     // r of each row's expert [M], stored layout
  std::vector<BlockActivations> blocks;
  T* final_in;        // residual stream after the last block [M, D]
  T *final_ln, *final_mean, *final_rstd;
  T* pooled;          // [B, D]
  T* logits;          // [B, classes]
  T* class_probs;     // [B, classes]
};

template <class T>
Model<T>::Model(const ModelConfig& config, uint64_t seed)
    : config_(config), params_((config.validate(), config)), acts_(std::make_unique<Activations>()) {
  params_.initialise(seed);
}

template <class T>
Model<T>::~Model() = default;
template <class T>
Model<T>::Model(Model&&) noexcept = default;

template <class T>
void Model<T>::route(const T* probs, int64_t batch, double effective_capacity) {
  const ModelConfig& c = config_;
  const int64_t N = c.tokens(), E = c.experts;
  Routing& r = routing_;
  r.requested_capacity = effective_capacity;
  r.capacity = capacity_for(effective_capacity, E);
  r.tokens_per_expert = tokens_per_expert(r.capacity, N);
  r.realised_capacity = realised_capacity(r.tokens_per_expert);
  r.expert_of_token.resize(batch * N);
  r.source_of_row.resize(batch * N);
  expert_preferred_routing(probs, batch, N, E, r.tokens_per_expert, r.expert_of_token.data());

  std::vector<int64_t> widths(E);
  for (int64_t j = 0; j < E; ++j) widths[j] = c.expert_width(j + 1);
  if (order_ == TokenOrder::expert_sorted) {
    expert_sorted_order(r.expert_of_token.data(), batch, N, E, r.source_of_row.data());
    r.groups = expert_groups(r.tokens_per_expert, widths, batch);
  } else {
    // Original order: identity permutation, one group per run of equal experts.
    r.groups.clear();
    for (int64_t row = 0; row < batch * N; ++row) {
      r.source_of_row[row] = static_cast<int32_t>(row);
      const int64_t width = widths[r.expert_of_token[row]];
      if (!r.groups.empty() && r.groups.back().width == width)
        ++r.groups.back().rows;
      else
        r.groups.push_back({row, 1, width});
    }
  }
}

template <class T>
void Model<T>::forward_pass(const T* images, int64_t batch, double effective_capacity, Activations& a) {
  const ModelConfig& c = config_;
  const int64_t N = c.tokens(), D = c.dim, E = c.experts, H = c.heads, hidden = c.hidden();
  const int64_t M = batch * N;
  ParameterSet<T>& p = params_;
  a.batch = batch;
  a.rows = M;
  a.layout = order_ == TokenOrder::expert_sorted ? TokenLayout::token_major(batch, N)
                                                 : TokenLayout::image_major(batch, N);

  // Embedding and routing, in the original token order.
  a.patches = workspace_.take<T>(M * c.patch_dim());
  a.embedded = workspace_.take<T>(M * D);
  a.router_probs = workspace_.take<T>(M * E);
  patchify(images, batch, c.image_height, c.image_width, c.channels, c.patch, a.patches);
  patch_embed_forward(a.patches, M, c.patch_dim(), p.value("patch_embed.weight"), p.value("patch_embed.bias"), D,
                      a.embedded);
  position_embed_forward(a.embedded, p.value("pos_embed"), batch, N, D);
  router_forward(a.embedded, M, D, p.value("router.weight"), p.value("router.bias"), E, a.router_probs);
  route(a.router_probs, batch, effective_capacity);

  // Permute once into the stored layout; never permuted back (pooling is order-free).
  a.blocks.resize(c.depth);
  a.chosen_prob = workspace_.take<T>(M);
  T* x = workspace_.take<T>(M * D);
  permute_tokens_forward(a.embedded, routing_.source_of_row.data(), M, D, x);
  for (int64_t row = 0; row < M; ++row) {
    const int32_t src = routing_.source_of_row[row];
    a.chosen_prob[row] = a.router_probs[src * E + routing_.expert_of_token[src]];
  }

  const std::vector<ExpertGroup>& groups = routing_.groups;
  for (int64_t l = 0; l < c.depth; ++l) {
    const std::string prefix = "blocks." + std::to_string(l) + ".";
    BlockActivations& b = a.blocks[l];
    b.input = x;
    b.ln1 = workspace_.take<T>(M * D);
    b.ln1_mean = workspace_.take<T>(M);
    b.ln1_rstd = workspace_.take<T>(M);
    b.qkv = workspace_.take<T>(M * 3 * D);
    b.probs = workspace_.take<T>(batch * H * N * N);
    b.attn = workspace_.take<T>(M * D);
    b.mid = workspace_.take<T>(M * D);
    b.ln2 = workspace_.take<T>(M * D);
    b.ln2_mean = workspace_.take<T>(M);
    b.ln2_rstd = workspace_.take<T>(M);
    b.hidden_pre = workspace_.take<T>(M * hidden);
    b.hidden = workspace_.take<T>(M * hidden);
    b.mlp_out = workspace_.take<T>(M * D);

    // z = x + SA(LN1(x)): nested in-projection, full-width attention, nested out-projection.
    layernorm_forward(x, M, D, p.value(prefix + "norm1.weight"), p.value(prefix + "norm1.bias"), b.ln1,
                      b.ln1_mean, b.ln1_rstd);
    nested_in_forward(b.ln1, D, groups, p.value(prefix + "attn.qkv.weight"), p.value(prefix + "attn.qkv.bias"),
                      3 * D, b.qkv);
    attention_forward(b.qkv, a.layout, H, D, b.attn, b.probs);
    nested_out_forward(b.attn, D, groups, p.value(prefix + "attn.proj.weight"), p.value(prefix + "attn.proj.bias"),
                       D, b.mid);
    for (int64_t i = 0; i < M * D; ++i) b.mid[i] += x[i];

    // x' = z + (alpha r + 1) MLP(LN2(z)), the MLP nested on both sides.
    layernorm_forward(b.mid, M, D, p.value(prefix + "norm2.weight"), p.value(prefix + "norm2.bias"), b.ln2,
                      b.ln2_mean, b.ln2_rstd);
    nested_in_forward(b.ln2, D, groups, p.value(prefix + "mlp.fc1.weight"), p.value(prefix + "mlp.fc1.bias"),
                      hidden, b.hidden_pre);
    gelu_forward(b.hidden_pre, M * hidden, b.hidden);
    nested_out_forward(b.hidden, hidden, groups, p.value(prefix + "mlp.fc2.weight"), p.value(prefix + "mlp.fc2.bias"),
                       D, b.mlp_out);
    x = workspace_.take<T>(M * D);
    scaled_residual_forward(b.mid, b.mlp_out, a.chosen_prob, *p.value(prefix + "alpha"), M, D, x);
  }

  a.final_in = x;
  a.final_ln = workspace_.take<T>(M * D);
  a.final_mean = workspace_.take<T>(M);
  a.final_rstd = workspace_.take<T>(M);
  a.pooled = workspace_.take<T>(batch * D);
  a.logits = workspace_.take<T>(batch * c.classes);
  a.class_probs = workspace_.take<T>(batch * c.classes);
  layernorm_forward(x, M, D, p.value("norm.weight"), p.value("norm.bias"), a.final_ln, a.final_mean, a.final_rstd);
  mean_pool_forward(a.final_ln, a.layout, D, a.pooled);
  linear_forward(a.pooled, D, batch, D, p.value("head.weight"), c.classes, p.value("head.bias"), c.classes,
                 a.logits, c.classes);
  logits_ = a.logits;
}

template <class T>
void Model<T>::gradients_final_from(int64_t begin, int64_t& final_from) {
  if (gradient_ready_ && begin < final_from) gradient_ready_(begin, final_from);
  final_from = begin;
}

template <class T>
void Model<T>::backward_pass(const int32_t* labels, int64_t batch, Activations& a) {
  const ModelConfig& c = config_;
  const int64_t N = c.tokens(), D = c.dim, E = c.experts, H = c.heads, hidden = c.hidden(), C = c.classes;
  const int64_t M = a.rows;
  ParameterSet<T>& p = params_;
  const std::vector<ExpertGroup>& groups = routing_.groups;

  T* d_logits = workspace_.take<T>(batch * C);
  T* d_pooled = workspace_.take<T>(batch * D);
  T* d_resid = workspace_.take<T>(M * D);   // dL/d(residual stream), walked backwards
  T* d_norm = workspace_.take<T>(M * D);    // dL/d(LayerNorm output)
  T* d_qkv = workspace_.take<T>(M * 3 * D);
  T* d_attn = workspace_.take<T>(M * D);
  T* d_hidden = workspace_.take<T>(M * hidden);
  T* d_mlp = workspace_.take<T>(M * D);
  T* d_chosen_prob = workspace_.take<T>(M);
  std::fill(d_chosen_prob, d_chosen_prob + M, T(0));

  cross_entropy_backward(a.class_probs, labels, batch, C, d_logits, label_smoothing_);
  linear_backward(d_logits, C, a.pooled, D, batch, D, p.value("head.weight"), C, C, d_pooled, D,
                  p.grad("head.weight"), p.grad("head.bias"));
  mean_pool_backward(d_pooled, a.layout, D, d_norm);
  std::fill(d_resid, d_resid + M * D, T(0));
  layernorm_backward(d_norm, a.final_in, a.final_mean, a.final_rstd, p.value("norm.weight"), M, D, d_resid,
                     p.grad("norm.weight"), p.grad("norm.bias"));
  int64_t final_from = p.numel();  // gradients from here to the end are final
  gradients_final_from(p.info("norm.weight").offset, final_from);

  for (int64_t l = c.depth - 1; l >= 0; --l) {
    const std::string prefix = "blocks." + std::to_string(l) + ".";
    const BlockActivations& b = a.blocks[l];
    // MLP branch; d_resid passes through the residual unchanged.
    scaled_residual_backward(d_resid, b.mlp_out, a.chosen_prob, *p.value(prefix + "alpha"), M, D, d_mlp,
                             d_chosen_prob, p.grad(prefix + "alpha"));
    nested_out_backward(d_mlp, b.hidden, hidden, groups, p.value(prefix + "mlp.fc2.weight"), D, d_hidden,
                        p.grad(prefix + "mlp.fc2.weight"), p.grad(prefix + "mlp.fc2.bias"));
    gelu_backward(d_hidden, b.hidden_pre, M * hidden, d_hidden);
    nested_in_backward(d_hidden, b.ln2, D, groups, p.value(prefix + "mlp.fc1.weight"), hidden, d_norm,
                       p.grad(prefix + "mlp.fc1.weight"), p.grad(prefix + "mlp.fc1.bias"));
    layernorm_backward(d_norm, b.mid, b.ln2_mean, b.ln2_rstd, p.value(prefix + "norm2.weight"), M, D, d_resid,
                       p.grad(prefix + "norm2.weight"), p.grad(prefix + "norm2.bias"));
    // Attention branch.
    nested_out_backward(d_resid, b.attn, D, groups, p.value(prefix + "attn.proj.weight"), D, d_attn,
                        p.grad(prefix + "attn.proj.weight"), p.grad(prefix + "attn.proj.bias"));
    attention_backward(d_attn, b.qkv, b.probs, a.layout, H, D, d_qkv);
    nested_in_backward(d_qkv, b.ln1, D, groups, p.value(prefix + "attn.qkv.weight"), 3 * D, d_norm,
                       p.grad(prefix + "attn.qkv.weight"), p.grad(prefix + "attn.qkv.bias"));
    layernorm_backward(d_norm, b.input, b.ln1_mean, b.ln1_rstd, p.value(prefix + "norm1.weight"), M, D, d_resid,
                       p.grad(prefix + "norm1.weight"), p.grad(prefix + "norm1.bias"));
    gradients_final_from(p.info(prefix + "norm1.weight").offset, final_from);
  }

  // Back to the original order, then the router (through r only) and the embeddings.
  T* d_embedded = workspace_.take<T>(M * D);
  T* d_router_probs = workspace_.take<T>(M * E);
  permute_tokens_backward(d_resid, routing_.source_of_row.data(), M, D, d_embedded);
  std::fill(d_router_probs, d_router_probs + M * E, T(0));
  for (int64_t row = 0; row < M; ++row) {
    const int32_t src = routing_.source_of_row[row];
    d_router_probs[src * E + routing_.expert_of_token[src]] = d_chosen_prob[row];
  }
  router_backward(d_router_probs, a.router_probs, a.embedded, M, D, p.value("router.weight"), E, d_embedded,
                  p.grad("router.weight"), p.grad("router.bias"));
  position_embed_backward(d_embedded, batch, N, D, p.grad("pos_embed"));
  patch_embed_backward(d_embedded, a.patches, M, c.patch_dim(), D, p.grad("patch_embed.weight"),
                       p.grad("patch_embed.bias"));
  gradients_final_from(0, final_from);
}

template <class T>
const T* Model<T>::router_probs() const {
  return acts_->router_probs;
}

template <class T>
const T* Model<T>::forward(const T* images, int64_t batch, double effective_capacity) {
  workspace_.reset();
  forward_pass(images, batch, effective_capacity, *acts_);
  workspace_.settle();
  return logits_;
}

template <class T>
T Model<T>::forward_backward(const T* images, const int32_t* labels, int64_t batch, double effective_capacity) {
  workspace_.reset();
  forward_pass(images, batch, effective_capacity, *acts_);
  const T loss =
      cross_entropy_forward(acts_->logits, labels, batch, config_.classes, acts_->class_probs, label_smoothing_);
  backward_pass(labels, batch, *acts_);
  workspace_.settle();
  return loss;
}

template class Model<float>;
template class Model<double>;

}  // namespace mone
