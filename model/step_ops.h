// The CPU's ops policy for the model steps (model/step.h, model/vmoe_step.h):
// the reference ops of model/ops.h and model/ops_moe.h on a ParameterSet, in T = float (training) or double
// (finite-difference checks).
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "model/ops.h"
#include "model/ops_moe.h"
#include "model/parameters.h"
#include "model/routing_plan.h"
#include "model/step.h"
#include "model/vmoe_step.h"

namespace mone {

// How tokens are stored between routing and pooling. expert_sorted is the
// fast layout (method page, section 2); original keeps [B, N] order and runs
// each nested projection per run of same-expert tokens. Both give the same
// result; the second exists to prove it.
enum class TokenOrder { expert_sorted, original };

// An op of model/ops.h under its own name, arguments passed through.
#define MONE_HOST_STEP_OP(name)                                  \
  template <class... Args>                                       \
  auto name(Args&&... args) const {                              \
    return ::mone::name(std::forward<Args>(args)...);            \
  }

// A pass's loss when it learns from a teacher pass (in-place distillation,
// ops.h): label_weight * cross-entropy + kl_weight * distillation_forward.
template <class T>
struct DistillationLoss {
  const T* teacher_logits = nullptr;  // [B, classes], detached
  T temperature = T(1);
  T kl_weight = T(1);
  T label_weight = T(0);
  // Filled by the forward, read by the backward: softmax(z / tau), softmax(t / tau).
  std::vector<T> soft, teacher_soft;
};

template <class T>
class CpuStepOps {
 public:
  using Value = T;
  using Exact = T;
  using AttentionSaved = T;  // the softmax [B, H, N, N]

  CpuStepOps(ParameterSet<T>& params, const ModelConfig& config, TokenOrder order, T label_smoothing)
      : params_(params), config_(config), order_(order), label_smoothing_(label_smoothing) {}

  const T* weight(const std::string& name) const { return params_.value(name); }
  const T* exact(const std::string& name) const { return params_.value(name); }
  T scalar(const std::string& name) const { return *params_.value(name); }
  // Into the parameters' gradients, or into the buffer of set_gradients (of
  // the same layout).
  T* grad(const std::string& name) const {
    return gradients_ ? gradients_ + params_.info(name).offset : params_.grad(name);
  }
  void set_gradients(T* gradients) { gradients_ = gradients == params_.grads() ? nullptr : gradients; }
  int64_t offset(const std::string& name) const { return params_.info(name).offset; }
  int64_t gradient_numel() const { return params_.numel(); }
  T label_smoothing() const { return label_smoothing_; }
  // EPR orders tokens by these [M, E] scores instead of the router's
  // probabilities (the random router; null: the probabilities).
  void set_routing_scores(const T* scores) { routing_scores_ = scores; }
  // The pass learns from a teacher (null: from the labels alone).
  void set_distillation(const DistillationLoss<T>* distillation) { distillation_ = distillation; }
  // The pass is one chunk of a batch of this many images, the loss the
  // mean over all of them (0: over the pass's own).
  void set_loss_batch(int64_t images) { loss_batch_ = images; }

  // The MLP's fc1 + GELU and its backward, with the config's GELU.
  void nested_in_gelu_forward(const T* x, int64_t ldx, const std::vector<ExpertGroup>& groups, const T* W, const T* b,
                              int64_t out, T* pre, T* y) const {
    ::mone::nested_in_gelu_forward(x, ldx, groups, W, b, out, pre, y, config_.gelu);
  }
  void gelu_nested_out_backward(const T* dy, const T* x, const T* pre, int64_t in,
                                const std::vector<ExpertGroup>& groups, const T* W, int64_t out, T* dpre, T* dW,
                                T* db) const {
    ::mone::gelu_nested_out_backward(dy, x, pre, in, groups, W, out, dpre, dW, db, config_.gelu);
  }

  // The loss's gradient at the logits (assigned).
  void cross_entropy_backward(const T* probs, const int32_t* labels, int64_t B, int64_t C, T* dlogits,
                              T label_smoothing) const {
    ::mone::cross_entropy_backward(probs, labels, B, C, dlogits, label_smoothing, loss_batch_);
    if (!distillation_) return;
    for (int64_t i = 0; i < B * C; ++i) dlogits[i] *= distillation_->label_weight;
    distillation_backward(distillation_->soft.data(), distillation_->teacher_soft.data(), B, C,
                          distillation_->temperature, distillation_->kl_weight, dlogits, loss_batch_);
  }

