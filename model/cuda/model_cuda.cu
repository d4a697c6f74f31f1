// The device model: the model step of its arch (model/step.h,
// model/vmoe_step.h) over the CUDA ops policy (model/cuda/step_ops.h), with
// its buffers on the device.
#include "model/cuda/model_cuda.h"

#include <algorithm>
#include <stdexcept>
#include <type_traits>

#include "model/cuda/attention_cudnn.h"
#include "model/cuda/check.h"
#include "model/cuda/ops.h"
#include "model/cuda/ops_moe.h"
#include "model/cuda/step_ops.h"
#include "model/step.h"
#include "model/vmoe_step.h"

namespace mone::cuda {

template <class T>
struct DeviceModel<T>::Activations : StepActivations<CudaStepOps<T>> {};
template <class T>
struct DeviceModel<T>::VmoeActs : VmoeActivations<CudaStepOps<T>> {};

template <class T>
CudaStepOps<T> DeviceModel<T>::step_ops() const {
  return CudaStepOps<T>(DeviceParameters<T>{&infos_, compute_values(), values(), grads(), numel_}, config_,
                        label_smoothing_, cudnn_attention_.get(), context_);
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
      acts_(std::make_unique<Activations>()),
      vmoe_acts_(std::make_unique<VmoeActs>()) {
  DeviceArena counting;
  if (config_.is_vmoe()) {
    plan_vmoe_step(counting, step_ops(), config_, max_batch, true, *vmoe_acts_);
    superclass_ = DeviceBuffer(static_cast<size_t>(max_batch) * sizeof(int32_t), "super-class of each image");
  } else {
    plan_step(counting, step_ops(), config_, max_batch, true, *acts_);
  }
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

template <class T>
DeviceModel<T>::~DeviceModel() = default;

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
void DeviceModel<T>::set_superclasses(const std::vector<int32_t>& superclass_of_class, double router_loss_weight) {
  if (!config_.is_vmoe()) throw std::invalid_argument("DeviceModel: super-classes are for --arch vmoe");
  router_loss_weight_ = static_cast<float>(router_loss_weight);
  superclass_of_class_ = DeviceBuffer();
  if (superclass_of_class.empty()) return;
  if (static_cast<int64_t>(superclass_of_class.size()) != config_.classes)
    throw std::invalid_argument("DeviceModel: " + std::to_string(superclass_of_class.size()) +
                                " super-class entries for " + std::to_string(config_.classes) + " classes");
  for (const int32_t group : superclass_of_class)
    if (group < 0 || group >= config_.experts)
      throw std::invalid_argument("DeviceModel: super-class " + std::to_string(group) + " outside [0, " +
                                  std::to_string(config_.experts) + ")");
  superclass_of_class_ = DeviceBuffer(superclass_of_class.size() * sizeof(int32_t), "super-class of each class");
  MONE_CUDA_CHECK(cudaMemcpy(superclass_of_class_.data(), superclass_of_class.data(),
                             superclass_of_class.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
}

template <class T>
const float* DeviceModel<T>::logits() const {
  return config_.is_vmoe() ? vmoe_acts_->logits : acts_->logits;
}
template <class T>
const int32_t* DeviceModel<T>::expert_of_token() const {
  return config_.is_vmoe() ? nullptr : acts_->expert_of_token;
}
template <class T>
const int32_t* DeviceModel<T>::expert_of_slot() const {
  return config_.is_vmoe() ? vmoe_acts_->expert_of_slot : nullptr;
}

template <class T>
void DeviceModel<T>::prepare(int64_t batch) {
  if (batch > max_batch_)
    throw std::invalid_argument("DeviceModel: batch " + std::to_string(batch) + " exceeds the max_batch " +
                                std::to_string(max_batch_) + " its workspace was sized for");
  workspace_.reset();
  if (config_.is_vmoe())
    plan_vmoe_step(workspace_, step_ops(), config_, batch, true, *vmoe_acts_);
  else
    plan_step(workspace_, step_ops(), config_, batch, true, *acts_);
}

template <class T>
void DeviceModel<T>::forward_logits(const T* images, int64_t batch, const RoutingPlan& plan) {
  prepare(batch);
  CudaStepOps<T> ops = step_ops();
  if (config_.is_vmoe())
    vmoe_step_forward(ops, config_, images, *vmoe_acts_);
  else
    step_forward(ops, config_, images, plan, *acts_);
}

template <class T>
void DeviceModel<T>::forward_backward(const T* images, const int32_t* labels, int64_t batch, const RoutingPlan& plan,
                                      float* loss) {
  prepare(batch);
  CudaStepOps<T> ops = step_ops();
  if (!config_.is_vmoe()) {
    step_forward(ops, config_, images, plan, *acts_);
    cross_entropy_forward(acts_->logits, labels, batch, config_.classes, acts_->class_probs, label_smoothing_, loss,
                          context_);
    step_backward(ops, config_, labels, *acts_, gradient_ready_);
    return;
  }
  auto& a = *vmoe_acts_;
  vmoe_step_forward(ops, config_, images, a);
  cross_entropy_forward(a.logits, labels, batch, config_.classes, a.class_probs, label_smoothing_, loss, context_);
  int32_t* superclass = nullptr;
  if (superclass_of_class_.data()) {
    superclass = superclass_.as<int32_t>();
    superclass_of_images(labels, superclass_of_class_.as<int32_t>(), batch, superclass, context_);
    superclass_loss_forward(a.router_probs, superclass, batch, config_.experts, router_loss_weight_, loss, context_);
  }
  vmoe_step_backward(ops, config_, labels, superclass, router_loss_weight_, a, gradient_ready_);
}

template class DeviceModel<float>;
template class DeviceModel<bf16>;

}  // namespace mone::cuda
