// The CPU Model: the one model step (model/step.h) over the reference ops,
// with its activations in the workspace.
#include "model/model.h"

#include "model/step.h"
#include "model/step_ops.h"

namespace mone {

template <class T>
struct Model<T>::Activations : StepActivations<CpuStepOps<T>> {};

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
    : config_(config), params_((config.validate(), config)), acts_(std::make_unique<Activations>()) {
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
  plan_step(arena, ops, config_, batch, with_backward, *acts_);
  step_forward(ops, config_, images, plan, *acts_);
  const int64_t rows = batch * config_.tokens();
  routing_.plan = plan;
  routing_.expert_of_token.assign(acts_->expert_of_token, acts_->expert_of_token + rows);
  routing_.source_of_row.assign(acts_->source_of_row, acts_->source_of_row + rows);
  routing_.groups = acts_->groups;
}

template <class T>
const T* Model<T>::router_probs() const {
  return acts_->router_probs;
}

template <class T>
const T* Model<T>::logits() const {
  return acts_->logits;
}

template <class T>
const T* Model<T>::forward(const T* images, int64_t batch, const RoutingPlan& plan) {
  forward_pass(images, batch, plan, false);
  workspace_.settle();
  return acts_->logits;
}

template <class T>
T Model<T>::forward_backward(const T* images, const int32_t* labels, int64_t batch, const RoutingPlan& plan) {
  forward_pass(images, batch, plan, true);
  const T loss =
      cross_entropy_forward(acts_->logits, labels, batch, config_.classes, acts_->class_probs, label_smoothing_);
  CpuStepOps<T> ops(params_, config_, order_, label_smoothing_);
  step_backward(ops, config_, labels, *acts_, gradient_ready_);
  workspace_.settle();
  return loss;
}

template class Model<float>;
template class Model<double>;

}  // namespace mone