  MONE_HOST_STEP_OP(patchify)
  MONE_HOST_STEP_OP(patch_embed_forward)
  MONE_HOST_STEP_OP(patch_embed_backward)
  MONE_HOST_STEP_OP(position_embed_forward)
  MONE_HOST_STEP_OP(position_embed_backward)
  MONE_HOST_STEP_OP(router_forward)
  MONE_HOST_STEP_OP(router_backward)
  MONE_HOST_STEP_OP(layernorm_forward)
  MONE_HOST_STEP_OP(layernorm_backward)
  MONE_HOST_STEP_OP(nested_in_forward)
  MONE_HOST_STEP_OP(nested_in_backward)
  MONE_HOST_STEP_OP(nested_out_forward)
  MONE_HOST_STEP_OP(nested_out_backward)
  MONE_HOST_STEP_OP(scaled_residual_forward)
  MONE_HOST_STEP_OP(scaled_residual_backward)
  MONE_HOST_STEP_OP(add_inplace)
  MONE_HOST_STEP_OP(permute_tokens_forward)
  MONE_HOST_STEP_OP(permute_tokens_backward)
  MONE_HOST_STEP_OP(gather_chosen_probability)
  MONE_HOST_STEP_OP(scatter_chosen_probability)
  MONE_HOST_STEP_OP(mean_pool_forward)
  MONE_HOST_STEP_OP(mean_pool_backward)
  MONE_HOST_STEP_OP(linear_forward)
  MONE_HOST_STEP_OP(linear_backward)
  MONE_HOST_STEP_OP(image_top_k_backward)
  MONE_HOST_STEP_OP(moe_dispatch_forward)
  MONE_HOST_STEP_OP(moe_dispatch_backward)
  MONE_HOST_STEP_OP(moe_combine_forward)
  MONE_HOST_STEP_OP(moe_combine_backward)
  MONE_HOST_STEP_OP(superclass_loss_backward)

  int64_t attention_saved_numel(int64_t batch, int64_t heads, int64_t tokens) const {
    return batch * heads * tokens * tokens;
  }
  void attend(const T* qkv, const TokenLayout& layout, T* out, T* probs) const {
    attention_forward(qkv, layout, config_.heads, config_.dim, out, probs);
  }
  void attend_backward(const T* dout, const T* qkv, const T* /*out*/, const T* probs, const TokenLayout& layout,
                       T* dqkv) const {
    attention_backward(dout, qkv, probs, layout, config_.heads, config_.dim, dqkv);
  }

  void zero(T* x, int64_t n) const { std::fill(x, x + n, T(0)); }
  // The head's GEMM reads d_logits as they are: Exact is Value here.
  const T* as_value(const T* x, int64_t /*n*/, T* /*scratch*/) const { return x; }

  // V-MoE: each image's top-k experts, then the image-sorted layout.
  void route_images(const T* probs, VmoeActivations<CpuStepOps>& a) const {
    const int64_t B = a.batch, E = config_.experts, k = config_.top_k;
    image_top_k_forward(probs, B, E, k, a.expert_of_slot, a.weight_of_slot);
    a.dispatch = image_sorted_dispatch(a.expert_of_slot, B, k, E, config_.tokens(), config_.dim);
    std::copy(a.dispatch.position_of_slot.begin(), a.dispatch.position_of_slot.end(), a.position_of_slot);
  }

  // EPR on the host, then the stored order and its groups. `A` is the step's
  // activations (a template: a policy that wraps this one passes its own).
  template <class A>
  void route(const T* probs, const RoutingPlan& plan, A& a) const {
    const int64_t N = config_.tokens(), E = config_.experts, M = a.batch * N;
    expert_preferred_routing(routing_scores_ ? routing_scores_ : probs, a.batch, N, E, plan.tokens_per_expert,
                             a.expert_of_token);
    if (order_ == TokenOrder::expert_sorted) {
      a.layout = TokenLayout::token_major(a.batch, N);
      expert_sorted_order(a.expert_of_token, a.batch, N, E, a.source_of_row);
      a.groups = expert_sorted_groups(config_, plan, a.batch);
      return;
    }
    // Original order: identity permutation, one group per run of equal experts.
    a.layout = TokenLayout::image_major(a.batch, N);
    a.groups.clear();
    for (int64_t row = 0; row < M; ++row) {
      a.source_of_row[row] = static_cast<int32_t>(row);
      const int64_t width = config_.expert_width(a.expert_of_token[row] + 1);
      if (!a.groups.empty() && a.groups.back().width == width)
        ++a.groups.back().rows;
      else
        a.groups.push_back({row, 1, width});
    }
  }

 private:
  ParameterSet<T>& params_;
  const ModelConfig& config_;
  TokenOrder order_;
  T label_smoothing_;
  const DistillationLoss<T>* distillation_ = nullptr;
  int64_t loss_batch_ = 0;
  T* gradients_ = nullptr;
  const T* routing_scores_ = nullptr;
};

#undef MONE_HOST_STEP_OP

}  // namespace mone
