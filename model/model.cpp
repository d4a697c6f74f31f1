// The CPU Model: the model step of its arch (model/step.h, model/vmoe_step.h)
// over the reference ops, with its activations in the workspace.
#include "model/model.h"

#include "model/step.h"
#include "model/step_ops.h"

namespace mone {

template <class T>
struct Model<T>::Activations : StepActivations<CpuStepOps<T>> {};
template <class T>
struct Model<T>::VmoeActivations : mone::VmoeActivations<CpuStepOps<T>> {};

// A Workspace is the arena plan_step lays the activations out in; the
// purpose names a buffer only in the device's out-of-memory message.
namespace {
struct WorkspaceArena {
  Workspace& workspace;
  template <class E>
  E* take(int64_t n, const char* /*purpose*/) {
    return workspace.take<E>(n);
  }
};
}  // namespace

template <class T>
Model<T>::Model(const ModelConfig& config, uint64_t seed)
    : config_(config),
      params_((config.validate(), config)),
      acts_(std::make_unique<Activations>()),
      vmoe_acts_(std::make_unique<VmoeActivations>()) {
  params_.initialise(seed);
}

template <class T>
Model<T>::~Model() = default;
template <class T>
Model<T>::Model(Model&&) noexcept = default;

template <class T>
void Model<T>::forward_pass(const T* images, int64_t batch, const RoutingPlan& plan, bool with_backward) {
  workspace_.reset();
  CpuStepOps<T> ops(params_, config_, order_, label_smoothing_);
  WorkspaceArena arena{workspace_};
  routing_.plan = plan;
  if (config_.is_vmoe()) {
    plan_vmoe_step(arena, ops, config_, batch, with_backward, *vmoe_acts_);
    vmoe_step_forward(ops, config_, images, *vmoe_acts_);
    const int64_t slots = batch * config_.top_k;
    routing_.expert_of_slot.assign(vmoe_acts_->expert_of_slot, vmoe_acts_->expert_of_slot + slots);
    return;
  }
  plan_step(arena, ops, config_, batch, with_backward, *acts_);
  step_forward(ops, config_, images, plan, *acts_);
  const int64_t rows = batch * config_.tokens();
  routing_.expert_of_token.assign(acts_->expert_of_token, acts_->expert_of_token + rows);
  routing_.source_of_row.assign(acts_->source_of_row, acts_->source_of_row + rows);
  routing_.groups = acts_->groups;
}

template <class T>
const T* Model<T>::router_probs() const {
  return config_.is_vmoe() ? vmoe_acts_->router_probs : acts_->router_probs;
}

template <class T>
const T* Model<T>::logits() const {
  return config_.is_vmoe() ? vmoe_acts_->logits : acts_->logits;
}

template <class T>
const T* Model<T>::forward(const T* images, int64_t batch, const RoutingPlan& plan) {
  forward_pass(images, batch, plan, false);
  workspace_.settle();
  return logits();
}

template <class T>
T Model<T>::forward_backward(const T* images, const int32_t* labels, int64_t batch, const RoutingPlan& plan) {
  forward_pass(images, batch, plan, true);
  CpuStepOps<T> ops(params_, config_, order_, label_smoothing_);
  if (!config_.is_vmoe()) {
    const T loss =
        cross_entropy_forward(acts_->logits, labels, batch, config_.classes, acts_->class_probs, label_smoothing_);
    step_backward(ops, config_, labels, *acts_, gradient_ready_);
    workspace_.settle();
    return loss;
  }
  auto& a = *vmoe_acts_;
  T loss = cross_entropy_forward(a.logits, labels, batch, config_.classes, a.class_probs, label_smoothing_);
  std::vector<int32_t> superclass;
  if (!superclass_of_class_.empty()) {
    for (int64_t b = 0; b < batch; ++b) superclass.push_back(superclass_of_class_.at(labels[b]));
    loss += router_loss_weight_ * superclass_loss_forward(a.router_probs, superclass.data(), batch, config_.experts);
  }
  vmoe_step_backward(ops, config_, labels, superclass.empty() ? nullptr : superclass.data(), router_loss_weight_, a,
                     gradient_ready_);
  workspace_.settle();
  return loss;
}

template class Model<float>;
template class Model<double>;

}  // namespace mone
