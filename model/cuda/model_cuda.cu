// The device model: reads top to bottom like model/model.cpp, op by op.
#include "model/cuda/model_cuda.h"

#include <algorithm>
#include <stdexcept>
#include <type_traits>

#include "model/capacity.h"
#include "model/cuda/attention_cudnn.h"
#include "model/cuda/check.h"
#include "model/cuda/ops.h"

namespace mone::cuda {

// The MLP's GELU runs in cuBLASLt's GEMM epilogues in bf16 (training) only.
// fp32 is the mode the tests hold to the CPU at 1e-5 through the whole model,
// and cuBLASLt's epilogue may evaluate tanh with the hardware approximation
// (about 2^-11 relative, docs/cuda.md); there the separate kernels stay.
template <class T>
constexpr bool kGeluInGemmEpilogue = std::is_same_v<T, bf16>;

template <class T>
struct DeviceModel<T>::Activations {
  struct Block {
    T* input;                      // residual stream entering the block [M, D]
    T* ln1;                        // [M, D]
    float *ln1_mean, *ln1_rstd;    // [M]
    T* qkv;                        // [M, 3D]
    float* lse;                    // attention log-sum-exp [B, H, N]
    T* attn;                       // [M, D]
    T* mid;                        // z = x + proj(attn) [M, D]
    T* ln2;
    float *ln2_mean, *ln2_rstd;
    T* hidden_pre;                 // fc1 output, GELU's input [M, hidden]
    T* hidden;                     // GELU [M, hidden]
    T* mlp_out;                    // [M, D]
  };
  T* patches;              // [M, P*P*C], original order
  T* embedded;             // [M, D], original order
  float* router_probs;     // [M, E], original order
  int32_t* expert_of_token;
  int32_t* source_of_row;
  float* chosen_prob;      // [M], stored layout
  std::vector<Block> blocks;
  T* final_in;
  T* final_ln;
  float *final_mean, *final_rstd;
  T* pooled;               // [B, D]
  float* logits;           // [B, classes]
  float* class_probs;
  // Backward.
  float* d_logits;
  T* d_logits_compute;
  T *d_pooled, *d_resid, *d_norm, *d_qkv, *d_attn, *d_hidden, *d_mlp, *d_embedded;
  float *d_chosen_prob, *d_router_probs;
};

template <class T>
void DeviceModel<T>::plan(DeviceArena& arena, int64_t batch, Activations& a) const {
  const ModelConfig& c = config_;
  const int64_t N = c.tokens(), D = c.dim, E = c.experts, H = c.heads, hidden = c.hidden(), M = batch * N;
  a.patches = arena.take<T>(M * c.patch_dim(), "patches");
  a.embedded = arena.take<T>(M * D, "embedded tokens");
  a.router_probs = arena.take<float>(M * E, "router probabilities");
  a.expert_of_token = arena.take<int32_t>(M, "expert of each token");
  a.source_of_row = arena.take<int32_t>(M, "token permutation");
  a.chosen_prob = arena.take<float>(M, "chosen expert probability");
  a.blocks.resize(c.depth);
  T* x = arena.take<T>(M * D, "residual stream");
  for (auto& b : a.blocks) {
    b.input = x;
    b.ln1 = arena.take<T>(M * D, "LN1");
    b.ln1_mean = arena.take<float>(M, "LN1 mean");
    b.ln1_rstd = arena.take<float>(M, "LN1 rstd");
    b.qkv = arena.take<T>(M * 3 * D, "qkv");
    b.lse = arena.take<float>(batch * H * N, "attention log-sum-exp");
    b.attn = arena.take<T>(M * D, "attention output");
    b.mid = arena.take<T>(M * D, "residual after attention");
    b.ln2 = arena.take<T>(M * D, "LN2");
    b.ln2_mean = arena.take<float>(M, "LN2 mean");
    b.ln2_rstd = arena.take<float>(M, "LN2 rstd");
    b.hidden_pre = arena.take<T>(M * hidden, "MLP pre-activation");
    b.hidden = arena.take<T>(M * hidden, "MLP hidden");
    b.mlp_out = arena.take<T>(M * D, "MLP output");
    x = arena.take<T>(M * D, "residual stream");
  }
  a.final_in = x;
  a.final_ln = arena.take<T>(M * D, "final LayerNorm");
  a.final_mean = arena.take<float>(M, "final LayerNorm mean");
  a.final_rstd = arena.take<float>(M, "final LayerNorm rstd");
  a.pooled = arena.take<T>(batch * D, "pooled");
  a.logits = arena.take<float>(batch * c.classes, "logits");
  a.class_probs = arena.take<float>(batch * c.classes, "class probabilities");
  a.d_logits = arena.take<float>(batch * c.classes, "logit gradients");
  a.d_logits_compute = arena.take<T>(batch * c.classes, "logit gradients for the GEMMs");
  a.d_pooled = arena.take<T>(batch * D, "pooled gradient");
  a.d_resid = arena.take<T>(M * D, "residual gradient");
  a.d_norm = arena.take<T>(M * D, "LayerNorm output gradient");
  a.d_qkv = arena.take<T>(M * 3 * D, "qkv gradient");
  a.d_attn = arena.take<T>(M * D, "attention output gradient");
  a.d_hidden = arena.take<T>(M * hidden, "MLP hidden gradient");  // w.r.t. hidden_pre once GELU's backward ran
  a.d_mlp = arena.take<T>(M * D, "MLP output gradient");
  a.d_embedded = arena.take<T>(M * D, "embedding gradient");
  a.d_chosen_prob = arena.take<float>(M, "chosen probability gradient");
  a.d_router_probs = arena.take<float>(M * E, "router probability gradient");
}

namespace {
constexpr int64_t kParameterAlignment = 128;  // elements: 512 bytes of fp32, 256 of bf16

// The same parameters at aligned offsets.
std::vector<ParamInfo> aligned_layout(std::vector<ParamInfo> infos) {
  int64_t offset = 0;
  for (ParamInfo& info : infos) {
    info.offset = offset;
    offset = (offset + info.numel + kParameterAlignment - 1) / kParameterAlignment * kParameterAlignment;
  }
  return infos;
}
int64_t end_of(const std::vector<ParamInfo>& infos) { return infos.back().offset + infos.back().numel; }
// The device numel rounds up too: the compute copy starts numel floats into
// the parameter block, so an unrounded numel (tiny's head.bias has 10
// elements) would leave every compute weight and bias 8-byte aligned.
int64_t aligned_end_of(const std::vector<ParamInfo>& infos) {
  return (end_of(infos) + kParameterAlignment - 1) / kParameterAlignment * kParameterAlignment;
}
}  // namespace

template <class T>
DeviceModel<T>::DeviceModel(const ModelConfig& config, int64_t max_batch, const DeviceContext& context)
    : config_((config.validate(), config)),
      max_batch_(max_batch),
      context_(context),
      host_infos_(ParameterSet<float>(config).infos()),
      infos_(aligned_layout(host_infos_)),
      parameter_count_(end_of(host_infos_)),
      numel_(aligned_end_of(infos_)),
      params_(numel_ * (sizeof(float) + sizeof(T)), "parameters (fp32 master and compute copy)"),
      grads_(numel_ * sizeof(float), "parameter gradients"),
      acts_(std::make_unique<Activations>()) {
  DeviceArena counting;
  plan(counting, max_batch, *acts_);
  workspace_ = DeviceArena(counting.used(), "activation workspace (batch " + std::to_string(max_batch) + ")");
  zero_grads();
  set_cudnn_attention(true);
}

template <class T>
void DeviceModel<T>::set_cudnn_attention(bool enabled) {
  cudnn_attention_.reset();
  cudnn_unavailable_.clear();
#if MONE_HAVE_CUDNN_ATTENTION
  if (enabled && std::is_same_v<T, bf16>) {
    try {
      cudnn_attention_ = std::make_shared<CudnnAttention>(context_);
    } catch (const CudaError& error) {  // cuDNN cannot start here: our kernel serves every shape
      cudnn_unavailable_ = std::string("our fused kernel throughout, cuDNN did not start: ") + error.what();
    }
  }
#else
  (void)enabled;
#endif
}

template <class T>
std::vector<std::string> DeviceModel<T>::attention_report() const {
  if (!cudnn_unavailable_.empty()) return {cudnn_unavailable_};
  if (!cudnn_attention_) return {};
#if MONE_HAVE_CUDNN_ATTENTION
  return cudnn_attention_->report();
#else
  return {};
#endif
}

// cuDNN where it serves the shape (bf16 only), our kernel otherwise; the two
// share the lse convention, so either backward follows either forward.
template <class T>
void DeviceModel<T>::attend(const T* qkv, const TokenLayout& layout, T* out, float* lse) const {
#if MONE_HAVE_CUDNN_ATTENTION
  if constexpr (std::is_same_v<T, bf16>)
    if (cudnn_attention_ && cudnn_attention_->forward(qkv, layout, config_.heads, config_.dim, out, lse)) return;
#endif
  attention_forward(qkv, layout, config_.heads, config_.dim, out, lse, context_);
}

template <class T>
void DeviceModel<T>::attend_backward(const T* dout, const T* qkv, const T* out, const float* lse,
                                     const TokenLayout& layout, T* dqkv) const {
#if MONE_HAVE_CUDNN_ATTENTION
  if constexpr (std::is_same_v<T, bf16>)
    if (cudnn_attention_ &&
        cudnn_attention_->backward(dout, qkv, out, lse, layout, config_.heads, config_.dim, dqkv))
      return;
#endif
  attention_backward(dout, qkv, out, lse, layout, config_.heads, config_.dim, dqkv, context_);
}

template <class T>
DeviceModel<T>::~DeviceModel() = default;

template <class T>
const ParamInfo& DeviceModel<T>::info(const std::string& name) const {
  return find_parameter(infos_, name);
}
template <class T>
const T* DeviceModel<T>::weight(const std::string& name) const {
  return compute_values() + info(name).offset;
}
template <class T>
const float* DeviceModel<T>::master(const std::string& name) const {
  return values() + info(name).offset;
}
template <class T>
float* DeviceModel<T>::grad(const std::string& name) const {
  return grads() + info(name).offset;
}

template <class T>
void DeviceModel<T>::to_device_layout(const float* host, float* device) const {
  MONE_CUDA_CHECK(cudaMemsetAsync(device, 0, numel_ * sizeof(float), context_.stream()));  // the gaps
  for (size_t i = 0; i < infos_.size(); ++i)
    MONE_CUDA_CHECK(cudaMemcpyAsync(device + infos_[i].offset, host + host_infos_[i].offset,
                                    infos_[i].numel * sizeof(float), cudaMemcpyHostToDevice, context_.stream()));
  context_.synchronize();  // `host` may be freed when this returns
}

template <class T>
void DeviceModel<T>::to_cpu_layout(const float* device, float* host) const {
  context_.synchronize();
  for (size_t i = 0; i < infos_.size(); ++i)
    MONE_CUDA_CHECK(cudaMemcpyAsync(host + host_infos_[i].offset, device + infos_[i].offset,
                                    infos_[i].numel * sizeof(float), cudaMemcpyDeviceToHost, context_.stream()));
  context_.synchronize();
}

template <class T>
void DeviceModel<T>::load_parameters(const float* host_values) {
  to_device_layout(host_values, values());
  refresh_compute_copy();
}

template <class T>
void DeviceModel<T>::download_gradients(float* host_grads) const {
  to_cpu_layout(grads(), host_grads);
}

template <class T>
void DeviceModel<T>::refresh_compute_copy() {
  convert_from_float(values(), numel_, compute_values(), context_);
}

template <class T>
void DeviceModel<T>::zero_grads() {
  MONE_CUDA_CHECK(cudaMemsetAsync(grads(), 0, numel_ * sizeof(float), context_.stream()));
}

template <class T>
const float* DeviceModel<T>::logits() const {
  return acts_->logits;
}
template <class T>
const int32_t* DeviceModel<T>::expert_of_token() const {
  return acts_->expert_of_token;
}

template <class T>
void DeviceModel<T>::forward(const T* images, int64_t batch, double effective_capacity) {
  const ModelConfig& c = config_;
  const int64_t N = c.tokens(), D = c.dim, E = c.experts, hidden = c.hidden(), M = batch * N;
  const DeviceContext& ctx = context_;
  Activations& a = *acts_;
  const TokenLayout layout = TokenLayout::token_major(batch, N);

  // Embedding and routing in the original token order.
  patchify(images, batch, c.image_height, c.image_width, c.channels, c.patch, a.patches, ctx);
  patch_embed_forward(a.patches, M, c.patch_dim(), weight("patch_embed.weight"), weight("patch_embed.bias"), D,
                      a.embedded, ctx);
  position_embed_forward(a.embedded, weight("pos_embed"), batch, N, D, ctx);
  router_forward(a.embedded, M, D, weight("router.weight"), master("router.bias"), E, a.router_probs, ctx);
  const std::vector<int64_t> counts = tokens_per_expert(capacity_for(effective_capacity, E), N);
  std::vector<int64_t> widths(E);
  for (int64_t j = 0; j < E; ++j) widths[j] = c.expert_width(j + 1);
  groups_ = expert_groups(counts, widths, batch);
  expert_preferred_routing(a.router_probs, batch, N, E, counts, a.expert_of_token, ctx);
  expert_sorted_order(a.expert_of_token, batch, N, E, a.source_of_row, ctx);

  // Permute once into [N, B, D]; never back (pooling is order-free).
  permute_tokens_forward(a.embedded, a.source_of_row, M, D, a.blocks.front().input, ctx);
  gather_chosen_probability(a.router_probs, a.expert_of_token, a.source_of_row, M, E, a.chosen_prob, ctx);

  for (int64_t l = 0; l < c.depth; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    auto& b = a.blocks[l];
    T* next = l + 1 < c.depth ? a.blocks[l + 1].input : a.final_in;
    layernorm_forward(b.input, M, D, weight(p + "norm1.weight"), weight(p + "norm1.bias"), b.ln1, b.ln1_mean,
                      b.ln1_rstd, ctx);
    nested_in_forward(b.ln1, D, groups_, weight(p + "attn.qkv.weight"), weight(p + "attn.qkv.bias"), 3 * D, b.qkv,
                      ctx);
    attend(b.qkv, layout, b.attn, b.lse);
    nested_out_forward(b.attn, D, groups_, weight(p + "attn.proj.weight"), weight(p + "attn.proj.bias"), D, b.mid,
                       ctx);
    add_inplace(b.mid, b.input, M * D, ctx);
    layernorm_forward(b.mid, M, D, weight(p + "norm2.weight"), weight(p + "norm2.bias"), b.ln2, b.ln2_mean,
                      b.ln2_rstd, ctx);
    if constexpr (kGeluInGemmEpilogue<T>) {
      nested_in_gelu_forward(b.ln2, D, groups_, weight(p + "mlp.fc1.weight"), weight(p + "mlp.fc1.bias"), hidden,
                             b.hidden_pre, b.hidden, ctx);
    } else {
      nested_in_forward(b.ln2, D, groups_, weight(p + "mlp.fc1.weight"), weight(p + "mlp.fc1.bias"), hidden,
                        b.hidden_pre, ctx);
      gelu_forward(b.hidden_pre, M * hidden, b.hidden, ctx);
    }
    nested_out_forward(b.hidden, hidden, groups_, weight(p + "mlp.fc2.weight"), weight(p + "mlp.fc2.bias"), D,
                       b.mlp_out, ctx);
    scaled_residual_forward(b.mid, b.mlp_out, a.chosen_prob, weight(p + "alpha"), M, D, next, ctx);
  }

  layernorm_forward(a.final_in, M, D, weight("norm.weight"), weight("norm.bias"), a.final_ln, a.final_mean,
                    a.final_rstd, ctx);
  mean_pool_forward(a.final_ln, layout, D, a.pooled, ctx);
  linear_forward<T, float>(a.pooled, D, batch, D, weight("head.weight"), c.classes, master("head.bias"), c.classes,
                           a.logits, c.classes, ctx);
}

template <class T>
void DeviceModel<T>::backward(const int32_t* labels, int64_t batch) {
  const ModelConfig& c = config_;
  const int64_t N = c.tokens(), D = c.dim, E = c.experts, hidden = c.hidden(), C = c.classes;
  const int64_t M = batch * N;
  const DeviceContext& ctx = context_;
  Activations& a = *acts_;
  const TokenLayout layout = TokenLayout::token_major(batch, N);

  cross_entropy_backward(a.class_probs, labels, batch, C, a.d_logits, label_smoothing_, ctx);
  convert_from_float(a.d_logits, batch * C, a.d_logits_compute, ctx);
  linear_backward(a.d_logits_compute, C, a.pooled, D, batch, D, weight("head.weight"), C, C, a.d_pooled, D,
                  grad("head.weight"), grad("head.bias"), ctx);
  mean_pool_backward(a.d_pooled, layout, D, a.d_norm, ctx);
  MONE_CUDA_CHECK(cudaMemsetAsync(a.d_resid, 0, M * D * sizeof(T), ctx.stream()));
  MONE_CUDA_CHECK(cudaMemsetAsync(a.d_chosen_prob, 0, M * sizeof(float), ctx.stream()));
  layernorm_backward(a.d_norm, a.final_in, a.final_mean, a.final_rstd, weight("norm.weight"), M, D, a.d_resid,
                     grad("norm.weight"), grad("norm.bias"), ctx);
  int64_t final_from = numel_;  // gradients from here to the end are final
  gradients_final_from(info("norm.weight").offset, final_from);

  for (int64_t l = c.depth - 1; l >= 0; --l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    const auto& b = a.blocks[l];
    // MLP branch; d_resid passes through the residual unchanged.
    scaled_residual_backward(a.d_resid, b.mlp_out, a.chosen_prob, weight(p + "alpha"), M, D, a.d_mlp,
                             a.d_chosen_prob, grad(p + "alpha"), ctx);
    if constexpr (kGeluInGemmEpilogue<T>) {
      gelu_nested_out_backward(a.d_mlp, b.hidden, b.hidden_pre, hidden, groups_, weight(p + "mlp.fc2.weight"), D,
                               a.d_hidden, grad(p + "mlp.fc2.weight"), grad(p + "mlp.fc2.bias"), ctx);
    } else {
      nested_out_backward(a.d_mlp, b.hidden, hidden, groups_, weight(p + "mlp.fc2.weight"), D, a.d_hidden,
                          grad(p + "mlp.fc2.weight"), grad(p + "mlp.fc2.bias"), ctx);
      gelu_backward(a.d_hidden, b.hidden_pre, M * hidden, a.d_hidden, ctx);
    }
    nested_in_backward(a.d_hidden, b.ln2, D, groups_, weight(p + "mlp.fc1.weight"), hidden, a.d_norm,
                       grad(p + "mlp.fc1.weight"), grad(p + "mlp.fc1.bias"), ctx);
    layernorm_backward(a.d_norm, b.mid, b.ln2_mean, b.ln2_rstd, weight(p + "norm2.weight"), M, D, a.d_resid,
                       grad(p + "norm2.weight"), grad(p + "norm2.bias"), ctx);
    // Attention branch.
    nested_out_backward(a.d_resid, b.attn, D, groups_, weight(p + "attn.proj.weight"), D, a.d_attn,
                        grad(p + "attn.proj.weight"), grad(p + "attn.proj.bias"), ctx);
    attend_backward(a.d_attn, b.qkv, b.attn, b.lse, layout, a.d_qkv);
    nested_in_backward(a.d_qkv, b.ln1, D, groups_, weight(p + "attn.qkv.weight"), 3 * D, a.d_norm,
                       grad(p + "attn.qkv.weight"), grad(p + "attn.qkv.bias"), ctx);
    layernorm_backward(a.d_norm, b.input, b.ln1_mean, b.ln1_rstd, weight(p + "norm1.weight"), M, D, a.d_resid,
                       grad(p + "norm1.weight"), grad(p + "norm1.bias"), ctx);
    gradients_final_from(info(p + "norm1.weight").offset, final_from);
  }

  // Back to the original order, then the router (through r only) and the embeddings.
  permute_tokens_backward(a.d_resid, a.source_of_row, M, D, a.d_embedded, ctx);
  scatter_chosen_probability(a.d_chosen_prob, a.expert_of_token, a.source_of_row, M, E, a.d_router_probs, ctx);
  router_backward(a.d_router_probs, a.router_probs, a.embedded, M, D, weight("router.weight"), E, a.d_embedded,
                  grad("router.weight"), grad("router.bias"), ctx);
  position_embed_backward(a.d_embedded, batch, N, D, grad("pos_embed"), ctx);
  patch_embed_backward(a.d_embedded, a.patches, M, c.patch_dim(), D, grad("patch_embed.weight"),
                       grad("patch_embed.bias"), ctx);
  gradients_final_from(0, final_from);
}

template <class T>
void DeviceModel<T>::gradients_final_from(int64_t begin, int64_t& final_from) const {
  if (gradient_ready_ && begin < final_from) gradient_ready_(begin, final_from);
  final_from = begin;
}

template <class T>
void DeviceModel<T>::prepare(int64_t batch) {
  if (batch > max_batch_)
    throw std::invalid_argument("DeviceModel: batch " + std::to_string(batch) + " exceeds the max_batch " +
                                std::to_string(max_batch_) + " its workspace was sized for");
  workspace_.reset();
  plan(workspace_, batch, *acts_);
}

template <class T>
void DeviceModel<T>::forward_logits(const T* images, int64_t batch, double effective_capacity) {
  prepare(batch);
  forward(images, batch, effective_capacity);
}

template <class T>
void DeviceModel<T>::forward_backward(const T* images, const int32_t* labels, int64_t batch,
                                      double effective_capacity, float* loss) {
  prepare(batch);
  forward(images, batch, effective_capacity);
  cross_entropy_forward(acts_->logits, labels, batch, config_.classes, acts_->class_probs, label_smoothing_, loss,
                        context_);
  backward(labels, batch);
}

template class DeviceModel<float>;
template class DeviceModel<bf16>;

}  // namespace mone::cuda
