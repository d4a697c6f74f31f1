// The MoNE ViT on the device: forward and backward of the whole model, the
// same computation as the CPU Model (model/model.h) in the expert-sorted
// layout, with the same parameter layout (ParameterSet's names and offsets),
// so losses and gradients compare element by element.
//
// Memory: one allocation holds the parameters (fp32 master values, then the
// T compute copy), one the fp32 gradients, one the activation workspace,
// sized for `max_batch` by running the allocation plan on a counting arena.
// On the device every parameter starts on a 512-byte boundary (infos() has
// the device offsets; the gaps hold zeros): cuBLASLt's fast kernels and its
// bias epilogue need aligned operands, and in the CPU layout everything after
// a block's one-element alpha is misaligned. load_parameters and
// download_gradients convert between the CPU layout and this one.
// MoNE's routing needs no device-to-host copy: the tokens per expert, hence
// the expert groups, are a function of e_c and N alone (every image gets
// exactly k_j tokens at expert j), and EPR itself runs on the device.
// Mobile V-MoE (--arch vmoe, model/vmoe_step.h) runs the same way except that
// its experts' group sizes are data: a pass waits once for the router's
// top-k to come back to the host (CudaStepOps::route_images), and so is
// never captured into a CUDA graph.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/cuda/context.h"
#include "model/cuda/device_memory.h"
#include "model/cuda/step_ops.h"
#include "model/ops.h"
#include "model/parameters.h"
#include "model/routing_plan.h"
#include "model/step.h"

namespace mone::cuda {

template <class T>
class DeviceModel {
 public:
  DeviceModel(const ModelConfig& config, int64_t max_batch, const DeviceContext& context);
  ~DeviceModel();

  const ModelConfig& config() const { return config_; }
  // Parameters with their device offsets; numel() includes the gaps.
  const std::vector<ParamInfo>& infos() const { return infos_; }
  int64_t numel() const { return numel_; }
  // Elements in the CPU layout (ParameterSet::numel).
  int64_t parameter_count() const { return parameter_count_; }
  float* values() const { return params_.as<float>(); }  // fp32 master
  T* compute_values() const { return reinterpret_cast<T*>(params_.as<float>() + numel_); }
  float* grads() const { return grads_.as<float>(); }
  size_t workspace_bytes() const { return workspace_.capacity(); }

  // Host fp32 values in the CPU layout -> master and compute copy.
  void load_parameters(const float* host_values);
  // The gradients in the CPU layout (parameter_count() floats); waits for the device.
  void download_gradients(float* host_grads) const;
  // Any fp32 buffer of the device layout (master values, gradients, the
  // moments of a DeviceAdamW built on infos()) to and from parameter_count()
  // host floats in the CPU layout; the upload zeroes the gaps. Both wait for
  // the device.
  void to_device_layout(const float* host, float* device) const;
  void to_cpu_layout(const float* device, float* host) const;
  // After an optimizer step on values(): refresh the compute copy.
  void refresh_compute_copy();
  void zero_grads();
  void set_label_smoothing(double epsilon) { label_smoothing_ = static_cast<float>(epsilon); }
  // V-MoE: the router's auxiliary loss towards each image's super-class,
  // superclass_of_class[label] (docs/method.md, section 5), with this weight;
  // empty: none. As Model::set_superclasses.
  void set_superclasses(const std::vector<int32_t>& superclass_of_class, double router_loss_weight);
  // Attention through cuDNN's fused SDPA (bf16, builds with cuDNN; the
  // default there) or always through our kernel. Call before the first pass.
  void set_cudnn_attention(bool enabled);
  // Which implementation serves each attention shape and direction, and why
  // (attention_cudnn.h); empty until the first pass or without cuDNN.
  std::vector<std::string> attention_report() const;

  // images: device [B, H, W, C] of T; labels: device int32 [B]; B <=
  // max_batch. Gradients accumulate into grads(); *loss (device) is set to
  // the mean cross-entropy (V-MoE: plus the weighted super-class loss). MoNE:
  // nothing waits for the device. V-MoE ignores `plan` (it routes images, all
  // tokens at full width).
  void forward_backward(const T* images, const int32_t* labels, int64_t batch, const RoutingPlan& plan,
                        float* loss);

  // Backward hook for overlapping the gradient allreduce, as Model's
  // (model/model.h): during forward_backward, called on the host with each
  // range [begin, end) of grads() (device layout, gaps included) that
  // backward will not write again in this pass, from the end of the buffer
  // toward its start; together they cover [0, numel()) once. It is called
  // once the work writing the range is enqueued on the context's stream, not
  // run: the callback orders its own work after that stream (an event, as
  // NcclCommunicator::start_allreduce does). A step with a hook is captured
  // into a CUDA graph only if the hook's work may be. Empty: no calls.
  using GradientReady = mone::GradientReady;
  void set_gradient_ready(GradientReady callback) { gradient_ready_ = std::move(callback); }

  // Forward only (evaluation): logits() of the batch at e_c, without the
  // loss and the backward; the gradients are untouched. Nothing waits for
  // the device.
  void forward_logits(const T* images, int64_t batch, const RoutingPlan& plan);

  // Of the last pass, on the device: logits [B, classes] (fp32); MoNE: the
  // expert of each token [B*N] in the original order; V-MoE: the experts of
  // each image [B*k], best first (null for the other architecture).
  const float* logits() const;
  const int32_t* expert_of_token() const;
  const int32_t* expert_of_slot() const;

 private:
  struct Activations;
  struct VmoeActs;
  // The ops policy of the step over this model's buffers.
  CudaStepOps<T> step_ops() const;
  // Checks the batch against max_batch and lays out its activations.
  void prepare(int64_t batch);

  ModelConfig config_;
  int64_t max_batch_;
  const DeviceContext& context_;
  std::vector<ParamInfo> host_infos_;  // CPU layout
  std::vector<ParamInfo> infos_;       // device layout
  int64_t parameter_count_ = 0;
  int64_t numel_ = 0;
  DeviceBuffer params_;
  DeviceBuffer grads_;
  DeviceArena workspace_;
  std::unique_ptr<Activations> acts_;
  std::unique_ptr<VmoeActs> vmoe_acts_;
  // V-MoE's super-class loss: the table [classes] and each image's [max_batch].
  DeviceBuffer superclass_of_class_;
  DeviceBuffer superclass_;
  float router_loss_weight_ = 0.f;
  float label_smoothing_ = 0.f;
  // Null in fp32 mode, in builds without cuDNN, or when switched off. A
  // shared_ptr: its deleter is bound where it is made, so builds without
  // cuDNN never reference CudnnAttention's code.
  std::shared_ptr<CudnnAttention> cudnn_attention_;
  std::string cudnn_unavailable_;  // why cuDNN could not start, if it could not
  GradientReady gradient_ready_;
};

}  // namespace mone::cuda
