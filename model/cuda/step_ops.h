// The device's ops policy for the model steps (model/step.h,
// model/vmoe_step.h): the CUDA twins of the ops (model/cuda/ops.h,
// model/cuda/ops_moe.h) on DeviceModel's buffers, T = bf16 (training) or
// float (the fp32 mode held to the CPU). Everything is enqueued on the
// context's stream; nothing waits for the device, except V-MoE's routing
// (route_images).
#pragma once

#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <cuda_runtime.h>

#include "model/config.h"
#include "model/cuda/attention_cudnn.h"
#include "model/cuda/check.h"
#include "model/cuda/ops.h"
#include "model/cuda/ops_moe.h"
#include "model/ops_moe.h"
#include "model/parameters.h"
#include "model/routing_plan.h"
#include "model/step.h"
#include "model/vmoe_step.h"

namespace mone::cuda {

// The MLP's GELU runs in cuBLASLt's GEMM epilogues in bf16 (training) only.
// fp32 is the mode the tests hold to the CPU at 1e-5 through the whole model,
// and cuBLASLt's epilogue may evaluate tanh with the hardware approximation
// (about 2^-11 relative, docs/cuda.md); there the separate kernels stay.
template <class T>
constexpr bool kGeluInGemmEpilogue = std::is_same_v<T, bf16>;

// The parameters as the step reads them: device offsets (with the alignment
// gaps), the compute copy, the fp32 master values and gradients.
template <class T>
struct DeviceParameters {
  const std::vector<ParamInfo>* infos;
  const T* compute;
  const float* master;
  float* grads;
  int64_t numel;
};

// An op of model/cuda/ops.h under its own name, the context appended.
#define MONE_DEVICE_STEP_OP(name)                                     \
  template <class... Args>                                            \
  auto name(Args&&... args) const {                                   \
    return ::mone::cuda::name(std::forward<Args>(args)..., context_); \
  }

template <class T>
class CudaStepOps {
 public:
  using Value = T;
  using Exact = float;
  using AttentionSaved = float;  // the log-sum-exp [B, H, N]

  // cudnn: null runs our attention kernel throughout.
  CudaStepOps(const DeviceParameters<T>& params, const ModelConfig& config, float label_smoothing,
              CudnnAttention* cudnn, const DeviceContext& context)
      : params_(params), config_(config), label_smoothing_(label_smoothing), cudnn_(cudnn), context_(context) {}

  const T* weight(const std::string& name) const { return params_.compute + offset(name); }
  const float* exact(const std::string& name) const { return params_.master + offset(name); }
  const T* scalar(const std::string& name) const { return weight(name); }  // stays on the device
  float* grad(const std::string& name) const { return params_.grads + offset(name); }
  int64_t offset(const std::string& name) const { return find_parameter(*params_.infos, name).offset; }
  int64_t gradient_numel() const { return params_.numel; }
  float label_smoothing() const { return label_smoothing_; }

  MONE_DEVICE_STEP_OP(patchify)
  MONE_DEVICE_STEP_OP(patch_embed_forward)
  MONE_DEVICE_STEP_OP(patch_embed_backward)
  MONE_DEVICE_STEP_OP(position_embed_forward)
  MONE_DEVICE_STEP_OP(position_embed_backward)
  MONE_DEVICE_STEP_OP(router_forward)
  MONE_DEVICE_STEP_OP(router_backward)
  MONE_DEVICE_STEP_OP(layernorm_forward)
  MONE_DEVICE_STEP_OP(layernorm_backward)
  MONE_DEVICE_STEP_OP(nested_in_forward)
  MONE_DEVICE_STEP_OP(nested_in_backward)
  MONE_DEVICE_STEP_OP(nested_out_forward)
  MONE_DEVICE_STEP_OP(nested_out_backward)
  MONE_DEVICE_STEP_OP(scaled_residual_forward)
  MONE_DEVICE_STEP_OP(scaled_residual_backward)
  MONE_DEVICE_STEP_OP(add_inplace)
  MONE_DEVICE_STEP_OP(permute_tokens_forward)
  MONE_DEVICE_STEP_OP(permute_tokens_backward)
  MONE_DEVICE_STEP_OP(gather_chosen_probability)
  MONE_DEVICE_STEP_OP(scatter_chosen_probability)
  MONE_DEVICE_STEP_OP(mean_pool_forward)
  MONE_DEVICE_STEP_OP(mean_pool_backward)
  MONE_DEVICE_STEP_OP(linear_forward)
  MONE_DEVICE_STEP_OP(linear_backward)
  MONE_DEVICE_STEP_OP(cross_entropy_backward)
  MONE_DEVICE_STEP_OP(image_top_k_backward)
  MONE_DEVICE_STEP_OP(moe_dispatch_forward)
  MONE_DEVICE_STEP_OP(moe_dispatch_backward)
  MONE_DEVICE_STEP_OP(moe_combine_forward)
  MONE_DEVICE_STEP_OP(moe_combine_backward)
  MONE_DEVICE_STEP_OP(superclass_loss_backward)

  void nested_in_gelu_forward(const T* x, int64_t ldx, const std::vector<ExpertGroup>& groups, const T* W,
                              const T* b, int64_t out, T* pre, T* y) const {
    if constexpr (kGeluInGemmEpilogue<T>) {
      cuda::nested_in_gelu_forward(x, ldx, groups, W, b, out, pre, y, context_);
    } else {
      cuda::nested_in_forward(x, ldx, groups, W, b, out, pre, context_);
      cuda::gelu_forward(pre, group_rows(groups) * out, y, context_);
    }
  }
  void gelu_nested_out_backward(const T* dy, const T* x, const T* pre, int64_t in,
                                const std::vector<ExpertGroup>& groups, const T* W, int64_t out, T* dpre, float* dW,
                                float* db) const {
    if constexpr (kGeluInGemmEpilogue<T>) {
      cuda::gelu_nested_out_backward(dy, x, pre, in, groups, W, out, dpre, dW, db, context_);
    } else {
      cuda::nested_out_backward(dy, x, in, groups, W, out, dpre, dW, db, context_);
      cuda::gelu_backward(dpre, pre, group_rows(groups) * in, dpre, context_);
    }
  }

  int64_t attention_saved_numel(int64_t batch, int64_t heads, int64_t tokens) const { return batch * heads * tokens; }
  // cuDNN where it serves the shape (bf16 only), our kernel otherwise; the two
  // share the lse convention, so either backward follows either forward.
  void attend(const T* qkv, const TokenLayout& layout, T* out, float* lse) const {
#if MONE_HAVE_CUDNN_ATTENTION
    if constexpr (std::is_same_v<T, bf16>)
      if (cudnn_ && cudnn_->forward(qkv, layout, config_.heads, config_.dim, out, lse)) return;
#endif
    cuda::attention_forward(qkv, layout, config_.heads, config_.dim, out, lse, context_);
  }
  void attend_backward(const T* dout, const T* qkv, const T* out, const float* lse, const TokenLayout& layout,
                       T* dqkv) const {
#if MONE_HAVE_CUDNN_ATTENTION
    if constexpr (std::is_same_v<T, bf16>)
      if (cudnn_ && cudnn_->backward(dout, qkv, out, lse, layout, config_.heads, config_.dim, dqkv)) return;
#endif
    cuda::attention_backward(dout, qkv, out, lse, layout, config_.heads, config_.dim, dqkv, context_);
  }

  template <class E>
  void zero(E* x, int64_t n) const {
    MONE_CUDA_CHECK(cudaMemsetAsync(x, 0, n * sizeof(E), context_.stream()));
  }
  // The head's GEMM reads T: the fp32 logit gradients converted into `scratch`.
  const T* as_value(const float* x, int64_t n, T* scratch) const {
    convert_from_float(x, n, scratch, context_);
    return scratch;
  }

  // The groups follow from the plan alone (every image has exactly k_j tokens
  // at expert j), so routing needs no copy back to the host; EPR and the
  // expert-sorted order run on the device.
  void route(const float* probs, const RoutingPlan& plan, StepActivations<CudaStepOps>& a) const {
    const int64_t N = config_.tokens(), E = config_.experts;
    a.layout = TokenLayout::token_major(a.batch, N);
    a.groups = expert_sorted_groups(config_, plan, a.batch);
    cuda::expert_preferred_routing(probs, a.batch, N, E, plan.tokens_per_expert, a.expert_of_token, context_);
    cuda::expert_sorted_order(a.expert_of_token, a.batch, N, E, a.source_of_row, context_);
  }

  // V-MoE: each image's top-k experts on the device; the experts' group
  // sizes are data, so expert_of_slot comes back to the host (the pass's one
  // wait), where the CPU's image_sorted_dispatch lays out the groups, and the
  // slots' positions go back up for the dispatch and combine kernels.
  void route_images(const float* probs, VmoeActivations<CudaStepOps>& a) const {
    const int64_t B = a.batch, E = config_.experts, k = config_.top_k;
    cuda::image_top_k_forward(probs, B, E, k, a.expert_of_slot, a.weight_of_slot, context_);
    std::vector<int32_t> expert_of_slot(static_cast<size_t>(B * k));
    MONE_CUDA_CHECK(cudaMemcpyAsync(expert_of_slot.data(), a.expert_of_slot, expert_of_slot.size() * sizeof(int32_t),
                                    cudaMemcpyDeviceToHost, context_.stream()));
    context_.synchronize();
    a.dispatch = image_sorted_dispatch(expert_of_slot.data(), B, k, E, config_.tokens(), config_.dim);
    MONE_CUDA_CHECK(cudaMemcpyAsync(a.position_of_slot, a.dispatch.position_of_slot.data(),
                                    expert_of_slot.size() * sizeof(int32_t), cudaMemcpyHostToDevice,
                                    context_.stream()));
  }

 private:
  DeviceParameters<T> params_;
  const ModelConfig& config_;
  float label_smoothing_;
  CudnnAttention* cudnn_;
  const DeviceContext& context_;
};

#undef MONE_DEVICE_STEP_OP

}  // namespace mone::cuda
